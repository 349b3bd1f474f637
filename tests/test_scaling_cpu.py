"""Scaling end to end: CPU-bound activities on the embedded endpoint, a real manager and real workers."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manager import status, submit
from manager_harness import ManagerProcess, embedded_endpoint_config
from workers.client import make_swf_client
from workers.config_loader import load_config

LIST = "diagnostic-activities"
MAX_PROCESSES = 4
CPU_TARGET = 80.0
WORKFLOWS = 8
# CPU seconds that each BurnCpu task spins.
TASK_SECONDS = 2.0
SCALE_DOWN_BOUND = 60.0


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ManagerProcess]:
    process = ManagerProcess(
        tmp_path,
        embedded_endpoint_config(
            tmp_path / "storage",
            "[scaling]\n"
            "sample_interval = 0.5\n"
            "cooldown = 1.0\n"
            "scale_down_delay = 2.0\n"
            f"cpu_target_percent = {CPU_TARGET}\n"
            "cpu_high_percent = 95.0\n"
            "[[task_lists]]\n"
            f'name = "{LIST}"\n'
            'kind = "activity"\n'
            "min_processes = 1\n"
            f"max_processes = {MAX_PROCESSES}\n",
        ),
    )
    try:
        process.start()
        yield process
        assert process.stop() == 0, process.log_tail()
    finally:
        process.kill_everything()


def scaling_steps(log_path: Path) -> list[dict[str, Any]]:
    steps = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if str(record.get("message", "")).startswith("scaling step") and record.get("task_list") == LIST:
            steps.append(record)
    return steps


def wait_for_processes(manager: ManagerProcess, count: int) -> None:
    """Wait until the list runs ``count`` processes; status has no push, so it is read every 0.2 s."""
    deadline = time.monotonic() + SCALE_DOWN_BOUND
    while status.query(manager.state_dir)["task_lists"][LIST]["processes"] != count:
        assert time.monotonic() < deadline, f"{LIST} never came back to {count} processes; log:\n{manager.log_tail()}"
        time.sleep(0.2)


def test_cpu_backlog_scales_up_then_down(manager: ManagerProcess) -> None:
    config = load_config(manager.config_path)
    client = make_swf_client(config, manager.state["endpoint_url"])
    runs = []
    for _ in range(WORKFLOWS):
        workflow_id = f"burn-{uuid.uuid4()}"
        run_id = submit.start_workflow(client, config, "BurnCpu", workflow_id, {"seconds": TASK_SECONDS})
        runs.append((workflow_id, run_id))

    for workflow_id, run_id in runs:
        closing = submit.follow(client, config.swf.domain, workflow_id, run_id, io.StringIO(), timeout=300)
        assert closing["eventType"] == "WorkflowExecutionCompleted", closing
    wait_for_processes(manager, 1)
    steps = scaling_steps(manager.log_path)

    ups = [step for step in steps if step["delta"] > 0]
    downs = [step for step in steps if step["delta"] < 0]
    assert ups, f"the backlog never added a worker; log:\n{manager.log_tail()}"
    assert downs, "the idle list never removed a worker"
    for step in ups:
        # A worker is added only while the CPU has room for it.
        assert step["cpu_percent"] < CPU_TARGET, step
        assert step["backlog"] > 0 or step["busy"] == step["processes"], step
    assert max(step["desired"] for step in steps) <= MAX_PROCESSES
    assert all(step["desired"] >= 1 for step in steps)
