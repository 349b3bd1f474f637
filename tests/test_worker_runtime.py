"""Worker runtime helpers that need no SWF endpoint: specs and recycling."""

from __future__ import annotations

import pytest

from workers.config import TaskListConfig
from workers.runtime import WorkerSpec, recycle_reason


def test_spec_rejects_unknown_role():
    with pytest.raises(ValueError, match="invalid worker role 'poller'"):
        WorkerSpec(role="poller", task_list="t", identity="i")  # type: ignore[arg-type]


def test_spec_rejects_empty_task_list():
    with pytest.raises(ValueError, match="task list is empty"):
        WorkerSpec(role="activity", task_list="", identity="i")


def test_recycle_after_max_tasks():
    limits = TaskListConfig(name="t", kind="activity", max_tasks_per_process=3)

    assert recycle_reason(limits, 2) is None
    assert recycle_reason(limits, 3) == "ran 3 tasks, max_tasks_per_process is 3"


def test_recycle_above_memory_limit():
    # This test process uses more than 1 MB of resident memory.
    assert "is above max_memory_mb 1" in recycle_reason(TaskListConfig(name="t", kind="activity", max_memory_mb=1), 1)
    assert recycle_reason(TaskListConfig(name="t", kind="activity", max_memory_mb=10**6), 1) is None


def test_no_limits_never_recycles():
    assert recycle_reason(TaskListConfig(name="t", kind="activity"), 10**6) is None
