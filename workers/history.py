"""SWF history events: reading their attributes, and building histories for tests.

An event is the dict SWF returns in ``events``: ``eventId``, ``eventType``,
``eventTimestamp`` and ``<eventType with a lower-case first letter>EventAttributes``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any


def attributes(event: dict[str, Any]) -> dict[str, Any]:
    """Return the ``...EventAttributes`` dict of ``event``, or {} when it has none."""
    event_type = event["eventType"]
    key = event_type[0].lower() + event_type[1:] + "EventAttributes"
    return event.get(key) or {}


class HistoryBuilder:
    """Builds a workflow history event by event, as SWF would record it.

    Tests use it to tell a story: the workflow starts, the decider decides
    (``apply_decisions``), a worker completes or fails the activity, and so on.
    """

    def __init__(
        self,
        workflow_input: Any = None,
        workflow_type: str = "VideoProcessing",
        version: str = "1",
        raw_input: str | None = None,
        continued_execution_run_id: str | None = None,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self._scheduled_ids: dict[str, int] = {}
        self._timer_ids: dict[str, int] = {}
        self._clock = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        started: dict[str, Any] = {
            "workflowType": {"name": workflow_type, "version": version},
            "taskList": {"name": "decisions"},
            "childPolicy": "TERMINATE",
            "executionStartToCloseTimeout": "86400",
            "taskStartToCloseTimeout": "60",
        }
        text = raw_input
        if text is None and workflow_input is not None:
            text = json.dumps(workflow_input)
        if text is not None:
            started["input"] = text
        if continued_execution_run_id:
            started["continuedExecutionRunId"] = continued_execution_run_id
        self.add("WorkflowExecutionStarted", started)
        self.decision_started()

    # --- low level -------------------------------------------------------------------

    def add(self, event_type: str, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        self._clock += datetime.timedelta(seconds=1)
        event: dict[str, Any] = {
            "eventId": len(self.events) + 1,
            "eventType": event_type,
            "eventTimestamp": self._clock,
        }
        if attrs is not None:
            event[event_type[0].lower() + event_type[1:] + "EventAttributes"] = attrs
        self.events.append(event)
        return event

    @property
    def last_event_id(self) -> int:
        return len(self.events)

    def _last_decision_started(self) -> int:
        for event in reversed(self.events):
            if event["eventType"] == "DecisionTaskStarted":
                return event["eventId"]
        raise ValueError("the history has no DecisionTaskStarted event")

    def _last_decision_completed(self) -> int:
        for event in reversed(self.events):
            if event["eventType"] == "DecisionTaskCompleted":
                return event["eventId"]
        raise ValueError("the history has no DecisionTaskCompleted event")

    def scheduled_event_id(self, activity_id: str) -> int:
        return self._scheduled_ids[activity_id]

    # --- decision tasks --------------------------------------------------------------

    def decision_started(self) -> None:
        scheduled = self.add("DecisionTaskScheduled", {"taskList": {"name": "decisions"}})
        self.add("DecisionTaskStarted", {"scheduledEventId": scheduled["eventId"], "identity": "decider"})

    def decision_timed_out(self) -> None:
        started = self._last_decision_started()
        self.add(
            "DecisionTaskTimedOut",
            {"scheduledEventId": started - 1, "startedEventId": started, "timeoutType": "START_TO_CLOSE"},
        )

    def apply_decisions(self, decisions: list[dict[str, Any]]) -> None:
        """Record DecisionTaskCompleted and the events SWF makes of ``decisions``.

        Closing decisions are recorded as WorkflowExecutionCompleted, -Failed, -Canceled
        or -ContinuedAsNew.
        """
        started = self._last_decision_started()
        completed = self.add("DecisionTaskCompleted", {"scheduledEventId": started - 1, "startedEventId": started})
        completed_id = completed["eventId"]
        for decision in decisions:
            kind = decision["decisionType"]
            attrs = decision.get(kind[0].lower() + kind[1:] + "DecisionAttributes", {})
            if kind == "ScheduleActivityTask":
                event_attrs = {**attrs, "decisionTaskCompletedEventId": completed_id}
                event = self.add("ActivityTaskScheduled", event_attrs)
                self._scheduled_ids[attrs["activityId"]] = event["eventId"]
            elif kind == "StartTimer":
                event = self.add("TimerStarted", {**attrs, "decisionTaskCompletedEventId": completed_id})
                self._timer_ids[attrs["timerId"]] = event["eventId"]
            elif kind == "CancelTimer":
                self.add(
                    "TimerCanceled",
                    {
                        "timerId": attrs["timerId"],
                        "startedEventId": self._timer_ids[attrs["timerId"]],
                        "decisionTaskCompletedEventId": completed_id,
                    },
                )
            elif kind == "RequestCancelActivityTask":
                self.add(
                    "ActivityTaskCancelRequested",
                    {"activityId": attrs["activityId"], "decisionTaskCompletedEventId": completed_id},
                )
            elif kind == "CompleteWorkflowExecution":
                self.add("WorkflowExecutionCompleted", {**attrs, "decisionTaskCompletedEventId": completed_id})
            elif kind == "FailWorkflowExecution":
                self.add("WorkflowExecutionFailed", {**attrs, "decisionTaskCompletedEventId": completed_id})
            elif kind == "CancelWorkflowExecution":
                self.add("WorkflowExecutionCanceled", {**attrs, "decisionTaskCompletedEventId": completed_id})
            elif kind == "ContinueAsNewWorkflowExecution":
                self.add(
                    "WorkflowExecutionContinuedAsNew",
                    {**attrs, "decisionTaskCompletedEventId": completed_id, "newExecutionRunId": "run-2"},
                )
            else:
                raise ValueError(f"HistoryBuilder cannot record decision type {kind!r}")

    # --- activity tasks --------------------------------------------------------------

    def activity_started(self, activity_id: str) -> None:
        self.add("ActivityTaskStarted", {"scheduledEventId": self._scheduled_ids[activity_id], "identity": "worker"})

    def _started_id(self, activity_id: str) -> int:
        scheduled = self._scheduled_ids[activity_id]
        for event in reversed(self.events):
            if event["eventType"] == "ActivityTaskStarted" and attributes(event)["scheduledEventId"] == scheduled:
                return event["eventId"]
        self.activity_started(activity_id)
        return self.last_event_id

    def activity_completed(self, activity_id: str, result: Any) -> None:
        started = self._started_id(activity_id)
        attrs: dict[str, Any] = {"scheduledEventId": self._scheduled_ids[activity_id], "startedEventId": started}
        if result is not None:
            attrs["result"] = json.dumps(result)
        self.add("ActivityTaskCompleted", attrs)
        self.decision_started()

    def activity_failed(
        self, activity_id: str, retry: bool, error: str = "RuntimeError", message: str = "", raw_details: str | None = None
    ) -> None:
        started = self._started_id(activity_id)
        details = raw_details if raw_details is not None else json.dumps({"retry": retry, "error": error, "message": message})
        self.add(
            "ActivityTaskFailed",
            {
                "scheduledEventId": self._scheduled_ids[activity_id],
                "startedEventId": started,
                "reason": f"{error}: {message}"[:256],
                "details": details,
            },
        )
        self.decision_started()

    def activity_timed_out(self, activity_id: str, timeout_type: str = "START_TO_CLOSE") -> None:
        attrs: dict[str, Any] = {"scheduledEventId": self._scheduled_ids[activity_id], "timeoutType": timeout_type}
        if timeout_type != "SCHEDULE_TO_START":
            attrs["startedEventId"] = self._started_id(activity_id)
        self.add("ActivityTaskTimedOut", attrs)
        self.decision_started()

    def activity_canceled(self, activity_id: str) -> None:
        started = self._started_id(activity_id)
        self.add("ActivityTaskCanceled", {"scheduledEventId": self._scheduled_ids[activity_id], "startedEventId": started})
        self.decision_started()

    def schedule_failed(self, activity_id: str, activity_type: str, cause: str) -> None:
        """Record a ScheduleActivityTaskFailed in place of the ScheduleActivityTask just applied."""
        scheduled = self._scheduled_ids.pop(activity_id)
        event = self.events[scheduled - 1]
        completed = attributes(event)["decisionTaskCompletedEventId"]
        self.events[scheduled - 1] = {
            "eventId": scheduled,
            "eventType": "ScheduleActivityTaskFailed",
            "eventTimestamp": event["eventTimestamp"],
            "scheduleActivityTaskFailedEventAttributes": {
                "activityType": {"name": activity_type, "version": "1"},
                "activityId": activity_id,
                "cause": cause,
                "decisionTaskCompletedEventId": completed,
            },
        }
        self.decision_started()

    def request_cancel_failed(self, activity_id: str) -> None:
        self.add(
            "RequestCancelActivityTaskFailed",
            {
                "activityId": activity_id,
                "cause": "ACTIVITY_ID_UNKNOWN",
                "decisionTaskCompletedEventId": self._last_decision_completed(),
            },
        )
        self.decision_started()

    # --- timers, signals and the execution -------------------------------------------

    def timer_fired(self, timer_id: str) -> None:
        self.add("TimerFired", {"timerId": timer_id, "startedEventId": self._timer_ids[timer_id]})
        self.decision_started()

    def start_timer_failed(self, timer_id: str, cause: str) -> None:
        started = self._timer_ids.pop(timer_id)
        event = self.events[started - 1]
        completed = attributes(event)["decisionTaskCompletedEventId"]
        self.events[started - 1] = {
            "eventId": started,
            "eventType": "StartTimerFailed",
            "eventTimestamp": event["eventTimestamp"],
            "startTimerFailedEventAttributes": {"timerId": timer_id, "cause": cause, "decisionTaskCompletedEventId": completed},
        }
        self.decision_started()

    def signaled(self, signal_name: str, signal_input: Any = None, new_decision: bool = True) -> None:
        attrs: dict[str, Any] = {"signalName": signal_name}
        if signal_input is not None:
            attrs["input"] = json.dumps(signal_input)
        self.add("WorkflowExecutionSignaled", attrs)
        if new_decision:
            self.decision_started()

    def cancel_requested(self) -> None:
        self.add("WorkflowExecutionCancelRequested", {})
        self.decision_started()

    def close_failed(self, decision_type: str, cause: str = "UNHANDLED_DECISION") -> None:
        """Replace the closing event just applied by its ...Failed event, as SWF does when
        new events arrived during the decision task."""
        closing = self.events.pop()
        completed = attributes(closing)["decisionTaskCompletedEventId"]
        self.add(f"{decision_type}Failed", {"cause": cause, "decisionTaskCompletedEventId": completed})
