"""The arbiter's scaler end to end: real workers, a stand-in backlog sampler child."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_supervision import (
    EventPipe,
    ManagerProcess,
    idle_worker,
    manager_starter,
    open_event_pipe,
    started_event,
)

from workers.config import (
    Config,
    ScalingConfig,
    SupervisionConfig,
    SwfConfig,
    TaskListConfig,
)


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventPipe]:
    yield from open_event_pipe(tmp_path)


@pytest.fixture
def start_manager(tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    yield from manager_starter(tmp_path)


def file_backlog(path: Path) -> Callable[[Config, str | None, int], int]:
    """A sampler stand-in: report the number in ``path`` as the backlog of every list."""

    def target(config: Config, endpoint_url: str | None, output_fd: int) -> int:
        while True:
            backlog = int(path.read_text())
            for task_list in config.task_lists:
                line = {"task_list": task_list.name, "backlog": backlog, "time": time.monotonic()}
                os.write(output_fd, (json.dumps(line) + "\n").encode())
            time.sleep(0.05)

    return target


def scaling_config() -> Config:
    return Config(
        swf=SwfConfig(endpoint_url=None),
        task_lists=(TaskListConfig(name="work", kind="activity", min_processes=1, max_processes=3),),
        # The CPU rules are covered without processes. Here a target above 100% keeps a busy
        # shared test machine from holding the scaler back.
        scaling=ScalingConfig(
            sample_interval=0.1,
            cpu_target_percent=101.0,
            cpu_high_percent=101.0,
            memory_floor_mb=0,
            scale_down_delay=0.5,
            cooldown=0.2,
        ),
        supervision=SupervisionConfig(),
    )


def test_backlog_scales_up_then_idle_scales_down(
    tmp_path: Path, events: EventPipe, start_manager: Callable[..., ManagerProcess]
) -> None:
    backlog_file = tmp_path / "backlog"
    backlog_file.write_text("10")
    manager = start_manager(scaling_config(), idle_worker(str(events.path)), backlog_target=file_backlog(backlog_file))

    first = events.wait_for(started_event)
    second = events.wait_for(started_event, after=events.events.index(first) + 1)
    third = events.wait_for(started_event, after=events.events.index(second) + 1)
    assert len({first["pid"], second["pid"], third["pid"]}) == 3
    status = manager.status()["task_lists"]["work"]
    assert status["desired"] == 3
    assert status["backlog"] == 10
    assert "backlog 10" in status["last_scaling"]["reason"]
    assert status["last_scaling"]["inputs"]["max"] == 3

    backlog_file.write_text("0")
    stop_a = events.wait_for(lambda e: e["event"] == "stopped")
    stop_b = events.wait_for(lambda e: e["event"] == "stopped", after=events.events.index(stop_a) + 1)
    assert stop_a["pid"] != stop_b["pid"]
    # Steps are at least one cooldown apart.
    assert stop_b["time"] - stop_a["time"] >= 0.15
    status = manager.status()["task_lists"]["work"]
    assert status["desired"] == 1
    assert status["processes"] == 1
    assert "no backlog and no busy worker" in status["last_scaling"]["reason"]
    # Never below the minimum.
    started = [e for e in events.events if started_event(e)]
    assert len(started) == 3
