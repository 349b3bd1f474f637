"""Progress reports from a worker process to the manager, as JSON lines on a pipe.

The manager uses them for liveness (a worker that stops reporting is stuck) and for
scaling (how many workers are busy and how many are polling). Writes never block: when
the pipe is full, the report is dropped and counted, because a slow manager must not
stall a worker.

Each line is one JSON object with "event", "time" (time.monotonic(), which is the same
clock in every process on Linux) and fields that depend on the event:

- ``poll_started``: ``kind`` ("decision" or "activity")
- ``poll_returned``: ``got_task`` (bool)
- ``task_started``: ``workflow_id``, ``run_id``, ``activity_id`` (None for decisions),
  ``activity_type``, ``start_to_close_timeout`` (seconds, or None)
- ``heartbeat``: ``activity_id``
- ``task_finished``: ``outcome`` ("completed", "failed", "canceled", "closed", "handed_back")
- ``stopping``: ``reason``. A worker sends it as soon as the first SIGTERM or SIGINT
  arrives ("SIGTERM received") and again when it exits.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


class ProgressReporter:
    """Writes progress events to a non-blocking pipe. With fd None it writes nothing."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self.dropped = 0
        if fd is not None:
            os.set_blocking(fd, False)

    def _send(self, event: str, **fields: Any) -> None:
        if self._fd is None:
            return
        line = json.dumps({"event": event, "time": time.monotonic(), **fields}) + "\n"
        try:
            # Lines are far below PIPE_BUF (4096 bytes), so each write is atomic.
            os.write(self._fd, line.encode())
        except BlockingIOError:
            self.dropped += 1
        except BrokenPipeError:
            # The manager is gone. The worker dies with it through PR_SET_PDEATHSIG.
            self._fd = None

    def poll_started(self, kind: str) -> None:
        self._send("poll_started", kind=kind)

    def poll_returned(self, got_task: bool) -> None:
        self._send("poll_returned", got_task=got_task)

    def task_started(
        self,
        workflow_id: str,
        run_id: str,
        activity_id: str | None = None,
        activity_type: str | None = None,
        start_to_close_timeout: float | None = None,
    ) -> None:
        self._send(
            "task_started",
            workflow_id=workflow_id,
            run_id=run_id,
            activity_id=activity_id,
            activity_type=activity_type,
            start_to_close_timeout=start_to_close_timeout,
        )

    def heartbeat(self, activity_id: str) -> None:
        self._send("heartbeat", activity_id=activity_id)

    def task_finished(self, outcome: str) -> None:
        self._send("task_finished", outcome=outcome)

    def stopping(self, reason: str) -> None:
        self._send("stopping", reason=reason)


def parse_progress_lines(buffer: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """Split complete JSON lines off ``buffer`` and return them with the unfinished rest.

    A line that is not valid JSON is skipped, because a worker killed mid-write can leave
    half a line.
    """
    *lines, rest = buffer.split(b"\n")
    events = []
    for line in lines:
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, rest
