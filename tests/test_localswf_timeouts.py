"""Timeouts enforced in real time: decision tasks, the four activity timeouts, workflow executions and timers.

Waits are long polls on the server (bounded by max_poll_seconds) or bounded loops over history reads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localswf.testing import LocalSwfProcess, attributes_of, decision, event_types, register_test_domain, swf_client

DOMAIN = "test"
WORKFLOW = {"name": "Workflow", "version": "1"}
ACTIVITY = {"name": "Activity", "version": "1"}
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "swf-reference" / "decision-timeout-then-complete.json"
WAIT_LIMIT = 15.0  # seconds; every timeout in this file is 1 or 2 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSwfProcess]:
    path = tmp_path_factory.mktemp("timeouts") / "db.sqlite3"
    with LocalSwfProcess(path, max_poll_seconds=1, extra_args=["--enable-reset"]) as process:
        yield process


@pytest.fixture
def client(server: LocalSwfProcess) -> Any:
    server.reset()
    swf = swf_client(server.url)
    register_test_domain(swf, DOMAIN, decision_timeout="1", workflow_timeout="60")
    return swf


def history(client: Any, run_id: str, workflow_id: str = "wf") -> list[dict[str, Any]]:
    return client.get_workflow_execution_history(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id})["events"]


def wait_for_event(client: Any, run_id: str, event_type: str, workflow_id: str = "wf") -> list[dict[str, Any]]:
    """Re-read the history until `event_type` shows up; each read follows a long poll or an activity wait."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        events = history(client, run_id, workflow_id)
        if event_type in event_types(events):
            return events
        # An activity poll on an unused task list waits up to max_poll_seconds (1 s) and takes no task,
        # so the history is re-read about once a second.
        client.poll_for_activity_task(domain=DOMAIN, taskList={"name": f"idle-{event_type}"})
    raise AssertionError(f"{event_type} did not appear within {WAIT_LIMIT} s: {event_types(history(client, run_id, workflow_id))}")


def poll_decision(client: Any) -> dict[str, Any]:
    """Long-poll until a decision task arrives; empty polls repeat up to WAIT_LIMIT seconds."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"}, identity="decider")
        if "taskToken" in task:
            return task
    raise AssertionError(f"no decision task within {WAIT_LIMIT} s")


def poll_activity(client: Any) -> dict[str, Any]:
    task = client.poll_for_activity_task(domain=DOMAIN, taskList={"name": "activities"}, identity="worker")
    assert "taskToken" in task, "no activity task within max_poll_seconds"
    return task


def start_and_schedule(client: Any, **activity: Any) -> str:
    run_id = client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW)["runId"]
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"],
        decisions=[decision("ScheduleActivityTask", activityType=ACTIVITY, activityId="a1", **activity)],
    )
    return run_id


def test_dead_decider_then_second_decider(client: Any, server: LocalSwfProcess) -> None:
    run_id = client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, input="{}")["runId"]
    # A real decider process takes the task and is SIGKILLed while it holds it.
    code = (
        "import os, signal, boto3\n"
        f"c = boto3.client('swf', endpoint_url={server.url!r}, region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b')\n"
        f"t = c.poll_for_decision_task(domain={DOMAIN!r}, taskList={{'name': 'decisions'}}, identity='doomed')\n"
        "print(t.get('startedEventId'), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    doomed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert doomed.returncode == -signal.SIGKILL
    assert doomed.stdout.strip() == "3"

    task = poll_decision(client)  # arrives once the 1 s START_TO_CLOSE timeout fires
    assert task["startedEventId"] == 6
    events = task["events"]
    assert event_types(events) == [
        "WorkflowExecutionStarted", "DecisionTaskScheduled", "DecisionTaskStarted", "DecisionTaskTimedOut",
        "DecisionTaskScheduled", "DecisionTaskStarted",
    ]
    assert attributes_of(events[3]) == {"scheduledEventId": 2, "startedEventId": 3, "timeoutType": "START_TO_CLOSE"}
    assert events[3]["eventTimestamp"] == events[4]["eventTimestamp"]
    assert attributes_of(events[4]) == {"taskList": {"name": "decisions"}, "startToCloseTimeout": "1"}
    assert (events[3]["eventTimestamp"] - events[2]["eventTimestamp"]).total_seconds() >= 1.0
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution", result="ok")])
    final = history(client, run_id)
    assert final[-1]["eventType"] == "WorkflowExecutionCompleted"
    assert attributes_of(final[-2]) == {"scheduledEventId": 5, "startedEventId": 6}


@pytest.mark.skipif(not REFERENCE.exists(), reason="recorded SWF reference histories not present")
def test_matches_recorded_swf_history(client: Any) -> None:
    """Replay the recorded scenario and compare event types and attribute names with real SWF's."""
    reference = json.loads(REFERENCE.read_text())["events"]
    run_id = client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, input="{}")["runId"]
    poll_decision(client)  # held until it times out
    task = poll_decision(client)
    client.respond_decision_task_completed(
        taskToken=task["taskToken"],
        decisions=[decision("ScheduleActivityTask", activityType=ACTIVITY, activityId="a1", input="[]")],
    )
    activity = poll_activity(client)
    client.respond_activity_task_completed(taskToken=activity["taskToken"], result="[]")
    task = poll_decision(client)
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    ours = history(client, run_id)
    assert event_types(ours) == event_types(reference)
    for mine, theirs in zip(ours, reference):
        # identity is ours because our pollers send one; the recorded run sent none.
        assert set(attributes_of(mine)) - {"identity"} == set(attributes_of(theirs)), mine["eventType"]
        assert set(mine) == set(theirs)


def test_activity_schedule_to_start(client: Any) -> None:
    run_id = start_and_schedule(client, scheduleToStartTimeout="1")
    task = poll_decision(client)
    timed_out = next(event for event in task["events"] if event["eventType"] == "ActivityTaskTimedOut")
    assert attributes_of(timed_out) == {"timeoutType": "SCHEDULE_TO_START", "scheduledEventId": 5, "startedEventId": 0}
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})["count"] == 0
    assert event_types(history(client, run_id))[-2:] == ["DecisionTaskScheduled", "DecisionTaskStarted"]


def test_activity_start_to_close(client: Any) -> None:
    start_and_schedule(client, startToCloseTimeout="1")
    activity = poll_activity(client)
    task = poll_decision(client)
    timed_out = next(event for event in task["events"] if event["eventType"] == "ActivityTaskTimedOut")
    assert attributes_of(timed_out) == {"timeoutType": "START_TO_CLOSE", "scheduledEventId": 5, "startedEventId": 6}
    with pytest.raises(client.exceptions.UnknownResourceFault):
        client.respond_activity_task_completed(taskToken=activity["taskToken"], result="late")


def test_activity_schedule_to_close(client: Any) -> None:
    start_and_schedule(client, scheduleToCloseTimeout="2", startToCloseTimeout="30")
    poll_activity(client)
    task = poll_decision(client)
    timed_out = next(event for event in task["events"] if event["eventType"] == "ActivityTaskTimedOut")
    assert attributes_of(timed_out)["timeoutType"] == "SCHEDULE_TO_CLOSE"


def test_activity_heartbeat_timeout_keeps_details(client: Any) -> None:
    start_and_schedule(client, heartbeatTimeout="2", startToCloseTimeout="30")
    activity = poll_activity(client)
    # A worker heartbeating every 0.5 s keeps the task alive for 3 s, past the 2 s heartbeat timeout.
    began = time.monotonic()
    pace = threading.Event()
    index = 0
    while time.monotonic() - began < 3.0:
        reply = client.record_activity_task_heartbeat(taskToken=activity["taskToken"], details=f"step {index}")
        assert reply["cancelRequested"] is False
        index += 1
        pace.wait(0.5)  # heartbeat pacing, as a real worker does; nothing waits for a state change here
    task = poll_decision(client)
    timed_out = next(event for event in task["events"] if event["eventType"] == "ActivityTaskTimedOut")
    assert attributes_of(timed_out)["timeoutType"] == "HEARTBEAT"
    assert attributes_of(timed_out)["details"].startswith("step ")


def test_workflow_start_to_close(client: Any) -> None:
    run_id = client.start_workflow_execution(
        domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, executionStartToCloseTimeout="1", childPolicy="ABANDON"
    )["runId"]
    events = wait_for_event(client, run_id, "WorkflowExecutionTimedOut")
    assert attributes_of(events[-1]) == {"timeoutType": "START_TO_CLOSE", "childPolicy": "ABANDON"}
    info = client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "wf", "runId": run_id})["executionInfo"]
    assert info["closeStatus"] == "TIMED_OUT"
    assert client.count_pending_decision_tasks(domain=DOMAIN, taskList={"name": "decisions"})["count"] == 0


def test_timer_fires(client: Any) -> None:
    run_id = client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, taskStartToCloseTimeout="30")["runId"]
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"],
        decisions=[decision("StartTimer", timerId="t1", startToFireTimeout="1", control="c")],
    )
    task = poll_decision(client)
    fired = next(event for event in task["events"] if event["eventType"] == "TimerFired")
    started = next(event for event in task["events"] if event["eventType"] == "TimerStarted")
    assert attributes_of(started) == {"timerId": "t1", "control": "c", "startToFireTimeout": "1", "decisionTaskCompletedEventId": 4}
    assert attributes_of(fired) == {"timerId": "t1", "startedEventId": started["eventId"]}
    assert (fired["eventTimestamp"] - started["eventTimestamp"]).total_seconds() >= 1.0
    assert run_id == task["workflowExecution"]["runId"]


def test_zero_second_timer_fires(client: Any) -> None:
    client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, taskStartToCloseTimeout="30")
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"], decisions=[decision("StartTimer", timerId="now", startToFireTimeout="0")]
    )
    assert "TimerFired" in event_types(poll_decision(client)["events"])


def test_retention_zero_deletes_closed_execution(client: Any) -> None:
    client.register_domain(name="brief", workflowExecutionRetentionPeriodInDays="0")
    client.register_workflow_type(domain="brief", name="W", version="1", defaultTaskList={"name": "b"}, defaultTaskStartToCloseTimeout="5",
                                  defaultExecutionStartToCloseTimeout="60", defaultChildPolicy="TERMINATE")
    run_id = client.start_workflow_execution(domain="brief", workflowId="gone", workflowType={"name": "W", "version": "1"})["runId"]
    client.terminate_workflow_execution(domain="brief", workflowId="gone")
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        try:
            client.describe_workflow_execution(domain="brief", execution={"workflowId": "gone", "runId": run_id})
        except client.exceptions.UnknownResourceFault:
            break
        assert time.monotonic() < deadline, "closed execution was not deleted"
        client.poll_for_activity_task(domain="brief", taskList={"name": "idle"})
    assert client.count_closed_workflow_executions(domain="brief", startTimeFilter={"oldestDate": 0})["count"] == 0




def test_task_list_override_schedule_to_start(client: Any) -> None:
    run_id = client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW, taskStartToCloseTimeout="30")["runId"]
    task = poll_decision(client)
    client.respond_decision_task_completed(
        taskToken=task["taskToken"], decisions=[decision("StartTimer", timerId="t", startToFireTimeout="0")],
        taskList={"name": "nobody-polls"}, taskListScheduleToStartTimeout="1",
    )
    # The timer's decision task goes to the override list, times out there after 1 s, then returns to "decisions".
    task = poll_decision(client)
    events = task["events"]
    completed = next(event for event in events if event["eventType"] == "DecisionTaskCompleted")
    assert attributes_of(completed)["taskList"] == {"name": "nobody-polls"}
    assert attributes_of(completed)["taskListScheduleToStartTimeout"] == "1"
    scheduled = [attributes_of(event) for event in events if event["eventType"] == "DecisionTaskScheduled"]
    assert scheduled[1] == {"taskList": {"name": "nobody-polls"}, "startToCloseTimeout": "30", "scheduleToStartTimeout": "1"}
    assert scheduled[2] == {"taskList": {"name": "decisions"}, "startToCloseTimeout": "30"}
    timed_out = next(event for event in events if event["eventType"] == "DecisionTaskTimedOut")
    assert attributes_of(timed_out)["timeoutType"] == "SCHEDULE_TO_START"
    assert attributes_of(timed_out)["startedEventId"] == 0
    assert task["workflowExecution"]["runId"] == run_id
