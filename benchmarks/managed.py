"""The manager daemon as a child process, with its JSON log lines read as events."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT

START_TIMEOUT = 90.0  # seconds until "manager started"; registration and forks on a loaded machine
STOP_TIMEOUT = 60.0


class ManagerRunError(RuntimeError):
    """The manager did not start, or an expected log event did not come."""


def log_time(event: dict[str, Any]) -> float | None:
    """Return the wall-clock time of a log event from its "timestamp" field (local time, millisecond resolution)."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


class ManagerRun:
    """Run `python -m manager --config PATH` and collect its log events with their arrival times."""

    def __init__(
        self, workdir: Path, config_text: str, extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(exist_ok=True)
        self.config_path = workdir / "manager.toml"
        self.config_path.write_text(config_text.replace("@STATE_DIR@", str(self.state_dir)))
        self.extra_args = extra_args or []
        self.extra_env = env or {}
        self.log_path = workdir / "manager.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[tuple[float, dict[str, Any]]] = []  # (time.monotonic() at arrival, event)
        self._new_events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._reader: threading.Thread | None = None
        self.started_wall: float | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(self.extra_env)
        command = [sys.executable, "-m", "manager", "--config", str(self.config_path), *self.extra_args]
        self.started_wall = time.time()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(self.workdir)
        )
        self._reader = threading.Thread(target=self._read_log, name="manager-log", daemon=True)
        self._reader.start()
        self.wait_event(lambda event: event.get("message") == "manager started", START_TIMEOUT)

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with open(self.log_path, "ab") as log_file:
            for line in self.process.stderr:
                arrived = time.monotonic()
                log_file.write(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the embedded endpoint's plain-text lines
                if isinstance(event, dict):
                    self.events.append((arrived, event))
                    self._new_events.put((arrived, event))

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> tuple[float, dict[str, Any]]:
        """Consume log events in order until one matches; return its arrival time and the event."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ManagerRunError(f"no matching manager log event within {timeout:.0f} s; see {self.log_path}")
            try:
                arrived, event = self._new_events.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(event):
                return arrived, event
            if self.process is not None and self.process.poll() is not None and self._new_events.empty():
                raise ManagerRunError(f"manager exited with code {self.process.returncode}; see {self.log_path}")

    def drain_events(self) -> None:
        """Drop the events not consumed yet, so the next wait matches only events that arrive after this call."""
        while True:
            try:
                self._new_events.get_nowait()
            except queue.Empty:
                return

    def status(self) -> dict[str, Any]:
        from manager.status import query

        return query(self.state_dir)

    def descendants(self) -> list[Any]:
        import psutil

        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> dict[str, Any]:
        """SIGTERM the manager and wait; SIGKILL it after STOP_TIMEOUT. Return how it ended and any process left."""
        import psutil

        if self.process is None:
            return {}
        tree = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
        _, alive = psutil.wait_procs(tree, timeout=10)
        for process in alive:  # processes this benchmark started, left behind by the manager
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        return {"exit_code": self.process.returncode, "left_running": [process.pid for process in alive]}

    def __enter__(self) -> ManagerRun:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def swf_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "swf", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="benchmark", aws_secret_access_key="benchmark",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=90),
    )


def start_workflows(endpoint_url: str, domain: str, workflow_type: str, count: int, workflow_input: dict[str, Any], prefix: str) -> list[str]:
    """Start `count` workflows of a configured type (default task list) and return their ids."""
    client = swf_client(endpoint_url)
    ids = []
    for number in range(count):
        workflow_id = f"{prefix}-{number}"
        client.start_workflow_execution(
            domain=domain, workflowId=workflow_id, workflowType={"name": workflow_type, "version": "1"},
            input=json.dumps(workflow_input),
        )
        ids.append(workflow_id)
    client.close()
    return ids
