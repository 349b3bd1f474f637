"""Faults around running activity tasks: signals, cancel, terminate, timeouts, orphans.

Every test runs real forked workers on the embedded SWF endpoint and sends real signals.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest
from worker_harness import (
    DOMAIN,
    ForkedWorker,
    canned_server,  # noqa: F401 - pytest fixture
    attrs_of,
    diag_type,
    endpoint,  # noqa: F401 - pytest fixture
    endpoint_server,  # noqa: F401 - pytest fixture
    event_types,
    make_config,
    make_farm,
    pipeline,
)

from workers import exitcodes
from workers.activity import ABORTED

TYPES = (diag_type("Sleep"), diag_type("SpawnChild"), diag_type("Noop"))
WORKFLOWS = (pipeline("SleepOnce", "Sleep"), pipeline("SpawnOnce", "SpawnChild"), pipeline("NoopOnce", "Noop"))


@pytest.fixture
def farm(endpoint, tmp_path: Path):  # noqa: F811 - the fixture imported above
    farm = make_farm(endpoint, make_config(tmp_path, TYPES, WORKFLOWS))
    try:
        yield farm
    finally:
        farm.close()


def started(event: dict) -> bool:
    return event["event"] == "task_started"


def heartbeat_sent(event: dict) -> bool:
    return event["event"] == "heartbeat"


def sigterm_seen(event: dict) -> bool:
    return event["event"] == "stopping" and event["reason"] == "SIGTERM received"


def wait_for_grandchildren(worker) -> list[psutil.Process]:
    """Return the worker's child processes once SpawnChild started one, checking at each heartbeat."""
    for _ in range(30):
        seen = len(worker.events)
        worker.wait_event(lambda event: heartbeat_sent(event) and worker.events.index(event) >= seen)
        children = psutil.Process(worker.pid).children()
        if children:
            return children
    raise AssertionError(f"worker {worker.pid} started no child process within 30 heartbeats")


def abort(worker) -> None:
    """Send SIGTERM twice, the second after the worker has handled the first.

    Python runs a handler once for signals that arrive before it runs, so two signals
    sent back to back count as one.
    """
    worker.signal(signal.SIGTERM)
    worker.wait_event(sigterm_seen)
    worker.signal(signal.SIGTERM)


def test_idle_workers_stop_on_sigterm(farm):
    decider = farm.decider()
    worker = farm.activity_worker()
    decider.wait_event(lambda event: event["event"] == "poll_started")
    worker.wait_event(lambda event: event["event"] == "poll_started")

    decider.signal(signal.SIGTERM)
    worker.signal(signal.SIGTERM)

    assert decider.wait_exit(10) == exitcodes.OK
    assert worker.wait_exit(10) == exitcodes.OK
    assert worker.events[-1]["event"] == "stopping"
    assert worker.events[-1]["reason"] == "stop requested"
    assert any(sigterm_seen(event) for event in worker.events)


def test_sigterm_lets_running_task_finish(farm):
    run_id = farm.swf.start("SleepOnce", "drain", {"seconds": 2, "heartbeat_every": 0.2})
    farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(started)

    worker.signal(signal.SIGTERM)

    assert worker.wait_exit() == exitcodes.OK
    finished = [event["outcome"] for event in worker.events if event["event"] == "task_finished"]
    assert finished == ["completed"]
    assert farm.closed.wait_for("drain")["status"] == "completed"
    assert "ActivityTaskFailed" not in event_types(farm.swf.history("drain", run_id))


def test_second_sigterm_hands_task_back_and_exits(farm):
    # Sleep has max_failures 0: a hand-back that counted as a failure would fail the workflow.
    run_id = farm.swf.start("SleepOnce", "abort", {"seconds": 600, "heartbeat_every": 0.2})
    decider = farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(started)

    abort(worker)

    assert worker.wait_exit(15) == ABORTED
    finished = [event["outcome"] for event in worker.events if event["event"] == "task_finished"]
    assert finished == ["handed_back"], worker.events
    # The decider's second decision task schedules the next attempt.
    decisions_done = 0

    def second_decision(event: dict) -> bool:
        nonlocal decisions_done
        decisions_done += event["event"] == "task_finished"
        return decisions_done == 2

    decider.wait_event(second_decision)
    history = farm.swf.history("abort", run_id)
    failure = attrs_of(history, "ActivityTaskFailed")[0]
    details = json.loads(failure["details"])
    assert details["retry"] is True
    assert details["error"] == "HandedBack"
    assert [a["activityId"] for a in attrs_of(history, "ActivityTaskScheduled")] == ["Sleep-1", "Sleep-2"]
    assert "WorkflowExecutionFailed" not in event_types(history)
    farm.swf("TerminateWorkflowExecution", domain=DOMAIN, workflowId="abort")


def test_task_returned_after_sigterm_is_handed_back(farm):
    worker = farm.activity_worker()
    worker.wait_event(lambda event: event["event"] == "poll_started")
    worker.signal(signal.SIGTERM)
    run_id = farm.swf.start("NoopOnce", "late-task", {})
    farm.decider()

    # The poll in flight, or none if it returned empty first; both end with exit code 0.
    assert worker.wait_exit() == exitcodes.OK
    handed_back = [event for event in worker.events if event["event"] == "task_finished"]
    if handed_back:
        assert handed_back == [{**handed_back[0], "outcome": "handed_back"}]
        failure = attrs_of(farm.swf.history("late-task", run_id), "ActivityTaskFailed")[0]
        assert json.loads(failure["details"])["error"] == "HandedBack"
    farm.activity_worker()
    assert farm.closed.wait_for("late-task")["status"] == "completed"


def test_cancel_request_stops_activity_and_cancels_workflow(farm):
    run_id = farm.swf.start("SleepOnce", "cancel-me", {"seconds": 600, "heartbeat_every": 0.2})
    farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(started)

    farm.swf("RequestCancelWorkflowExecution", domain=DOMAIN, workflowId="cancel-me")

    summary = farm.closed.wait_for("cancel-me")
    assert summary["status"] == "canceled"
    worker.wait_event(lambda event: event["event"] == "task_finished")
    assert [e["outcome"] for e in worker.events if e["event"] == "task_finished"] == ["canceled"]
    history = event_types(farm.swf.history("cancel-me", run_id))
    assert history.index("ActivityTaskCancelRequested") < history.index("ActivityTaskCanceled")
    assert history[-1] == "WorkflowExecutionCanceled"


def test_terminated_execution_stops_worker(farm):
    run_id = farm.swf.start("SleepOnce", "terminate-me", {"seconds": 600, "heartbeat_every": 0.2})
    farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(started)

    farm.swf("TerminateWorkflowExecution", domain=DOMAIN, workflowId="terminate-me", reason="test")

    assert worker.wait_exit() == exitcodes.EXECUTION_CLOSED
    assert worker.events[-1]["event"] == "task_finished"
    assert worker.events[-1]["outcome"] == "closed"
    assert event_types(farm.swf.history("terminate-me", run_id))[-1] == "WorkflowExecutionTerminated"


def test_execution_timeout_stops_worker(farm):
    run_id = farm.swf.start(
        "SleepOnce", "time-out", {"seconds": 600, "heartbeat_every": 0.2}, executionStartToCloseTimeout="3"
    )
    farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(started)

    assert worker.wait_exit() == exitcodes.EXECUTION_CLOSED
    assert event_types(farm.swf.history("time-out", run_id))[-1] == "WorkflowExecutionTimedOut"


def test_aborted_worker_leaves_no_orphan(farm):
    farm.swf.start("SpawnOnce", "orphan", {"seconds": 600})
    farm.decider()
    worker = farm.activity_worker()
    grandchildren = wait_for_grandchildren(worker)
    assert [child.name() for child in grandchildren] == ["sleep"]

    abort(worker)

    assert worker.wait_exit(15) == ABORTED
    _, alive = psutil.wait_procs(grandchildren, timeout=10)
    assert alive == []
    farm.swf("TerminateWorkflowExecution", domain=DOMAIN, workflowId="orphan")


def test_cancelled_spawn_child_kills_grandchild(farm):
    farm.swf.start("SpawnOnce", "orphan-cancel", {"seconds": 600})
    farm.decider()
    worker = farm.activity_worker()
    grandchildren = wait_for_grandchildren(worker)
    assert len(grandchildren) == 1

    farm.swf("RequestCancelWorkflowExecution", domain=DOMAIN, workflowId="orphan-cancel")

    assert farm.closed.wait_for("orphan-cancel")["status"] == "canceled"
    _, alive = psutil.wait_procs(grandchildren, timeout=10)
    assert alive == []
    assert worker.exit_code is None  # the worker itself keeps polling


def test_stuck_handler_exits_worker_after_close(endpoint, tmp_path):  # noqa: F811
    types = (diag_type("BurnCpu"),)
    farm = make_farm(endpoint, make_config(tmp_path, types, (pipeline("Burn", "BurnCpu"),)))
    try:
        run_id = farm.swf.start("Burn", "stuck", {"seconds": 600, "heartbeat": False})
        farm.decider()
        worker = farm.activity_worker()
        worker.wait_event(heartbeat_sent)

        farm.swf("TerminateWorkflowExecution", domain=DOMAIN, workflowId="stuck")

        # The handler never looks at its context, so the heartbeat thread ends the process.
        assert worker.wait_exit() == exitcodes.EXECUTION_CLOSED
        assert worker.events[-1]["event"] == "task_finished"
        assert worker.events[-1]["outcome"] == "closed"
        assert event_types(farm.swf.history("stuck", run_id))[-1] == "WorkflowExecutionTerminated"
    finally:
        farm.close()


def test_heartbeat_survives_endpoint_restart(endpoint_server, tmp_path):
    farm = make_farm(endpoint_server.url, make_config(tmp_path, TYPES, WORKFLOWS))
    try:
        farm.swf.start("SleepOnce", "restart", {"seconds": 600, "heartbeat_every": 0.2})
        farm.decider()
        worker = farm.activity_worker(capture_log=True)
        worker.wait_event(heartbeat_sent)

        endpoint_server.stop()
        worker.wait_log("heartbeat of activity Sleep-1 failed, will retry next interval")
        index_before = len(worker.events)
        endpoint_server.start()  # same file and port

        # The heartbeat thread outlived the failure: heartbeats resume.
        worker.wait_event(lambda event: heartbeat_sent(event) and worker.events.index(event) >= index_before)
        farm.swf("RequestCancelWorkflowExecution", domain=DOMAIN, workflowId="restart")
        assert farm.closed.wait_for("restart")["status"] == "canceled"
        assert worker.exit_code is None
    finally:
        farm.close()


def test_throttled_first_poll_does_not_crash(canned_server, tmp_path):
    throttled = {"__type": "com.amazonaws.swf.base.model#ThrottlingException", "message": "Rate exceeded"}
    canned_server.replies.extend([(400, throttled)] * 3)
    config = make_config(tmp_path, TYPES, WORKFLOWS)
    worker = ForkedWorker("activity", "diag", config, f"http://127.0.0.1:{canned_server.server_address[1]}")
    try:
        returned = worker.wait_event(lambda event: event["event"] == "poll_returned")

        assert returned["got_task"] is False
        assert canned_server.replies == []
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == exitcodes.OK
    finally:
        worker.close()


def test_unconfigured_workflow_type_fails_clearly(endpoint, tmp_path):  # noqa: F811
    registered = make_config(tmp_path, TYPES, (*WORKFLOWS, pipeline("Unknown", "Noop")))
    farm = make_farm(endpoint, registered)
    try:
        run_id = farm.swf.start("Unknown", "unknown-type", {})
        farm.config = make_config(tmp_path, TYPES, WORKFLOWS)
        farm.decider()

        summary = farm.closed.wait_for("unknown-type")

        assert summary["status"] == "failed"
        assert summary["reason"].startswith("workflow type 'Unknown' is not configured in this decider")
        assert event_types(farm.swf.history("unknown-type", run_id))[-1] == "WorkflowExecutionFailed"
    finally:
        farm.close()


def test_heartbeat_timeout_keeps_last_details(farm):
    run_id = farm.swf.start("SleepOnce", "frozen", {"seconds": 600, "heartbeat_every": 0.2})
    farm.decider()
    worker = farm.activity_worker()
    worker.wait_event(heartbeat_sent)

    # A stopped process sends no heartbeats, so SWF times the task out after 3 s.
    worker.signal(signal.SIGSTOP)

    summary = farm.closed.wait_for("frozen")
    assert summary["status"] == "failed"
    assert "Sleep timed out (HEARTBEAT) 1 times" in summary["reason"]
    timed_out = attrs_of(farm.swf.history("frozen", run_id), "ActivityTaskTimedOut")[0]
    assert timed_out["timeoutType"] == "HEARTBEAT"
    # The details of the last heartbeat are the handler's latest progress.
    assert 0 < json.loads(timed_out["details"])["remaining_seconds"] <= 600


def test_killed_worker_leaves_no_orphan(farm):
    farm.swf.start("SpawnOnce", "orphan-kill", {"seconds": 600})
    farm.decider()
    worker = farm.activity_worker()
    grandchildren = wait_for_grandchildren(worker)
    assert [child.name() for child in grandchildren] == ["sleep"]

    worker.signal(signal.SIGKILL)

    assert worker.wait_exit() == -signal.SIGKILL
    _, alive = psutil.wait_procs(grandchildren, timeout=10)
    assert alive == []
    farm.swf("TerminateWorkflowExecution", domain=DOMAIN, workflowId="orphan-kill")


def test_long_identity_cut_to_256(canned_server, tmp_path):
    config = make_config(tmp_path, TYPES, WORKFLOWS)
    url = f"http://127.0.0.1:{canned_server.server_address[1]}"
    worker = ForkedWorker("activity", "diag", config, url, identity="host-" + "x" * 400)
    try:
        worker.wait_event(lambda event: event["event"] == "poll_returned")
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == exitcodes.OK
    finally:
        worker.close()

    target, body = canned_server.requests[0]
    assert target == "SimpleWorkflowService.PollForActivityTask"
    assert len(body["identity"]) == 256
    assert body["identity"].startswith("host-xxx")
