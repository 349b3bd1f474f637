"""Decider stories: build a history event by event and check each decision.

Each test plays the part of SWF and the workers with ``HistoryBuilder`` and calls the
pure decider for the next decisions, as a decider process does on each decision task.
"""

from __future__ import annotations

import json

import pytest

from workers.config import ActivityTypeConfig, RetryPolicy, WorkflowTypeConfig
from workers.decider import closing_summary, decide
from workers.history import HistoryBuilder
from workers.replay import CARRIED_KEY

WORKFLOW_INPUT = {"media_uuid": "m-1", "user_uuid": None, "video_url": "/videos/a.mp4"}

PIPELINE = WorkflowTypeConfig(name="VideoProcessing", version="1", task_list="decisions", steps=("FaceDetect", "FaceRecognize"))
DETECT = ActivityTypeConfig(
    name="FaceDetect",
    version="1",
    task_list="video",
    heartbeat_timeout=60,
    retry=RetryPolicy(max_failures=2, timeouts=(300, 900), backoff_seconds=0),
)
RECOGNIZE = ActivityTypeConfig(
    name="FaceRecognize",
    version="1",
    task_list="video",
    retry=RetryPolicy(max_failures=1, timeouts=(600, 3600, 14400), backoff_seconds=10, max_backoff_seconds=15),
)
TYPES = (DETECT, RECOGNIZE)


def only(decisions: list[dict]) -> dict:
    assert len(decisions) == 1, decisions
    return decisions[0]


def scheduled(decision: dict) -> dict:
    assert decision["decisionType"] == "ScheduleActivityTask", decision
    return decision["scheduleActivityTaskDecisionAttributes"]


def next_decisions(history: HistoryBuilder, workflow: WorkflowTypeConfig = PIPELINE, types=TYPES) -> list[dict]:
    return decide(history.events, workflow, types)


def step(history: HistoryBuilder, **kwargs) -> list[dict]:
    """Decide, record the decisions in the history, and return them."""
    decisions = next_decisions(history, **kwargs)
    history.apply_decisions(decisions)
    return decisions


def test_first_decision_schedules_first_step():
    history = HistoryBuilder(WORKFLOW_INPUT)

    attrs = scheduled(only(next_decisions(history)))

    assert attrs["activityType"] == {"name": "FaceDetect", "version": "1"}
    assert attrs["activityId"] == "FaceDetect-1"
    assert attrs["taskList"] == {"name": "video"}
    assert attrs["startToCloseTimeout"] == "300"
    assert attrs["heartbeatTimeout"] == "60"
    assert json.loads(attrs["input"]) == {"workflow": WORKFLOW_INPUT, "previous": None}


def test_pipeline_passes_previous_result_and_completes():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {"faces": 12})

    attrs = scheduled(only(step(history)))
    assert attrs["activityId"] == "FaceRecognize-1"
    assert json.loads(attrs["input"]) == {"workflow": WORKFLOW_INPUT, "previous": {"faces": 12}}

    history.activity_completed("FaceRecognize-1", {"people": 3})
    decision = only(next_decisions(history))

    assert decision["decisionType"] == "CompleteWorkflowExecution"
    result = json.loads(decision["completeWorkflowExecutionDecisionAttributes"]["result"])
    assert [s["activity"] for s in result["steps"]] == ["FaceDetect", "FaceRecognize"]
    assert [s["result"] for s in result["steps"]] == [{"faces": 12}, {"people": 3}]
    assert closing_summary([decision])["status"] == "completed"


def test_nothing_to_decide_while_activity_runs():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_started("FaceDetect-1")
    history.signaled("progress")

    assert next_decisions(history) == []


def test_retryable_failure_retries_with_new_id():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_failed("FaceDetect-1", retry=True, error="OSError", message="disk busy")

    attrs = scheduled(only(step(history)))

    assert attrs["activityId"] == "FaceDetect-2"
    assert attrs["startToCloseTimeout"] == "300"  # a failure spends no timeout slot


def test_failures_beyond_max_failures_fail_workflow():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    for attempt in (1, 2):
        history.activity_failed(f"FaceDetect-{attempt}", retry=True, error="OSError", message=f"try {attempt}")
        assert scheduled(only(step(history)))["activityId"] == f"FaceDetect-{attempt + 1}"
    history.activity_failed("FaceDetect-3", retry=True, error="OSError", message="disk gone")

    decision = only(next_decisions(history))

    assert decision["decisionType"] == "FailWorkflowExecution"
    attrs = decision["failWorkflowExecutionDecisionAttributes"]
    assert "FaceDetect failed 3 times" in attrs["reason"]
    assert "disk gone" in attrs["reason"]
    details = json.loads(attrs["details"])
    assert details["retry"] is False
    assert details["activity_id"] == "FaceDetect-3"
    assert details["error"] == "OSError"


def test_permanent_failure_fails_workflow_at_once():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_failed("FaceDetect-1", retry=False, error="PermanentError", message="no video stream in file")

    attrs = only(next_decisions(history))["failWorkflowExecutionDecisionAttributes"]

    assert attrs["reason"].startswith("FaceDetect failed with a permanent error PermanentError")
    assert "no video stream in file" in attrs["reason"]


def test_timeouts_move_to_longer_slots_then_fail():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_timed_out("FaceDetect-1", "START_TO_CLOSE")

    attrs = scheduled(only(step(history)))
    assert attrs["activityId"] == "FaceDetect-2"
    assert attrs["startToCloseTimeout"] == "900"

    history.activity_timed_out("FaceDetect-2", "HEARTBEAT")
    decision = only(next_decisions(history))

    assert decision["decisionType"] == "FailWorkflowExecution"
    assert "no timeout slot left" in decision["failWorkflowExecutionDecisionAttributes"]["reason"]


def test_failure_and_timeout_budgets_are_separate():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_timed_out("FaceDetect-1")
    step(history)
    history.activity_failed("FaceDetect-2", retry=True)
    attrs = scheduled(only(step(history)))
    # The failure kept the second slot that the timeout had moved to.
    assert attrs["startToCloseTimeout"] == "900"
    history.activity_failed("FaceDetect-3", retry=True)

    attrs = scheduled(only(step(history)))

    assert attrs["activityId"] == "FaceDetect-4"
    assert attrs["startToCloseTimeout"] == "900"


def test_handed_back_task_spends_no_budget():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    for attempt in range(1, 6):
        history.activity_failed(f"FaceDetect-{attempt}", retry=True, error="HandedBack", message="worker stopping")
        assert scheduled(only(step(history)))["activityId"] == f"FaceDetect-{attempt + 1}"
    history.activity_failed("FaceDetect-6", retry=True, error="OSError")

    # max_failures is 2, and five hand-backs spent none of it.
    assert scheduled(only(next_decisions(history)))["activityId"] == "FaceDetect-7"


def test_backoff_waits_on_timer_before_retry():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {"faces": 1})
    step(history)
    history.activity_failed("FaceRecognize-1", retry=True, error="MemoryError")

    timer = only(step(history))
    assert timer["decisionType"] == "StartTimer"
    assert timer["startTimerDecisionAttributes"]["startToFireTimeout"] == "10"
    assert next_decisions(history) == []

    history.timer_fired(timer["startTimerDecisionAttributes"]["timerId"])
    attrs = scheduled(only(next_decisions(history)))

    assert attrs["activityId"] == "FaceRecognize-2"
    assert json.loads(attrs["input"])["previous"] == {"faces": 1}


def test_backoff_doubles_up_to_cap():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {})
    step(history)
    history.activity_timed_out("FaceRecognize-1")
    first = only(step(history))["startTimerDecisionAttributes"]
    history.timer_fired(first["timerId"])
    attrs = scheduled(only(step(history)))
    assert attrs["startToCloseTimeout"] == "3600"
    history.activity_timed_out("FaceRecognize-2")

    second = only(next_decisions(history))["startTimerDecisionAttributes"]

    assert first["startToFireTimeout"] == "10"
    assert second["startToFireTimeout"] == "15"  # 20 capped at max_backoff_seconds
    assert second["timerId"] != first["timerId"]


def test_start_timer_failed_schedules_without_delay():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {})
    step(history)
    history.activity_failed("FaceRecognize-1", retry=True)
    timer = only(step(history))
    history.start_timer_failed(timer["startTimerDecisionAttributes"]["timerId"], "TIMER_CREATION_RATE_EXCEEDED")

    assert scheduled(only(next_decisions(history)))["activityId"] == "FaceRecognize-2"


@pytest.mark.parametrize("cause", ["ACTIVITY_CREATION_RATE_EXCEEDED", "OPEN_ACTIVITIES_LIMIT_EXCEEDED"])
def test_schedule_rate_limit_backs_off_with_timer(cause):
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.schedule_failed("FaceDetect-1", "FaceDetect", cause)

    timer = only(step(history))
    assert timer["decisionType"] == "StartTimer"
    assert timer["startTimerDecisionAttributes"]["startToFireTimeout"] == "5"
    history.timer_fired(timer["startTimerDecisionAttributes"]["timerId"])
    attrs = scheduled(only(step(history)))
    assert attrs["activityId"] == "FaceDetect-2"
    history.schedule_failed("FaceDetect-2", "FaceDetect", cause)

    # The limit was hit again before any activity got scheduled, so the delay doubles.
    timer = only(step(history))
    assert timer["startTimerDecisionAttributes"]["startToFireTimeout"] == "10"
    history.timer_fired(timer["startTimerDecisionAttributes"]["timerId"])
    attrs = scheduled(only(next_decisions(history)))
    assert attrs["activityId"] == "FaceDetect-3"


@pytest.mark.parametrize(
    ("cause", "words"),
    [("ACTIVITY_TYPE_DOES_NOT_EXIST", "is not registered"), ("ACTIVITY_TYPE_DEPRECATED", "is deprecated")],
)
def test_missing_or_deprecated_type_fails_naming_it(cause, words):
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.schedule_failed("FaceDetect-1", "FaceDetect", cause)

    attrs = only(next_decisions(history))["failWorkflowExecutionDecisionAttributes"]

    assert "activity type FaceDetect version 1" in attrs["reason"]
    assert words in attrs["reason"]
    assert json.loads(attrs["details"])["error"] == cause


@pytest.mark.parametrize(
    "cause",
    [
        "DEFAULT_TASK_LIST_UNDEFINED",
        "DEFAULT_SCHEDULE_TO_START_TIMEOUT_UNDEFINED",
        "DEFAULT_SCHEDULE_TO_CLOSE_TIMEOUT_UNDEFINED",
        "DEFAULT_START_TO_CLOSE_TIMEOUT_UNDEFINED",
        "DEFAULT_HEARTBEAT_TIMEOUT_UNDEFINED",
        "OPERATION_NOT_PERMITTED",
    ],
)
def test_other_schedule_failures_fail_naming_cause(cause):
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.schedule_failed("FaceDetect-1", "FaceDetect", cause)

    attrs = only(next_decisions(history))["failWorkflowExecutionDecisionAttributes"]

    assert attrs["reason"] == f"scheduling activity type FaceDetect version 1 failed with {cause}"
    assert json.loads(attrs["details"])["activity_id"] == "FaceDetect-1"


def test_activity_id_in_use_no_loop():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.schedule_failed("FaceDetect-1", "FaceDetect", "ACTIVITY_ID_ALREADY_IN_USE")

    attrs = scheduled(only(step(history)))
    assert attrs["activityId"] == "FaceDetect-2"
    history.schedule_failed("FaceDetect-2", "FaceDetect", "ACTIVITY_ID_ALREADY_IN_USE")
    assert scheduled(only(step(history)))["activityId"] == "FaceDetect-3"
    history.schedule_failed("FaceDetect-3", "FaceDetect", "ACTIVITY_ID_ALREADY_IN_USE")

    decision = only(next_decisions(history))

    assert decision["decisionType"] == "FailWorkflowExecution"
    assert "already in use 3 times" in decision["failWorkflowExecutionDecisionAttributes"]["reason"]


def test_cancel_request_cancels_activity_then_workflow():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_started("FaceDetect-1")
    history.cancel_requested()

    request = only(step(history))
    assert request["decisionType"] == "RequestCancelActivityTask"
    assert request["requestCancelActivityTaskDecisionAttributes"]["activityId"] == "FaceDetect-1"
    history.decision_started()
    assert next_decisions(history) == []  # the cancel request is out; wait for the worker

    history.activity_canceled("FaceDetect-1")
    decision = only(next_decisions(history))

    assert decision["decisionType"] == "CancelWorkflowExecution"
    assert closing_summary([decision])["status"] == "canceled"


def test_cancel_request_with_unknown_activity_cancels_workflow():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.cancel_requested()
    step(history)
    history.request_cancel_failed("FaceDetect-1")

    assert only(next_decisions(history))["decisionType"] == "CancelWorkflowExecution"


def test_cancel_request_during_backoff_cancels_timer_and_workflow():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {})
    step(history)
    history.activity_failed("FaceRecognize-1", retry=True)
    timer_id = only(step(history))["startTimerDecisionAttributes"]["timerId"]
    history.cancel_requested()

    decisions = next_decisions(history)

    assert [d["decisionType"] for d in decisions] == ["CancelTimer", "CancelWorkflowExecution"]
    assert decisions[0]["cancelTimerDecisionAttributes"]["timerId"] == timer_id


def test_signal_during_completion_completes_again():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {"faces": 2})
    step(history)
    history.activity_completed("FaceRecognize-1", {"people": 1})
    step(history)
    # The signal arrived while the decision task ran, so SWF rejected the completion.
    history.close_failed("CompleteWorkflowExecution", "UNHANDLED_DECISION")
    history.signaled("note", {"text": "late"})

    decision = only(next_decisions(history))

    assert decision["decisionType"] == "CompleteWorkflowExecution"
    result = json.loads(decision["completeWorkflowExecutionDecisionAttributes"]["result"])
    assert result["signals"] == ["note"]
    assert [s["result"] for s in result["steps"]] == [{"faces": 2}, {"people": 1}]


def test_decider_timed_out_next_decider_continues():
    history = HistoryBuilder(WORKFLOW_INPUT)
    history.decision_timed_out()
    history.decision_started()

    assert scheduled(only(next_decisions(history)))["activityId"] == "FaceDetect-1"


def test_invalid_workflow_input_fails_clearly():
    history = HistoryBuilder(raw_input="{not json")

    attrs = only(next_decisions(history))["failWorkflowExecutionDecisionAttributes"]

    assert attrs["reason"].startswith("workflow input is not valid JSON")
    assert len(attrs["reason"]) <= 256


def test_unconfigured_step_type_fails_naming_it():
    workflow = WorkflowTypeConfig(name="Odd", version="1", task_list="decisions", steps=("FaceDetect", "Missing"))
    history = HistoryBuilder(WORKFLOW_INPUT, workflow_type="Odd")
    step(history, workflow=workflow)
    history.activity_completed("FaceDetect-1", {})

    attrs = only(next_decisions(history, workflow=workflow))["failWorkflowExecutionDecisionAttributes"]

    assert "Missing" in attrs["reason"]
    assert "not configured" in attrs["reason"]


def test_long_reason_and_details_fit_limits():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_failed("FaceDetect-1", retry=False, error="PermanentError", message="x" * 100_000)

    attrs = only(next_decisions(history))["failWorkflowExecutionDecisionAttributes"]

    assert len(attrs["reason"]) <= 256
    assert len(attrs["details"]) <= 32768
    assert json.loads(attrs["details"])["retry"] is False


def test_summary_omits_large_results():
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history)
    history.activity_completed("FaceDetect-1", {"blob": "a" * 16000})
    step(history)
    history.activity_completed("FaceRecognize-1", {"blob": "b" * 20000})

    result = only(next_decisions(history))["completeWorkflowExecutionDecisionAttributes"]["result"]

    assert len(result) <= 32768
    steps = json.loads(result)["steps"]
    assert steps[1]["omitted_chars"] > 20000
    assert steps[0]["result"] == {"blob": "a" * 16000}


def test_continue_as_new_before_event_limit_and_resume():
    workflow = WorkflowTypeConfig(
        name="VideoProcessing", version="1", task_list="decisions", steps=PIPELINE.steps, continue_as_new_after_events=40
    )
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history, workflow=workflow)
    history.activity_failed("FaceDetect-1", retry=True, error="OSError")
    step(history, workflow=workflow)
    history.activity_completed("FaceDetect-2", {"faces": 5})
    signals_sent = 0
    while history.last_event_id < 40:
        history.signaled("ping", {"n": history.last_event_id})
        signals_sent += 1

    decision = only(next_decisions(history, workflow=workflow))

    assert decision["decisionType"] == "ContinueAsNewWorkflowExecution"
    attrs = decision["continueAsNewWorkflowExecutionDecisionAttributes"]
    assert len(attrs["input"]) < 32768
    assert attrs["taskList"] == {"name": "decisions"}
    carried_input = json.loads(attrs["input"])
    assert carried_input["workflow"] == WORKFLOW_INPUT
    assert carried_input[CARRIED_KEY]["step"] == 1

    # The new run picks up at the second step with the first step's result.
    new_run = HistoryBuilder(raw_input=attrs["input"], continued_execution_run_id="run-1")
    attrs = scheduled(only(step(new_run, workflow=workflow)))
    assert attrs["activityId"] == "FaceRecognize-1"
    assert json.loads(attrs["input"]) == {"workflow": WORKFLOW_INPUT, "previous": {"faces": 5}}
    new_run.activity_completed("FaceRecognize-1", {"people": 2})
    result = json.loads(only(next_decisions(new_run, workflow=workflow))["completeWorkflowExecutionDecisionAttributes"]["result"])
    assert [s["activity_id"] for s in result["steps"]] == ["FaceDetect-2", "FaceRecognize-1"]
    assert result["continued_runs"] == 1
    assert result["signal_count"] == signals_sent


def test_continue_as_new_waits_for_open_activity():
    workflow = WorkflowTypeConfig(
        name="VideoProcessing", version="1", task_list="decisions", steps=PIPELINE.steps, continue_as_new_after_events=10
    )
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history, workflow=workflow)
    while history.last_event_id < 12:
        history.signaled("ping")

    assert next_decisions(history, workflow=workflow) == []


def test_continue_as_new_keeps_carried_state_small():
    workflow = WorkflowTypeConfig(
        name="VideoProcessing", version="1", task_list="decisions", steps=("FaceDetect", "FaceDetect", "FaceRecognize"),
        continue_as_new_after_events=30,
    )
    history = HistoryBuilder(WORKFLOW_INPUT)
    step(history, workflow=workflow)
    history.activity_completed("FaceDetect-1", {"blob": "a" * 16000})
    step(history, workflow=workflow)
    history.activity_completed("FaceDetect-2", {"blob": "b" * 16000})
    for _ in range(20):
        history.signaled("big", {"text": "s" * 1000})

    attrs = only(next_decisions(history, workflow=workflow))["continueAsNewWorkflowExecutionDecisionAttributes"]

    assert len(attrs["input"]) < 32768
    carried = json.loads(attrs["input"])[CARRIED_KEY]
    assert carried["step"] == 2
    assert len(carried["results"]) == 2


def test_activity_id_cut_to_256_characters():
    long_name = "A" * 256
    long_type = ActivityTypeConfig(name=long_name, version="1", task_list="video")
    workflow = WorkflowTypeConfig(name="Long", version="1", task_list="decisions", steps=(long_name,))
    history = HistoryBuilder(WORKFLOW_INPUT, workflow_type="Long")
    step(history, workflow=workflow, types=(long_type,))
    history.activity_failed("A" * 254 + "-1", retry=True)

    attrs = scheduled(only(next_decisions(history, workflow=workflow, types=(long_type,))))

    assert attrs["activityId"] == "A" * 254 + "-2"
    assert len(attrs["activityId"]) == 256
