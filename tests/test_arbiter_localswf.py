"""The arbiter with the real worker runtime and backlog sampler on the embedded endpoint."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_supervision import LogPipe, ManagerProcess, manager_starter, wait_gone

from localswf.testing import LocalSwfProcess, register_test_domain, swf_client
from manager.sampling import BacklogSampler, run_backlog_sampler
from manager.worker_process import run_real_worker
from workers.config import (
    ClientConfig,
    Config,
    ScalingConfig,
    SwfConfig,
    TaskListConfig,
)

BOUND = 20.0


@pytest.fixture
def start_manager(tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    yield from manager_starter(tmp_path)


@pytest.fixture
def short_poll_swf(tmp_path: Path) -> Iterator[str]:
    """An embedded endpoint that keeps empty polls open for 1 s, with domain "test" registered."""
    server = LocalSwfProcess(db_path=tmp_path / "swf.sqlite3", max_poll_seconds=1.0)
    url = server.start()
    try:
        register_test_domain(swf_client(url), "test")
        yield url
    finally:
        server.stop()


def local_config(url: str) -> Config:
    return Config(
        swf=SwfConfig(endpoint_url=url, domain="test"),
        client=ClientConfig(read_timeout=10.0, max_attempts=1),
        task_lists=(
            TaskListConfig(name="decisions", kind="decision"),
            TaskListConfig(name="activities", kind="activity"),
        ),
        scaling=ScalingConfig(sample_interval=0.2),
    )


def test_backlog_sampler_counts_pending_tasks(short_poll_swf: str) -> None:
    client = swf_client(short_poll_swf)
    for number in range(3):
        client.start_workflow_execution(
            domain="test", workflowId=f"wf-{number}", workflowType={"name": "Workflow", "version": "1"}
        )
    sampler = BacklogSampler(run_backlog_sampler)
    sampler.start(local_config(short_poll_swf), short_poll_swf, time.monotonic())
    try:
        deadline = time.monotonic() + BOUND
        while "decisions" not in sampler.readings or "activities" not in sampler.readings:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the sampler sent no count for both lists"
            ready, _, _ = select.select([sampler.fd], [], [], remaining)
            if ready:
                sampler.read()
        assert sampler.readings["decisions"].backlog == 3
        assert sampler.readings["activities"].backlog == 0
        assert sampler.last_error is None
        assert sampler.backlog("decisions", time.monotonic(), max_age=BOUND) == 3
    finally:
        assert sampler.pid is not None
        os.kill(sampler.pid, signal.SIGKILL)
        os.waitpid(sampler.pid, 0)
        sampler.close()


def test_real_workers_start_and_drain(short_poll_swf: str, start_manager: Callable[..., ManagerProcess]) -> None:
    logs = LogPipe()
    try:
        manager = start_manager(
            local_config(short_poll_swf),
            run_real_worker,
            log_fd=logs.write_fd,
            endpoint_url=short_poll_swf,
            backlog_target=run_backlog_sampler,
        )
        os.close(logs.write_fd)
        logs.write_fd = -1
        started = logs.wait_for(lambda r: str(r.get("message", "")).startswith("worker started:"), count=2)
        assert {record["task_list"] for record in started} == {"decisions", "activities"}
        assert {record["role"] for record in started} == {"decider", "activity"}

        manager.signal(signal.SIGTERM)
        assert manager.wait() == 0
        stops = logs.wait_for(lambda r: str(r.get("message", "")).startswith("worker stopped:"), count=2)
        assert {record["exit_code"] for record in stops} == {0}
        assert {record["exit_kind"] for record in stops} == {"requested"}
        assert not [r for r in logs.records if r.get("level") == "ERROR"]
    finally:
        logs.close()


def test_endpoint_restarted_on_same_port(tmp_path: Path, start_manager: Callable[..., ManagerProcess]) -> None:
    logs = LogPipe()

    def make_endpoint() -> LocalSwfProcess:
        endpoint = LocalSwfProcess(db_path=tmp_path / "embedded.sqlite3", max_poll_seconds=1.0)
        endpoint.start()
        register_test_domain(swf_client(endpoint.url), "test")
        return endpoint

    try:
        config = Config(
            swf=SwfConfig(endpoint_url="local", domain="test"),
            client=ClientConfig(read_timeout=10.0, max_attempts=1),
            task_lists=(TaskListConfig(name="activities", kind="activity"),),
        )
        manager = start_manager(config, run_real_worker, log_fd=logs.write_fd, endpoint_factory=make_endpoint)
        os.close(logs.write_fd)
        logs.write_fd = -1
        # Workers can log before the manager writes manager.json, which comes just before "manager started".
        logs.wait_for(lambda r: r.get("message") == "manager started")
        document = json.loads((manager.state_dir / "manager.json").read_text())
        url = document["endpoint_url"]
        assert url.startswith("http://127.0.0.1:")

        def endpoints() -> list[int]:
            import psutil

            return [
                p.pid
                for p in psutil.Process(manager.pid).children()
                if p.cmdline()[1:3] == ["-m", "localswf"]
            ]

        (first,) = endpoints()
        # A measurement window: an idle manager with a live endpoint must not busy-loop.
        before = manager.status()["wakeups"]
        select.select([], [], [], 0.5)
        assert manager.status()["wakeups"] - before <= 5
        os.kill(first, signal.SIGKILL)
        logs.wait_for(lambda r: r.get("message") == "embedded endpoint restarted")
        (second,) = endpoints()
        assert second != first
        assert json.loads((manager.state_dir / "manager.json").read_text())["endpoint_url"] == url
        assert swf_client(url).count_pending_activity_tasks(domain="test", taskList={"name": "activities"})["count"] == 0

        manager.signal(signal.SIGTERM)
        assert manager.wait() == 0
        logs.wait_for(lambda r: r.get("message") == "stopped embedded endpoint")
        assert wait_gone([second]) == []
    finally:
        logs.close()
