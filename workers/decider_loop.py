"""Runs the pure decider on decision tasks and sends its decisions to SWF."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from workers.client import RESPONSE_RETRY_SECONDS, call_with_backoff, is_unknown_resource
from workers.config import Config
from workers.decider import closing_summary, decide
from workers.errors import ExecutionClosed
from workers.failure import cut_reason, encode_details
from workers.logs import log_context
from workers.metrics import Metrics, decision_task_events
from workers.replay import workflow_input_of

log = logging.getLogger(__name__)


class DecisionRunner:
    """Decides decision tasks for one decider process.

    ``on_workflow_closed`` is called after SWF accepted a decision that completes, fails
    or cancels a workflow, with a dict of "workflow_id", "run_id", "workflow_type",
    "workflow_input", "status" ("completed", "failed" or "canceled") and then "result"
    (completed), "reason" and "details" (failed) or "details" (canceled).
    """

    def __init__(
        self,
        client: Any,
        config: Config,
        identity: str,
        on_workflow_closed: Callable[[dict[str, Any]], Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.identity = identity
        self.on_workflow_closed = on_workflow_closed
        self.metrics = metrics

    def run(self, task: dict[str, Any]) -> str:
        """Decide ``task``, whose "events" contain the whole history, and send the decisions.

        Returns "completed" when SWF accepted the decisions, "failed" when the decider
        could not decide. Raises ExecutionClosed when SWF returns UnknownResourceFault for the task.
        """
        execution = task.get("workflowExecution", {})
        workflow_id = execution.get("workflowId", "")
        run_id = execution.get("runId", "")
        type_name = task.get("workflowType", {}).get("name", "")
        with log_context(workflow_id=workflow_id, run_id=run_id):
            try:
                decisions = self._decide(task, type_name)
            except Exception:  # noqa: BLE001 - a decider bug must not kill the process
                # SWF times the decision task out and schedules a new one, which a fixed
                # decider can then decide.
                log.exception("deciding workflow %s run %s failed; the decision task will time out", workflow_id, run_id)
                return "failed"

            for decision in decisions:
                log.info("decision %s for workflow %s run %s: %s", decision["decisionType"], workflow_id, run_id, _brief(decision))
            try:
                call_with_backoff(
                    self.client,
                    "respond_decision_task_completed",
                    retry_connection_errors_for=RESPONSE_RETRY_SECONDS,
                    taskToken=task["taskToken"],
                    decisions=decisions,
                )
            except Exception as error:
                if is_unknown_resource(error):
                    log.warning(
                        "RespondDecisionTaskCompleted for workflow %s run %s got UnknownResourceFault: the execution "
                        "closed or the decision task timed out; not retried",
                        workflow_id,
                        run_id,
                    )
                    raise ExecutionClosed(f"decision task of workflow {workflow_id} run {run_id}: {error}") from error
                raise

            if self.metrics is not None:
                for event, distinct_id, properties in decision_task_events(task):
                    self.metrics.track(event, distinct_id, properties)
            summary = closing_summary(decisions)
            # A run that continued as new goes on in the next run, so it is not reported.
            if summary is not None and summary["status"] != "continued_as_new":
                self._report_closed(
                    {
                        "workflow_id": workflow_id,
                        "run_id": run_id,
                        "workflow_type": type_name,
                        "workflow_input": workflow_input_of(task.get("events", [])),
                        "started_at": _started_at(task.get("events", [])),
                        **summary,
                    }
                )
        return "completed"

    def _decide(self, task: dict[str, Any], type_name: str) -> list[dict[str, Any]]:
        try:
            workflow_type = self.config.workflow_type(type_name)
        except KeyError:
            configured = ", ".join(w.name for w in self.config.workflow_types) or "none"
            reason = f"workflow type {type_name!r} is not configured in this decider (configured: {configured})"
            log.error(reason)
            return [
                {
                    "decisionType": "FailWorkflowExecution",
                    "failWorkflowExecutionDecisionAttributes": {
                        "reason": cut_reason(reason),
                        "details": encode_details({"retry": False, "error": "NotConfigured", "message": reason}),
                    },
                }
            ]
        return decide(task.get("events", []), workflow_type, self.config.activity_types)

    def _report_closed(self, summary: dict[str, Any]) -> None:
        if self.on_workflow_closed is None:
            return
        try:
            self.on_workflow_closed(summary)
        except Exception:  # noqa: BLE001 - reporting must not stop the decider
            log.exception("on_workflow_closed failed for workflow %s run %s", summary["workflow_id"], summary["run_id"])


def _started_at(events: list[dict[str, Any]]) -> float | None:
    """Return the Unix time at which this run started, from its first history event."""
    if events and events[0].get("eventType") == "WorkflowExecutionStarted":
        return events[0]["eventTimestamp"].timestamp()
    return None


def _brief(decision: dict[str, Any]) -> str:
    """Return the decision's attributes for a log line, with inputs and results shortened."""
    kind = decision["decisionType"]
    attrs = dict(decision.get(kind[0].lower() + kind[1:] + "DecisionAttributes", {}))
    for key in ("input", "result", "details"):
        if key in attrs and len(attrs[key]) > 200:
            attrs[key] = attrs[key][:200] + f"... ({len(attrs[key])} characters)"
    return json.dumps(attrs)
