"""Input checks with SWF's limits. Pure functions: each returns the clean value or raises ValidationException."""

from __future__ import annotations

import re
from typing import Any

from localswf.errors import ValidationException

MAX_DATA = 32768  # input, result, details, control, executionContext
MAX_NAME = 256  # ids, names, reason, identity, task lists
MAX_VERSION = 64
MAX_DESCRIPTION = 1024
MAX_TAGS = 5
MAX_PAGE_SIZE = 1000
MAX_RETENTION_DAYS = 90
MAX_TIMEOUT_SECONDS = 31536000  # one year, SWF's largest duration
MAX_TOKEN = 1024
# SWF rejects names that contain ':', '/', '|', control characters or equal "arn".
_FORBIDDEN = re.compile(r"[:/|\u0000-\u001f\u007f-\u009f]")
CHILD_POLICIES = ("TERMINATE", "REQUEST_CANCEL", "ABANDON")
REGISTRATION_STATUSES = ("REGISTERED", "DEPRECATED")
CLOSE_STATUSES = ("COMPLETED", "FAILED", "CANCELED", "TERMINATED", "CONTINUED_AS_NEW", "TIMED_OUT")


def require(params: dict[str, Any], key: str) -> Any:
    """Return params[key] or raise ValidationException naming the missing member."""
    value = params.get(key)
    if value is None:
        raise ValidationException(f"1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null")
    return value


def text(value: Any, field: str, max_len: int, *, min_len: int = 0, optional: bool = True) -> str | None:
    """Check a string field's type and length."""
    if value is None:
        if optional:
            return None
        raise ValidationException(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    if not isinstance(value, str):
        raise ValidationException(f"Value {value!r} at '{field}' failed to satisfy constraint: Member must be a string")
    if len(value) > max_len:
        raise ValidationException(
            f"1 validation error detected: Value at '{field}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {max_len} (got {len(value)} characters)"
        )
    if len(value) < min_len:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {min_len}"
        )
    return value


def data(value: Any, field: str) -> str | None:
    """Check a free-form data field (input, result, details, control, executionContext)."""
    return text(value, field, MAX_DATA)


def name(value: Any, field: str, *, optional: bool = False, max_len: int = MAX_NAME) -> str | None:
    """Check an identifier: 1 to 256 characters, none of ':', '/', '|' or control characters, not "arn"."""
    checked = text(value, field, max_len, min_len=1, optional=optional)
    if checked is None:
        return None
    if _FORBIDDEN.search(checked) or checked == "arn":
        raise ValidationException(
            f"Invalid {field} {checked!r}: it must not contain ':', '/', '|' or control characters, and must not be \"arn\""
        )
    return checked


def version(value: Any, field: str) -> str:
    checked = name(value, field, max_len=MAX_VERSION)
    assert checked is not None
    return checked


def timeout(value: Any, field: str, *, allow_none: bool = True, optional: bool = True) -> str | None:
    """Check a duration as SWF parses it: a string of whole seconds >= 0, or "NONE" where unlimited is allowed."""
    if value is None:
        if optional:
            return None
        raise ValidationException(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    if not isinstance(value, str):
        raise ValidationException(f"Invalid {field} {value!r}: durations are strings of seconds")
    if value == "NONE":
        if allow_none:
            return value
        raise ValidationException(f"Invalid {field} 'NONE': this duration must be a number of seconds")
    if not value.isdigit() or len(value) > 8:
        raise ValidationException(
            f"Invalid {field} {value!r}: use a whole number of seconds between 0 and {MAX_TIMEOUT_SECONDS}"
            + (' or "NONE"' if allow_none else "")
        )
    if int(value) > MAX_TIMEOUT_SECONDS:
        raise ValidationException(f"Invalid {field} {value!r}: the maximum is {MAX_TIMEOUT_SECONDS} seconds")
    return value


def timeout_seconds(value: str | None) -> float | None:
    """Convert a checked duration to seconds; None for "NONE" or absent."""
    if value is None or value == "NONE":
        return None
    return float(int(value))


def task_list(value: Any, field: str, *, optional: bool = True) -> str | None:
    """Check a TaskList structure and return its name."""
    if value is None:
        if optional:
            return None
        raise ValidationException(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    if not isinstance(value, dict):
        raise ValidationException(f"Invalid {field} {value!r}: expected {{\"name\": ...}}")
    return name(value.get("name"), f"{field}.name")


def priority(value: Any, field: str) -> str | None:
    """Check a task priority: a string holding a 32-bit signed integer."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationException(f"Invalid {field} {value!r}: use an integer between -2147483648 and 2147483647") from None
    if not -(2**31) <= number < 2**31:
        raise ValidationException(f"Invalid {field} {value!r}: use an integer between -2147483648 and 2147483647")
    return str(number)


def child_policy(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if value not in CHILD_POLICIES:
        raise ValidationException(f"Invalid {field} {value!r}: use one of {', '.join(CHILD_POLICIES)}")
    return value


def retention_days(value: Any) -> str:
    """Check workflowExecutionRetentionPeriodInDays: a string of 0 to 90 days."""
    field = "workflowExecutionRetentionPeriodInDays"
    if not isinstance(value, str) or not value.isdigit() or int(value) > MAX_RETENTION_DAYS:
        raise ValidationException(f"Invalid {field} {value!r}: use a string holding a number of days from 0 to {MAX_RETENTION_DAYS}")
    return str(int(value))


def page_size(value: Any) -> int:
    """Check maximumPageSize: 0 or absent means the maximum, 1000."""
    if value is None or value == 0:
        return MAX_PAGE_SIZE
    if not isinstance(value, int) or not 0 <= value <= MAX_PAGE_SIZE:
        raise ValidationException(f"Invalid maximumPageSize {value!r}: use an integer from 1 to {MAX_PAGE_SIZE}")
    return value


def tag_list(value: Any, field: str = "tagList") -> list[str]:
    """Check an execution tag list: at most 5 tags of up to 256 characters."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ValidationException(f"Invalid {field}: use a list of at most {MAX_TAGS} strings")
    return [text(tag, f"{field} member", MAX_NAME, optional=False) for tag in value]  # type: ignore[misc]


def registration_status(value: Any) -> str:
    if value not in REGISTRATION_STATUSES:
        raise ValidationException(f"Invalid registrationStatus {value!r}: use REGISTERED or DEPRECATED")
    return value


def type_ref(value: Any, field: str) -> tuple[str, str]:
    """Check a WorkflowType or ActivityType structure and return (name, version)."""
    if not isinstance(value, dict):
        raise ValidationException(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")
    type_name = name(value.get("name"), f"{field}.name")
    type_version = version(value.get("version"), f"{field}.version")
    assert type_name is not None
    return type_name, type_version
