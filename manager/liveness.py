"""Worker activity, built from progress events, and the rule that marks a worker stuck.

A worker reports progress as JSON lines (``workers.progress``). ``apply_event`` folds one
event into a ``WorkerActivity`` and ``stuck_reason`` decides, without side effects, whether
the worker has gone silent for longer than its limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any


class Phase(enum.Enum):
    # Forked, no progress event yet.
    STARTING = "starting"
    # Waiting in a long poll, or between polls with no task.
    POLLING = "polling"
    # Working on a task.
    BUSY = "busy"
    # Sent "stopping": finishing up before it exits.
    STOPPING = "stopping"


@dataclass(frozen=True)
class TaskIds:
    """Ids of the task a worker has now or had last, for logs and status."""

    workflow_id: str | None = None
    run_id: str | None = None
    activity_id: str | None = None
    activity_type: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "activity_id": self.activity_id,
            "activity_type": self.activity_type,
        }


@dataclass(frozen=True)
class WorkerActivity:
    """Current phase and task of one worker, built from its progress events."""

    phase: Phase
    # time.monotonic() of the last progress event, or of the fork before the first one.
    last_progress_at: float
    # time.monotonic() when the current task started, None when not busy.
    task_started_at: float | None = None
    # START_TO_CLOSE of the current task in seconds, when the worker reported it.
    task_timeout: float | None = None
    task: TaskIds | None = None
    tasks_done: int = 0


def new_activity(now: float) -> WorkerActivity:
    return WorkerActivity(phase=Phase.STARTING, last_progress_at=now)


def apply_event(activity: WorkerActivity, event: dict[str, Any], now: float) -> WorkerActivity:
    """Return the activity after one progress event. Unknown events only count as progress.

    The event's own "time" is used when it is a number no later than ``now``, so a backlog
    of lines read late does not make a worker look fresher than it was.
    """
    stamp = event.get("time")
    at = float(stamp) if isinstance(stamp, (int, float)) and stamp <= now else now
    at = max(at, activity.last_progress_at)
    name = event.get("event")

    if name == "task_started":
        timeout = event.get("start_to_close_timeout")
        return replace(
            activity,
            phase=Phase.BUSY,
            last_progress_at=at,
            task_started_at=at,
            task_timeout=float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None,
            task=TaskIds(
                workflow_id=event.get("workflow_id"),
                run_id=event.get("run_id"),
                activity_id=event.get("activity_id"),
                activity_type=event.get("activity_type"),
            ),
        )
    if name == "task_finished":
        # The ids stay as the last task's, for the exit log.
        return replace(
            activity,
            phase=Phase.STOPPING if activity.phase is Phase.STOPPING else Phase.POLLING,
            last_progress_at=at,
            task_started_at=None,
            task_timeout=None,
            tasks_done=activity.tasks_done + 1,
        )
    if name == "stopping":
        # A stopping worker may still finish its task: the task fields stay for the busy limit.
        return replace(activity, phase=Phase.STOPPING, last_progress_at=at)
    if name in ("poll_started", "poll_returned") and activity.phase in (Phase.STARTING, Phase.POLLING):
        return replace(activity, phase=Phase.POLLING, last_progress_at=at)
    return replace(activity, last_progress_at=at)


@dataclass(frozen=True)
class LivenessLimits:
    """Limits of one task list, in seconds."""

    # Maximum time a single poll may block: the client's read timeout.
    poll_timeout: float
    idle_margin: float
    busy_grace: float
    # START_TO_CLOSE used when the worker did not report one for its task: the largest
    # configured for the list.
    default_task_timeout: float


def stuck_reason(activity: WorkerActivity, now: float, limits: LivenessLimits) -> str | None:
    """Return why the worker counts as stuck, or None while it is within its limit.

    A worker without a task (starting, polling, or stopping after its task) must report
    within poll timeout + margin. A worker holding a task, even one that is stopping, may run it for START_TO_CLOSE + grace, whatever it reports meanwhile,
    because SWF times the task out by then anyway.
    """
    if activity.task_started_at is not None:
        timeout = activity.task_timeout if activity.task_timeout is not None else limits.default_task_timeout
        limit = timeout + limits.busy_grace
        elapsed = now - activity.task_started_at
        if elapsed > limit:
            return f"busy for {elapsed:.1f} s, over START_TO_CLOSE {timeout:g} s + grace {limits.busy_grace:g} s"
        return None

    limit = limits.poll_timeout + limits.idle_margin
    silent = now - activity.last_progress_at
    if silent > limit:
        return (
            f"{activity.phase.value} with no progress for {silent:.1f} s, over poll timeout "
            f"{limits.poll_timeout:g} s + margin {limits.idle_margin:g} s"
        )
    return None


def next_deadline(activity: WorkerActivity, limits: LivenessLimits) -> float:
    """Return the monotonic time at which the worker becomes stuck if nothing changes."""
    if activity.task_started_at is not None:
        timeout = activity.task_timeout if activity.task_timeout is not None else limits.default_task_timeout
        return activity.task_started_at + timeout + limits.busy_grace
    return activity.last_progress_at + limits.poll_timeout + limits.idle_margin
