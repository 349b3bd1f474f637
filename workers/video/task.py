"""Input checks and throttled heartbeats shared by the video activities."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from workers.errors import PermanentError

# Shortest time between two heartbeat calls that are not forced, in seconds.
HEARTBEAT_INTERVAL = 0.5

# media_uuid names the storage folder of the results, so it must be one safe path segment.
MEDIA_UUID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class WorkflowInput:
    media_uuid: str
    user_uuid: str | None
    video_url: str


def parse_workflow_input(task_input: Any) -> WorkflowInput:
    """Check the ``workflow`` part of an activity input; raise PermanentError when it is invalid."""
    if not isinstance(task_input, dict) or not isinstance(task_input.get("workflow"), dict):
        raise PermanentError(
            f"invalid activity input {str(task_input)[:200]!r}: expected an object with a 'workflow' object"
        )
    workflow = task_input["workflow"]

    media_uuid = workflow.get("media_uuid")
    if not isinstance(media_uuid, str) or not MEDIA_UUID_PATTERN.match(media_uuid):
        raise PermanentError(
            f"invalid media_uuid {media_uuid!r}: expected 1 to 128 letters, digits, '.', '_' or '-'"
        )

    user_uuid = workflow.get("user_uuid")
    if user_uuid is not None and not isinstance(user_uuid, str):
        raise PermanentError(f"invalid user_uuid {user_uuid!r}: expected a string or null")

    video_url = workflow.get("video_url")
    if not isinstance(video_url, str) or not video_url.strip():
        raise PermanentError(f"invalid video_url {video_url!r}: expected a file path or an s3:// URL")

    return WorkflowInput(media_uuid=media_uuid, user_uuid=user_uuid, video_url=video_url)


class Heartbeats:
    """Throttle for ``context.heartbeat``: at most one call per HEARTBEAT_INTERVAL unless forced.

    TaskCancelled and ExecutionClosed from ``context.heartbeat`` propagate to the handler's caller.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        self._interval = HEARTBEAT_INTERVAL
        self._last = float("-inf")
        self.sent = 0

    def beat(self, details: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        self.sent += 1
        self._context.heartbeat(details)
