"""The activity context, handler lookup, result references and the diagnostic handlers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.activities import HANDLERS, UnknownActivityType, resolve_handler
from workers.activity import ActivityContext, heartbeat_interval
from workers.config import ActivityTypeConfig, Config
from workers.errors import ExecutionClosed, PermanentError, TaskCancelled
from workers.results import INLINE_RESULT_CHARS, encode_result, is_result_ref, resolve_result
from workers.storage import Storage


def make_context(tmp_path: Path, activity_id: str = "Fail-1") -> ActivityContext:
    return ActivityContext(
        workflow_id="w-1",
        run_id="r-1",
        activity_id=activity_id,
        activity_type=activity_id.rsplit("-", 1)[0],
        config=Config(),
        storage_root=str(tmp_path),
    )


def test_heartbeat_records_latest_details(tmp_path):
    context = make_context(tmp_path)

    context.heartbeat({"frame": 1})
    context.heartbeat({"frame": 2})
    context.heartbeat()

    assert context.latest_details() == {"frame": 2}


def test_heartbeat_raises_after_cancel(tmp_path):
    context = make_context(tmp_path)
    context.cancelled.set()

    with pytest.raises(TaskCancelled, match="Fail-1"):
        context.heartbeat({"frame": 3})
    assert context.latest_details() == {"frame": 3}


def test_heartbeat_raises_after_close(tmp_path):
    context = make_context(tmp_path)
    context.closed.set()
    context.cancelled.set()

    # A closed execution wins over the cancel that comes with it.
    with pytest.raises(ExecutionClosed, match="workflow w-1"):
        context.heartbeat()


def test_heartbeat_interval_is_third_of_timeout():
    activity_type = ActivityTypeConfig(name="Sleep", version="1", task_list="t", heartbeat_timeout=90)

    assert heartbeat_interval(activity_type) == 30


def test_handlers_registered_lazily():
    assert HANDLERS["FaceDetect"] == "workers.activities.face_detect:handle"
    assert HANDLERS["FaceRecognize"] == "workers.activities.face_recognize:handle"
    assert resolve_handler("Noop").__name__ == "noop"


def test_unknown_handler_names_known_ones():
    with pytest.raises(UnknownActivityType, match="'Nope'.*known: .*Noop"):
        resolve_handler("Nope")


def test_small_result_stays_inline(tmp_path):
    text = encode_result({"faces": 3}, Storage(str(tmp_path)), "results/a.json")

    assert json.loads(text) == {"faces": 3}
    assert list(tmp_path.iterdir()) == []


def test_large_result_stored_and_resolved(tmp_path):
    storage = Storage(str(tmp_path))
    result = {"faces": ["x" * 100] * (INLINE_RESULT_CHARS // 100)}

    reference = json.loads(encode_result(result, storage, "results/w/r/FaceDetect-1.json"))

    assert is_result_ref(reference)
    assert reference["size"] > INLINE_RESULT_CHARS
    assert Path(reference["result_ref"]).is_file()
    assert resolve_result(reference, storage) == result
    assert resolve_result({"faces": 1}, storage) == {"faces": 1}


def test_fail_permanent_and_transient(tmp_path):
    fail = resolve_handler("Fail")

    with pytest.raises(PermanentError, match="bad input"):
        fail({"workflow": {"permanent": True, "message": "bad input"}}, make_context(tmp_path))
    with pytest.raises(RuntimeError, match="flaky"):
        fail({"workflow": {"message": "flaky"}}, make_context(tmp_path))


def test_fail_attempts_lets_later_attempt_succeed(tmp_path):
    fail = resolve_handler("Fail")
    task_input = {"workflow": {"fail_attempts": 2}}

    with pytest.raises(RuntimeError):
        fail(task_input, make_context(tmp_path, "Fail-2"))
    assert fail(task_input, make_context(tmp_path, "Fail-3")) == {"attempt": 3, "failed_attempts": 2}


def test_sleep_stops_on_cancel(tmp_path):
    context = make_context(tmp_path, "Sleep-1")
    context.cancelled.set()

    with pytest.raises(TaskCancelled):
        resolve_handler("Sleep")({"workflow": {"seconds": 600}}, context)


@pytest.mark.parametrize("seconds", [-1, "1", True, None])
def test_sleep_rejects_invalid_seconds(tmp_path, seconds):
    with pytest.raises(PermanentError, match="seconds must be a number"):
        resolve_handler("Sleep")({"workflow": {"seconds": seconds}}, make_context(tmp_path, "Sleep-1"))


def test_burn_cpu_uses_cpu_time(tmp_path):
    result = resolve_handler("BurnCpu")({"workflow": {"seconds": 0.2}}, make_context(tmp_path, "BurnCpu-1"))

    assert result["cpu_seconds"] >= 0.2
    assert result["iterations"] > 0


def test_spawn_child_waits_for_grandchild(tmp_path):
    result = resolve_handler("SpawnChild")({"workflow": {"seconds": 0}}, make_context(tmp_path, "SpawnChild-1"))

    assert result["child_exit_code"] == 0
    assert result["child_pid"] > 0


def test_noop_pads_first_step_only(tmp_path):
    noop = resolve_handler("Noop")

    first = noop({"workflow": {"pad": 10}, "previous": None}, make_context(tmp_path, "Noop-1"))
    second = noop({"workflow": {"pad": 10}, "previous": first}, make_context(tmp_path, "Noop-2"))

    assert first["pad"] == "p" * 10
    assert "pad" not in second
    assert second["previous_chars"] == len(json.dumps(first))
