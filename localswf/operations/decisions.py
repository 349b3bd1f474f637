"""RespondDecisionTaskCompleted: applying a decider's decisions to its execution, in order."""

from __future__ import annotations

import json
import logging
from typing import Any

from localswf import engine
from localswf import validate as v
from localswf.engine import Context, Execution
from localswf.errors import UnknownResourceFault, ValidationException
from localswf.model import new_run_id
from localswf.operations.executions import check_start_request, requested_config
from localswf.operations.tasks import read_decision_token

log = logging.getLogger(__name__)

MAX_OPEN_ACTIVITIES = 1000  # SWF's limit of open activity tasks per execution
MAX_OPEN_TIMERS = 1000
MAX_OPEN_CHILDREN = 1000

CLOSE_DECISIONS = {
    "CompleteWorkflowExecution", "FailWorkflowExecution", "CancelWorkflowExecution", "ContinueAsNewWorkflowExecution",
}
ATTRIBUTE_KEYS = {
    name: name[0].lower() + name[1:] + "DecisionAttributes"
    for name in (
        "ScheduleActivityTask", "RequestCancelActivityTask", "CompleteWorkflowExecution", "FailWorkflowExecution",
        "CancelWorkflowExecution", "ContinueAsNewWorkflowExecution", "RecordMarker", "StartTimer", "CancelTimer",
        "SignalExternalWorkflowExecution", "RequestCancelExternalWorkflowExecution", "StartChildWorkflowExecution",
        "ScheduleLambdaFunction",
    )
}


def respond_decision_task_completed(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    run_id, started_id = read_decision_token(v.require(params, "taskToken"))
    context_data = v.data(params.get("executionContext"), "executionContext")
    override = v.task_list(params.get("taskList"), "taskList")
    override_timeout = v.timeout(params.get("taskListScheduleToStartTimeout"), "taskListScheduleToStartTimeout")
    decisions = params.get("decisions") or []
    if not isinstance(decisions, list):
        raise ValidationException("Invalid decisions: use a list of decision objects")
    checked = [check_decision(decision, index) for index, decision in enumerate(decisions)]

    def action(ctx: Context) -> dict[str, Any]:
        execution = engine.load_execution(ctx, run_id)
        if execution is None or not execution.is_open or execution.dt_run_started != started_id:
            raise UnknownResourceFault(
                f"Unknown decision task: run {run_id} started event {started_id} has timed out, been completed, "
                "or its execution has closed"
            )
        if override is not None:
            execution.config_dict["decisionTaskListOverride"] = {"name": override}
            execution.config_dict["decisionTaskListOverrideTimeout"] = override_timeout
        apply_decisions(ctx, execution, checked, context_data, override, override_timeout)
        return {}

    return service.write(action)


def check_decision(decision: Any, index: int) -> tuple[str, dict[str, Any]]:
    """Check one decision's shape and field limits; SWF rejects the whole response when one is invalid."""
    field = f"decisions.{index + 1}.member"
    if not isinstance(decision, dict):
        raise ValidationException(f"Invalid {field}: each decision is an object with a decisionType")
    decision_type = decision.get("decisionType")
    if decision_type not in ATTRIBUTE_KEYS:
        raise ValidationException(f"Invalid {field}.decisionType {decision_type!r}: use one of {', '.join(ATTRIBUTE_KEYS)}")
    attributes = decision.get(ATTRIBUTE_KEYS[decision_type]) or {}
    if not isinstance(attributes, dict):
        raise ValidationException(f"Invalid {field}.{ATTRIBUTE_KEYS[decision_type]}: expected an object")
    prefix = f"{field}.{ATTRIBUTE_KEYS[decision_type]}."
    checker = CHECKERS.get(decision_type)
    return decision_type, checker(attributes, prefix) if checker else dict(attributes)


def check_schedule_activity(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    type_name, type_version = v.type_ref(fields.get("activityType"), prefix + "activityType")
    return {
        "activityType": {"name": type_name, "version": type_version},
        "activityId": v.name(fields.get("activityId"), prefix + "activityId"),
        "control": v.data(fields.get("control"), prefix + "control"),
        "input": v.data(fields.get("input"), prefix + "input"),
        "scheduleToCloseTimeout": v.timeout(fields.get("scheduleToCloseTimeout"), prefix + "scheduleToCloseTimeout"),
        "taskList": v.task_list(fields.get("taskList"), prefix + "taskList"),
        "taskPriority": v.priority(fields.get("taskPriority"), prefix + "taskPriority"),
        "scheduleToStartTimeout": v.timeout(fields.get("scheduleToStartTimeout"), prefix + "scheduleToStartTimeout"),
        "startToCloseTimeout": v.timeout(fields.get("startToCloseTimeout"), prefix + "startToCloseTimeout"),
        "heartbeatTimeout": v.timeout(fields.get("heartbeatTimeout"), prefix + "heartbeatTimeout"),
    }


def check_start_timer(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "timerId": v.name(fields.get("timerId"), prefix + "timerId"),
        "control": v.data(fields.get("control"), prefix + "control"),
        "startToFireTimeout": v.timeout(fields.get("startToFireTimeout"), prefix + "startToFireTimeout", allow_none=False, optional=False),
    }


def check_child(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    type_name, type_version = v.type_ref(fields.get("workflowType"), prefix + "workflowType")
    checked = check_start_request(fields, prefix)
    checked.update(
        workflowType={"name": type_name, "version": type_version},
        workflowId=v.name(fields.get("workflowId"), prefix + "workflowId"),
        control=v.data(fields.get("control"), prefix + "control"),
    )
    return checked


def check_continue_as_new(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    checked = check_start_request(fields, prefix)
    checked["workflowTypeVersion"] = v.version(fields["workflowTypeVersion"], prefix + "workflowTypeVersion") if fields.get("workflowTypeVersion") else None
    return checked


def check_external(fields: dict[str, Any], prefix: str, signal: bool) -> dict[str, Any]:
    checked = {
        "workflowId": v.name(fields.get("workflowId"), prefix + "workflowId"),
        "runId": v.text(fields.get("runId"), prefix + "runId", 64),
        "control": v.data(fields.get("control"), prefix + "control"),
    }
    if signal:
        checked["signalName"] = v.name(fields.get("signalName"), prefix + "signalName")
        checked["input"] = v.data(fields.get("input"), prefix + "input")
    return checked


CHECKERS = {
    "ScheduleActivityTask": check_schedule_activity,
    "RequestCancelActivityTask": lambda fields, prefix: {"activityId": v.name(fields.get("activityId"), prefix + "activityId")},
    "CompleteWorkflowExecution": lambda fields, prefix: {"result": v.data(fields.get("result"), prefix + "result")},
    "FailWorkflowExecution": lambda fields, prefix: {"reason": v.text(fields.get("reason"), prefix + "reason", v.MAX_NAME), "details": v.data(fields.get("details"), prefix + "details")},
    "CancelWorkflowExecution": lambda fields, prefix: {"details": v.data(fields.get("details"), prefix + "details")},
    "ContinueAsNewWorkflowExecution": check_continue_as_new,
    "RecordMarker": lambda fields, prefix: {"markerName": v.name(fields.get("markerName"), prefix + "markerName"), "details": v.data(fields.get("details"), prefix + "details")},
    "StartTimer": check_start_timer,
    "CancelTimer": lambda fields, prefix: {"timerId": v.name(fields.get("timerId"), prefix + "timerId")},
    "SignalExternalWorkflowExecution": lambda fields, prefix: check_external(fields, prefix, True),
    "RequestCancelExternalWorkflowExecution": lambda fields, prefix: check_external(fields, prefix, False),
    "StartChildWorkflowExecution": check_child,
    "ScheduleLambdaFunction": lambda fields, prefix: {"id": v.text(fields.get("id"), prefix + "id", v.MAX_NAME), "name": v.text(fields.get("name"), prefix + "name", 64)},
}


def apply_decisions(
    ctx: Context,
    execution: Execution,
    decisions: list[tuple[str, dict[str, Any]]],
    context_data: str | None,
    override: str | None = None,
    override_timeout: str | None = None,
) -> None:
    """Write DecisionTaskCompleted, apply each decision, then schedule a decision task if new events need one."""
    completed = {
        "scheduledEventId": execution.dt_run_scheduled,
        "startedEventId": execution.dt_run_started,
        "executionContext": context_data,
        "taskList": {"name": override} if override is not None else None,
        "taskListScheduleToStartTimeout": override_timeout if override is not None else None,
    }
    completed_id = engine.append_event(ctx, execution, "DecisionTaskCompleted", completed)
    engine.remove_deadline(ctx, execution.run_id, engine.DECISION_START_TO_CLOSE, execution.dt_run_started)
    execution.last_completed_started = execution.dt_run_started
    if context_data is not None:
        execution.latest_context = context_data
    unseen_events = bool(execution.dt_pending)
    execution.dt_run_started = execution.dt_run_scheduled = execution.dt_pending = 0
    execution.decision_batch = True
    execution.batch_needs_decision = unseen_events
    try:
        for index, (decision_type, attributes) in enumerate(decisions):
            if not execution.is_open:
                break  # NOTE: decisions after a close (or after the 25,000-event limit) are dropped
            if decision_type in CLOSE_DECISIONS:
                is_last = index == len(decisions) - 1
                apply_close(ctx, execution, decision_type, attributes, completed_id, unhandled=execution.batch_needs_decision or not is_last)
            else:
                APPLY[decision_type](ctx, execution, attributes, completed_id)
    finally:
        execution.decision_batch = False
    if execution.is_open and execution.batch_needs_decision and not execution.dt_queued:
        engine.schedule_decision(ctx, execution)


def fail_decision(ctx: Context, execution: Execution, event_type: str, attributes: dict[str, Any]) -> None:
    log.info("decision failed in run %s: %s %s", execution.run_id, event_type, attributes.get("cause"))
    engine.append_event(ctx, execution, event_type, attributes, wakes_decider=True)


# --- activities ---------------------------------------------------------------------------------

ACTIVITY_DEFAULTS = (
    ("taskList", "defaultTaskList", "DEFAULT_TASK_LIST_UNDEFINED"),
    ("scheduleToCloseTimeout", "defaultTaskScheduleToCloseTimeout", "DEFAULT_SCHEDULE_TO_CLOSE_TIMEOUT_UNDEFINED"),
    ("scheduleToStartTimeout", "defaultTaskScheduleToStartTimeout", "DEFAULT_SCHEDULE_TO_START_TIMEOUT_UNDEFINED"),
    ("startToCloseTimeout", "defaultTaskStartToCloseTimeout", "DEFAULT_START_TO_CLOSE_TIMEOUT_UNDEFINED"),
    ("heartbeatTimeout", "defaultTaskHeartbeatTimeout", "DEFAULT_HEARTBEAT_TIMEOUT_UNDEFINED"),
)


def resolve_activity(requested: dict[str, Any], type_defaults: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Fill an activity's task list and timeouts from the type's defaults; returns them and the first missing cause."""
    resolved = dict(requested)
    if resolved.get("taskList") is not None:
        resolved["taskList"] = {"name": resolved["taskList"]}
    for key, default_key, cause in ACTIVITY_DEFAULTS:
        if resolved.get(key) is None:
            resolved[key] = type_defaults.get(default_key)
        if resolved[key] is None:
            return resolved, cause
    if resolved.get("taskPriority") is None and type_defaults.get("defaultTaskPriority") is not None:
        resolved["taskPriority"] = type_defaults["defaultTaskPriority"]
    return resolved, None


def schedule_activity(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    failure = {"activityType": fields["activityType"], "activityId": fields["activityId"], "decisionTaskCompletedEventId": completed_id}
    type_row = ctx.one(
        "SELECT status, config FROM types WHERE kind = 'activity' AND domain = ? AND name = ? AND version = ?",
        (execution.domain, fields["activityType"]["name"], fields["activityType"]["version"]),
    )
    cause = None
    if type_row is None:
        cause = "ACTIVITY_TYPE_DOES_NOT_EXIST"
    elif type_row["status"] != "REGISTERED":
        cause = "ACTIVITY_TYPE_DEPRECATED"
    elif ctx.one("SELECT 1 FROM activities WHERE run_id = ? AND activity_id = ?", (execution.run_id, fields["activityId"])):
        cause = "ACTIVITY_ID_ALREADY_IN_USE"
    elif ctx.one("SELECT COUNT(*) AS n FROM activities WHERE run_id = ?", (execution.run_id,))["n"] >= MAX_OPEN_ACTIVITIES:
        cause = "OPEN_ACTIVITIES_LIMIT_EXCEEDED"
    resolved: dict[str, Any] = {}
    if cause is None:
        resolved, cause = resolve_activity(fields, json.loads(type_row["config"]))
    if cause is not None:
        fail_decision(ctx, execution, "ScheduleActivityTaskFailed", {**failure, "cause": cause})
        return

    attributes = {
        "activityType": fields["activityType"],
        "activityId": fields["activityId"],
        "input": fields.get("input"),
        "control": fields.get("control"),
        "scheduleToStartTimeout": resolved["scheduleToStartTimeout"],
        "scheduleToCloseTimeout": resolved["scheduleToCloseTimeout"],
        "startToCloseTimeout": resolved["startToCloseTimeout"],
        "taskList": resolved["taskList"],
        "taskPriority": resolved.get("taskPriority"),
        "decisionTaskCompletedEventId": completed_id,
        "heartbeatTimeout": resolved["heartbeatTimeout"],
    }
    scheduled_id = engine.append_event(ctx, execution, "ActivityTaskScheduled", attributes)
    if not scheduled_id:
        return

    stored = {key: value for key, value in attributes.items() if value is not None}
    ctx.execute(
        "INSERT INTO activities (run_id, scheduled_id, activity_id, attributes) VALUES (?, ?, ?, ?)",
        (execution.run_id, scheduled_id, fields["activityId"], json.dumps(stored)),
    )
    task_list = resolved["taskList"]["name"]
    ctx.execute(
        "INSERT INTO activity_queue (domain, task_list, priority, run_id, scheduled_id) VALUES (?, ?, ?, ?, ?)",
        (execution.domain, task_list, int(resolved.get("taskPriority") or 0), execution.run_id, scheduled_id),
    )
    engine.add_deadline(ctx, v.timeout_seconds(resolved["scheduleToStartTimeout"]), execution.run_id, engine.ACTIVITY_SCHEDULE_TO_START, scheduled_id)
    engine.add_deadline(ctx, v.timeout_seconds(resolved["scheduleToCloseTimeout"]), execution.run_id, engine.ACTIVITY_SCHEDULE_TO_CLOSE, scheduled_id)
    execution.latest_activity_ts = ctx.now  # DescribeWorkflowExecution's latestActivityTaskTimestamp: the last scheduling
    engine.wake(ctx, execution.domain, "activity", task_list)


def request_cancel_activity(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    activity = ctx.one("SELECT * FROM activities WHERE run_id = ? AND activity_id = ?", (execution.run_id, fields["activityId"]))
    if activity is None:
        fail_decision(ctx, execution, "RequestCancelActivityTaskFailed", {
            "activityId": fields["activityId"], "cause": "ACTIVITY_ID_UNKNOWN", "decisionTaskCompletedEventId": completed_id,
        })
        return
    requested_id = engine.append_event(
        ctx, execution, "ActivityTaskCancelRequested", {"decisionTaskCompletedEventId": completed_id, "activityId": fields["activityId"]}
    )
    if not activity["started_id"]:
        # Not handed to a worker yet: SWF cancels it at once.
        engine.remove_activity(ctx, execution.run_id, activity["scheduled_id"])
        engine.append_event(ctx, execution, "ActivityTaskCanceled", {
            "scheduledEventId": activity["scheduled_id"], "startedEventId": 0, "latestCancelRequestedEventId": requested_id,
        }, wakes_decider=True)
        return
    ctx.execute(
        "UPDATE activities SET cancel_requested = 1, latest_cancel_requested_id = ? WHERE run_id = ? AND scheduled_id = ?",
        (requested_id, execution.run_id, activity["scheduled_id"]),
    )


# --- timers and markers -------------------------------------------------------------------------

def start_timer(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    cause = None
    if ctx.one("SELECT 1 FROM timers WHERE run_id = ? AND timer_id = ?", (execution.run_id, fields["timerId"])):
        cause = "TIMER_ID_ALREADY_IN_USE"
    elif ctx.one("SELECT COUNT(*) AS n FROM timers WHERE run_id = ?", (execution.run_id,))["n"] >= MAX_OPEN_TIMERS:
        cause = "OPEN_TIMERS_LIMIT_EXCEEDED"
    if cause:
        fail_decision(ctx, execution, "StartTimerFailed", {"timerId": fields["timerId"], "cause": cause, "decisionTaskCompletedEventId": completed_id})
        return
    started_id = engine.append_event(ctx, execution, "TimerStarted", {
        "timerId": fields["timerId"], "control": fields.get("control"), "startToFireTimeout": fields["startToFireTimeout"],
        "decisionTaskCompletedEventId": completed_id,
    })
    if not started_id:
        return
    ctx.execute("INSERT INTO timers (run_id, timer_id, started_id) VALUES (?, ?, ?)", (execution.run_id, fields["timerId"], started_id))
    engine.add_deadline(ctx, v.timeout_seconds(fields["startToFireTimeout"]), execution.run_id, engine.TIMER, started_id)


def cancel_timer(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    timer = ctx.one("SELECT * FROM timers WHERE run_id = ? AND timer_id = ?", (execution.run_id, fields["timerId"]))
    if timer is None:
        fail_decision(ctx, execution, "CancelTimerFailed", {"timerId": fields["timerId"], "cause": "TIMER_ID_UNKNOWN", "decisionTaskCompletedEventId": completed_id})
        return
    ctx.execute("DELETE FROM timers WHERE run_id = ? AND timer_id = ?", (execution.run_id, fields["timerId"]))
    engine.remove_deadline(ctx, execution.run_id, engine.TIMER, timer["started_id"])
    engine.append_event(ctx, execution, "TimerCanceled", {
        "timerId": fields["timerId"], "startedEventId": timer["started_id"], "decisionTaskCompletedEventId": completed_id,
    })


def record_marker(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    engine.append_event(ctx, execution, "MarkerRecorded", {
        "markerName": fields["markerName"], "details": fields.get("details"), "decisionTaskCompletedEventId": completed_id,
    })


def schedule_lambda(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    # localswf runs no Lambda functions, so it records the failure SWF writes in a region without Lambda.
    fail_decision(ctx, execution, "ScheduleLambdaFunctionFailed", {
        "id": fields.get("id") or "", "name": fields.get("name") or "", "cause": "LAMBDA_SERVICE_NOT_AVAILABLE_IN_REGION",
        "decisionTaskCompletedEventId": completed_id,
    })


# --- closing decisions --------------------------------------------------------------------------

def apply_close(ctx: Context, execution: Execution, decision_type: str, fields: dict[str, Any], completed_id: int, *, unhandled: bool) -> None:
    """Close the execution, or write <Decision>Failed with UNHANDLED_DECISION when the decider has not seen every event."""
    if unhandled:
        fail_decision(ctx, execution, decision_type + "Failed", {"cause": "UNHANDLED_DECISION", "decisionTaskCompletedEventId": completed_id})
        return
    if decision_type == "CompleteWorkflowExecution":
        engine.close_execution(ctx, execution, "COMPLETED", "WorkflowExecutionCompleted", {"result": fields.get("result"), "decisionTaskCompletedEventId": completed_id})
    elif decision_type == "FailWorkflowExecution":
        engine.close_execution(ctx, execution, "FAILED", "WorkflowExecutionFailed", {
            "reason": fields.get("reason"), "details": fields.get("details"), "decisionTaskCompletedEventId": completed_id,
        })
    elif decision_type == "CancelWorkflowExecution":
        engine.close_execution(ctx, execution, "CANCELED", "WorkflowExecutionCanceled", {"details": fields.get("details"), "decisionTaskCompletedEventId": completed_id})
    else:
        continue_as_new(ctx, execution, fields, completed_id)


def continue_as_new(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    type_version = fields.get("workflowTypeVersion") or execution.type_version
    type_row = engine.workflow_type_row(ctx, execution.domain, execution.type_name, type_version)
    cause = None
    config: dict[str, Any] = {}
    if type_row is None:
        cause = "WORKFLOW_TYPE_DOES_NOT_EXIST"
    elif type_row["status"] != "REGISTERED":
        cause = "WORKFLOW_TYPE_DEPRECATED"
    else:
        config, cause = engine.resolve_workflow_config(json.loads(type_row["config"]), requested_config(fields))
    if cause:
        fail_decision(ctx, execution, "ContinueAsNewWorkflowExecutionFailed", {"cause": cause, "decisionTaskCompletedEventId": completed_id})
        return

    new_run = new_run_id()
    parent = engine.load_execution(ctx, execution.parent_run_id) if execution.parent_run_id else None
    link = ctx.one("SELECT * FROM children WHERE child_run_id = ?", (execution.run_id,))
    engine.close_execution(ctx, execution, "CONTINUED_AS_NEW", "WorkflowExecutionContinuedAsNew", {
        "input": fields.get("input"),
        "decisionTaskCompletedEventId": completed_id,
        "newExecutionRunId": new_run,
        "executionStartToCloseTimeout": config["executionStartToCloseTimeout"],
        "taskList": config["taskList"],
        "taskPriority": config.get("taskPriority"),
        "taskStartToCloseTimeout": config["taskStartToCloseTimeout"],
        "childPolicy": config["childPolicy"],
        "tagList": fields.get("tagList") or None,
        "workflowType": {"name": execution.type_name, "version": type_version},
        "lambdaRole": config.get("lambdaRole"),
    })

    engine.create_execution(
        ctx, domain=execution.domain, workflow_id=execution.workflow_id, type_name=execution.type_name, type_version=type_version,
        config=config, input_data=fields.get("input"), tags=fields.get("tagList") or [], run_id=new_run,
        parent=parent, parent_initiated_id=execution.parent_initiated_id or 0, continued_from=execution.run_id,
    )
    if link is not None:
        ctx.execute("UPDATE children SET child_run_id = ? WHERE run_id = ? AND initiated_id = ?", (new_run, link["run_id"], link["initiated_id"]))


# --- other executions ---------------------------------------------------------------------------

def find_target(ctx: Context, execution: Execution, workflow_id: str, run_id: str | None) -> Execution | None:
    if run_id:
        target = engine.load_execution(ctx, run_id)
        if target is None or target.workflow_id != workflow_id or target.domain != execution.domain:
            return None
    else:
        target = engine.find_open_by_workflow_id(ctx, execution.domain, workflow_id)
    return target if target is not None and target.is_open else None


def signal_external(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    initiated_id = engine.append_event(ctx, execution, "SignalExternalWorkflowExecutionInitiated", {
        "workflowId": fields["workflowId"], "runId": fields.get("runId"), "signalName": fields["signalName"], "input": fields.get("input"),
        "decisionTaskCompletedEventId": completed_id, "control": fields.get("control"),
    })
    target = find_target(ctx, execution, fields["workflowId"], fields.get("runId"))
    if target is None:
        fail_decision(ctx, execution, "SignalExternalWorkflowExecutionFailed", {
            "workflowId": fields["workflowId"], "runId": fields.get("runId"), "cause": "UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION",
            "initiatedEventId": initiated_id, "decisionTaskCompletedEventId": completed_id, "control": fields.get("control"),
        })
        return
    engine.append_event(ctx, target, "WorkflowExecutionSignaled", {
        "signalName": fields["signalName"], "input": fields.get("input"), "externalWorkflowExecution": execution.ref(),
        "externalInitiatedEventId": initiated_id,
    }, wakes_decider=True)
    engine.append_event(ctx, execution, "ExternalWorkflowExecutionSignaled", {
        "workflowExecution": target.ref(), "initiatedEventId": initiated_id,
    }, wakes_decider=True)


def request_cancel_external(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    initiated_id = engine.append_event(ctx, execution, "RequestCancelExternalWorkflowExecutionInitiated", {
        "workflowId": fields["workflowId"], "runId": fields.get("runId"), "decisionTaskCompletedEventId": completed_id, "control": fields.get("control"),
    })
    target = find_target(ctx, execution, fields["workflowId"], fields.get("runId"))
    if target is None:
        fail_decision(ctx, execution, "RequestCancelExternalWorkflowExecutionFailed", {
            "workflowId": fields["workflowId"], "runId": fields.get("runId"), "cause": "UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION",
            "initiatedEventId": initiated_id, "decisionTaskCompletedEventId": completed_id, "control": fields.get("control"),
        })
        return
    target.cancel_requested = 1
    engine.append_event(ctx, target, "WorkflowExecutionCancelRequested", {
        "externalWorkflowExecution": execution.ref(), "externalInitiatedEventId": initiated_id,
    }, wakes_decider=True)
    engine.append_event(ctx, execution, "ExternalWorkflowExecutionCancelRequested", {
        "workflowExecution": target.ref(), "initiatedEventId": initiated_id,
    }, wakes_decider=True)


def start_child(ctx: Context, execution: Execution, fields: dict[str, Any], completed_id: int) -> None:
    workflow_type = fields["workflowType"]
    type_row = engine.workflow_type_row(ctx, execution.domain, workflow_type["name"], workflow_type["version"])
    config: dict[str, Any] = {}
    cause = None
    if type_row is None:
        cause = "WORKFLOW_TYPE_DOES_NOT_EXIST"
    elif type_row["status"] != "REGISTERED":
        cause = "WORKFLOW_TYPE_DEPRECATED"
    elif ctx.one("SELECT COUNT(*) AS n FROM children WHERE run_id = ?", (execution.run_id,))["n"] >= MAX_OPEN_CHILDREN:
        cause = "OPEN_CHILDREN_LIMIT_EXCEEDED"
    else:
        config, cause = engine.resolve_workflow_config(json.loads(type_row["config"]), requested_config(fields))
    initiated = {
        "workflowId": fields["workflowId"], "workflowType": workflow_type, "control": fields.get("control"), "input": fields.get("input"),
        "executionStartToCloseTimeout": config.get("executionStartToCloseTimeout", fields.get("executionStartToCloseTimeout")),
        "taskList": config.get("taskList") or ({"name": fields["taskList"]} if fields.get("taskList") else {"name": ""}),
        "taskPriority": config.get("taskPriority"),
        "decisionTaskCompletedEventId": completed_id,
        "childPolicy": config.get("childPolicy") or fields.get("childPolicy") or "TERMINATE",
        "taskStartToCloseTimeout": config.get("taskStartToCloseTimeout", fields.get("taskStartToCloseTimeout")),
        "tagList": fields.get("tagList") or None,
        "lambdaRole": config.get("lambdaRole"),
    }

    initiated_id = engine.append_event(ctx, execution, "StartChildWorkflowExecutionInitiated", initiated)
    if not initiated_id:
        return

    if cause is None and engine.find_open_by_workflow_id(ctx, execution.domain, fields["workflowId"]) is not None:
        cause = "WORKFLOW_ALREADY_RUNNING"
    if cause is not None:
        fail_decision(ctx, execution, "StartChildWorkflowExecutionFailed", {
            "workflowType": workflow_type, "cause": cause, "workflowId": fields["workflowId"], "initiatedEventId": initiated_id,
            "decisionTaskCompletedEventId": completed_id, "control": fields.get("control"),
        })
        return

    child = engine.create_execution(
        ctx, domain=execution.domain, workflow_id=fields["workflowId"], type_name=workflow_type["name"], type_version=workflow_type["version"],
        config=config, input_data=fields.get("input"), tags=fields.get("tagList") or [], parent=execution, parent_initiated_id=initiated_id,
    )
    started_id = engine.append_event(ctx, execution, "ChildWorkflowExecutionStarted", {
        "workflowExecution": child.ref(), "workflowType": workflow_type, "initiatedEventId": initiated_id,
    }, wakes_decider=True)
    ctx.execute(
        "INSERT INTO children (run_id, initiated_id, started_id, child_run_id) VALUES (?, ?, ?, ?)",
        (execution.run_id, initiated_id, started_id, child.run_id),
    )


APPLY = {
    "ScheduleActivityTask": schedule_activity,
    "RequestCancelActivityTask": request_cancel_activity,
    "RecordMarker": record_marker,
    "StartTimer": start_timer,
    "CancelTimer": cancel_timer,
    "SignalExternalWorkflowExecution": signal_external,
    "RequestCancelExternalWorkflowExecution": request_cancel_external,
    "StartChildWorkflowExecution": start_child,
    "ScheduleLambdaFunction": schedule_lambda,
}

OPERATIONS = {"RespondDecisionTaskCompleted": respond_decision_task_completed}
