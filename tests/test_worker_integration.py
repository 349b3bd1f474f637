"""Real forked deciders and activity workers on the embedded SWF endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from worker_harness import (
    DECISIONS,
    DOMAIN,
    attrs_of,
    diag_type,
    endpoint,  # noqa: F401 - pytest fixture
    endpoint_server,  # noqa: F401 - pytest fixture used by endpoint
    event_types,
    make_config,
    make_farm,
    pipeline,
)

from workers import exitcodes
from workers.client import make_swf_client
from workers.config import RetryPolicy
from workers.polling import poll_decision_task

TYPES = (
    diag_type("Noop"),
    diag_type("Fail", retry=RetryPolicy(max_failures=3, timeouts=(60,), backoff_seconds=1, max_backoff_seconds=1)),
    diag_type("Sleep"),
)
WORKFLOWS = (
    pipeline("NoopPair", "Noop", "Noop"),
    pipeline("FailThenNoop", "Fail", "Noop"),
    pipeline("ThreeNoops", "Noop", "Noop", "Noop"),
)


@pytest.fixture
def farm(endpoint, tmp_path: Path):  # noqa: F811 - the fixture imported above
    farm = make_farm(endpoint, make_config(tmp_path, TYPES, WORKFLOWS))
    try:
        yield farm
    finally:
        farm.close()


def test_workflow_started_before_workers_completes(farm):
    run_id = farm.swf.start("NoopPair", "pair-1", {"media_uuid": "pair-1"})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("pair-1")

    assert summary["status"] == "completed"
    assert summary["workflow_input"] == {"media_uuid": "pair-1"}
    assert summary["run_id"] == run_id
    steps = summary["result"]["steps"]
    assert [step["activity_id"] for step in steps] == ["Noop-1", "Noop-2"]
    assert steps[0]["result"]["previous_chars"] == len("null")
    assert steps[1]["result"]["previous_chars"] == len(json.dumps(steps[0]["result"]))
    history = farm.swf.history("pair-1", run_id)
    assert event_types(history)[-1] == "WorkflowExecutionCompleted"


def test_transient_failures_retry_then_complete(farm):
    run_id = farm.swf.start("FailThenNoop", "fail-2", {"fail_attempts": 2, "message": "disk busy"})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("fail-2")

    assert summary["status"] == "completed"
    assert summary["result"]["steps"][0]["activity_id"] == "Fail-3"
    history = farm.swf.history("fail-2", run_id)
    failures = attrs_of(history, "ActivityTaskFailed")
    assert len(failures) == 2
    assert json.loads(failures[0]["details"]) == {"retry": True, "error": "RuntimeError", "message": "disk busy"}
    # backoff_seconds is 1, so each retry waited on a timer.
    assert len(attrs_of(history, "TimerFired")) == 2


def test_permanent_failure_fails_workflow_with_reason(farm):
    run_id = farm.swf.start("FailThenNoop", "fail-perm", {"permanent": True, "message": "corrupt upload"})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("fail-perm")

    assert summary["status"] == "failed"
    assert "Fail failed with a permanent error PermanentError" in summary["reason"]
    assert "corrupt upload" in summary["reason"]
    history = farm.swf.history("fail-perm", run_id)
    assert len(attrs_of(history, "ActivityTaskFailed")) == 1
    closed = attrs_of(history, "WorkflowExecutionFailed")[0]
    assert json.loads(closed["details"])["activity_id"] == "Fail-1"


def test_oversized_failure_message_is_accepted(farm):
    run_id = farm.swf.start("FailThenNoop", "fail-big", {"permanent": True, "message": "m\"\\", "message_repeat": 50_000})
    farm.decider()
    farm.activity_worker()

    assert farm.closed.wait_for("fail-big")["status"] == "failed"
    failure = attrs_of(farm.swf.history("fail-big", run_id), "ActivityTaskFailed")[0]
    assert len(failure["reason"]) <= 256
    assert len(failure["details"]) <= 32768
    assert json.loads(failure["details"])["retry"] is False


def test_large_result_passed_by_reference(farm, tmp_path):
    farm.swf.start("NoopPair", "big-result", {"pad": 40_000})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("big-result")

    first, second = summary["result"]["steps"]
    url = first["result"]["result_ref"]
    assert url.startswith(str(tmp_path / "storage"))
    assert len(json.loads(Path(url).read_text())["pad"]) == 40_000
    # The second step received the stored result, not the reference.
    assert second["result"]["previous_chars"] > 40_000


def test_worker_recycles_after_max_tasks(endpoint, tmp_path):  # noqa: F811
    farm = make_farm(endpoint, make_config(tmp_path, TYPES, WORKFLOWS, max_tasks_per_process=2))
    try:
        farm.swf.start("ThreeNoops", "recycle", {})
        farm.decider()
        first = farm.activity_worker()

        assert first.wait_exit() == exitcodes.RECYCLE
        assert [e["outcome"] for e in first.events if e["event"] == "task_finished"] == ["completed", "completed"]
        farm.activity_worker()
        summary = farm.closed.wait_for("recycle")

        assert [step["activity_id"] for step in summary["result"]["steps"]] == ["Noop-1", "Noop-2", "Noop-3"]
        assert summary["result"]["steps"][2]["result"]["pid"] != first.pid
    finally:
        farm.close()


def test_decision_poll_fetches_every_history_page(farm):
    run_id = farm.swf.start("NoopPair", "paged", {})
    for number in range(260):
        farm.swf("SignalWorkflowExecution", domain=DOMAIN, workflowId="paged", signalName="ping", input=str(number))
    expected = len(farm.swf.history("paged", run_id))
    assert expected >= 250

    def poll_pages(progress_fd: int) -> int:
        client = make_swf_client(farm.config, farm.url)
        task = poll_decision_task(client, DOMAIN, DECISIONS, "pager", page_size=100)
        ids = [event["eventId"] for event in task["events"]] if task else []
        os.write(progress_fd, (json.dumps({"event": "paged", "ids": ids}) + "\n").encode())
        return 0

    pager = farm.forked(poll_pages)
    ids = pager.wait_event(lambda event: event["event"] == "paged")["ids"]

    assert pager.wait_exit() == 0
    # Every event up to the DecisionTaskStarted that the poll added, over three pages of 100.
    assert ids == list(range(1, expected + 2))


def test_decider_that_dies_mid_decision_is_replaced(endpoint, tmp_path):  # noqa: F811
    workflows = (pipeline("NoopPair", "Noop", "Noop", task_start_to_close_timeout=2),)
    farm = make_farm(endpoint, make_config(tmp_path, TYPES, workflows))
    try:
        run_id = farm.swf.start("NoopPair", "dead-decider", {})

        def take_task_and_die(progress_fd: int) -> int:
            client = make_swf_client(farm.config, farm.url)
            task = poll_decision_task(client, DOMAIN, DECISIONS, "doomed")
            os.write(progress_fd, (json.dumps({"event": "took", "got": task is not None}) + "\n").encode())
            return 9

        doomed = farm.forked(take_task_and_die)
        assert doomed.wait_event(lambda event: event["event"] == "took")["got"] is True
        assert doomed.wait_exit() == 9
        farm.decider()
        farm.activity_worker()

        assert farm.closed.wait_for("dead-decider")["status"] == "completed"
        assert "DecisionTaskTimedOut" in event_types(farm.swf.history("dead-decider", run_id))
    finally:
        farm.close()


def test_long_history_continues_as_new_and_completes(endpoint, tmp_path):  # noqa: F811
    workflows = (pipeline("NoopPair", "Noop", "Noop", continue_as_new_after_events=30),)
    farm = make_farm(endpoint, make_config(tmp_path, TYPES, workflows))
    try:
        first_run = farm.swf.start("NoopPair", "long", {"media_uuid": "long"})
        for number in range(40):
            farm.swf("SignalWorkflowExecution", domain=DOMAIN, workflowId="long", signalName="ping", input=str(number))
        farm.decider()
        farm.activity_worker()

        summary = farm.closed.wait_for("long")

        assert summary["status"] == "completed"
        assert summary["run_id"] != first_run
        assert summary["workflow_input"] == {"media_uuid": "long"}
        assert [s["status"] for s in farm.closed.summaries] == ["completed"]
        assert summary["result"]["continued_runs"] == 1
        assert summary["result"]["signal_count"] == 40
        assert [step["activity_id"] for step in summary["result"]["steps"]] == ["Noop-1", "Noop-2"]
        first_history = farm.swf.history("long", first_run)
        assert event_types(first_history)[-1] == "WorkflowExecutionContinuedAsNew"
        carried = attrs_of(first_history, "WorkflowExecutionContinuedAsNew")[0]["input"]
        assert len(carried) < 32768
        assert json.loads(carried)["workflow"] == {"media_uuid": "long"}
    finally:
        farm.close()
