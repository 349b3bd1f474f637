"""Liveness rule: progress events folded into worker activity, and the stuck limits."""

from __future__ import annotations

from manager.liveness import (
    LivenessLimits,
    Phase,
    apply_event,
    new_activity,
    next_deadline,
    stuck_reason,
)

LIMITS = LivenessLimits(poll_timeout=70.0, idle_margin=30.0, busy_grace=30.0, default_task_timeout=300.0)


def test_events_move_phase() -> None:
    activity = new_activity(0.0)
    assert activity.phase is Phase.STARTING
    activity = apply_event(activity, {"event": "poll_started", "time": 1.0, "kind": "activity"}, now=1.0)
    assert activity.phase is Phase.POLLING
    activity = apply_event(
        activity,
        {
            "event": "task_started",
            "time": 2.0,
            "workflow_id": "wf",
            "run_id": "run",
            "activity_id": "a1",
            "activity_type": "Detect",
            "start_to_close_timeout": 120,
        },
        now=2.0,
    )
    assert activity.phase is Phase.BUSY
    assert activity.task_timeout == 120.0
    assert activity.task is not None and activity.task.activity_id == "a1"
    activity = apply_event(activity, {"event": "task_finished", "time": 3.0, "outcome": "completed"}, now=3.0)
    assert activity.phase is Phase.POLLING
    assert activity.tasks_done == 1
    # The ids stay for the exit log.
    assert activity.task is not None and activity.task.workflow_id == "wf"
    activity = apply_event(activity, {"event": "stopping", "time": 4.0, "reason": "sigterm"}, now=4.0)
    assert activity.phase is Phase.STOPPING


def test_event_time_from_future_is_clamped() -> None:
    activity = apply_event(new_activity(0.0), {"event": "poll_started", "time": 99.0}, now=5.0)
    assert activity.last_progress_at == 5.0


def test_idle_worker_stuck_after_poll_timeout_and_margin() -> None:
    activity = apply_event(new_activity(0.0), {"event": "poll_started", "time": 10.0}, now=10.0)
    assert stuck_reason(activity, 10.0 + 100.0, LIMITS) is None
    reason = stuck_reason(activity, 10.0 + 100.5, LIMITS)
    assert reason is not None and "no progress" in reason
    assert next_deadline(activity, LIMITS) == 110.0


def test_starting_worker_has_idle_limit() -> None:
    activity = new_activity(0.0)
    assert stuck_reason(activity, 99.0, LIMITS) is None
    assert stuck_reason(activity, 101.0, LIMITS) is not None


def test_busy_worker_uses_task_timeout_despite_heartbeats() -> None:
    activity = apply_event(
        new_activity(0.0), {"event": "task_started", "time": 0.0, "start_to_close_timeout": 60}, now=0.0
    )
    for second in range(1, 200, 10):
        activity = apply_event(activity, {"event": "heartbeat", "time": float(second), "activity_id": "a"}, now=float(second))
    assert stuck_reason(activity, 89.0, LIMITS) is None
    reason = stuck_reason(activity, 91.0, LIMITS)
    assert reason is not None and "START_TO_CLOSE 60" in reason


def test_busy_worker_without_timeout_uses_list_default() -> None:
    activity = apply_event(new_activity(0.0), {"event": "task_started", "time": 0.0}, now=0.0)
    assert activity.task_timeout is None
    assert stuck_reason(activity, 329.0, LIMITS) is None
    assert stuck_reason(activity, 331.0, LIMITS) is not None
    assert next_deadline(activity, LIMITS) == 330.0


def test_stopping_worker_keeps_busy_limit() -> None:
    activity = apply_event(
        new_activity(0.0), {"event": "task_started", "time": 0.0, "start_to_close_timeout": 600}, now=0.0
    )
    activity = apply_event(activity, {"event": "stopping", "time": 1.0, "reason": "SIGTERM"}, now=1.0)
    assert activity.phase is Phase.STOPPING
    # Far beyond the idle limit of 100 s, within START_TO_CLOSE 600 s + 30 s.
    assert stuck_reason(activity, 500.0, LIMITS) is None
    assert stuck_reason(activity, 631.0, LIMITS) is not None
    activity = apply_event(activity, {"event": "task_finished", "time": 502.0, "outcome": "completed"}, now=502.0)
    assert activity.phase is Phase.STOPPING
    assert stuck_reason(activity, 601.0, LIMITS) is None
    assert stuck_reason(activity, 603.0, LIMITS) is not None
