"""Starting, inspecting, listing, signalling, cancelling and terminating workflow executions."""

from __future__ import annotations

import json
from typing import Any

from localswf import engine
from localswf import validate as v
from localswf.engine import Context
from localswf.errors import (
    DefaultUndefinedFault,
    TypeDeprecatedFault,
    ValidationException,
    WorkflowExecutionAlreadyStartedFault,
)
from localswf.model import Execution, event_dict, execution_info_from_row
from localswf.operations.paging import next_token, page, read_token
from localswf.operations.registry import domain_row, registered_domain, type_row

MAX_SIGNAL_NAME = 256


def check_start_request(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Validate the members shared by StartWorkflowExecution, child starts and continue-as-new."""
    return {
        "taskList": v.task_list(params.get("taskList"), prefix + "taskList"),
        "taskPriority": v.priority(params.get("taskPriority"), prefix + "taskPriority"),
        "executionStartToCloseTimeout": v.timeout(
            params.get("executionStartToCloseTimeout"), prefix + "executionStartToCloseTimeout", allow_none=False
        ),
        "taskStartToCloseTimeout": v.timeout(params.get("taskStartToCloseTimeout"), prefix + "taskStartToCloseTimeout"),
        "childPolicy": v.child_policy(params.get("childPolicy"), prefix + "childPolicy"),
        "lambdaRole": v.text(params.get("lambdaRole"), prefix + "lambdaRole", 1600),
        "input": v.data(params.get("input"), prefix + "input"),
        "tagList": v.tag_list(params.get("tagList"), prefix + "tagList"),
    }


def requested_config(request: dict[str, Any]) -> dict[str, Any]:
    requested = {key: request[key] for key in ("executionStartToCloseTimeout", "taskStartToCloseTimeout", "childPolicy", "taskPriority", "lambdaRole")}
    requested["taskList"] = {"name": request["taskList"]} if request["taskList"] else None
    return requested


def start_workflow_execution(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    workflow_id = v.name(params.get("workflowId"), "workflowId")
    type_name, type_version = v.type_ref(params.get("workflowType"), "workflowType")
    request = check_start_request(params)

    def action(ctx: Context) -> dict[str, Any]:
        registered_domain(ctx, domain)
        row = type_row(ctx, "workflow", domain, type_name, type_version)
        if row["status"] != "REGISTERED":
            raise TypeDeprecatedFault(f"Workflow type name={type_name} version={type_version} is deprecated; start a registered version")
        config, missing = engine.resolve_workflow_config(json.loads(row["config"]), requested_config(request))
        if missing:
            member = missing.removeprefix("DEFAULT_").removesuffix("_UNDEFINED").lower()
            raise DefaultUndefinedFault(
                f"No {member} for workflowId={workflow_id}: pass it to StartWorkflowExecution or register the type with a default"
            )
        if engine.find_open_by_workflow_id(ctx, domain, workflow_id) is not None:
            raise WorkflowExecutionAlreadyStartedFault(
                f"Workflow execution workflowId={workflow_id} is already open in domain {domain}; the id can be reused once it closes"
            )
        # TODO: SWF's limit of 100,000 open executions per domain (LimitExceededFault) is not enforced.
        execution = engine.create_execution(
            ctx, domain=domain, workflow_id=workflow_id, type_name=type_name, type_version=type_version,
            config=config, input_data=request["input"], tags=request["tagList"],
        )
        return {"runId": execution.run_id}

    return service.write(action)


def execution_ref(params: dict[str, Any]) -> tuple[str, str]:
    execution = params.get("execution")
    if not isinstance(execution, dict):
        raise ValidationException("1 validation error detected: Value null at 'execution' failed to satisfy constraint: Member must not be null")
    workflow_id = v.name(execution.get("workflowId"), "execution.workflowId")
    run_id = v.text(execution.get("runId"), "execution.runId", 64, min_len=1, optional=False)
    return workflow_id, run_id  # type: ignore[return-value]


def describe_workflow_execution(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    workflow_id, run_id = execution_ref(params)

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        execution = engine.require_execution(ctx, domain, workflow_id, run_id, open_only=False)
        return describe(ctx, execution)

    return service.read(action)


def describe(ctx: Context, execution: Execution) -> dict[str, Any]:
    run_id = execution.run_id
    open_activities = ctx.one("SELECT COUNT(*) AS n FROM activities WHERE run_id = ?", (run_id,))["n"]
    open_timers = ctx.one("SELECT COUNT(*) AS n FROM timers WHERE run_id = ?", (run_id,))["n"]
    open_children = ctx.one("SELECT COUNT(*) AS n FROM children WHERE run_id = ?", (run_id,))["n"]
    open_decisions = 1 if (execution.dt_queued or execution.dt_run_started) else 0
    configuration = {
        key: value for key, value in execution.config_dict.items()
        if key in ("taskStartToCloseTimeout", "executionStartToCloseTimeout", "taskList", "taskPriority", "childPolicy", "lambdaRole")
    }
    reply: dict[str, Any] = {
        "executionInfo": execution.info(),
        "executionConfiguration": configuration,
        "openCounts": {
            "openActivityTasks": open_activities,
            "openDecisionTasks": open_decisions,
            "openTimers": open_timers,
            "openChildWorkflowExecutions": open_children,
            "openLambdaFunctions": 0,
        },
    }
    if execution.latest_activity_ts is not None:
        reply["latestActivityTaskTimestamp"] = execution.latest_activity_ts
    if execution.latest_context is not None:
        reply["latestExecutionContext"] = execution.latest_context
    return reply


def history_page(ctx: Context, run_id: str, after: int | None, size: int, reverse: bool, last_event_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Read one page of events; returns the events and the id to continue after, or None at the end."""
    sql = "SELECT event_id, timestamp, type, attributes FROM events WHERE run_id = ?"
    args: list[Any] = [run_id]
    if last_event_id is not None:
        sql += " AND event_id <= ?"
        args.append(last_event_id)
    if after is not None:
        sql += " AND event_id < ?" if reverse else " AND event_id > ?"
        args.append(after)
    sql += " ORDER BY event_id DESC" if reverse else " ORDER BY event_id ASC"
    rows = ctx.execute(sql + " LIMIT ?", (*args, size + 1)).fetchall()
    rows, more = page(rows, size)
    events = [event_dict(row["event_id"], row["timestamp"], row["type"], row["attributes"]) for row in rows]
    return events, (rows[-1]["event_id"] if more else None)


def get_workflow_execution_history(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain = v.name(params.get("domain"), "domain")
    workflow_id, run_id = execution_ref(params)
    size = v.page_size(params.get("maximumPageSize"))
    reverse = bool(params.get("reverseOrder"))
    after = read_token(params.get("nextPageToken"), "history")

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        execution = engine.require_execution(ctx, domain, workflow_id, run_id, open_only=False)
        events, continue_after = history_page(ctx, execution.run_id, after, size, reverse)
        reply: dict[str, Any] = {"events": events}
        if continue_after is not None:
            reply["nextPageToken"] = next_token("history", continue_after)
        return reply

    return service.read(action)


# --- list and count -----------------------------------------------------------------------------

def time_filter(value: Any, field: str) -> tuple[float, float | None]:
    if not isinstance(value, dict) or value.get("oldestDate") is None:
        raise ValidationException(f"Invalid {field}: it needs oldestDate (and optionally latestDate)")
    try:
        oldest = float(value["oldestDate"])
        latest = float(value["latestDate"]) if value.get("latestDate") is not None else None
    except (TypeError, ValueError):
        raise ValidationException(f"Invalid {field} {value!r}: dates are epoch seconds") from None
    return oldest, latest


def build_filter(params: dict[str, Any], closed: bool) -> tuple[str, list[Any], str]:
    """Translate the list/count filters to SQL; returns the WHERE clause, its arguments and the time column."""
    domain = v.name(params.get("domain"), "domain")
    where = ["domain = ?", "status = ?"]
    args: list[Any] = [domain, "CLOSED" if closed else "OPEN"]
    start_filter = params.get("startTimeFilter")
    close_filter = params.get("closeTimeFilter") if closed else None
    if closed:
        if (start_filter is None) == (close_filter is None):
            raise ValidationException("Pass exactly one of startTimeFilter and closeTimeFilter")
    elif start_filter is None:
        raise ValidationException("1 validation error detected: Value null at 'startTimeFilter' failed to satisfy constraint: Member must not be null")
    column = "closed" if close_filter is not None else "started"
    oldest, latest = time_filter(close_filter if close_filter is not None else start_filter, "closeTimeFilter" if close_filter is not None else "startTimeFilter")
    where.append(f"{column} >= ?")
    args.append(oldest)
    if latest is not None:
        where.append(f"{column} <= ?")
        args.append(latest)

    exclusive = [key for key in ("executionFilter", "typeFilter", "tagFilter", "closeStatusFilter") if params.get(key) is not None]
    if len(exclusive) > 1:
        raise ValidationException(f"Pass at most one of executionFilter, typeFilter, tagFilter and closeStatusFilter (got {', '.join(exclusive)})")
    if params.get("executionFilter") is not None:
        where.append("workflow_id = ?")
        args.append(v.name((params["executionFilter"] or {}).get("workflowId"), "executionFilter.workflowId"))
    if params.get("typeFilter") is not None:
        type_filter = params["typeFilter"] or {}
        where.append("type_name = ?")
        args.append(v.name(type_filter.get("name"), "typeFilter.name"))
        if type_filter.get("version") is not None:
            where.append("type_version = ?")
            args.append(v.version(type_filter.get("version"), "typeFilter.version"))
    if params.get("tagFilter") is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(executions.tags) WHERE json_each.value = ?)")
        args.append(v.text((params["tagFilter"] or {}).get("tag"), "tagFilter.tag", v.MAX_NAME, optional=False))
    if params.get("closeStatusFilter") is not None:
        status = (params["closeStatusFilter"] or {}).get("status")
        if status not in v.CLOSE_STATUSES:
            raise ValidationException(f"Invalid closeStatusFilter.status {status!r}: use one of {', '.join(v.CLOSE_STATUSES)}")
        where.append("close_status = ?")
        args.append(status)
    return " AND ".join(where), args, column


def list_executions(closed: bool) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        where, args, column = build_filter(params, closed)
        size = v.page_size(params.get("maximumPageSize"))
        reverse = bool(params.get("reverseOrder"))
        after = read_token(params.get("nextPageToken"), "executions")

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, args[0])
            # Newest first unless reverseOrder; (time, run_id) is the keyset for paging.
            comparison, order = (">", "ASC") if reverse else ("<", "DESC")
            sql = f"SELECT * FROM executions WHERE {where}"
            page_args = list(args)
            if after is not None:
                sql += f" AND ({column}, run_id) {comparison} (?, ?)"
                page_args.extend(after)
            sql += f" ORDER BY {column} {order}, run_id {order} LIMIT ?"
            rows = ctx.execute(sql, (*page_args, size + 1)).fetchall()
            rows, more = page(rows, size)
            reply: dict[str, Any] = {"executionInfos": [execution_info_from_row(row) for row in rows]}
            if more:
                reply["nextPageToken"] = next_token("executions", [rows[-1][column], rows[-1]["run_id"]])
            return reply

        return service.read(action)

    return handler


def count_executions(closed: bool) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        where, args, _column = build_filter(params, closed)

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, args[0])
            count = ctx.one(f"SELECT COUNT(*) AS n FROM executions WHERE {where}", args)["n"]
            return {"count": count, "truncated": False}

        return service.read(action)

    return handler


# --- signal, cancel, terminate ------------------------------------------------------------------

def target(params: dict[str, Any]) -> tuple[str, str, str | None]:
    domain = v.name(params.get("domain"), "domain")
    workflow_id = v.name(params.get("workflowId"), "workflowId")
    run_id = v.text(params.get("runId"), "runId", 64)
    return domain, workflow_id, run_id  # type: ignore[return-value]


def signal_workflow_execution(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain, workflow_id, run_id = target(params)
    signal_name = v.name(params.get("signalName"), "signalName", max_len=MAX_SIGNAL_NAME)
    input_data = v.data(params.get("input"), "input")

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        execution = engine.require_execution(ctx, domain, workflow_id, run_id, open_only=True)
        engine.append_event(ctx, execution, "WorkflowExecutionSignaled", {"signalName": signal_name, "input": input_data}, wakes_decider=True)
        return {}

    return service.write(action)


def request_cancel_workflow_execution(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain, workflow_id, run_id = target(params)

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        execution = engine.require_execution(ctx, domain, workflow_id, run_id, open_only=True)
        if execution.cancel_requested:
            return {}  # NOTE: a repeated request adds no second WorkflowExecutionCancelRequested event here
        execution.cancel_requested = 1
        engine.append_event(ctx, execution, "WorkflowExecutionCancelRequested", {}, wakes_decider=True)
        return {}

    return service.write(action)


def terminate_workflow_execution(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    domain, workflow_id, run_id = target(params)
    reason = v.text(params.get("reason"), "reason", v.MAX_NAME)
    details = v.data(params.get("details"), "details")
    child_policy = v.child_policy(params.get("childPolicy"), "childPolicy")

    def action(ctx: Context) -> dict[str, Any]:
        domain_row(ctx, domain)
        execution = engine.require_execution(ctx, domain, workflow_id, run_id, open_only=True)
        engine.terminate(ctx, execution, reason=reason, details=details, child_policy=child_policy, cause="OPERATOR_INITIATED")
        return {}

    return service.write(action)


OPERATIONS = {
    "StartWorkflowExecution": start_workflow_execution,
    "DescribeWorkflowExecution": describe_workflow_execution,
    "GetWorkflowExecutionHistory": get_workflow_execution_history,
    "ListOpenWorkflowExecutions": list_executions(False),
    "ListClosedWorkflowExecutions": list_executions(True),
    "CountOpenWorkflowExecutions": count_executions(False),
    "CountClosedWorkflowExecutions": count_executions(True),
    "SignalWorkflowExecution": signal_workflow_execution,
    "RequestCancelWorkflowExecution": request_cancel_workflow_execution,
    "TerminateWorkflowExecution": terminate_workflow_execution,
}

__all__ = ["OPERATIONS", "check_start_request", "describe", "history_page", "requested_config"]
