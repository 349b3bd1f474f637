"""Client commands load the running manager's configuration file without --config."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager_harness import ManagerProcess, embedded_endpoint_config


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ManagerProcess]:
    process = ManagerProcess(
        tmp_path,
        embedded_endpoint_config(
            tmp_path / "storage",
            "[[workflow_types]]\n"
            'name = "Quick"\n'
            'version = "1"\n'
            'task_list = "diagnostic-decisions"\n'
            'steps = ["Noop"]\n',
        ),
    )
    try:
        process.start()
        yield process
        assert process.stop() == 0, process.log_tail()
    finally:
        process.kill_everything()


def test_submit_knows_types_of_running_manager(manager: ManagerProcess) -> None:
    assert manager.state["config_path"] == str(manager.config_path.resolve())

    result = subprocess.run(
        [
            sys.executable, "-m", "manager", "--state-dir", str(manager.state_dir),
            "submit", "--workflow-type", "Quick", "--input", "{}", "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "workflow completed" in result.stdout
