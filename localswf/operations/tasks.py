"""Polling for decision and activity tasks, and the activity worker's replies."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from localswf import engine
from localswf import validate as v
from localswf.connection import client_alive
from localswf.engine import Context
from localswf.errors import UnknownResourceFault
from localswf.model import decode_token, encode_token
from localswf.operations.executions import history_page
from localswf.operations.paging import next_token, read_token
from localswf.operations.registry import domain_row

log = logging.getLogger(__name__)

MAX_HEARTBEAT_DETAILS = 2048


def long_poll(service: Any, key: tuple[str, str, str], claim: Any) -> Any:
    """Call `claim(ctx)` until it returns a task or max_poll_seconds pass; waits on the task list's condition."""
    started = time.monotonic()
    deadline = started + service.max_poll_seconds
    while True:
        if not client_alive():
            # The reply would go nowhere. Pass the wake-up on, in case it was meant for a
            # task that another held poll can take now.
            service.waiters.notify(key)
            log.info("client of a poll on %s closed its connection; the poll ends without a task", key[2])
            return None
        seen: list[int] = []

        def attempt(ctx: Context) -> Any:
            task = claim(ctx)
            if task is None:
                seen.append(service.waiters.generation(key))
            return task

        task = service.write(attempt)
        if task is not None:
            return task
        remaining = deadline - time.monotonic()
        if remaining <= 0 or service.stopping.is_set() or service.released_at >= started:
            return None
        service.waiters.wait(key, seen[0], remaining)
        if service.stopping.is_set():
            return None


def pop_queued(ctx: Context, queue: Literal["decision_queue", "activity_queue"], domain: str, task_list: str) -> Any:
    """Remove and return the next queue row of a task list: highest priority first, then oldest."""
    row = ctx.one(
        f"SELECT seq, run_id, scheduled_id FROM {queue} WHERE domain = ? AND task_list = ? "
        "ORDER BY priority DESC, seq LIMIT 1",
        (domain, task_list),
    )
    if row is not None:
        ctx.execute(f"DELETE FROM {queue} WHERE seq = ?", (row["seq"],))
    return row


# --- decision tasks -----------------------------------------------------------------------------

def decision_token(run_id: str, started_id: int) -> str:
    return encode_token("decision", run_id, started_id)


def read_decision_token(token: Any) -> tuple[str, int]:
    tag, run_id, started_id = decode_token(v.require({"taskToken": token}, "taskToken"), "taskToken", 3)
    if tag != "decision":
        raise UnknownResourceFault("Unknown decision task: the taskToken belongs to an activity task")
    return run_id, int(started_id)


def decision_reply(ctx: Context, execution: engine.Execution, started_id: int, previous_started: int, size: int, reverse: bool, after: int | None) -> dict[str, Any]:
    events, continue_after = history_page(ctx, execution.run_id, after, size, reverse, last_event_id=started_id)
    reply: dict[str, Any] = {
        "taskToken": decision_token(execution.run_id, started_id),
        "startedEventId": started_id,
        "workflowExecution": execution.ref(),
        "workflowType": execution.workflow_type(),
        "events": events,
        "previousStartedEventId": previous_started,
    }
    if continue_after is not None:
        reply["nextPageToken"] = next_token("decision", [execution.run_id, started_id, previous_started, continue_after])
    return reply


def poll_for_decision_task(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    task_list = v.task_list(params.get("taskList"), "taskList", optional=False)
    identity = v.text(params.get("identity"), "identity", v.MAX_NAME)
    size = v.page_size(params.get("maximumPageSize"))
    reverse = bool(params.get("reverseOrder"))
    from_previous_start = bool(params.get("startAtPreviousStartedEvent"))
    page_position = read_token(params.get("nextPageToken"), "decision")

    if page_position is not None:
        run_id, started_id, previous_started, after = page_position

        def next_page(ctx: Context) -> dict[str, Any]:
            execution = engine.load_execution(ctx, run_id)
            if execution is None:
                raise UnknownResourceFault(f"Unknown execution runId={run_id}: it was deleted after its retention period")
            return decision_reply(ctx, execution, started_id, previous_started, size, reverse, after)

        return service.read(next_page)

    service.read(lambda ctx: domain_row(ctx, domain))

    def claim(ctx: Context) -> dict[str, Any] | None:
        while True:
            row = pop_queued(ctx, "decision_queue", domain, task_list)
            if row is None:
                return None
            execution = engine.load_execution(ctx, row["run_id"])
            if execution is None or not execution.is_open or execution.dt_queued != row["scheduled_id"]:
                continue
            scheduled_id = execution.dt_queued
            started_id = engine.append_event(
                ctx, execution, "DecisionTaskStarted", {"scheduledEventId": scheduled_id, "identity": identity}
            )
            if not started_id:
                continue  # the event limit closed the execution
            execution.dt_queued = 0
            engine.remove_deadline(ctx, execution.run_id, engine.DECISION_SCHEDULE_TO_START, scheduled_id)
            execution.dt_run_scheduled = scheduled_id
            execution.dt_run_started = started_id
            execution.dt_pending = 0
            seconds = v.timeout_seconds(execution.config_dict["taskStartToCloseTimeout"])
            engine.add_deadline(ctx, seconds, execution.run_id, engine.DECISION_START_TO_CLOSE, started_id)
            previous = execution.last_completed_started
            # startAtPreviousStartedEvent: begin at the previous DecisionTaskStarted instead of event 1.
            after = previous - 1 if (from_previous_start and previous and not reverse) else None
            return decision_reply(ctx, execution, started_id, previous, size, reverse, after)

    task = long_poll(service, (domain, "decision", task_list), claim)
    if task is None:
        return {"previousStartedEventId": 0, "startedEventId": 0}
    log.debug("decision task started: %s run %s by %s", task_list, task["workflowExecution"]["runId"], identity)
    return task


def count_pending_decision_tasks(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    task_list = v.task_list(params.get("taskList"), "taskList", optional=False)

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        count = ctx.one("SELECT COUNT(*) AS n FROM decision_queue WHERE domain = ? AND task_list = ?", (domain, task_list))["n"]
        return {"count": count, "truncated": False}

    return service.read(action)


# --- activity tasks -----------------------------------------------------------------------------

def activity_token(run_id: str, scheduled_id: int, started_id: int) -> str:
    return encode_token("activity", run_id, scheduled_id, started_id)


def poll_for_activity_task(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    task_list = v.task_list(params.get("taskList"), "taskList", optional=False)
    identity = v.text(params.get("identity"), "identity", v.MAX_NAME)
    service.read(lambda ctx: domain_row(ctx, domain))

    def claim(ctx: Context) -> dict[str, Any] | None:
        while True:
            row = pop_queued(ctx, "activity_queue", domain, task_list)
            if row is None:
                return None
            run_id, scheduled_id = row["run_id"], row["scheduled_id"]
            activity = ctx.one("SELECT * FROM activities WHERE run_id = ? AND scheduled_id = ?", (run_id, scheduled_id))
            execution = engine.load_execution(ctx, run_id)
            if activity is None or execution is None or not execution.is_open or activity["started_id"]:
                continue
            started_id = engine.append_event(
                ctx, execution, "ActivityTaskStarted", {"scheduledEventId": scheduled_id, "identity": identity}
            )
            if not started_id:
                continue
            ctx.execute(
                "UPDATE activities SET started_id = ? WHERE run_id = ? AND scheduled_id = ?", (started_id, run_id, scheduled_id)
            )
            attributes = json.loads(activity["attributes"])
            engine.remove_deadline(ctx, run_id, engine.ACTIVITY_SCHEDULE_TO_START, scheduled_id)
            engine.add_deadline(ctx, v.timeout_seconds(attributes.get("startToCloseTimeout")), run_id, engine.ACTIVITY_START_TO_CLOSE, scheduled_id)
            engine.add_deadline(ctx, v.timeout_seconds(attributes.get("heartbeatTimeout")), run_id, engine.ACTIVITY_HEARTBEAT, scheduled_id)
            task = {
                "taskToken": activity_token(run_id, scheduled_id, started_id),
                "activityId": activity["activity_id"],
                "startedEventId": started_id,
                "workflowExecution": execution.ref(),
                "activityType": attributes["activityType"],
            }
            if attributes.get("input") is not None:
                task["input"] = attributes["input"]
            return task

    task = long_poll(service, (domain, "activity", task_list), claim)
    if task is None:
        return {"startedEventId": 0}
    return task


def open_activity(ctx: Context, token: Any) -> tuple[engine.Execution, Any]:
    """Find the started activity task a token names; UnknownResourceFault once it has finished or timed out."""
    tag, run_id, scheduled_id, started_id = decode_token(v.require({"taskToken": token}, "taskToken"), "taskToken", 4)
    if tag != "activity":
        raise UnknownResourceFault("Unknown activity task: the taskToken belongs to a decision task")
    activity = ctx.one(
        "SELECT * FROM activities WHERE run_id = ? AND scheduled_id = ? AND started_id = ?", (run_id, scheduled_id, started_id)
    )
    execution = engine.load_execution(ctx, run_id)
    if activity is None or execution is None or not execution.is_open:
        raise UnknownResourceFault(
            f"Unknown activity task: run {run_id} scheduled event {scheduled_id} has already completed, failed, "
            "timed out or been canceled, or its execution has closed"
        )
    return execution, activity


def finish_activity(event_type: str, fields: tuple[tuple[str, int], ...]) -> Any:
    """Build the handler of RespondActivityTaskCompleted, Failed or Canceled."""

    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        token = v.require(params, "taskToken")
        values = {key: v.text(params.get(key), key, limit) for key, limit in fields}

        def action(ctx: Context) -> dict[str, Any]:
            execution, activity = open_activity(ctx, token)
            scheduled_id = activity["scheduled_id"]
            engine.remove_activity(ctx, execution.run_id, scheduled_id)
            attributes = {**values, "scheduledEventId": scheduled_id, "startedEventId": activity["started_id"]}
            if event_type == "ActivityTaskCanceled" and activity["latest_cancel_requested_id"]:
                attributes["latestCancelRequestedEventId"] = activity["latest_cancel_requested_id"]
            engine.append_event(ctx, execution, event_type, attributes, wakes_decider=True)
            return {}

        return service.write(action)

    return handler


def record_activity_task_heartbeat(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    token = v.require(params, "taskToken")
    details = v.text(params.get("details"), "details", MAX_HEARTBEAT_DETAILS)

    def action(ctx: Context) -> dict[str, Any]:
        execution, activity = open_activity(ctx, token)
        scheduled_id = activity["scheduled_id"]
        if details is not None:
            ctx.execute(
                "UPDATE activities SET heartbeat_details = ? WHERE run_id = ? AND scheduled_id = ?", (details, execution.run_id, scheduled_id)
            )
        seconds = v.timeout_seconds(json.loads(activity["attributes"]).get("heartbeatTimeout"))
        if seconds is not None:
            engine.remove_deadline(ctx, execution.run_id, engine.ACTIVITY_HEARTBEAT, scheduled_id)
            engine.add_deadline(ctx, seconds, execution.run_id, engine.ACTIVITY_HEARTBEAT, scheduled_id)
        return {"cancelRequested": bool(activity["cancel_requested"])}

    return service.write(action)


def count_pending_activity_tasks(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    task_list = v.task_list(params.get("taskList"), "taskList", optional=False)

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        count = ctx.one("SELECT COUNT(*) AS n FROM activity_queue WHERE domain = ? AND task_list = ?", (domain, task_list))["n"]
        return {"count": count, "truncated": False}

    return service.read(action)


OPERATIONS = {
    "PollForDecisionTask": poll_for_decision_task,
    "CountPendingDecisionTasks": count_pending_decision_tasks,
    "PollForActivityTask": poll_for_activity_task,
    "RespondActivityTaskCompleted": finish_activity("ActivityTaskCompleted", (("result", v.MAX_DATA),)),
    "RespondActivityTaskFailed": finish_activity("ActivityTaskFailed", (("reason", v.MAX_NAME), ("details", v.MAX_DATA))),
    "RespondActivityTaskCanceled": finish_activity("ActivityTaskCanceled", (("details", v.MAX_DATA),)),
    "RecordActivityTaskHeartbeat": record_activity_task_heartbeat,
    "CountPendingActivityTasks": count_pending_activity_tasks,
}
