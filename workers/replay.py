"""The state of a linear pipeline, rebuilt from a workflow history alone.

The decider calls ``replay`` on every decision task with the whole history, so a fresh
state is built each time and no state leaks between decision tasks or deciders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.config import ActivityTypeConfig, WorkflowTypeConfig
from workers.failure import MAX_ID_CHARS, parse_failure_details
from workers.history import attributes
from workers.retry import Budget, decide_retry, start_to_close_timeout

log = logging.getLogger(__name__)

# Key of the workflow input of a run that continued as new: it contains the carried state.
CARRIED_KEY = "swf_manager_carried"
# ACTIVITY_ID_ALREADY_IN_USE this many times in a row on one step fails the workflow.
MAX_ID_IN_USE = 3
# Backoff after ScheduleActivityTaskFailed for a rate or open-activity limit: 5 s,
# doubling, at most 300 s.
LIMIT_BACKOFF_SECONDS = 5
LIMIT_BACKOFF_MAX_SECONDS = 300
# Signals kept in the state and the summary; older ones are counted only.
MAX_KEPT_SIGNALS = 20

RATE_LIMIT_CAUSES = frozenset({"ACTIVITY_CREATION_RATE_EXCEEDED", "OPEN_ACTIVITIES_LIMIT_EXCEEDED"})


@dataclass
class OpenActivity:
    activity_id: str
    activity_type: str
    step: int
    scheduled_event_id: int
    cancel_requested: bool = False


@dataclass
class PipelineState:
    """Everything the decider needs to know, derived from the history."""

    workflow_type: str
    workflow_input: Any = None
    # Index of the step to run or running. Equal to the number of steps when all are done.
    step: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)
    # Activity ids used so far per activity type, so the next attempt gets a fresh one.
    ids_used: dict[str, int] = field(default_factory=dict)
    open_activity: OpenActivity | None = None
    open_timer: str | None = None
    timers_used: int = 0
    # Seconds to wait with a timer before the next attempt, 0 for none.
    pending_delay: int = 0
    # START_TO_CLOSE timeout of the next attempt, None before the step's first attempt.
    next_start_to_close: int | None = None
    limit_backoffs: int = 0
    id_in_use: int = 0
    # Set when the workflow has failed for good.
    failure_reason: str | None = None
    failure_details: dict[str, Any] | None = None
    cancel_requested: bool = False
    signals: list[dict[str, Any]] = field(default_factory=list)
    signal_count: int = 0
    continued_runs: int = 0
    last_event_id: int = 0

    def fail(self, reason: str, **details: Any) -> None:
        if self.failure_reason is None:
            self.failure_reason = reason
            self.failure_details = {"retry": False, **details}


def activity_type_map(
    activity_types: Mapping[str, ActivityTypeConfig] | Iterable[ActivityTypeConfig],
) -> dict[str, ActivityTypeConfig]:
    if isinstance(activity_types, Mapping):
        return dict(activity_types)
    return {activity_type.name: activity_type for activity_type in activity_types}


def _load_json(text: str | None) -> Any:
    if text is None or text == "":
        return None
    return json.loads(text)


def _start(state: PipelineState, attrs: dict[str, Any], workflow_type: WorkflowTypeConfig) -> None:
    try:
        raw = _load_json(attrs.get("input"))
    except ValueError as error:
        state.fail(
            f"workflow input is not valid JSON ({error}): start the workflow with a JSON object input",
            error="InvalidInput",
            message=str(attrs.get("input"))[:1000],
        )
        return
    if isinstance(raw, dict) and CARRIED_KEY in raw:
        carried = raw[CARRIED_KEY]
        state.workflow_input = raw.get("workflow")
        state.step = int(carried.get("step", 0))
        state.results = list(carried.get("results", []))
        state.budget = Budget(int(carried.get("failures", 0)), int(carried.get("timeouts", 0)))
        state.ids_used = {str(k): int(v) for k, v in carried.get("ids_used", {}).items()}
        state.pending_delay = int(carried.get("pending_delay", 0))
        state.next_start_to_close = carried.get("next_start_to_close")
        state.signals = list(carried.get("signals", []))
        state.signal_count = int(carried.get("signal_count", len(state.signals)))
        state.continued_runs = int(carried.get("continued_runs", 0)) + 1
    else:
        state.workflow_input = raw
    if state.step > len(workflow_type.steps):
        state.fail(
            f"carried step {state.step} is past the {len(workflow_type.steps)} steps of {workflow_type.name}",
            error="InvalidInput",
            message="the continued run's state does not match the configured steps",
        )


def _new_step(state: PipelineState) -> None:
    state.budget = Budget()
    state.pending_delay = 0
    state.next_start_to_close = None
    state.limit_backoffs = 0
    state.id_in_use = 0


def _attempt_ended(
    state: PipelineState,
    activity_types: dict[str, ActivityTypeConfig],
    scheduled_event_id: int,
    kind: str,
    attrs: dict[str, Any],
) -> None:
    """Apply a failure, timeout or hand-back of the open attempt to the retry budgets."""
    attempt = state.open_activity
    if attempt is None or attempt.scheduled_event_id != scheduled_event_id:
        log.warning("activity event for scheduled event %s matches no open attempt; ignored", scheduled_event_id)
        return
    state.open_activity = None
    activity_type = activity_types.get(attempt.activity_type)
    if activity_type is None:
        state.fail(
            f"activity type {attempt.activity_type} is not configured in this decider: add it to activity_types",
            error="NotConfigured",
            message=f"{attempt.activity_id} ended ({kind}) and its retry policy is unknown",
            activity=attempt.activity_type,
            activity_id=attempt.activity_id,
        )
        return

    error = ""
    message = ""
    timeout_type = ""
    retryable = True
    outcome = kind
    if kind == "failed":
        details = parse_failure_details(attrs.get("details"))
        error = str(details.get("error"))
        message = str(details.get("message"))
        retryable = bool(details["retry"])
        if error == "HandedBack" and retryable:
            outcome = "handed_back"
    else:
        timeout_type = str(attrs.get("timeoutType", ""))
        error = f"{timeout_type or 'TIMEOUT'} timeout"

    decision = decide_retry(
        activity_type, state.budget, outcome, retryable=retryable, error=error, timeout_type=timeout_type  # type: ignore[arg-type]
    )
    state.budget = decision.budget
    if not decision.retry:
        state.fail(
            f"{decision.reason}: {message}" if message else decision.reason,
            error=error or "Unknown",
            message=message,
            activity=attempt.activity_type,
            activity_id=attempt.activity_id,
            step=attempt.step,
        )
        return
    state.pending_delay = decision.delay
    state.next_start_to_close = decision.start_to_close_timeout
    log.info(
        "activity %s %s (%s), attempt will be retried in %d s",
        attempt.activity_id,
        outcome,
        error,
        decision.delay,
    )


def _schedule_failed(state: PipelineState, attrs: dict[str, Any]) -> None:
    cause = attrs.get("cause", "")
    type_name = attrs.get("activityType", {}).get("name", "?")
    version = attrs.get("activityType", {}).get("version", "?")
    activity_id = attrs.get("activityId", "")
    state.ids_used[type_name] = state.ids_used.get(type_name, 0) + 1

    if cause in RATE_LIMIT_CAUSES:
        state.limit_backoffs += 1
        state.pending_delay = min(LIMIT_BACKOFF_SECONDS * 2 ** (state.limit_backoffs - 1), LIMIT_BACKOFF_MAX_SECONDS)
        return
    if cause == "ACTIVITY_ID_ALREADY_IN_USE":
        state.id_in_use += 1
        if state.id_in_use >= MAX_ID_IN_USE:
            state.fail(
                f"activity id {activity_id} of {type_name} was already in use {state.id_in_use} times in a row",
                error=cause,
                message="another decider schedules the same activity ids in this execution",
                activity=type_name,
                activity_id=activity_id,
            )
        return
    if cause == "ACTIVITY_TYPE_DOES_NOT_EXIST":
        reason = f"activity type {type_name} version {version} is not registered: register it or fix its version in the configuration"
    elif cause == "ACTIVITY_TYPE_DEPRECATED":
        reason = f"activity type {type_name} version {version} is deprecated: configure and register a new version"
    else:
        reason = f"scheduling activity type {type_name} version {version} failed with {cause}"
    state.fail(reason, error=cause, message=reason, activity=type_name, activity_id=activity_id)


def replay(
    events: list[dict[str, Any]],
    workflow_type: WorkflowTypeConfig,
    activity_types: Mapping[str, ActivityTypeConfig] | Iterable[ActivityTypeConfig],
) -> PipelineState:
    """Rebuild the pipeline state from ``events``, the whole history in event order."""
    types = activity_type_map(activity_types)
    state = PipelineState(workflow_type=workflow_type.name)

    for event in events:
        event_type = event["eventType"]
        attrs = attributes(event)
        state.last_event_id = max(state.last_event_id, int(event.get("eventId", 0)))

        if event_type == "WorkflowExecutionStarted":
            _start(state, attrs, workflow_type)

        elif event_type == "ActivityTaskScheduled":
            type_name = attrs["activityType"]["name"]
            state.ids_used[type_name] = state.ids_used.get(type_name, 0) + 1
            control = _load_json(attrs.get("control")) or {}
            state.open_activity = OpenActivity(
                activity_id=attrs["activityId"],
                activity_type=type_name,
                step=int(control.get("step", state.step)),
                scheduled_event_id=event["eventId"],
            )
            state.pending_delay = 0
            state.limit_backoffs = 0
            state.id_in_use = 0

        elif event_type == "ActivityTaskCompleted":
            attempt = state.open_activity
            if attempt is None or attempt.scheduled_event_id != attrs.get("scheduledEventId"):
                log.warning("ActivityTaskCompleted %s matches no open attempt; ignored", event["eventId"])
                continue
            state.open_activity = None
            try:
                result = _load_json(attrs.get("result"))
            except ValueError:
                result = attrs.get("result")
            state.results.append({"activity": attempt.activity_type, "activity_id": attempt.activity_id, "result": result})
            state.step = attempt.step + 1
            _new_step(state)

        elif event_type == "ActivityTaskFailed":
            _attempt_ended(state, types, attrs.get("scheduledEventId", -1), "failed", attrs)

        elif event_type == "ActivityTaskTimedOut":
            _attempt_ended(state, types, attrs.get("scheduledEventId", -1), "timed_out", attrs)

        elif event_type == "ActivityTaskCanceled":
            if state.open_activity and state.open_activity.scheduled_event_id == attrs.get("scheduledEventId"):
                state.open_activity = None

        elif event_type == "ActivityTaskCancelRequested":
            if state.open_activity and state.open_activity.activity_id == attrs.get("activityId"):
                state.open_activity.cancel_requested = True

        elif event_type == "RequestCancelActivityTaskFailed":
            # ACTIVITY_ID_UNKNOWN: the activity closed before the request reached it.
            if state.open_activity and state.open_activity.activity_id == attrs.get("activityId"):
                state.open_activity = None

        elif event_type == "ScheduleActivityTaskFailed":
            _schedule_failed(state, attrs)

        elif event_type == "TimerStarted":
            state.open_timer = attrs["timerId"]
            state.timers_used += 1

        elif event_type in ("TimerFired", "TimerCanceled"):
            if state.open_timer == attrs.get("timerId"):
                state.open_timer = None
                state.pending_delay = 0

        elif event_type == "StartTimerFailed":
            # Without a timer the next attempt starts at once, which only loses the delay.
            state.timers_used += 1
            state.pending_delay = 0
            log.warning("StartTimer %s failed with %s; scheduling without delay", attrs.get("timerId"), attrs.get("cause"))

        elif event_type == "WorkflowExecutionSignaled":
            state.signal_count += 1
            try:
                signal_input = _load_json(attrs.get("input"))
            except ValueError:
                signal_input = attrs.get("input")
            state.signals.append({"name": attrs.get("signalName"), "input": signal_input})
            del state.signals[:-MAX_KEPT_SIGNALS]

        elif event_type == "WorkflowExecutionCancelRequested":
            state.cancel_requested = True

    return state


def workflow_input_of(events: list[dict[str, Any]]) -> Any:
    """Return the workflow input of the history's run, without any carried state, or None."""
    for event in events:
        if event["eventType"] != "WorkflowExecutionStarted":
            continue
        try:
            raw = _load_json(attributes(event).get("input"))
        except ValueError:
            return None
        if isinstance(raw, dict) and CARRIED_KEY in raw:
            return raw.get("workflow")
        return raw
    return None


def next_activity_id(state: PipelineState, type_name: str) -> str:
    """Return "<type name>-<attempt number>", cut to SWF's 256-character limit on activity ids."""
    suffix = f"-{state.ids_used.get(type_name, 0) + 1}"
    return type_name[: MAX_ID_CHARS - len(suffix)] + suffix


def next_start_to_close(state: PipelineState, activity_type: ActivityTypeConfig) -> int | None:
    if state.next_start_to_close is not None:
        return int(state.next_start_to_close)
    return start_to_close_timeout(activity_type, state.budget)
