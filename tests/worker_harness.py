"""Test harness for real worker processes on the embedded SWF endpoint (contains no tests).

The test process talks to the endpoint over plain HTTP with ``SwfHttp`` and builds no
boto3 client, so it can fork workers at any time: each forked worker builds its own.
Waits are bounded and block on pipes and pidfds, never on sleeps.
"""

from __future__ import annotations

import http.server
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localswf.testing import LocalSwfProcess
from manager.registration import register_in_child
from workers.config import ActivityTypeConfig, Config, RetryPolicy, StorageConfig, SwfConfig, TaskListConfig, WorkflowTypeConfig
from workers.progress import parse_progress_lines
from workers.runtime import WorkerSpec, run_worker

DOMAIN = "worker-tests"
DECISIONS = "decisions"
DIAG = "diag"
# Maximum time the test endpoint holds an empty poll, so idle workers stop quickly.
MAX_POLL_SECONDS = 2.0
WAIT = 60.0  # upper bound of every wait in these tests, in seconds


class SwfCallError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.code = str(body.get("__type", "")).rsplit("#", 1)[-1]
        self.body = body


class SwfHttp:
    """Calls SWF operations by name over SWF's JSON protocol, without boto3."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(params).encode(),
            headers={
                "X-Amz-Target": f"SimpleWorkflowService.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise SwfCallError(error.code, json.loads(error.read().decode() or "{}")) from None
        return json.loads(text) if text else {}

    def start(self, workflow_type: str, workflow_id: str, workflow_input: Any, **extra: Any) -> str:
        reply = self(
            "StartWorkflowExecution",
            domain=DOMAIN,
            workflowId=workflow_id,
            workflowType={"name": workflow_type, "version": "1"},
            input=json.dumps(workflow_input),
            **extra,
        )
        return reply["runId"]

    def history(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        token = None
        while True:
            params: dict[str, Any] = {"domain": DOMAIN, "execution": {"workflowId": workflow_id, "runId": run_id}}
            if token:
                params["nextPageToken"] = token
            page = self("GetWorkflowExecutionHistory", **params)
            events.extend(page["events"])
            token = page.get("nextPageToken")
            if not token:
                return events


def event_types(events: list[dict[str, Any]]) -> list[str]:
    return [event["eventType"] for event in events]


def attrs_of(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    key = event_type[0].lower() + event_type[1:] + "EventAttributes"
    return [event[key] for event in events if event["eventType"] == event_type]


def diag_type(name: str, **overrides: Any) -> ActivityTypeConfig:
    values: dict[str, Any] = {
        "name": name,
        "version": "1",
        "task_list": DIAG,
        "schedule_to_start_timeout": 120,
        "start_to_close_timeout": 60,
        "schedule_to_close_timeout": 180,
        "heartbeat_timeout": 3,
        "retry": RetryPolicy(max_failures=0, timeouts=(60,), backoff_seconds=0),
    }
    values.update(overrides)
    return ActivityTypeConfig(**values)


def pipeline(name: str, *steps: str, **overrides: Any) -> WorkflowTypeConfig:
    values: dict[str, Any] = {
        "name": name,
        "version": "1",
        "task_list": DECISIONS,
        "steps": steps,
        "execution_start_to_close_timeout": 600,
        "task_start_to_close_timeout": 10,
    }
    values.update(overrides)
    return WorkflowTypeConfig(**values)


def make_config(
    tmp_path: Path,
    activity_types: tuple[ActivityTypeConfig, ...],
    workflow_types: tuple[WorkflowTypeConfig, ...],
    max_tasks_per_process: int = 0,
) -> Config:
    return Config(
        swf=SwfConfig(endpoint_url=None, domain=DOMAIN, retention_days=1),
        task_lists=(
            TaskListConfig(name=DECISIONS, kind="decision"),
            TaskListConfig(name=DIAG, kind="activity", max_tasks_per_process=max_tasks_per_process),
        ),
        activity_types=activity_types,
        workflow_types=workflow_types,
        storage=StorageConfig(root=str(tmp_path / "storage")),
    )


class ForkedWorker:
    """A real worker process forked from the test, with its progress pipe and a pidfd."""

    def __init__(
        self,
        role: str,
        task_list: str,
        config: Config,
        url: str,
        closed_fd: int | None = None,
        target: Callable[[int], int] | None = None,
        capture_log: bool = False,
        identity: str | None = None,
    ) -> None:
        progress_read, progress_write = os.pipe()
        log_read, log_write = os.pipe() if capture_log else (None, None)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(progress_read)
                if log_write is not None:
                    os.dup2(log_write, 2)
                    # pytest's capture replaced sys.stderr; the worker logs to sys.stderr.
                    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                if target is not None:
                    code = target(progress_write)
                else:
                    callback = None
                    if closed_fd is not None:

                        def callback(summary: dict[str, Any]) -> None:
                            os.write(closed_fd, (json.dumps(summary) + "\n").encode())

                    spec = WorkerSpec(
                        role=role,  # type: ignore[arg-type]
                        task_list=task_list,
                        identity=identity or f"test-{role}-{os.getpid()}",
                    )
                    code = run_worker(spec, config, progress_write, url, on_workflow_closed=callback)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(progress_write)
        if log_write is not None:
            os.close(log_write)
        # Read the log pipe often enough that the worker never blocks on a full pipe.
        self._log_fd = log_read
        self._log_buffer = b""
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self._progress_fd = progress_read
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self.exit_code: int | None = None

    def _read_progress(self, timeout: float) -> str:
        """Read one chunk of progress. Returns "read", "timeout" or "closed"."""
        ready, _, _ = select.select([self._progress_fd], [], [], timeout)
        if not ready:
            return "timeout"
        chunk = os.read(self._progress_fd, 65536)
        if not chunk:
            return "closed"
        events, self._buffer = parse_progress_lines(self._buffer + chunk)
        self.events.extend(events)
        return "read"

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT) -> dict[str, Any]:
        """Return the first progress event that matches ``predicate``, reading the pipe until it comes."""
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            state = self._read_progress(max(0.0, remaining))
            if state == "closed":
                raise AssertionError(f"worker {self.pid} exited before the expected progress event: {self.events}")
            if state == "timeout":
                raise AssertionError(f"worker {self.pid} sent no matching progress event in {timeout} s: {self.events}")

    def wait_log(self, text: str, timeout: float = WAIT) -> str:
        """Return the first log line of the worker that contains ``text``."""
        assert self._log_fd is not None, "start the worker with capture_log=True"
        deadline = time.monotonic() + timeout
        while True:
            *lines, self._log_buffer = self._log_buffer.split(b"\n")
            for index, line in enumerate(lines):
                if text.encode() in line:
                    self._log_buffer = b"\n".join([*lines[index + 1 :], self._log_buffer])
                    return line.decode()
            ready, _, _ = select.select([self._log_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"worker {self.pid} logged no line with {text!r} within {timeout} s")
            chunk = os.read(self._log_fd, 65536)
            if not chunk:
                raise AssertionError(f"worker {self.pid} closed its log before a line with {text!r}")
            self._log_buffer += chunk

    def _exited(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        if not ready:
            return False
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        return True

    def wait_exit(self, timeout: float = WAIT) -> int:
        if self.exit_code is None and not self._exited(timeout):
            raise AssertionError(f"worker {self.pid} did not exit within {timeout} s; progress: {self.events}")
        while self._read_progress(0) == "read":
            pass
        assert self.exit_code is not None
        return self.exit_code

    def signal(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.pid, signum)

    def close(self) -> None:
        if self.exit_code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait_exit(10)
        os.close(self.pidfd)
        os.close(self._progress_fd)
        if self._log_fd is not None:
            os.close(self._log_fd)


class ClosedWorkflows:
    """The read end of a pipe on which deciders write a JSON line per closed workflow."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._buffer = b""
        self.summaries: list[dict[str, Any]] = []

    def wait_for(self, workflow_id: str, timeout: float = WAIT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for summary in self.summaries:
                if summary["workflow_id"] == workflow_id:
                    return summary
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError(f"workflow {workflow_id} did not close within {timeout} s: {self.summaries}")
            self._buffer += os.read(self.read_fd, 65536)
            *lines, self._buffer = self._buffer.split(b"\n")
            self.summaries.extend(json.loads(line) for line in lines if line)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class WorkerFarm:
    """Starts workers on one endpoint and stops every one of them at the end of a test."""

    def __init__(self, url: str, config: Config) -> None:
        self.url = url
        self.config = config
        self.swf = SwfHttp(url)
        self.closed = ClosedWorkflows()
        self.workers: list[ForkedWorker] = []

    def decider(self) -> ForkedWorker:
        worker = ForkedWorker("decider", DECISIONS, self.config, self.url, closed_fd=self.closed.write_fd)
        self.workers.append(worker)
        return worker

    def activity_worker(self, config: Config | None = None, capture_log: bool = False) -> ForkedWorker:
        worker = ForkedWorker("activity", DIAG, config or self.config, self.url, capture_log=capture_log)
        self.workers.append(worker)
        return worker

    def forked(self, target: Callable[[int], int]) -> ForkedWorker:
        worker = ForkedWorker("custom", DIAG, self.config, self.url, target=target)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.closed.close()


@pytest.fixture
def endpoint_server(tmp_path: Path) -> Iterator[LocalSwfProcess]:
    """The embedded SWF endpoint on a free port, holding empty polls at most 2 s."""
    server = LocalSwfProcess(db_path=tmp_path / "localswf.sqlite3", max_poll_seconds=MAX_POLL_SECONDS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def endpoint(endpoint_server: LocalSwfProcess) -> str:
    assert endpoint_server.url is not None
    return endpoint_server.url


class CannedReplies(http.server.BaseHTTPRequestHandler):
    """Replies to every POST with the server's next canned (status, JSON body).

    When the list is empty, it replies with an empty poll reply, ``{}``.
    """

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.headers.get("X-Amz-Target", ""), json.loads(body or b"{}")))  # type: ignore[attr-defined]
        replies = self.server.replies  # type: ignore[attr-defined]
        status, body = replies.pop(0) if replies else (200, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned_server() -> Iterator[http.server.HTTPServer]:
    """An HTTP server on 127.0.0.1 that plays back ``server.replies`` in order.

    It records each request as (X-Amz-Target, parsed JSON body) in ``server.requests``.
    """
    server = http.server.HTTPServer(("127.0.0.1", 0), CannedReplies)
    server.replies = []  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()



def make_farm(url: str, config: Config) -> WorkerFarm:
    register_in_child(config, url)
    return WorkerFarm(url, config)
