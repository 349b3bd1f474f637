"""The decider loop's response handling, with SWF replies the embedded endpoint cannot time.

Stubbed: UnknownResourceFault on RespondDecisionTaskCompleted needs a decision task that
timed out while the decider was deciding, which cannot be arranged without sleeps.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from botocore.stub import Stubber

from workers.client import make_swf_client
from workers.config import ActivityTypeConfig, ClientConfig, Config, WorkflowTypeConfig
from workers.decider_loop import DecisionRunner
from workers.errors import ExecutionClosed
from workers.history import HistoryBuilder

CONFIG = replace(
    Config(),
    client=ClientConfig(max_attempts=1),
    activity_types=(ActivityTypeConfig(name="Noop", version="1", task_list="diag"),),
    workflow_types=(WorkflowTypeConfig(name="OneNoop", version="1", task_list="decisions", steps=("Noop",)),),
)


def decision_task(history: HistoryBuilder) -> dict:
    return {
        "taskToken": "token-1",
        "startedEventId": history.last_event_id,
        "workflowExecution": {"workflowId": "w-1", "runId": "r-1"},
        "workflowType": {"name": "OneNoop", "version": "1"},
        "events": history.events,
    }


@pytest.mark.stubbed
def test_unknown_resource_on_respond_raises_closed(caplog):
    client = make_swf_client(CONFIG, None)
    history = HistoryBuilder({"n": 1}, workflow_type="OneNoop")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "respond_decision_task_completed",
            service_error_code="UnknownResourceFault",
            service_message="Unknown decision task, taskToken: token-1",
            http_status_code=400,
        )

        with pytest.raises(ExecutionClosed, match="workflow w-1 run r-1"):
            DecisionRunner(client, CONFIG, "decider-1").run(decision_task(history))

        stubber.assert_no_pending_responses()
    assert "got UnknownResourceFault" in caplog.text


@pytest.mark.stubbed
def test_closing_decision_reports_summary():
    client = make_swf_client(CONFIG, None)
    history = HistoryBuilder({"n": 1}, workflow_type="OneNoop")
    history.apply_decisions(
        [
            {
                "decisionType": "ScheduleActivityTask",
                "scheduleActivityTaskDecisionAttributes": {"activityId": "Noop-1", "activityType": {"name": "Noop", "version": "1"}},
            }
        ]
    )
    history.activity_completed("Noop-1", {"ok": True})
    summaries: list[dict] = []
    with Stubber(client) as stubber:
        stubber.add_response("respond_decision_task_completed", {})

        outcome = DecisionRunner(client, CONFIG, "decider-1", summaries.append).run(decision_task(history))

    assert outcome == "completed"
    assert len(summaries) == 1
    assert summaries[0]["status"] == "completed"
    assert summaries[0]["workflow_input"] == {"n": 1}
    assert summaries[0]["result"]["steps"][0]["result"] == {"ok": True}


@pytest.mark.stubbed
def test_failing_callback_does_not_stop_decider(caplog):
    client = make_swf_client(CONFIG, None)
    history = HistoryBuilder(raw_input="{broken", workflow_type="OneNoop")

    def broken_callback(summary: dict) -> None:
        raise RuntimeError("webhook down")

    with Stubber(client) as stubber:
        stubber.add_response("respond_decision_task_completed", {})

        outcome = DecisionRunner(client, CONFIG, "decider-1", broken_callback).run(decision_task(history))

    assert outcome == "completed"
    assert "on_workflow_closed failed for workflow w-1 run r-1" in caplog.text
