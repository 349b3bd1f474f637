"""Every decision type and the decision failures SWF records, with their causes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localswf.testing import LocalSwfProcess, attributes_of, decision, event_types, register_test_domain, swf_client

DOMAIN = "test"
WORKFLOW = {"name": "Workflow", "version": "1"}
ACTIVITY = {"name": "Activity", "version": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSwfProcess]:
    path = tmp_path_factory.mktemp("decisions") / "db.sqlite3"
    with LocalSwfProcess(path, max_poll_seconds=1, extra_args=["--enable-reset"]) as process:
        yield process


@pytest.fixture
def client(server: LocalSwfProcess) -> Any:
    server.reset()
    swf = swf_client(server.url)
    register_test_domain(swf, DOMAIN, decision_timeout="30")
    return swf


def start(client: Any, workflow_id: str = "wf", **extra: Any) -> str:
    return client.start_workflow_execution(domain=DOMAIN, workflowId=workflow_id, workflowType=WORKFLOW, **extra)["runId"]


def poll(client: Any, workflow_id: str | None = None) -> dict[str, Any]:
    task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"}, identity="decider")
    assert "taskToken" in task, "no decision task"
    if workflow_id is not None:
        assert task["workflowExecution"]["workflowId"] == workflow_id
    return task


def decide(client: Any, *decisions: dict[str, Any], workflow_id: str | None = None) -> dict[str, Any]:
    task = poll(client, workflow_id)
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=list(decisions))
    return task


def history(client: Any, run_id: str, workflow_id: str = "wf") -> list[dict[str, Any]]:
    paginator = client.get_paginator("get_workflow_execution_history")
    pages = paginator.paginate(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id})
    return [event for page in pages for event in page["events"]]


def find(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    matches = [event for event in events if event["eventType"] == event_type]
    assert matches, f"no {event_type} in {event_types(events)}"
    return attributes_of(matches[-1])


def schedule(activity_id: str = "a1", **extra: Any) -> dict[str, Any]:
    return decision("ScheduleActivityTask", activityType=extra.pop("activityType", ACTIVITY), activityId=activity_id, **extra)


def info(client: Any, run_id: str, workflow_id: str = "wf") -> dict[str, Any]:
    return client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id})["executionInfo"]


# --- activities ---------------------------------------------------------------------------------

def test_activity_id_in_use_only_while_open(client: Any) -> None:
    run_id = start(client)
    decide(client, schedule("same"), schedule("same"))
    failed = find(history(client, run_id), "ScheduleActivityTaskFailed")
    assert failed == {"activityType": ACTIVITY, "activityId": "same", "cause": "ACTIVITY_ID_ALREADY_IN_USE", "decisionTaskCompletedEventId": 4}
    # The failure scheduled a decision task; the activity completes, and the id is free again.
    task = client.poll_for_activity_task(domain=DOMAIN, taskList={"name": "activities"})
    client.respond_activity_task_completed(taskToken=task["taskToken"])
    decide(client, schedule("same"))
    events = history(client, run_id)
    assert event_types(events).count("ActivityTaskScheduled") == 2


@pytest.mark.parametrize(
    ("arranged", "expected_cause"),
    [
        ("missing", "ACTIVITY_TYPE_DOES_NOT_EXIST"),
        ("deprecated", "ACTIVITY_TYPE_DEPRECATED"),
        ("no-task-list", "DEFAULT_TASK_LIST_UNDEFINED"),
        ("no-schedule-to-close", "DEFAULT_SCHEDULE_TO_CLOSE_TIMEOUT_UNDEFINED"),
        ("no-schedule-to-start", "DEFAULT_SCHEDULE_TO_START_TIMEOUT_UNDEFINED"),
        ("no-start-to-close", "DEFAULT_START_TO_CLOSE_TIMEOUT_UNDEFINED"),
        ("no-heartbeat", "DEFAULT_HEARTBEAT_TIMEOUT_UNDEFINED"),
    ],
)
def test_schedule_activity_failure_causes(client: Any, arranged: str, expected_cause: str) -> None:
    full = {
        "defaultTaskList": {"name": "x"}, "defaultTaskScheduleToCloseTimeout": "10", "defaultTaskScheduleToStartTimeout": "10",
        "defaultTaskStartToCloseTimeout": "10", "defaultTaskHeartbeatTimeout": "10",
    }
    removed = {
        "no-task-list": "defaultTaskList", "no-schedule-to-close": "defaultTaskScheduleToCloseTimeout",
        "no-schedule-to-start": "defaultTaskScheduleToStartTimeout", "no-start-to-close": "defaultTaskStartToCloseTimeout",
        "no-heartbeat": "defaultTaskHeartbeatTimeout",
    }
    activity_type = {"name": "Partial", "version": "1"}
    if arranged != "missing":
        defaults = {key: value for key, value in full.items() if key != removed.get(arranged)}
        client.register_activity_type(domain=DOMAIN, **activity_type, **defaults)
    if arranged == "deprecated":
        client.deprecate_activity_type(domain=DOMAIN, activityType=activity_type)
    run_id = start(client)
    decide(client, schedule("p", activityType=activity_type))
    assert find(history(client, run_id), "ScheduleActivityTaskFailed")["cause"] == expected_cause
    # Passing the value in the decision satisfies the missing default.
    if arranged in removed:
        member = {
            "no-task-list": ("taskList", {"name": "x"}), "no-schedule-to-close": ("scheduleToCloseTimeout", "10"),
            "no-schedule-to-start": ("scheduleToStartTimeout", "10"), "no-start-to-close": ("startToCloseTimeout", "10"),
            "no-heartbeat": ("heartbeatTimeout", "NONE"),
        }[arranged]
        decide(client, schedule("p", activityType=activity_type, **{member[0]: member[1]}))
        assert event_types(history(client, run_id)).count("ActivityTaskScheduled") == 1


def test_open_activities_limit(client: Any) -> None:
    run_id = start(client)
    decide(client, *[schedule(f"a{index}") for index in range(1001)])
    events = history(client, run_id)
    assert event_types(events).count("ActivityTaskScheduled") == 1000
    failed = find(events, "ScheduleActivityTaskFailed")
    assert failed["cause"] == "OPEN_ACTIVITIES_LIMIT_EXCEEDED"
    assert failed["activityId"] == "a1000"


def test_cancel_scheduled_activity_is_immediate(client: Any) -> None:
    run_id = start(client)
    decide(client, schedule("a1"))
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="s")
    decide(client, decision("RequestCancelActivityTask", activityId="a1"), decision("RequestCancelActivityTask", activityId="nope"))
    events = history(client, run_id)
    requested = next(event for event in events if event["eventType"] == "ActivityTaskCancelRequested")
    assert find(events, "ActivityTaskCanceled") == {"scheduledEventId": 5, "startedEventId": 0, "latestCancelRequestedEventId": requested["eventId"]}
    assert find(events, "RequestCancelActivityTaskFailed")["cause"] == "ACTIVITY_ID_UNKNOWN"
    assert events[-1]["eventType"] == "DecisionTaskScheduled"
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})["count"] == 0


# --- timers and markers -------------------------------------------------------------------------

def test_timer_rules(client: Any) -> None:
    run_id = start(client)
    decide(client,
           decision("StartTimer", timerId="t", startToFireTimeout="600"),
           decision("StartTimer", timerId="t", startToFireTimeout="600"),
           decision("CancelTimer", timerId="unknown"))
    events = history(client, run_id)
    assert find(events, "StartTimerFailed") == {"timerId": "t", "cause": "TIMER_ID_ALREADY_IN_USE", "decisionTaskCompletedEventId": 4}
    assert find(events, "CancelTimerFailed") == {"timerId": "unknown", "cause": "TIMER_ID_UNKNOWN", "decisionTaskCompletedEventId": 4}
    decide(client, decision("CancelTimer", timerId="t"))
    events = history(client, run_id)
    started = next(event for event in events if event["eventType"] == "TimerStarted")
    canceled = find(events, "TimerCanceled")
    assert canceled["timerId"] == "t"
    assert canceled["startedEventId"] == started["eventId"]
    assert client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "wf", "runId": run_id})["openCounts"]["openTimers"] == 0
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="s")
    with pytest.raises(ClientError) as error:
        decide(client, decision("StartTimer", timerId="x", startToFireTimeout="NONE"))
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_record_marker(client: Any) -> None:
    run_id = start(client)
    decide(client, decision("RecordMarker", markerName="checkpoint", details="step 1"))
    events = history(client, run_id)
    assert find(events, "MarkerRecorded") == {"markerName": "checkpoint", "details": "step 1", "decisionTaskCompletedEventId": 4}
    assert events[-1]["eventType"] == "MarkerRecorded"  # a marker schedules no decision task


# --- closing ------------------------------------------------------------------------------------

def test_unhandled_decision_when_events_arrive(client: Any) -> None:
    run_id = start(client)
    task = poll(client)
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="late news")
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    events = history(client, run_id)
    assert find(events, "CompleteWorkflowExecutionFailed") == {"cause": "UNHANDLED_DECISION", "decisionTaskCompletedEventId": 5}
    assert info(client, run_id)["executionStatus"] == "OPEN"
    task = poll(client)
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="more")
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("FailWorkflowExecution", reason="r")])
    assert find(history(client, run_id), "FailWorkflowExecutionFailed")["cause"] == "UNHANDLED_DECISION"
    decide(client, decision("FailWorkflowExecution", reason="gave up", details="d"))
    events = history(client, run_id)
    assert find(events, "WorkflowExecutionFailed")["reason"] == "gave up"
    assert info(client, run_id)["closeStatus"] == "FAILED"


def test_close_decision_must_be_last(client: Any) -> None:
    run_id = start(client)
    decide(client, decision("CompleteWorkflowExecution"), decision("RecordMarker", markerName="after"))
    events = history(client, run_id)
    assert find(events, "CompleteWorkflowExecutionFailed")["cause"] == "UNHANDLED_DECISION"
    assert info(client, run_id)["executionStatus"] == "OPEN"


def test_continue_as_new(client: Any) -> None:
    first_run = start(client, input="round 1", tagList=["t"])
    decide(client, decision("StartTimer", timerId="t", startToFireTimeout="600"))
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="s")
    decide(client, decision("ContinueAsNewWorkflowExecution", input="round 2", taskStartToCloseTimeout="20"))
    events = history(client, first_run)
    continued = find(events, "WorkflowExecutionContinuedAsNew")
    second_run = continued["newExecutionRunId"]
    assert continued["input"] == "round 2"
    assert continued["taskStartToCloseTimeout"] == "20"
    assert continued["workflowType"] == WORKFLOW
    assert info(client, first_run)["closeStatus"] == "CONTINUED_AS_NEW"
    new_events = history(client, second_run)
    started = attributes_of(new_events[0])
    assert started["continuedExecutionRunId"] == first_run
    assert started["input"] == "round 2"
    assert info(client, second_run)["executionStatus"] == "OPEN"
    task = poll(client, "wf")
    assert task["workflowExecution"]["runId"] == second_run


def test_continue_as_new_unknown_version(client: Any) -> None:
    run_id = start(client)
    decide(client, decision("ContinueAsNewWorkflowExecution", workflowTypeVersion="9"))
    assert find(history(client, run_id), "ContinueAsNewWorkflowExecutionFailed")["cause"] == "WORKFLOW_TYPE_DOES_NOT_EXIST"
    assert info(client, run_id)["executionStatus"] == "OPEN"


# --- other executions ---------------------------------------------------------------------------

def test_signal_and_cancel_external(client: Any) -> None:
    source_run = start(client, "source")
    target_run = start(client, "target")
    decide(client,
           decision("SignalExternalWorkflowExecution", workflowId="target", signalName="hello", input="i", control="c"),
           decision("RequestCancelExternalWorkflowExecution", workflowId="target", runId=target_run),
           decision("SignalExternalWorkflowExecution", workflowId="ghost", signalName="hello"),
           decision("RequestCancelExternalWorkflowExecution", workflowId="ghost"),
           workflow_id="source")
    source = history(client, source_run, "source")
    initiated = next(event for event in source if event["eventType"] == "SignalExternalWorkflowExecutionInitiated")
    assert find(source, "ExternalWorkflowExecutionSignaled") == {"workflowExecution": {"workflowId": "target", "runId": target_run}, "initiatedEventId": initiated["eventId"]}
    assert find(source, "ExternalWorkflowExecutionCancelRequested")["workflowExecution"]["runId"] == target_run
    assert find(source, "SignalExternalWorkflowExecutionFailed")["cause"] == "UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION"
    assert find(source, "RequestCancelExternalWorkflowExecutionFailed")["cause"] == "UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION"
    target = history(client, target_run, "target")
    signaled = find(target, "WorkflowExecutionSignaled")
    assert signaled == {"signalName": "hello", "input": "i", "externalWorkflowExecution": {"workflowId": "source", "runId": source_run}, "externalInitiatedEventId": initiated["eventId"]}
    assert find(target, "WorkflowExecutionCancelRequested")["externalWorkflowExecution"]["workflowId"] == "source"
    assert info(client, target_run, "target")["cancelRequested"] is True


def test_child_workflow_completes_to_parent(client: Any) -> None:
    parent_run = start(client, "parent")
    decide(client, decision("StartChildWorkflowExecution", workflowType=WORKFLOW, workflowId="child", input="ci", control="ctl"), workflow_id="parent")
    parent_events = history(client, parent_run, "parent")
    initiated = find(parent_events, "StartChildWorkflowExecutionInitiated")
    assert initiated["workflowId"] == "child"
    assert initiated["control"] == "ctl"
    child_started = find(parent_events, "ChildWorkflowExecutionStarted")
    child_run = child_started["workflowExecution"]["runId"]
    child_first = attributes_of(history(client, child_run, "child")[0])
    assert child_first["parentWorkflowExecution"] == {"workflowId": "parent", "runId": parent_run}
    assert info(client, child_run, "child")["parent"] == {"workflowId": "parent", "runId": parent_run}
    assert client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "parent", "runId": parent_run})["openCounts"]["openChildWorkflowExecutions"] == 1
    # The parent's decision task (for ChildWorkflowExecutionStarted) and the child's first one are both queued.
    tasks = [poll(client), poll(client)]
    by_id = {task["workflowExecution"]["workflowId"]: task for task in tasks}
    client.respond_decision_task_completed(taskToken=by_id["child"]["taskToken"], decisions=[decision("CompleteWorkflowExecution", result="child result")])
    client.respond_decision_task_completed(taskToken=by_id["parent"]["taskToken"], decisions=[])
    completed = find(history(client, parent_run, "parent"), "ChildWorkflowExecutionCompleted")
    assert completed["result"] == "child result"
    assert completed["workflowExecution"]["runId"] == child_run
    assert completed["startedEventId"] > completed["initiatedEventId"]


@pytest.mark.parametrize("policy", ["TERMINATE", "REQUEST_CANCEL", "ABANDON"])
def test_child_policy_applied_on_parent_close(client: Any, policy: str) -> None:
    parent_run = start(client, "parent", childPolicy=policy)
    decide(client, decision("StartChildWorkflowExecution", workflowType=WORKFLOW, workflowId="child"), workflow_id="parent")
    child_run = find(history(client, parent_run, "parent"), "ChildWorkflowExecutionStarted")["workflowExecution"]["runId"]
    client.terminate_workflow_execution(domain=DOMAIN, workflowId="parent")
    child = info(client, child_run, "child")
    child_events = history(client, child_run, "child")
    if policy == "TERMINATE":
        assert child["closeStatus"] == "TERMINATED"
        assert find(child_events, "WorkflowExecutionTerminated")["cause"] == "CHILD_POLICY_APPLIED"
    elif policy == "REQUEST_CANCEL":
        assert child["executionStatus"] == "OPEN"
        assert child["cancelRequested"] is True
        assert find(child_events, "WorkflowExecutionCancelRequested") == {"cause": "CHILD_POLICY_APPLIED"}
    else:
        assert child["executionStatus"] == "OPEN"
        assert "WorkflowExecutionCancelRequested" not in event_types(child_events)


def test_start_child_failures(client: Any) -> None:
    parent_run = start(client, "parent")
    start(client, "busy")
    decide(client,
           decision("StartChildWorkflowExecution", workflowType=WORKFLOW, workflowId="busy"),
           decision("StartChildWorkflowExecution", workflowType={"name": "Nope", "version": "1"}, workflowId="c2"),
           workflow_id="parent")
    failures = [attributes_of(e) for e in history(client, parent_run, "parent") if e["eventType"] == "StartChildWorkflowExecutionFailed"]
    assert [failure["cause"] for failure in failures] == ["WORKFLOW_ALREADY_RUNNING", "WORKFLOW_TYPE_DOES_NOT_EXIST"]
    assert all(failure["initiatedEventId"] > 0 for failure in failures)


def test_lambda_decision_gets_swf_failure(client: Any) -> None:
    run_id = start(client)
    decide(client, decision("ScheduleLambdaFunction", id="l1", name="fn"))
    failed = find(history(client, run_id), "ScheduleLambdaFunctionFailed")
    assert failed["cause"] == "LAMBDA_SERVICE_NOT_AVAILABLE_IN_REGION"
    assert info(client, run_id)["executionStatus"] == "OPEN"


def test_invalid_decision_rejected_whole(client: Any) -> None:
    run_id = start(client)
    task = poll(client)
    with pytest.raises(ClientError) as error:
        client.respond_decision_task_completed(
            taskToken=task["taskToken"], decisions=[decision("RecordMarker", markerName="ok"), decision("CompleteWorkflowExecution", result="x" * 32769)]
        )
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "result" in error.value.response["Error"]["Message"]
    # Nothing was applied and the task is still open.
    assert "MarkerRecorded" not in event_types(history(client, run_id))
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    assert info(client, run_id)["closeStatus"] == "COMPLETED"


def test_event_limit_terminates(client: Any) -> None:
    run_id = start(client)
    began = time.monotonic()
    for _ in range(26):
        task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"})
        if "taskToken" not in task:
            break
        markers = [decision("RecordMarker", markerName="m") for _ in range(999)]
        # A signal makes the next decision task exist, so the loop keeps going until the limit closes the run.
        client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="more")
        client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=markers)
    assert info(client, run_id)["closeStatus"] == "TERMINATED"
    events = history(client, run_id)
    assert len(events) == 25000
    assert events[-1]["eventType"] == "WorkflowExecutionTerminated"
    assert attributes_of(events[-1])["cause"] == "EVENT_LIMIT_EXCEEDED"
    assert time.monotonic() - began < 60


def test_children_outlive_completed_parent(client: Any) -> None:
    parent_run = start(client, "parent", childPolicy="TERMINATE")
    decide(client, decision("StartChildWorkflowExecution", workflowType=WORKFLOW, workflowId="child"), workflow_id="parent")
    child_run = find(history(client, parent_run, "parent"), "ChildWorkflowExecutionStarted")["workflowExecution"]["runId"]
    tasks = [poll(client), poll(client)]
    by_id = {task["workflowExecution"]["workflowId"]: task for task in tasks}
    client.respond_decision_task_completed(taskToken=by_id["parent"]["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    assert info(client, parent_run, "parent")["closeStatus"] == "COMPLETED"
    assert info(client, child_run, "child")["executionStatus"] == "OPEN"
    client.respond_decision_task_completed(taskToken=by_id["child"]["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    assert info(client, child_run, "child")["closeStatus"] == "COMPLETED"
    assert history(client, parent_run, "parent")[-1]["eventType"] == "WorkflowExecutionCompleted"
