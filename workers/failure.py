"""Failure reasons and details that always fit SWF's size limits.

SWF rejects a RespondActivityTaskFailed or FailWorkflowExecution whose reason is over 256
characters or whose details are over 32,768 characters with a ValidationException. The
task then times out instead of failing, so every failure goes through ``failure_payload``.
"""

from __future__ import annotations

import json
from typing import Any

MAX_REASON_CHARS = 256
MAX_DETAILS_CHARS = 32768
# RecordActivityTaskHeartbeat accepts at most 2,048 characters of details.
MAX_HEARTBEAT_DETAILS_CHARS = 2048
# Activity ids, timer ids and identities are limited to 256 characters.
MAX_ID_CHARS = 256

_ELLIPSIS = "..."


def cut_text(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with "..."."""
    if len(text) <= limit:
        return text
    if limit <= len(_ELLIPSIS):
        return text[:limit]
    return text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def cut_reason(reason: str) -> str:
    """Return a reason of at most 256 characters on one line."""
    return cut_text(" ".join(str(reason).split()), MAX_REASON_CHARS)


def encode_details(details: dict[str, Any], limit: int = MAX_DETAILS_CHARS) -> str:
    """Encode ``details`` as JSON of at most ``limit`` characters that still parses.

    Long string values are shortened, the longest first, until the document fits. When
    even that is not enough (a huge nested value), only "retry", "error" and a shortened
    "message" are kept, and "truncated" is set.
    """
    if limit < 512:
        raise ValueError(f"details limit {limit} is too small: use at least 512 characters")
    text = json.dumps(details, default=str)
    if len(text) <= limit:
        return text

    shortened = dict(details)
    for _ in range(len(shortened)):
        text = json.dumps(shortened, default=str)
        excess = len(text) - limit
        if excess <= 0:
            return text
        longest_key = max(shortened, key=lambda key: len(json.dumps(shortened[key], default=str)))
        value = shortened[longest_key]
        if not isinstance(value, str):
            value = json.dumps(value, default=str)
        # json.dumps may escape characters, so cut twice the excess to be sure of progress.
        shortened[longest_key] = cut_text(value, max(0, len(value) - 2 * excess - 16))
        shortened["truncated"] = True

    text = json.dumps(shortened, default=str)
    if len(text) <= limit:
        return text
    minimal = {
        "retry": bool(details.get("retry", True)),
        "error": cut_text(str(details.get("error", "")), 128),
        "message": cut_text(str(details.get("message", "")), max(0, limit // 4)),
        "truncated": True,
    }
    # With a limit of 512 characters or more, this minimal object always fits.
    return json.dumps(minimal)


def failure_payload(retry: bool, error: str, message: str, **extra: Any) -> tuple[str, str]:
    """Return (reason, details) for a failure, both within SWF's limits.

    The reason is "<error>: <message>" on one line. The details are the JSON object
    {"retry": ..., "error": ..., "message": ..., **extra}.
    """
    reason = cut_reason(f"{error}: {message}" if message else error)
    details = encode_details({"retry": bool(retry), "error": error, "message": message, **extra})
    return reason, details


def parse_failure_details(details: str | None) -> dict[str, Any]:
    """Parse the details of a failure, treating anything but a JSON object as retryable.

    A worker of this project always sends a JSON object with "retry". Missing or invalid
    details come from other workers or from a crash, and a retry may well fix those.
    """
    if not details:
        return {"retry": True, "error": "Unknown", "message": "the failure has no details"}
    try:
        parsed = json.loads(details)
    except ValueError:
        return {"retry": True, "error": "Unknown", "message": details}
    if not isinstance(parsed, dict):
        return {"retry": True, "error": "Unknown", "message": details}
    parsed.setdefault("error", "Unknown")
    parsed.setdefault("message", "")
    parsed["retry"] = bool(parsed.get("retry", True))
    return parsed
