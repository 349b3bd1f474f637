"""Workflow executions end to end over HTTP: start, decide, run activities, inspect, list, signal, cancel, terminate."""

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
    path = tmp_path_factory.mktemp("workflow") / "db.sqlite3"
    with LocalSwfProcess(path, max_poll_seconds=1, extra_args=["--enable-reset"]) as process:
        yield process


@pytest.fixture
def client(server: LocalSwfProcess) -> Any:
    server.reset()
    swf = swf_client(server.url)
    register_test_domain(swf, DOMAIN)
    return swf


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


def start(client: Any, workflow_id: str = "wf", **extra: Any) -> str:
    return client.start_workflow_execution(domain=DOMAIN, workflowId=workflow_id, workflowType=WORKFLOW, **extra)["runId"]


def poll_decision(client: Any, **extra: Any) -> dict[str, Any]:
    return client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"}, identity="decider-1", **extra)


def poll_activity(client: Any) -> dict[str, Any]:
    return client.poll_for_activity_task(domain=DOMAIN, taskList={"name": "activities"}, identity="worker-1")


def history(client: Any, workflow_id: str, run_id: str, **extra: Any) -> list[dict[str, Any]]:
    return client.get_workflow_execution_history(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id}, **extra)["events"]


def schedule(activity_id: str = "a1", **extra: Any) -> dict[str, Any]:
    return decision("ScheduleActivityTask", activityType=ACTIVITY, activityId=activity_id, input="in", **extra)


def test_one_activity_round_trip(client: Any) -> None:
    run_id = start(client, input='{"media_uuid": "1"}', tagList=["video"])
    task = poll_decision(client)
    assert task["workflowExecution"] == {"workflowId": "wf", "runId": run_id}
    assert task["workflowType"] == WORKFLOW
    assert task["previousStartedEventId"] == 0
    assert event_types(task["events"]) == ["WorkflowExecutionStarted", "DecisionTaskScheduled", "DecisionTaskStarted"]
    started = attributes_of(task["events"][0])
    assert started["input"] == '{"media_uuid": "1"}'
    assert started["taskStartToCloseTimeout"] == "5"
    assert started["executionStartToCloseTimeout"] == "60"
    assert started["childPolicy"] == "TERMINATE"
    assert started["tagList"] == ["video"]
    assert started["parentInitiatedEventId"] == 0
    assert attributes_of(task["events"][2]) == {"scheduledEventId": 2, "identity": "decider-1"}

    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[schedule()], executionContext="ctx-1")
    activity = poll_activity(client)
    assert activity["activityId"] == "a1"
    assert activity["activityType"] == ACTIVITY
    assert activity["input"] == "in"
    assert activity["workflowExecution"]["runId"] == run_id
    client.respond_activity_task_completed(taskToken=activity["taskToken"], result="out")

    task = poll_decision(client)
    assert task["previousStartedEventId"] == 3
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution", result="done")])

    events = history(client, "wf", run_id)
    assert event_types(events) == [
        "WorkflowExecutionStarted", "DecisionTaskScheduled", "DecisionTaskStarted", "DecisionTaskCompleted",
        "ActivityTaskScheduled", "ActivityTaskStarted", "ActivityTaskCompleted", "DecisionTaskScheduled",
        "DecisionTaskStarted", "DecisionTaskCompleted", "WorkflowExecutionCompleted",
    ]
    assert [event["eventId"] for event in events] == list(range(1, 12))
    assert attributes_of(events[3]) == {"scheduledEventId": 2, "startedEventId": 3, "executionContext": "ctx-1"}
    assert attributes_of(events[4]) == {
        "activityType": ACTIVITY, "activityId": "a1", "input": "in", "decisionTaskCompletedEventId": 4,
        "scheduleToStartTimeout": "10", "startToCloseTimeout": "10", "scheduleToCloseTimeout": "20",
        "heartbeatTimeout": "NONE", "taskList": {"name": "activities"},
    }
    assert attributes_of(events[6]) == {"result": "out", "scheduledEventId": 5, "startedEventId": 6}
    assert attributes_of(events[10]) == {"result": "done", "decisionTaskCompletedEventId": 10}
    assert events[6]["eventTimestamp"] == events[7]["eventTimestamp"]

    detail = client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "wf", "runId": run_id})
    assert detail["executionInfo"]["executionStatus"] == "CLOSED"
    assert detail["executionInfo"]["closeStatus"] == "COMPLETED"
    assert detail["executionInfo"]["tagList"] == ["video"]
    assert detail["latestExecutionContext"] == "ctx-1"
    assert detail["openCounts"]["openDecisionTasks"] == 0


def test_empty_polls_have_swf_shape(client: Any) -> None:
    began = time.monotonic()
    empty = poll_decision(client)
    assert time.monotonic() - began >= 0.9
    assert "taskToken" not in empty
    assert empty["previousStartedEventId"] == 0
    assert empty["startedEventId"] == 0
    assert "taskToken" not in poll_activity(client)


def test_history_paging_and_reverse(client: Any) -> None:
    run_id = start(client)
    for index in range(7):
        client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName=f"s{index}")
    execution = {"workflowId": "wf", "runId": run_id}
    first = client.get_workflow_execution_history(domain=DOMAIN, execution=execution, maximumPageSize=4)
    assert [event["eventId"] for event in first["events"]] == [1, 2, 3, 4]
    second = client.get_workflow_execution_history(domain=DOMAIN, execution=execution, maximumPageSize=4, nextPageToken=first["nextPageToken"])
    assert [event["eventId"] for event in second["events"]] == [5, 6, 7, 8]
    third = client.get_workflow_execution_history(domain=DOMAIN, execution=execution, maximumPageSize=4, nextPageToken=second["nextPageToken"])
    assert [event["eventId"] for event in third["events"]] == [9]
    assert "nextPageToken" not in third
    backwards = client.get_workflow_execution_history(domain=DOMAIN, execution=execution, maximumPageSize=5, reverseOrder=True)
    assert [event["eventId"] for event in backwards["events"]] == [9, 8, 7, 6, 5]
    with pytest.raises(ClientError) as error:
        client.get_workflow_execution_history(domain=DOMAIN, execution=execution, nextPageToken="not-a-token")
    assert error_code(error) == "ValidationException"


def test_decision_task_paging(client: Any) -> None:
    run_id = start(client)
    for index in range(5):
        client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName=f"s{index}")
    first = poll_decision(client, maximumPageSize=3)
    assert [event["eventId"] for event in first["events"]] == [1, 2, 3]
    assert first["startedEventId"] == 8
    second = poll_decision(client, maximumPageSize=3, nextPageToken=first["nextPageToken"])
    assert second["taskToken"] == first["taskToken"]
    assert [event["eventId"] for event in second["events"]] == [4, 5, 6]
    third = poll_decision(client, maximumPageSize=3, nextPageToken=second["nextPageToken"])
    assert [event["eventId"] for event in third["events"]] == [7, 8]
    assert "nextPageToken" not in third
    client.respond_decision_task_completed(taskToken=first["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
    assert history(client, "wf", run_id)[-1]["eventType"] == "WorkflowExecutionCompleted"


def test_decision_poll_reverse_order(client: Any) -> None:
    start(client)
    task = poll_decision(client, reverseOrder=True)
    assert [event["eventId"] for event in task["events"]] == [3, 2, 1]


def test_workflow_id_reuse_rules(client: Any) -> None:
    start(client, "same")
    with pytest.raises(ClientError) as error:
        start(client, "same")
    assert error_code(error) == "WorkflowExecutionAlreadyStartedFault"
    client.terminate_workflow_execution(domain=DOMAIN, workflowId="same")
    second_run = start(client, "same")
    assert client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "same", "runId": second_run})["executionInfo"]["executionStatus"] == "OPEN"


def test_default_undefined_fault(client: Any) -> None:
    client.register_workflow_type(domain=DOMAIN, name="Bare", version="1")
    with pytest.raises(ClientError) as error:
        client.start_workflow_execution(domain=DOMAIN, workflowId="x", workflowType={"name": "Bare", "version": "1"})
    assert error_code(error) == "DefaultUndefinedFault"
    run_id = client.start_workflow_execution(
        domain=DOMAIN, workflowId="x", workflowType={"name": "Bare", "version": "1"}, taskList={"name": "bare"},
        executionStartToCloseTimeout="30", taskStartToCloseTimeout="NONE", childPolicy="ABANDON", taskPriority="3",
    )["runId"]
    config = client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "x", "runId": run_id})["executionConfiguration"]
    assert config == {
        "taskStartToCloseTimeout": "NONE", "executionStartToCloseTimeout": "30", "taskList": {"name": "bare"},
        "taskPriority": "3", "childPolicy": "ABANDON",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input", "x" * 32769),
        ("workflowId", "w" * 257),
        ("workflowId", "has:colon"),
        ("executionStartToCloseTimeout", "NONE"),
        ("executionStartToCloseTimeout", "1.5"),
        ("taskStartToCloseTimeout", "soon"),
        ("childPolicy", "DETACH"),
        ("tagList", ["a", "b", "c", "d", "e", "f"]),
        ("taskPriority", "2147483648"),
    ],
)
def test_start_validation(client: Any, field: str, value: Any) -> None:
    arguments: dict[str, Any] = {"domain": DOMAIN, "workflowId": "v", "workflowType": WORKFLOW, field: value}
    with pytest.raises(ClientError) as error:
        client.start_workflow_execution(**arguments)
    assert error_code(error) == "ValidationException"
    assert field in error.value.response["Error"]["Message"]


def test_input_at_limit_accepted(client: Any) -> None:
    run_id = start(client, input="x" * 32768)
    assert len(attributes_of(history(client, "wf", run_id)[0])["input"]) == 32768


def test_unknown_workflow_type_and_domain(client: Any) -> None:
    with pytest.raises(ClientError) as error:
        client.start_workflow_execution(domain=DOMAIN, workflowId="x", workflowType={"name": "Nope", "version": "1"})
    assert error_code(error) == "UnknownResourceFault"
    with pytest.raises(ClientError) as error:
        client.start_workflow_execution(domain="nowhere", workflowId="x", workflowType=WORKFLOW)
    assert error_code(error) == "UnknownResourceFault"


def test_signal_schedules_decision(client: Any) -> None:
    run_id = start(client)
    task = poll_decision(client)
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="go", input="payload")
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", runId=run_id, signalName="again")
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[])
    events = history(client, "wf", run_id)
    assert event_types(events)[3:] == ["WorkflowExecutionSignaled", "WorkflowExecutionSignaled", "DecisionTaskCompleted", "DecisionTaskScheduled"]
    assert attributes_of(events[3]) == {"signalName": "go", "input": "payload"}
    client.terminate_workflow_execution(domain=DOMAIN, workflowId="wf")
    with pytest.raises(ClientError) as error:
        client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="late")
    assert error_code(error) == "UnknownResourceFault"
    with pytest.raises(ClientError) as error:
        client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", runId=run_id, signalName="late")
    assert error_code(error) == "UnknownResourceFault"


def test_cancel_request_then_cancel_decision(client: Any) -> None:
    run_id = start(client)
    client.respond_decision_task_completed(taskToken=poll_decision(client)["taskToken"], decisions=[])
    client.request_cancel_workflow_execution(domain=DOMAIN, workflowId="wf")
    info = client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "wf", "runId": run_id})["executionInfo"]
    assert info["cancelRequested"] is True
    task = poll_decision(client)
    assert "WorkflowExecutionCancelRequested" in event_types(task["events"])
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CancelWorkflowExecution", details="bye")])
    events = history(client, "wf", run_id)
    assert events[-1]["eventType"] == "WorkflowExecutionCanceled"
    assert attributes_of(events[-1])["details"] == "bye"


def test_terminate_ends_tasks(client: Any) -> None:
    run_id = start(client)
    client.respond_decision_task_completed(taskToken=poll_decision(client)["taskToken"], decisions=[schedule()])
    activity = poll_activity(client)
    task_run = start(client, "other")
    decision_task = poll_decision(client)
    assert decision_task["workflowExecution"]["runId"] == task_run
    client.terminate_workflow_execution(domain=DOMAIN, workflowId="wf", reason="operator", details="why")
    client.terminate_workflow_execution(domain=DOMAIN, workflowId="other", childPolicy="ABANDON")
    events = history(client, "wf", run_id)
    assert events[-1]["eventType"] == "WorkflowExecutionTerminated"
    assert attributes_of(events[-1]) == {"reason": "operator", "details": "why", "childPolicy": "TERMINATE", "cause": "OPERATOR_INITIATED"}
    assert attributes_of(history(client, "other", task_run)[-1])["childPolicy"] == "ABANDON"
    for call in (
        lambda: client.respond_activity_task_completed(taskToken=activity["taskToken"]),
        lambda: client.record_activity_task_heartbeat(taskToken=activity["taskToken"]),
        lambda: client.respond_decision_task_completed(taskToken=decision_task["taskToken"], decisions=[]),
        lambda: client.terminate_workflow_execution(domain=DOMAIN, workflowId="wf"),
        lambda: client.request_cancel_workflow_execution(domain=DOMAIN, workflowId="wf", runId=run_id),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert error_code(error) == "UnknownResourceFault"


def test_activity_failed_and_canceled(client: Any) -> None:
    run_id = start(client)
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"], decisions=[schedule("a1"), schedule("a2")]
    )
    first = poll_activity(client)
    second = poll_activity(client)
    client.respond_activity_task_failed(taskToken=first["taskToken"], reason="boom", details='{"retry": true}')
    with pytest.raises(ClientError) as error:
        client.respond_activity_task_completed(taskToken=first["taskToken"], result="late")
    assert error_code(error) == "UnknownResourceFault"
    client.respond_activity_task_canceled(taskToken=second["taskToken"], details="stopped")
    events = history(client, "wf", run_id)
    failed = next(event for event in events if event["eventType"] == "ActivityTaskFailed")
    assert attributes_of(failed) == {"reason": "boom", "details": '{"retry": true}', "scheduledEventId": 5, "startedEventId": 7}
    canceled = next(event for event in events if event["eventType"] == "ActivityTaskCanceled")
    assert attributes_of(canceled) == {"details": "stopped", "scheduledEventId": 6, "startedEventId": 8}
    with pytest.raises(ClientError) as error:
        client.respond_activity_task_failed(taskToken=second["taskToken"], reason="r" * 257)
    assert error_code(error) == "ValidationException"


def test_heartbeat_reports_cancel_request(client: Any) -> None:
    run_id = start(client)
    client.respond_decision_task_completed(taskToken=poll_decision(client)["taskToken"], decisions=[schedule()])
    activity = poll_activity(client)
    assert client.record_activity_task_heartbeat(taskToken=activity["taskToken"], details="10%")["cancelRequested"] is False
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="wake")
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"], decisions=[decision("RequestCancelActivityTask", activityId="a1")]
    )
    assert client.record_activity_task_heartbeat(taskToken=activity["taskToken"])["cancelRequested"] is True
    client.respond_activity_task_canceled(taskToken=activity["taskToken"])
    events = history(client, "wf", run_id)
    requested = next(event for event in events if event["eventType"] == "ActivityTaskCancelRequested")
    canceled = events[-2]
    assert canceled["eventType"] == "ActivityTaskCanceled"
    assert attributes_of(canceled)["latestCancelRequestedEventId"] == requested["eventId"]
    with pytest.raises(ClientError) as error:
        client.record_activity_task_heartbeat(taskToken=activity["taskToken"], details="x" * 2049)
    assert error_code(error) == "ValidationException"


def test_count_pending_tasks(client: Any) -> None:
    for index in range(3):
        start(client, f"wf{index}")
    assert client.count_pending_decision_tasks(domain=DOMAIN, taskList={"name": "decisions"})["count"] == 3
    task = poll_decision(client)
    assert client.count_pending_decision_tasks(domain=DOMAIN, taskList={"name": "decisions"})["count"] == 2
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[schedule("a"), schedule("b")])
    pending = client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})
    assert pending["count"] == 2
    assert pending["truncated"] is False
    poll_activity(client)
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})["count"] == 1
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "elsewhere"})["count"] == 0


def test_describe_open_counts(client: Any) -> None:
    run_id = start(client)
    client.respond_decision_task_completed(
        taskToken=poll_decision(client)["taskToken"],
        decisions=[schedule("a"), schedule("b"), decision("StartTimer", timerId="t", startToFireTimeout="600")],
    )
    poll_activity(client)
    detail = client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": "wf", "runId": run_id})
    assert detail["openCounts"] == {
        "openActivityTasks": 2, "openDecisionTasks": 0, "openTimers": 1, "openChildWorkflowExecutions": 0, "openLambdaFunctions": 0,
    }
    assert "latestActivityTaskTimestamp" in detail
    assert detail["executionInfo"]["executionStatus"] == "OPEN"


def close_with(client: Any, workflow_id: str, decision_type: str, **attributes: Any) -> str:
    run_id = start(client, workflow_id, tagList=[f"tag-{workflow_id}"])
    task = poll_decision(client)
    assert task["workflowExecution"]["workflowId"] == workflow_id
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision(decision_type, **attributes)])
    return run_id


def test_list_and_count_filters(client: Any) -> None:
    client.register_workflow_type(domain=DOMAIN, name="Other", version="2", defaultTaskList={"name": "other"},
                                  defaultTaskStartToCloseTimeout="5", defaultExecutionStartToCloseTimeout="60", defaultChildPolicy="TERMINATE")
    before = time.time() - 1
    close_with(client, "done", "CompleteWorkflowExecution")
    close_with(client, "failed", "FailWorkflowExecution", reason="r")
    start(client, "open-1", tagList=["blue"])
    start(client, "open-2")
    client.start_workflow_execution(domain=DOMAIN, workflowId="open-3", workflowType={"name": "Other", "version": "2"})
    window = {"oldestDate": before}

    def open_ids(**filters: Any) -> list[str]:
        infos = client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter=window, **filters)["executionInfos"]
        return [info["execution"]["workflowId"] for info in infos]

    def closed_ids(**filters: Any) -> list[str]:
        infos = client.list_closed_workflow_executions(domain=DOMAIN, **filters)["executionInfos"]
        return [info["execution"]["workflowId"] for info in infos]

    assert open_ids() == ["open-3", "open-2", "open-1"]
    assert open_ids(reverseOrder=True) == ["open-1", "open-2", "open-3"]
    assert open_ids(tagFilter={"tag": "blue"}) == ["open-1"]
    assert open_ids(typeFilter={"name": "Other"}) == ["open-3"]
    assert open_ids(typeFilter={"name": "Workflow", "version": "1"}) == ["open-2", "open-1"]
    assert open_ids(executionFilter={"workflowId": "open-2"}) == ["open-2"]
    assert closed_ids(startTimeFilter=window) == ["failed", "done"]
    assert closed_ids(closeTimeFilter=window, closeStatusFilter={"status": "FAILED"}) == ["failed"]
    assert closed_ids(closeTimeFilter={"oldestDate": before, "latestDate": before + 0.5}) == []
    assert closed_ids(startTimeFilter=window, tagFilter={"tag": "tag-done"}) == ["done"]
    assert client.count_open_workflow_executions(domain=DOMAIN, startTimeFilter=window)["count"] == 3
    assert client.count_closed_workflow_executions(domain=DOMAIN, closeTimeFilter=window, closeStatusFilter={"status": "COMPLETED"})["count"] == 1

    page = client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter=window, maximumPageSize=2)
    rest = client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter=window, maximumPageSize=2, nextPageToken=page["nextPageToken"])
    assert [info["execution"]["workflowId"] for info in page["executionInfos"] + rest["executionInfos"]] == ["open-3", "open-2", "open-1"]

    with pytest.raises(ClientError) as error:
        client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter=window, tagFilter={"tag": "x"}, typeFilter={"name": "Other"})
    assert error_code(error) == "ValidationException"
    with pytest.raises(ClientError) as error:
        client.list_closed_workflow_executions(domain=DOMAIN, startTimeFilter=window, closeTimeFilter=window)
    assert error_code(error) == "ValidationException"
    with pytest.raises(ClientError) as error:
        client.list_closed_workflow_executions(domain=DOMAIN)
    assert error_code(error) == "ValidationException"


def test_unknown_task_tokens(client: Any) -> None:
    for call in (
        lambda: client.respond_activity_task_completed(taskToken="garbage"),
        lambda: client.respond_decision_task_completed(taskToken="garbage", decisions=[]),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert error_code(error) == "ValidationException"
    run_id = start(client)
    task = poll_decision(client)
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[])
    with pytest.raises(ClientError) as error:
        client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[])
    assert error_code(error) == "UnknownResourceFault"
    assert run_id in error.value.response["Error"]["Message"]


def test_unknown_operation_rejected(server: LocalSwfProcess) -> None:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server.url or "", data=b"{}", method="POST",
        headers={"X-Amz-Target": "SimpleWorkflowService.LaunchRockets", "Content-Type": "application/x-amz-json-1.0"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 400
    body = json.loads(error.value.read())
    assert body["__type"].endswith("#UnknownOperationException")
    assert "LaunchRockets" in body["message"]


def test_poll_from_previous_started_event(client: Any) -> None:
    start(client)
    first = poll_decision(client)
    client.respond_decision_task_completed(taskToken=first["taskToken"], decisions=[])
    client.signal_workflow_execution(domain=DOMAIN, workflowId="wf", signalName="s")
    second = poll_decision(client, startAtPreviousStartedEvent=True)
    assert second["previousStartedEventId"] == 3
    assert [event["eventId"] for event in second["events"]] == [3, 4, 5, 6, 7]


def test_identity_and_context_limits(client: Any) -> None:
    with pytest.raises(ClientError) as error:
        client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"}, identity="i" * 257)
    assert error_code(error) == "ValidationException"
    assert "identity" in error.value.response["Error"]["Message"]
    start(client)
    task = poll_decision(client)
    with pytest.raises(ClientError) as error:
        client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[], executionContext="c" * 32769)
    assert error_code(error) == "ValidationException"
    assert "executionContext" in error.value.response["Error"]["Message"]
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[], executionContext="c" * 32768)
