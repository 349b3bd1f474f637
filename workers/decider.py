"""The pipeline decider: a pure function from a workflow history to SWF decisions.

A workflow type is a linear pipeline of activity types. Step i receives
``{"workflow": <workflow input>, "previous": <result of step i-1, or null>}``. When the last
step completes, the workflow completes with a summary of every step's result. When a step
fails for good, the workflow fails with a reason that names the activity and its error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from workers.config import ActivityTypeConfig, WorkflowTypeConfig
from workers.failure import MAX_DETAILS_CHARS, cut_reason, encode_details
from workers.replay import (
    CARRIED_KEY,
    PipelineState,
    activity_type_map,
    next_activity_id,
    next_start_to_close,
    replay,
)

CLOSING_DECISIONS = frozenset(
    {"CompleteWorkflowExecution", "FailWorkflowExecution", "CancelWorkflowExecution", "ContinueAsNewWorkflowExecution"}
)
MAX_INPUT_CHARS = 32768
# A continued run's carried state must stay under this, below SWF's 32,768-character input limit.
MAX_CARRIED_CHARS = 30000


def decide(
    events: list[dict[str, Any]],
    workflow_type: WorkflowTypeConfig,
    activity_types: Mapping[str, ActivityTypeConfig] | Iterable[ActivityTypeConfig],
) -> list[dict[str, Any]]:
    """Return the decisions for a decision task whose whole history is ``events``."""
    types = activity_type_map(activity_types)
    state = replay(events, workflow_type, types)
    return decisions_for(state, workflow_type, types)


def decisions_for(
    state: PipelineState, workflow_type: WorkflowTypeConfig, types: dict[str, ActivityTypeConfig]
) -> list[dict[str, Any]]:
    """Return the decisions that move ``state`` forward, in order of precedence."""
    if state.failure_reason is not None:
        return [_fail(state)]

    if state.cancel_requested:
        return _cancel(state)

    if state.step >= len(workflow_type.steps):
        return [_complete(state)]

    if state.open_activity is not None or state.open_timer is not None:
        return []

    if state.last_event_id >= workflow_type.continue_as_new_after_events:
        return [_continue_as_new(state, workflow_type)]

    if state.pending_delay > 0:
        timer_id = f"retry-{state.step}-{state.timers_used + 1}"
        return [
            {
                "decisionType": "StartTimer",
                "startTimerDecisionAttributes": {
                    "timerId": timer_id,
                    "startToFireTimeout": str(state.pending_delay),
                    "control": json.dumps({"step": state.step}),
                },
            }
        ]

    return [_schedule(state, workflow_type, types)]


def _schedule(state: PipelineState, workflow_type: WorkflowTypeConfig, types: dict[str, ActivityTypeConfig]) -> dict[str, Any]:
    type_name = workflow_type.steps[state.step]
    activity_type = types.get(type_name)
    if activity_type is None:
        state.fail(
            f"step {state.step} of {workflow_type.name} names activity type {type_name}, which is not configured",
            error="NotConfigured",
            message=f"add {type_name} to activity_types or remove it from the steps of {workflow_type.name}",
            activity=type_name,
        )
        return _fail(state)

    start_to_close = next_start_to_close(state, activity_type)
    if start_to_close is None:
        state.fail(f"{type_name} has no START_TO_CLOSE timeout slot left", error="Timeout", message="", activity=type_name)
        return _fail(state)

    previous = state.results[-1]["result"] if state.results else None
    task_input = json.dumps({"workflow": state.workflow_input, "previous": previous})
    if len(task_input) > MAX_INPUT_CHARS:
        state.fail(
            f"input of {type_name} has {len(task_input)} characters, over SWF's limit of {MAX_INPUT_CHARS}",
            error="InputTooLarge",
            message="shorten the workflow input: large step results are already passed by reference",
            activity=type_name,
        )
        return _fail(state)

    # A long START_TO_CLOSE slot must not be cut short by the SCHEDULE_TO_CLOSE timeout.
    schedule_to_close = max(activity_type.schedule_to_close_timeout, activity_type.schedule_to_start_timeout + start_to_close)
    return {
        "decisionType": "ScheduleActivityTask",
        "scheduleActivityTaskDecisionAttributes": {
            "activityType": {"name": activity_type.name, "version": activity_type.version},
            "activityId": next_activity_id(state, type_name),
            "control": json.dumps({"step": state.step}),
            "input": task_input,
            "taskList": {"name": activity_type.task_list},
            "scheduleToStartTimeout": str(activity_type.schedule_to_start_timeout),
            "scheduleToCloseTimeout": str(schedule_to_close),
            "startToCloseTimeout": str(start_to_close),
            "heartbeatTimeout": str(activity_type.heartbeat_timeout),
        },
    }


def summary(state: PipelineState) -> dict[str, Any]:
    """Return the summary a completed workflow carries as its result."""
    return {
        "workflow_type": state.workflow_type,
        "steps": state.results,
        "signals": [signal["name"] for signal in state.signals],
        "signal_count": state.signal_count,
        "continued_runs": state.continued_runs,
    }


def _fit_results(document: dict[str, Any], results_key: str, limit: int) -> str:
    """Encode ``document``, replacing the largest step results by a note until it fits ``limit``."""
    text = json.dumps(document)
    results = [dict(result) for result in document[results_key]]
    while len(text) > limit:
        largest = max(
            (index for index, result in enumerate(results) if "omitted_chars" not in result),
            key=lambda index: len(json.dumps(results[index].get("result"))),
            default=None,
        )
        if largest is None:
            break
        size = len(json.dumps(results[largest].pop("result", None)))
        results[largest]["omitted_chars"] = size
        text = json.dumps({**document, results_key: results})
    return text


def _complete(state: PipelineState) -> dict[str, Any]:
    return {
        "decisionType": "CompleteWorkflowExecution",
        "completeWorkflowExecutionDecisionAttributes": {
            "result": _fit_results(summary(state), "steps", MAX_DETAILS_CHARS),
        },
    }


def _fail(state: PipelineState) -> dict[str, Any]:
    assert state.failure_reason is not None
    details = dict(state.failure_details or {"retry": False})
    details.setdefault("retry", False)
    details.setdefault("message", state.failure_reason)
    return {
        "decisionType": "FailWorkflowExecution",
        "failWorkflowExecutionDecisionAttributes": {
            "reason": cut_reason(state.failure_reason),
            "details": encode_details(details),
        },
    }


def _cancel(state: PipelineState) -> list[dict[str, Any]]:
    """Cancel the open activity and timer first, then the workflow once nothing is open."""
    decisions: list[dict[str, Any]] = []
    if state.open_activity is not None:
        if not state.open_activity.cancel_requested:
            decisions.append(
                {
                    "decisionType": "RequestCancelActivityTask",
                    "requestCancelActivityTaskDecisionAttributes": {"activityId": state.open_activity.activity_id},
                }
            )
        # Otherwise the cancel request is out: wait for the activity to close.
    if state.open_timer is not None:
        decisions.append({"decisionType": "CancelTimer", "cancelTimerDecisionAttributes": {"timerId": state.open_timer}})
    if state.open_activity is None:
        details = json.dumps({"completed_steps": [result["activity"] for result in state.results]})
        decisions.append({"decisionType": "CancelWorkflowExecution", "cancelWorkflowExecutionDecisionAttributes": {"details": details}})
    return decisions


def carried_state(state: PipelineState) -> dict[str, Any]:
    return {
        "step": state.step,
        "results": state.results,
        "failures": state.budget.failures,
        "timeouts": state.budget.timeouts,
        "ids_used": state.ids_used,
        "pending_delay": state.pending_delay,
        "next_start_to_close": state.next_start_to_close,
        "signals": state.signals,
        "signal_count": state.signal_count,
        "continued_runs": state.continued_runs,
    }


def _continue_as_new(state: PipelineState, workflow_type: WorkflowTypeConfig) -> dict[str, Any]:
    carried = carried_state(state)
    if len(json.dumps(carried)) > MAX_CARRIED_CHARS // 2:
        # Signal inputs are the only unbounded part besides the results: keep their names.
        carried["signals"] = [{"name": signal["name"]} for signal in state.signals]
    # NOTE: a result dropped here for size is missing from the final summary, which
    # records its size in "omitted_chars" instead.
    room = MAX_CARRIED_CHARS - len(json.dumps(state.workflow_input)) - 64
    carried = json.loads(_fit_results(carried, "results", room))
    document = {"workflow": state.workflow_input, CARRIED_KEY: carried}
    return {
        "decisionType": "ContinueAsNewWorkflowExecution",
        "continueAsNewWorkflowExecutionDecisionAttributes": {
            "input": json.dumps(document),
            "executionStartToCloseTimeout": str(workflow_type.execution_start_to_close_timeout),
            "taskList": {"name": workflow_type.task_list},
            "taskStartToCloseTimeout": str(workflow_type.task_start_to_close_timeout),
            "childPolicy": workflow_type.child_policy,
            "workflowTypeVersion": workflow_type.version,
        },
    }


def closing_summary(decisions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return {"status", and "result" or "reason"/"details"} when ``decisions`` close the workflow."""
    for decision in decisions:
        kind = decision["decisionType"]
        if kind not in CLOSING_DECISIONS:
            continue
        attrs = decision.get(kind[0].lower() + kind[1:] + "DecisionAttributes", {})
        if kind == "CompleteWorkflowExecution":
            return {"status": "completed", "result": json.loads(attrs["result"])}
        if kind == "FailWorkflowExecution":
            return {"status": "failed", "reason": attrs["reason"], "details": json.loads(attrs["details"])}
        if kind == "CancelWorkflowExecution":
            return {"status": "canceled", "details": json.loads(attrs.get("details") or "null")}
        return {"status": "continued_as_new"}
    return None
