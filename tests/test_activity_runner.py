"""UnknownResourceFault when an activity worker responds, with real SWF's reply shape.

Stubbed: the embedded endpoint returns this fault too, but only when the execution
closes between the handler's last heartbeat and its response, which a test cannot
arrange without sleeps.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from botocore.stub import Stubber

from workers.activity import ActivityRunner
from workers.client import make_swf_client
from workers.config import ActivityTypeConfig, ClientConfig, Config, StorageConfig
from workers.errors import ExecutionClosed
from workers.progress import ProgressReporter

TASK = {
    "taskToken": "token-1",
    "activityId": "Noop-1",
    "startedEventId": 7,
    "workflowExecution": {"workflowId": "w-1", "runId": "r-1"},
    "activityType": {"name": "Noop", "version": "1"},
    "input": '{"workflow": {}, "previous": null}',
}
FAIL_TASK = {**TASK, "activityId": "Fail-1", "activityType": {"name": "Fail", "version": "1"}, "input": '{"workflow": {}}'}


def make_runner(tmp_path) -> tuple[ActivityRunner, Stubber]:
    config = replace(
        Config(),
        client=ClientConfig(max_attempts=1),
        activity_types=(
            ActivityTypeConfig(name="Noop", version="1", task_list="diag", heartbeat_timeout=60),
            ActivityTypeConfig(name="Fail", version="1", task_list="diag", heartbeat_timeout=60),
        ),
        storage=StorageConfig(root=str(tmp_path)),
    )
    client = make_swf_client(config, None)
    runner = ActivityRunner(client, config, ProgressReporter(None), threading.Event())
    return runner, Stubber(client)


def unknown_task(stubber: Stubber, operation: str) -> None:
    stubber.add_client_error(
        operation,
        service_error_code="UnknownResourceFault",
        service_message="Unknown activity task, taskToken: token-1",
        http_status_code=400,
    )


@pytest.mark.stubbed
@pytest.mark.parametrize(("task", "operation"), [(TASK, "respond_activity_task_completed"), (FAIL_TASK, "respond_activity_task_failed")])
def test_unknown_task_on_response_not_retried(tmp_path, caplog, task, operation):
    runner, stubber = make_runner(tmp_path)
    with stubber:
        unknown_task(stubber, operation)
        # A retry would take this reply; it must stay unused.
        stubber.add_response(operation, {})

        with pytest.raises(ExecutionClosed, match=task["activityId"]):
            runner.run(task)

        with pytest.raises(AssertionError):
            stubber.assert_no_pending_responses()
    assert f"{operation} for activity {task['activityId']} of workflow w-1 run r-1 got UnknownResourceFault" in caplog.text
    assert runner.task_in_hand is False
