"""Scaling policy: one pure decision per task list at every sample interval.

Rules, with the thresholds from ``workers.config.ScalingConfig``:

- Add a worker when the backlog is larger than the number of polling workers, or every
  worker is busy, while system CPU has stayed under ``cpu_target_percent`` for the whole
  CPU window and available memory is above ``memory_floor_mb``.
- Remove an idle (polling) worker when system CPU has stayed above ``cpu_high_percent`` for
  the whole CPU window, or when the list has had no backlog and no busy worker for
  ``scale_down_delay``.
- Two steps on one list are at least ``cooldown`` apart, and a step in the opposite direction
  of the previous one waits twice as long. The CPU window restarts after each step, so a
  decision only uses samples taken with the current number of workers.

The band between the target and the high mark, the whole-window rule and the cooldowns
are the hysteresis that keeps an oscillating CPU from flapping the worker count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from workers.config import ScalingConfig

# A reversal (add after remove, or remove after add) waits this many cooldowns.
REVERSAL_COOLDOWNS = 2


@dataclass(frozen=True)
class ListSample:
    """One task list at one sample time."""

    # Live workers that are not stopping.
    processes: int
    busy: int
    # Workers waiting in a poll or between polls, without a task.
    polling: int
    # Pending tasks from CountPending*Tasks, None when unknown.
    backlog: int | None
    # CPU (percent of one core) and resident memory of the list's workers, summed. They
    # go into the logged inputs; the rules use system CPU and available memory.
    cpu_percent: float = 0.0
    memory_mb: float = 0.0


@dataclass(frozen=True)
class SystemSample:
    cpu_percent: float
    available_memory_mb: float


@dataclass(frozen=True)
class ScalingState:
    """Policy memory of one list between samples."""

    cpu_history: tuple[float, ...] = ()
    # time.monotonic() since which the list has had no backlog and no busy worker.
    idle_since: float | None = None
    last_step_at: float | None = None
    # +1 after an add, -1 after a remove, 0 before the first step.
    last_direction: int = 0


@dataclass(frozen=True)
class ScalingDecision:
    """One decision: ``delta`` is +1, -1 or 0, ``reason`` a sentence for logs and status."""

    delta: int
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)


def cpu_window(config: ScalingConfig) -> int:
    """Return how many samples the CPU must stay under the target or over the high mark."""
    return max(2, math.ceil(config.cooldown / config.sample_interval))


def decide(
    sample: ListSample,
    system: SystemSample,
    desired: int,
    min_processes: int,
    max_processes: int,
    state: ScalingState,
    now: float,
    config: ScalingConfig,
) -> tuple[ScalingDecision, ScalingState]:
    """Return the decision for one list and the state to keep for the next sample."""
    window = cpu_window(config)
    history = (*state.cpu_history, system.cpu_percent)[-window:]
    list_idle = sample.busy == 0 and not sample.backlog
    idle_since = None
    if list_idle:
        idle_since = state.idle_since if state.idle_since is not None else now
    state = replace(state, cpu_history=history, idle_since=idle_since)

    inputs: dict[str, Any] = {
        "cpu_percent": round(system.cpu_percent, 1),
        "cpu_window": [round(value, 1) for value in history],
        "available_memory_mb": round(system.available_memory_mb),
        "backlog": sample.backlog,
        "processes": sample.processes,
        "busy": sample.busy,
        "polling": sample.polling,
        "workers_cpu_percent": round(sample.cpu_percent, 1),
        "workers_memory_mb": round(sample.memory_mb),
        "desired": desired,
        "min": min_processes,
        "max": max_processes,
        "idle_for": round(now - idle_since, 1) if idle_since is not None else None,
    }

    def hold(reason: str) -> tuple[ScalingDecision, ScalingState]:
        return ScalingDecision(0, reason, inputs), state

    def step(delta: int, reason: str) -> tuple[ScalingDecision, ScalingState]:
        stepped = replace(state, cpu_history=(), last_step_at=now, last_direction=delta)
        return ScalingDecision(delta, reason, inputs), stepped

    def waiting_for_cooldown(direction: int) -> float:
        if state.last_step_at is None:
            return 0.0
        needed = config.cooldown
        if state.last_direction == -direction:
            needed *= REVERSAL_COOLDOWNS
        return max(0.0, state.last_step_at + needed - now)

    full_window = len(history) >= window
    cpu_low = full_window and max(history) < config.cpu_target_percent
    cpu_high = full_window and min(history) > config.cpu_high_percent
    demand = (sample.backlog or 0) > sample.polling or (sample.processes > 0 and sample.busy >= sample.processes)

    # Remove first: an overloaded machine matters more than a backlog.
    if desired > min_processes and sample.polling > 0:
        remove_reason = None
        if cpu_high:
            remove_reason = f"CPU stayed above {config.cpu_high_percent:g}% for {len(history)} samples"
        elif idle_since is not None and now - idle_since >= config.scale_down_delay:
            remove_reason = f"no backlog and no busy worker for {now - idle_since:.0f} s"
        if remove_reason is not None:
            wait = waiting_for_cooldown(-1)
            if wait > 0:
                return hold(f"would remove ({remove_reason}) but cooldown has {wait:.1f} s left")
            return step(-1, f"remove an idle worker: {remove_reason}")

    if not demand:
        return hold("no demand: backlog is covered by polling workers and not every worker is busy")
    if desired >= max_processes:
        return hold(f"demand, but already at the maximum of {max_processes}")
    if system.available_memory_mb <= config.memory_floor_mb:
        return hold(
            f"demand, but available memory {system.available_memory_mb:.0f} MB is at or under "
            f"the floor of {config.memory_floor_mb} MB"
        )
    if not cpu_low:
        return hold(f"demand, but CPU has not stayed under {config.cpu_target_percent:g}% for {window} samples")
    wait = waiting_for_cooldown(+1)
    if wait > 0:
        return hold(f"demand, but cooldown has {wait:.1f} s left")
    if sample.backlog and sample.backlog > sample.polling:
        cause = f"backlog {sample.backlog} is larger than the {sample.polling} polling workers"
    else:
        cause = f"all {sample.processes} workers are busy"
    return step(+1, f"add a worker: {cause}, CPU under {config.cpu_target_percent:g}%")
