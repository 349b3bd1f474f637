"""Scaling inputs: CPU and memory through psutil, and the SWF backlog from a sampler child.

The backlog needs an SWF client, and the manager builds no boto3 client because it keeps
forking. A forked sampler child builds its own client, calls CountPendingActivityTasks or
CountPendingDecisionTasks for each task list at every sample interval and writes one JSON
line per list to a pipe that the manager reads.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from manager.worker_process import WorkerProcess, fork_child
from workers.config import Config
from workers.progress import parse_progress_lines

log = logging.getLogger(__name__)

# Runs in the forked sampler child: (config, endpoint_url, output_fd) -> exit code.
BacklogTarget = Callable[[Config, "str | None", int], int]

MB = 1024 * 1024


def run_backlog_sampler(config: Config, endpoint_url: str | None, output_fd: int) -> int:
    """Count pending tasks of every task list forever, one JSON line per list and sample."""
    from workers.client import make_swf_client

    client = make_swf_client(config, endpoint_url)
    while True:
        for task_list in config.task_lists:
            line: dict[str, Any] = {"task_list": task_list.name, "time": time.monotonic()}
            try:
                if task_list.kind == "activity":
                    reply = client.count_pending_activity_tasks(
                        domain=config.swf.domain, taskList={"name": task_list.name}
                    )
                else:
                    reply = client.count_pending_decision_tasks(
                        domain=config.swf.domain, taskList={"name": task_list.name}
                    )
                line["backlog"] = int(reply["count"])
                line["truncated"] = bool(reply.get("truncated", False))
            except Exception as error:  # noqa: BLE001 - the manager logs it and keeps the last value
                line["error"] = f"{type(error).__name__}: {error}"
            try:
                os.write(output_fd, (json.dumps(line) + "\n").encode())
            except BrokenPipeError:
                return 0
        time.sleep(config.scaling.sample_interval)


@dataclass
class BacklogReading:
    backlog: int
    # time.monotonic() of the count.
    at: float


class BacklogSampler:
    """The sampler child as the manager tracks it, and the latest count per task list."""

    def __init__(self, target: BacklogTarget) -> None:
        self._target = target
        self.pid: int | None = None
        self.fd = -1
        self.started_at = 0.0
        self._buffer = b""
        self.readings: dict[str, BacklogReading] = {}
        self.last_error: str | None = None

    def start(self, config: Config, endpoint_url: str | None, now: float) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        target = self._target
        self.pid = fork_child(lambda: target(config, endpoint_url, write_fd), keep_fds=(write_fd,))
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.fd = read_fd
        self.started_at = now
        self._buffer = b""
        log.info("started backlog sampler", extra={"sampler_pid": self.pid})

    def read(self) -> None:
        """Read what the pipe holds without blocking."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self.close()
                return
            lines, self._buffer = parse_progress_lines(self._buffer + data)
            for line in lines:
                self._apply(line)

    def _apply(self, line: dict[str, Any]) -> None:
        name = line.get("task_list")
        if not isinstance(name, str):
            return
        if "error" in line:
            # Log a changed error once, not every sample.
            if line["error"] != self.last_error:
                log.error("backlog count failed", extra={"task_list": name, "error": line["error"]})
            self.last_error = line["error"]
            return
        backlog = line.get("backlog")
        at = line.get("time")
        if isinstance(backlog, int) and isinstance(at, (int, float)):
            self.readings[name] = BacklogReading(backlog=backlog, at=float(at))
            self.last_error = None

    def backlog(self, task_list: str, now: float, max_age: float) -> int | None:
        """Return the latest count for the list, or None when there is none younger than ``max_age``."""
        reading = self.readings.get(task_list)
        if reading is None or now - reading.at > max_age:
            return None
        return reading.backlog

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class SystemReading:
    cpu_percent: float
    available_memory_mb: float


class ResourceSampler:
    """System CPU and memory, and each worker's CPU and resident memory, through psutil.

    psutil reports CPU as the share used since the previous call on the same object, so
    the sampler keeps one ``psutil.Process`` per worker.
    """

    def __init__(self) -> None:
        # The first call only sets the reference point.
        psutil.cpu_percent(interval=None)

    def system(self) -> SystemReading:
        return SystemReading(
            cpu_percent=psutil.cpu_percent(interval=None),
            available_memory_mb=psutil.virtual_memory().available / MB,
        )

    def update_workers(self, workers: Iterable[WorkerProcess]) -> None:
        """Refresh ``cpu_percent`` and ``memory_mb`` of each worker.

        TODO: processes that a worker starts (its grandchildren) are not counted yet.
        """
        for worker in workers:
            handle = worker.proc_handle
            try:
                if not isinstance(handle, psutil.Process):
                    handle = psutil.Process(worker.pid)
                    worker.proc_handle = handle
                    handle.cpu_percent(interval=None)
                    continue
                worker.cpu_percent = handle.cpu_percent(interval=None)
                worker.memory_mb = handle.memory_info().rss / MB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                worker.cpu_percent = 0.0
                continue

