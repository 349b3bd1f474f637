"""The retry policy of one pipeline step, as pure functions of the step's attempts so far.

Failures and timeouts keep separate budgets. A failure with "retry": true spends one of
``max_failures`` retries. A timeout moves to the next, longer START_TO_CLOSE slot of
``timeouts``, and the step fails for good when no slot is left. A failure with
"retry": false fails the step at once. A task handed back by a worker that was shutting
down spends neither budget and is scheduled again at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workers.config import ActivityTypeConfig, RetryPolicy

OutcomeKind = Literal["failed", "timed_out", "handed_back"]


@dataclass(frozen=True)
class Budget:
    """How much of each budget a step has spent."""

    failures: int = 0
    timeouts: int = 0


@dataclass(frozen=True)
class RetryDecision:
    """The decision after an attempt that did not complete.

    ``retry`` False means the step failed for good, and ``reason`` gives the cause. Otherwise
    the next attempt starts after ``delay`` seconds with ``start_to_close_timeout``.
    """

    retry: bool
    budget: Budget
    delay: int = 0
    start_to_close_timeout: int = 0
    reason: str = ""


def start_to_close_timeout(activity_type: ActivityTypeConfig, budget: Budget) -> int | None:
    """Return the START_TO_CLOSE timeout of the next attempt, or None when no slot is left.

    With no slots configured, every attempt uses the type's own start_to_close_timeout
    and a timeout fails the step.
    """
    slots = activity_type.retry.timeouts
    if not slots:
        return activity_type.start_to_close_timeout if budget.timeouts == 0 else None
    if budget.timeouts >= len(slots):
        return None
    return slots[budget.timeouts]


def backoff_seconds(policy: RetryPolicy, retry_number: int) -> int:
    """Return the delay before retry number ``retry_number`` (1 for the first retry).

    The delay starts at ``backoff_seconds`` and doubles with each retry, up to
    ``max_backoff_seconds``. The decider is replayed on every decision task, so the delay
    has no random jitter: the same history must give the same decisions.
    """
    if policy.backoff_seconds <= 0 or retry_number <= 0:
        return 0
    delay = policy.backoff_seconds * 2 ** (retry_number - 1)
    return int(min(delay, max(policy.max_backoff_seconds, policy.backoff_seconds)))


def decide_retry(
    activity_type: ActivityTypeConfig,
    budget: Budget,
    kind: OutcomeKind,
    retryable: bool = True,
    error: str = "",
    timeout_type: str = "",
) -> RetryDecision:
    """Decide whether the step of ``activity_type`` runs again after an attempt ended with ``kind``.

    ``budget`` is what the step had spent before this attempt ended. ``retryable`` is the
    "retry" flag of a failure, and ``error`` its error type, used in the reason.
    """
    policy = activity_type.retry
    name = activity_type.name

    if kind == "handed_back":
        timeout = start_to_close_timeout(activity_type, budget)
        if timeout is None:
            return RetryDecision(False, budget, reason=f"{name} has no START_TO_CLOSE timeout slot left")
        return RetryDecision(True, budget, delay=0, start_to_close_timeout=timeout)

    if kind == "failed":
        if not retryable:
            return RetryDecision(False, budget, reason=f"{name} failed with a permanent error {error}")
        spent = Budget(budget.failures + 1, budget.timeouts)
        if spent.failures > policy.max_failures:
            return RetryDecision(
                False,
                spent,
                reason=f"{name} failed {spent.failures} times, max_failures is {policy.max_failures}: {error}",
            )
    else:
        # NOTE: every timeout type spends a slot, SCHEDULE_TO_START included, although a
        # longer START_TO_CLOSE slot does not help a task that no worker picked up.
        spent = Budget(budget.failures, budget.timeouts + 1)

    timeout = start_to_close_timeout(activity_type, spent)
    if timeout is None:
        slots = len(policy.timeouts) or 1
        return RetryDecision(
            False,
            spent,
            reason=f"{name} timed out ({timeout_type or 'timeout'}) {spent.timeouts} times and has no timeout slot left of {slots}",
        )
    delay = backoff_seconds(policy, spent.failures + spent.timeouts)
    return RetryDecision(True, spent, delay=delay, start_to_close_timeout=timeout)
