"""The retry policy as a pure function: separate budgets, timeout slots and backoff."""

from __future__ import annotations

from workers.config import ActivityTypeConfig, RetryPolicy
from workers.retry import Budget, backoff_seconds, decide_retry, start_to_close_timeout

RECOGNIZE = ActivityTypeConfig(
    name="FaceRecognize",
    version="1",
    task_list="video",
    retry=RetryPolicy(max_failures=2, timeouts=(600, 3600, 14400), backoff_seconds=10, max_backoff_seconds=60),
)


def test_first_attempt_uses_first_slot():
    assert start_to_close_timeout(RECOGNIZE, Budget()) == 600


def test_retryable_failure_spends_failure_budget_only():
    decision = decide_retry(RECOGNIZE, Budget(), "failed", retryable=True, error="OSError")

    assert decision.retry is True
    assert decision.budget == Budget(failures=1, timeouts=0)
    assert decision.start_to_close_timeout == 600
    assert decision.delay == 10


def test_failures_over_max_give_up_naming_error():
    decision = decide_retry(RECOGNIZE, Budget(failures=2), "failed", retryable=True, error="OSError")

    assert decision.retry is False
    assert decision.reason == "FaceRecognize failed 3 times, max_failures is 2: OSError"


def test_permanent_failure_gives_up_without_spending():
    decision = decide_retry(RECOGNIZE, Budget(), "failed", retryable=False, error="PermanentError")

    assert decision.retry is False
    assert decision.budget == Budget()
    assert "permanent error PermanentError" in decision.reason


def test_timeout_moves_to_next_slot():
    first = decide_retry(RECOGNIZE, Budget(), "timed_out", timeout_type="START_TO_CLOSE")
    second = decide_retry(RECOGNIZE, first.budget, "timed_out", timeout_type="HEARTBEAT")
    third = decide_retry(RECOGNIZE, second.budget, "timed_out", timeout_type="START_TO_CLOSE")

    assert (first.retry, first.start_to_close_timeout) == (True, 3600)
    assert (second.retry, second.start_to_close_timeout) == (True, 14400)
    assert third.retry is False
    assert "no timeout slot left of 3" in third.reason


def test_timeouts_never_spend_failures():
    decision = decide_retry(RECOGNIZE, Budget(failures=2, timeouts=0), "timed_out")

    assert decision.retry is True
    assert decision.budget == Budget(failures=2, timeouts=1)


def test_handed_back_spends_nothing():
    decision = decide_retry(RECOGNIZE, Budget(failures=2, timeouts=1), "handed_back")

    assert decision.retry is True
    assert decision.budget == Budget(failures=2, timeouts=1)
    assert decision.delay == 0
    assert decision.start_to_close_timeout == 3600


def test_backoff_doubles_and_caps():
    policy = RECOGNIZE.retry

    assert [backoff_seconds(policy, n) for n in range(0, 6)] == [0, 10, 20, 40, 60, 60]


def test_no_backoff_when_zero():
    assert backoff_seconds(RetryPolicy(backoff_seconds=0), 3) == 0


def test_no_slots_uses_type_timeout_once():
    activity_type = ActivityTypeConfig(
        name="Noop", version="1", task_list="t", start_to_close_timeout=42, retry=RetryPolicy(timeouts=())
    )

    assert start_to_close_timeout(activity_type, Budget()) == 42
    assert decide_retry(activity_type, Budget(), "timed_out").retry is False
