"""State changes shared by the operations and the deadline scheduler: events, decision tasks, closing."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from localswf.errors import UnknownResourceFault
from localswf.model import Execution, EXECUTION_COLUMNS, new_run_id
from localswf.validate import timeout_seconds

if TYPE_CHECKING:
    import sqlite3

    from localswf.service import Service

log = logging.getLogger(__name__)

EVENT_LIMIT = 25000  # SWF terminates an execution whose history reaches this many events

# Deadline kinds; `ref` is the scheduled event id for tasks, the started event id for timers.
DECISION_START_TO_CLOSE = "decision_start_to_close"
DECISION_SCHEDULE_TO_START = "decision_schedule_to_start"  # only on a task list override with a timeout
ACTIVITY_SCHEDULE_TO_START = "activity_schedule_to_start"
ACTIVITY_SCHEDULE_TO_CLOSE = "activity_schedule_to_close"
ACTIVITY_START_TO_CLOSE = "activity_start_to_close"
ACTIVITY_HEARTBEAT = "activity_heartbeat"
TIMER = "timer"
WORKFLOW_START_TO_CLOSE = "workflow_start_to_close"
RETENTION = "retention"

# SWF's service model applies the child policy only when a parent is terminated or times out.
CHILD_POLICY_CLOSES = ("TERMINATED", "TIMED_OUT")

# Close status -> (event type written to the parent, attributes copied from the child's close event).
CHILD_CLOSE_EVENTS = {
    "COMPLETED": ("ChildWorkflowExecutionCompleted", ("result",)),
    "FAILED": ("ChildWorkflowExecutionFailed", ("reason", "details")),
    "CANCELED": ("ChildWorkflowExecutionCanceled", ("details",)),
    "TERMINATED": ("ChildWorkflowExecutionTerminated", ()),
    "TIMED_OUT": ("ChildWorkflowExecutionTimedOut", ("timeoutType",)),
}


class Context:
    """One transaction: its cursor, its clock reading and what to do once it commits."""

    def __init__(self, service: Service, cursor: sqlite3.Cursor) -> None:
        self.service = service
        self.cursor = cursor
        self.now = time.time()
        self.executions: dict[str, Execution] = {}
        self.wake: dict[tuple[str, str, str], int] = {}
        self.earliest_deadline: float | None = None

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.cursor.execute(sql, params)

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self.cursor.execute(sql, params).fetchone()

    def flush(self) -> None:
        for execution in list(self.executions.values()):
            if not getattr(execution, "deleted", False):
                execution.save(self.cursor)


def load_execution(ctx: Context, run_id: str) -> Execution | None:
    cached = ctx.executions.get(run_id)
    if cached is not None:
        return cached
    row = ctx.one("SELECT * FROM executions WHERE run_id = ?", (run_id,))
    if row is None:
        return None
    execution = Execution(dict(row))
    ctx.executions[run_id] = execution
    return execution


def find_open_by_workflow_id(ctx: Context, domain: str, workflow_id: str) -> Execution | None:
    row = ctx.one(
        "SELECT run_id FROM executions WHERE domain = ? AND workflow_id = ? AND status = 'OPEN'", (domain, workflow_id)
    )
    return load_execution(ctx, row["run_id"]) if row else None


def require_execution(ctx: Context, domain: str, workflow_id: str, run_id: str | None, *, open_only: bool) -> Execution:
    """Find an execution by workflowId and optional runId; UnknownResourceFault if absent (or closed)."""
    if run_id:
        execution = load_execution(ctx, run_id)
        if execution is None or execution.domain != domain or execution.workflow_id != workflow_id:
            raise UnknownResourceFault(f"Unknown execution: workflowId={workflow_id} runId={run_id} in domain {domain}")
    else:
        execution = find_open_by_workflow_id(ctx, domain, workflow_id)
        if execution is None:
            raise UnknownResourceFault(f"Unknown execution: no open execution with workflowId={workflow_id} in domain {domain}")
    if open_only and not execution.is_open:
        raise UnknownResourceFault(
            f"Unknown execution: workflowId={workflow_id} runId={execution.run_id} is closed ({execution.close_status})"
        )
    return execution


def append_event(
    ctx: Context, execution: Execution, event_type: str, attributes: dict[str, Any], *, wakes_decider: bool = False, closing: bool = False
) -> int:
    """Append one event to an open execution's history and return its id.

    Returns 0 and writes nothing when the execution is closed, or when the event would be the 25,000th:
    that slot goes to WorkflowExecutionTerminated with cause EVENT_LIMIT_EXCEEDED.
    """
    if not execution.is_open:
        log.debug("dropped %s for closed run %s", event_type, execution.run_id)
        return 0
    if execution.next_event_id >= EVENT_LIMIT and not closing:
        terminate_for_event_limit(ctx, execution)
        return 0
    event_id = execution.next_event_id
    execution.next_event_id += 1
    clean = {key: value for key, value in attributes.items() if value is not None}
    ctx.execute(
        "INSERT INTO events (run_id, event_id, timestamp, type, attributes) VALUES (?, ?, ?, ?, ?)",
        (execution.run_id, event_id, ctx.now, event_type, json.dumps(clean, separators=(",", ":"))),
    )
    if wakes_decider:
        request_decision(ctx, execution)
    return event_id


def request_decision(ctx: Context, execution: Execution) -> None:
    """Make sure a decision task will see the events just added."""
    if not execution.is_open:
        return
    if execution.decision_batch:
        execution.batch_needs_decision = True
    elif execution.dt_run_started:
        execution.dt_pending = 1
    elif not execution.dt_queued:
        schedule_decision(ctx, execution)


def schedule_decision(ctx: Context, execution: Execution) -> None:
    config = execution.config_dict
    # RespondDecisionTaskCompleted may override the task list, for good or with a schedule-to-start timeout.
    override = config.get("decisionTaskListOverride")
    schedule_to_start = config.get("decisionTaskListOverrideTimeout") if override else None
    attributes = {
        "taskList": dict(override or config["taskList"]),
        "startToCloseTimeout": config["taskStartToCloseTimeout"],
        "scheduleToStartTimeout": schedule_to_start,
    }
    if config.get("taskPriority") is not None:
        attributes["taskPriority"] = config["taskPriority"]
    event_id = append_event(ctx, execution, "DecisionTaskScheduled", attributes)
    if not event_id:
        return  # the execution is closed, or the event limit has just closed it
    execution.dt_queued = event_id
    add_deadline(ctx, timeout_seconds(schedule_to_start), execution.run_id, DECISION_SCHEDULE_TO_START, event_id)
    task_list = attributes["taskList"]["name"]
    ctx.execute(
        "INSERT INTO decision_queue (domain, task_list, priority, run_id, scheduled_id) VALUES (?, ?, ?, ?, ?)",
        (execution.domain, task_list, int(config.get("taskPriority") or 0), execution.run_id, event_id),
    )
    wake(ctx, execution.domain, "decision", task_list)


def revert_temporary_override(execution: Execution) -> None:
    """Drop a task list override that came with a schedule-to-start timeout, after one of its decision tasks timed out."""
    if execution.config_dict.get("decisionTaskListOverrideTimeout") is not None:
        execution.config_dict.pop("decisionTaskListOverride", None)
        execution.config_dict.pop("decisionTaskListOverrideTimeout", None)


def wake(ctx: Context, domain: str, kind: str, task_list: str) -> None:
    key = (domain, kind, task_list)
    ctx.wake[key] = ctx.wake.get(key, 0) + 1


def add_deadline(ctx: Context, seconds: float | None, run_id: str, kind: str, ref: int) -> None:
    if seconds is None:
        return
    due = ctx.now + seconds
    ctx.execute("INSERT INTO deadlines (due, run_id, kind, ref) VALUES (?, ?, ?, ?)", (due, run_id, kind, ref))
    if ctx.earliest_deadline is None or due < ctx.earliest_deadline:
        ctx.earliest_deadline = due


def remove_deadline(ctx: Context, run_id: str, kind: str, ref: int) -> None:
    ctx.execute("DELETE FROM deadlines WHERE run_id = ? AND kind = ? AND ref = ?", (run_id, kind, ref))


def remove_activity(ctx: Context, run_id: str, scheduled_id: int) -> None:
    ctx.execute("DELETE FROM activities WHERE run_id = ? AND scheduled_id = ?", (run_id, scheduled_id))
    ctx.execute("DELETE FROM activity_queue WHERE run_id = ? AND scheduled_id = ?", (run_id, scheduled_id))
    for kind in (ACTIVITY_SCHEDULE_TO_START, ACTIVITY_SCHEDULE_TO_CLOSE, ACTIVITY_START_TO_CLOSE, ACTIVITY_HEARTBEAT):
        remove_deadline(ctx, run_id, kind, scheduled_id)


# --- starting -----------------------------------------------------------------------------------

def workflow_type_row(ctx: Context, domain: str, name: str, version: str) -> sqlite3.Row | None:
    return ctx.one(
        "SELECT * FROM types WHERE kind = 'workflow' AND domain = ? AND name = ? AND version = ?", (domain, name, version)
    )


def resolve_workflow_config(type_defaults: dict[str, Any], requested: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Merge a start request with the type's defaults; return the configuration and the first missing field."""
    config: dict[str, Any] = {}
    pairs = (
        ("taskList", "defaultTaskList", "DEFAULT_TASK_LIST_UNDEFINED"),
        ("executionStartToCloseTimeout", "defaultExecutionStartToCloseTimeout", "DEFAULT_EXECUTION_START_TO_CLOSE_TIMEOUT_UNDEFINED"),
        ("taskStartToCloseTimeout", "defaultTaskStartToCloseTimeout", "DEFAULT_TASK_START_TO_CLOSE_TIMEOUT_UNDEFINED"),
        ("childPolicy", "defaultChildPolicy", "DEFAULT_CHILD_POLICY_UNDEFINED"),
    )
    for key, default_key, cause in pairs:
        value = requested.get(key)
        if value is None:
            value = type_defaults.get(default_key)
        if value is None:
            return config, cause
        config[key] = value
    priority = requested.get("taskPriority")
    if priority is None:
        priority = type_defaults.get("defaultTaskPriority")
    if priority is not None:
        config["taskPriority"] = priority
    lambda_role = requested.get("lambdaRole") or type_defaults.get("defaultLambdaRole")
    if lambda_role:
        config["lambdaRole"] = lambda_role
    return config, None


def create_execution(
    ctx: Context,
    *,
    domain: str,
    workflow_id: str,
    type_name: str,
    type_version: str,
    config: dict[str, Any],
    input_data: str | None,
    tags: list[str],
    run_id: str | None = None,
    parent: Execution | None = None,
    parent_initiated_id: int = 0,
    continued_from: str | None = None,
) -> Execution:
    """Insert an open execution, write WorkflowExecutionStarted and schedule its first decision task."""
    row = {column: None for column in EXECUTION_COLUMNS}
    row.update(
        run_id=run_id or new_run_id(),
        domain=domain,
        workflow_id=workflow_id,
        type_name=type_name,
        type_version=type_version,
        status="OPEN",
        started=ctx.now,
        tags=json.dumps(tags),
        config=json.dumps(config),
        cancel_requested=0,
        parent_run_id=parent.run_id if parent else None,
        parent_workflow_id=parent.workflow_id if parent else None,
        parent_initiated_id=parent_initiated_id if parent else None,
        next_event_id=1,
        dt_queued=0,
        dt_run_scheduled=0,
        dt_run_started=0,
        dt_pending=0,
        last_completed_started=0,
    )
    execution = Execution(row)
    execution.is_new = True
    ctx.executions[execution.run_id] = execution
    attributes: dict[str, Any] = {
        "input": input_data,
        "executionStartToCloseTimeout": config["executionStartToCloseTimeout"],
        "taskStartToCloseTimeout": config["taskStartToCloseTimeout"],
        "childPolicy": config["childPolicy"],
        "taskList": dict(config["taskList"]),
        "taskPriority": config.get("taskPriority"),
        "workflowType": execution.workflow_type(),
        "tagList": list(tags) or None,
        "continuedExecutionRunId": continued_from,
        "parentWorkflowExecution": parent.ref() if parent else None,
        "parentInitiatedEventId": parent_initiated_id if parent else 0,
        "lambdaRole": config.get("lambdaRole"),
    }
    append_event(ctx, execution, "WorkflowExecutionStarted", attributes)
    schedule_decision(ctx, execution)
    add_deadline(ctx, timeout_seconds(config["executionStartToCloseTimeout"]), execution.run_id, WORKFLOW_START_TO_CLOSE, 0)
    return execution


# --- closing ------------------------------------------------------------------------------------

def close_execution(ctx: Context, execution: Execution, close_status: str, event_type: str, attributes: dict[str, Any]) -> int:
    """Write the closing event, drop every pending task, timer and deadline, then apply the child policy."""
    event_id = append_event(ctx, execution, event_type, attributes, closing=True)
    execution.status = "CLOSED"
    execution.close_status = close_status
    execution.closed = ctx.now
    execution.dt_queued = execution.dt_run_started = execution.dt_run_scheduled = execution.dt_pending = 0
    run_id = execution.run_id
    ctx.execute("DELETE FROM decision_queue WHERE run_id = ?", (run_id,))
    ctx.execute("DELETE FROM activity_queue WHERE run_id = ?", (run_id,))
    ctx.execute("DELETE FROM activities WHERE run_id = ?", (run_id,))
    ctx.execute("DELETE FROM timers WHERE run_id = ?", (run_id,))
    ctx.execute("DELETE FROM deadlines WHERE run_id = ?", (run_id,))
    domain = ctx.one("SELECT retention_days FROM domains WHERE name = ?", (execution.domain,))
    retention_days = int(domain["retention_days"]) if domain else 0
    add_deadline(ctx, retention_days * 86400.0, run_id, RETENTION, 0)
    clean = {key: value for key, value in attributes.items() if value is not None}
    notify_parent(ctx, execution, close_status, clean)
    if close_status in CHILD_POLICY_CLOSES:
        apply_child_policy(ctx, execution, attributes.get("childPolicy") or execution.config_dict["childPolicy"])
    else:
        ctx.execute("DELETE FROM children WHERE run_id = ?", (run_id,))  # the children run on, unlinked
    log.info("closed run %s workflowId=%s status=%s", run_id, execution.workflow_id, close_status)
    return event_id


def notify_parent(ctx: Context, child: Execution, close_status: str, close_attributes: dict[str, Any]) -> None:
    if not child.parent_run_id:
        return
    link = ctx.one("SELECT * FROM children WHERE child_run_id = ?", (child.run_id,))
    if link is None:
        return
    parent = load_execution(ctx, link["run_id"])
    if close_status == "CONTINUED_AS_NEW":
        return  # the parent keeps following the new run; `continue_as_new` moves the link
    ctx.execute("DELETE FROM children WHERE run_id = ? AND initiated_id = ?", (link["run_id"], link["initiated_id"]))
    if parent is None or not parent.is_open:
        return
    event_type, copied = CHILD_CLOSE_EVENTS[close_status]
    attributes: dict[str, Any] = {
        "workflowExecution": child.ref(),
        "workflowType": child.workflow_type(),
        "initiatedEventId": link["initiated_id"],
        "startedEventId": link["started_id"],
    }
    for key in copied:
        attributes[key] = close_attributes.get(key)
    append_event(ctx, parent, event_type, attributes, wakes_decider=True)


def apply_child_policy(ctx: Context, parent: Execution, policy: str) -> None:
    rows = ctx.execute("SELECT * FROM children WHERE run_id = ?", (parent.run_id,)).fetchall()
    ctx.execute("DELETE FROM children WHERE run_id = ?", (parent.run_id,))
    for link in rows:
        child = load_execution(ctx, link["child_run_id"])
        if child is None or not child.is_open:
            continue
        if policy == "TERMINATE":
            terminate(ctx, child, reason=None, details=None, child_policy=None, cause="CHILD_POLICY_APPLIED")
        elif policy == "REQUEST_CANCEL":
            child.cancel_requested = 1
            append_event(ctx, child, "WorkflowExecutionCancelRequested", {"cause": "CHILD_POLICY_APPLIED"}, wakes_decider=True)


def terminate(ctx: Context, execution: Execution, *, reason: str | None, details: str | None, child_policy: str | None, cause: str | None) -> None:
    attributes = {
        "reason": reason,
        "details": details,
        "childPolicy": child_policy or execution.config_dict["childPolicy"],
        "cause": cause,
    }
    close_execution(ctx, execution, "TERMINATED", "WorkflowExecutionTerminated", attributes)


def terminate_for_event_limit(ctx: Context, execution: Execution) -> None:
    log.warning("run %s workflowId=%s reached %d events: terminating it", execution.run_id, execution.workflow_id, EVENT_LIMIT)
    terminate(ctx, execution, reason=None, details=None, child_policy=None, cause="EVENT_LIMIT_EXCEEDED")


def delete_execution(ctx: Context, run_id: str) -> None:
    """Drop a closed execution and its history once the domain's retention period has passed."""
    ctx.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
    ctx.execute("DELETE FROM executions WHERE run_id = ? AND status = 'CLOSED'", (run_id,))
    cached = ctx.executions.pop(run_id, None)
    if cached is not None:
        cached.deleted = True  # type: ignore[attr-defined]
