"""Rows as objects and the JSON shapes SWF returns for them."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from localswf.errors import ValidationException

ACCOUNT_ID = "000000000000"
REGION = "us-east-1"

EXECUTION_COLUMNS = (
    "run_id", "domain", "workflow_id", "type_name", "type_version", "status", "close_status", "started",
    "closed", "tags", "config", "cancel_requested", "parent_run_id", "parent_workflow_id",
    "parent_initiated_id", "next_event_id", "latest_context", "latest_activity_ts", "dt_queued",
    "dt_run_scheduled", "dt_run_started", "dt_pending", "last_completed_started",
)
_MUTABLE = tuple(c for c in EXECUTION_COLUMNS if c not in ("run_id",))


class Execution:
    """One workflow execution row; the engine mutates it and `save` writes it back."""

    def __init__(self, row: dict[str, Any]) -> None:
        for column in EXECUTION_COLUMNS:
            setattr(self, column, row[column])
        self.config_dict: dict[str, Any] = json.loads(row["config"])
        self.tag_list: list[str] = json.loads(row["tags"])
        self.decision_batch = False  # True while RespondDecisionTaskCompleted applies decisions
        self.batch_needs_decision = False
        self.is_new = False

    # The attribute names mirror the columns so the engine reads like the schema.
    run_id: str
    domain: str
    workflow_id: str
    type_name: str
    type_version: str
    status: str
    close_status: str | None
    started: float
    closed: float | None
    cancel_requested: int
    parent_run_id: str | None
    parent_workflow_id: str | None
    parent_initiated_id: int | None
    next_event_id: int
    latest_context: str | None
    latest_activity_ts: float | None
    dt_queued: int
    dt_run_scheduled: int
    dt_run_started: int
    dt_pending: int
    last_completed_started: int

    @property
    def is_open(self) -> bool:
        return self.status == "OPEN"

    def ref(self) -> dict[str, str]:
        return {"workflowId": self.workflow_id, "runId": self.run_id}

    def workflow_type(self) -> dict[str, str]:
        return {"name": self.type_name, "version": self.type_version}

    def values(self) -> dict[str, Any]:
        self.config = json.dumps(self.config_dict)
        self.tags = json.dumps(self.tag_list)
        return {column: getattr(self, column) for column in EXECUTION_COLUMNS}

    def save(self, cursor: Any) -> None:
        values = self.values()
        if self.is_new:
            columns = ", ".join(EXECUTION_COLUMNS)
            marks = ", ".join("?" for _ in EXECUTION_COLUMNS)
            cursor.execute(f"INSERT INTO executions ({columns}) VALUES ({marks})", [values[c] for c in EXECUTION_COLUMNS])
            self.is_new = False
            return
        assignments = ", ".join(f"{c} = ?" for c in _MUTABLE)
        cursor.execute(
            f"UPDATE executions SET {assignments} WHERE run_id = ?", [values[c] for c in _MUTABLE] + [self.run_id]
        )

    def info(self) -> dict[str, Any]:
        """Build the WorkflowExecutionInfo shape."""
        info: dict[str, Any] = {
            "execution": self.ref(),
            "workflowType": self.workflow_type(),
            "startTimestamp": self.started,
            "executionStatus": self.status,
            "cancelRequested": bool(self.cancel_requested),
        }
        if self.closed is not None:
            info["closeTimestamp"] = self.closed
        if self.close_status:
            info["closeStatus"] = self.close_status
        if self.parent_run_id:
            info["parent"] = {"workflowId": self.parent_workflow_id, "runId": self.parent_run_id}
        if self.tag_list:
            info["tagList"] = list(self.tag_list)
        return info


def execution_info_from_row(row: Any) -> dict[str, Any]:
    return Execution(dict(row)).info()


def new_run_id() -> str:
    return secrets.token_urlsafe(33)


def domain_arn(domain: str) -> str:
    return f"arn:aws:swf:{REGION}:{ACCOUNT_ID}:/domain/{domain}"


def event_dict(event_id: int, timestamp: float, event_type: str, attributes: str | dict[str, Any]) -> dict[str, Any]:
    """Build the HistoryEvent shape; the attributes key is the event type with a lower-case first letter."""
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    key = event_type[0].lower() + event_type[1:] + "EventAttributes"
    return {"eventId": event_id, "eventTimestamp": timestamp, "eventType": event_type, key: attributes}


def encode_token(*parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: Any, field: str, length: int) -> list[Any]:
    """Decode a task or page token made by `encode_token`; ValidationException if it is not one."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(str(token).encode()))
    except (ValueError, TypeError):
        parts = None
    if not isinstance(parts, list) or len(parts) != length:
        raise ValidationException(f"Invalid {field} {str(token)[:64]!r}: pass the token exactly as this endpoint returned it")
    return parts
