"""The supervision loop with real forked processes and real signals.

The manager runs in a forked child of the test. Stand-in worker targets write JSON events
to a FIFO that the test reads, so every wait is on a pipe, a pidfd or a socket, each
with a bound.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from manager.arbiter import Arbiter
from manager.status import query
from manager.worker_process import ChildSpec
from workers import exitcodes
from workers.config import (
    ClientConfig,
    Config,
    LoggingConfig,
    ScalingConfig,
    SupervisionConfig,
    SwfConfig,
    TaskListConfig,
)
from workers.logs import configure_logging
from workers.progress import ProgressReporter

log = logging.getLogger(__name__)

BOUND = 15.0


class EventPipe:
    """The read side of a FIFO that stand-in workers write JSON lines to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        # O_RDWR keeps the FIFO open for writing too, so reads never see end of file.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def _read_available(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return
        self._buffer += os.read(self.fd, 65536)
        *lines, self._buffer = self._buffer.split(b"\n")
        self.events.extend(json.loads(line) for line in lines if line)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = BOUND, after: int = 0) -> dict[str, Any]:
        """Return the first event from index ``after`` that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        index = after
        while True:
            while index < len(self.events):
                if predicate(self.events[index]):
                    return self.events[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout} s; events so far: {self.events}")
            self._read_available(remaining)

    def close(self) -> None:
        os.close(self.fd)


class LogPipe:
    """JSON log lines that the manager and its workers write to their stderr."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._buffer = b""
        self.records: list[dict[str, Any]] = []

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = BOUND) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            matches = [record for record in self.records if predicate(record)]
            if len(matches) >= count:
                return matches
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"fewer than {count} matching log records within {timeout} s: {self.records}")
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if ready:
                self._buffer += os.read(self.read_fd, 65536)
                *lines, self._buffer = self._buffer.split(b"\n")
                for line in lines:
                    try:
                        self.records.append(json.loads(line))
                    except ValueError:
                        self.records.append({"message": line.decode(errors="replace")})

    def close(self) -> None:
        os.close(self.read_fd)
        if self.write_fd >= 0:
            os.close(self.write_fd)


def emit(path: str, **fields: Any) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, (json.dumps({"pid": os.getpid(), "time": time.monotonic(), **fields}) + "\n").encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------- stand-in worker targets


def idle_worker(fifo: str) -> Callable[..., int]:
    """Poll forever; on SIGTERM report stopping and exit 0."""

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        report = ProgressReporter(progress_fd)
        emit(fifo, event="started", task_list=spec.task_list, role=spec.role)
        report.poll_started("activity")
        signal.sigwait({signal.SIGTERM})
        report.stopping("SIGTERM")
        emit(fifo, event="stopped", task_list=spec.task_list)
        return 0

    return target


def exiting_worker(fifo: str, code: int) -> Callable[..., int]:
    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        emit(fifo, event="started", task_list=spec.task_list)
        return code

    return target


def busy_worker(fifo: str, work_after_stop: float | None) -> Callable[..., int]:
    """Hold a task. After the first SIGTERM, finish it in ``work_after_stop`` seconds.

    With None the worker ignores the first SIGTERM. A second SIGTERM (the process group
    escalation) makes it hand the task back and exit.
    """

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        report = ProgressReporter(progress_fd)
        report.task_started("wf-1", "run-1", "act-1", "LongStep", 300)
        emit(fifo, event="task_started")
        signal.sigwait({signal.SIGTERM})
        emit(fifo, event="stop_requested")
        if work_after_stop is not None:
            if signal.sigtimedwait({signal.SIGTERM}, work_after_stop) is None:
                report.task_finished("completed")
                emit(fifo, event="task_completed")
                return 0
        else:
            signal.sigwait({signal.SIGTERM})
        report.task_finished("handed_back")
        emit(fifo, event="handed_back")
        return 0

    return target


def short_task_worker(fifo: str) -> Callable[..., int]:
    """Start a task with a 0.3 s START_TO_CLOSE and then hang in it."""

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        ProgressReporter(progress_fd).task_started("wf-3", "run-3", "act-3", "Hangs", 0.3)
        emit(fifo, event="task_started")
        signal.sigwait({signal.SIGUSR1})
        return 0

    return target


def stubborn_worker(fifo: str) -> Callable[..., int]:
    """Block SIGTERM for good: only SIGKILL ends it."""

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        ProgressReporter(progress_fd).task_started("wf-2", "run-2", "act-2", "Stubborn", 300)
        emit(fifo, event="task_started")
        signal.sigwait({signal.SIGUSR1})
        return 0

    return target


def parent_of_grandchild_worker(fifo: str) -> Callable[..., int]:
    """Start a long `sleep` grandchild in the worker's process group, then poll forever."""

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        child = subprocess.Popen(["sleep", "600"])
        emit(fifo, event="started", grandchild=child.pid)
        ProgressReporter(progress_fd).poll_started("activity")
        signal.sigwait({signal.SIGUSR1})
        return 0

    return target


def silent_worker(fifo: str) -> Callable[..., int]:
    """Start and then report no progress at all, like a worker hung before its first poll."""

    def target(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
        emit(fifo, event="started", task_list=spec.task_list)
        signal.sigwait({signal.SIGUSR1})
        return 0

    return target


# ---------------------------------------------------------------- the manager under test


def make_config(
    min_processes: int = 1,
    max_processes: int = 1,
    read_timeout: float = 70.0,
    **supervision: float,
) -> Config:
    return Config(
        swf=SwfConfig(endpoint_url=None, domain="test-domain"),
        client=ClientConfig(read_timeout=read_timeout),
        task_lists=(
            TaskListConfig(name="work", kind="activity", min_processes=min_processes, max_processes=max_processes),
        ),
        # Long sample interval: these tests drive the count by signals, not by the scaler.
        scaling=ScalingConfig(sample_interval=3600.0),
        supervision=SupervisionConfig(**supervision),
    )


class ManagerProcess:
    def __init__(self, pid: int, state_dir: Path) -> None:
        self.pid = pid
        self.state_dir = state_dir
        self.pidfd = os.pidfd_open(pid)
        self.exit_status: int | None = None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = BOUND) -> int:
        """Wait for the manager to exit and return its exit code (negative for a signal)."""
        if self.exit_status is None:
            ready, _, _ = select.select([self.pidfd], [], [], timeout)
            assert ready, f"manager {self.pid} still running after {timeout} s"
            _, status = os.waitpid(self.pid, 0)
            self.exit_status = os.waitstatus_to_exitcode(status)
        return self.exit_status

    def status(self) -> dict[str, Any]:
        return query(self.state_dir)

    def close(self) -> None:
        if self.exit_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()
        os.close(self.pidfd)


def open_event_pipe(tmp_path: Path) -> Iterator[EventPipe]:
    """Yield an event FIFO in ``tmp_path`` and close it afterwards: the body of the ``events`` fixture."""
    pipe = EventPipe(tmp_path / "events.fifo")
    yield pipe
    pipe.close()


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventPipe]:
    yield from open_event_pipe(tmp_path)


@pytest.fixture
def start_manager(tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    yield from manager_starter(tmp_path)


def manager_starter(tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    """Yield a function that forks managers, and kill those still running afterwards."""
    started: list[ManagerProcess] = []

    def start(
        config: Config,
        target: Callable[..., int],
        log_fd: int | None = None,
        endpoint_url: str | None = None,
        endpoint_factory: Callable[[], Any] | None = None,
        **arbiter_args: Any,
    ) -> ManagerProcess:
        """Fork a manager. With ``log_fd`` its stderr, and its workers', goes to that descriptor."""
        state_dir = tmp_path / "state"
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if log_fd is not None:
                    os.dup2(log_fd, 2)
                    # pytest's capture replaced sys.stderr; log handlers write to this one.
                    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives until _exit
                configure_logging(LoggingConfig(level="INFO"), role="manager")
                arbiter_args.setdefault("backlog_target", None)
                if endpoint_factory is not None:
                    # Started in the manager process, which must be the endpoint's parent.
                    endpoint = endpoint_factory()
                    arbiter_args["endpoint"] = endpoint
                    endpoint_url = endpoint.url
                arbiter = Arbiter(config, endpoint_url, state_dir, worker_target=target, **arbiter_args)
                code = arbiter.run()
            except BaseException:  # noqa: BLE001 - the forked manager must reach os._exit
                traceback.print_exc()
            finally:
                os._exit(code)
        manager = ManagerProcess(pid, state_dir)
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.close()


def wait_gone(pids: list[int], timeout: float = BOUND) -> list[int]:
    """Wait until every pid has exited (zombies count as exited). Returns those still alive."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    try:
        while fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select(list(fds), [], [], remaining)
            for fd in ready:
                fds.pop(fd)
                os.close(fd)
    finally:
        alive = list(fds.values())
        for fd in fds:
            os.close(fd)
    return alive


def started_event(event: dict[str, Any]) -> bool:
    return event.get("event") == "started"


# ---------------------------------------------------------------- tests


def test_sigkilled_worker_replaced(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(min_processes=2, max_processes=2), idle_worker(str(events.path)))
    first = events.wait_for(started_event)
    second = events.wait_for(started_event, after=events.events.index(first) + 1)
    mark = len(events.events)

    killed_at = time.monotonic()
    os.kill(first["pid"], signal.SIGKILL)
    replacement = events.wait_for(started_event, after=mark)
    latency = replacement["time"] - killed_at
    log.warning("restart latency after SIGKILL: %.1f ms", latency * 1000)
    print(f"restart latency after SIGKILL: {latency * 1000:.1f} ms")

    assert replacement["pid"] not in (first["pid"], second["pid"])
    status = manager.status()
    work = status["task_lists"]["work"]
    assert work["processes"] == 2
    assert work["restarts"] == 1
    assert sorted(w["pid"] for w in status["workers"]) == sorted([second["pid"], replacement["pid"]])
    # The goal is 100 ms; this bound only catches a loop that waits for a timer instead of SIGCHLD.
    assert latency < 1.0


def test_crash_loop_backs_off(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(
        make_config(crash_window=30.0, backoff_initial=0.2, backoff_max=0.8), exiting_worker(str(events.path), 1)
    )
    starts = []
    for _ in range(6):
        event = events.wait_for(started_event, after=len(events.events) if starts else 0)
        starts.append(event["time"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Crash n (n >= 2) waits 0.2 * 2**(n - 2) s, capped at 0.8 s.
    expected = [0.0, 0.2, 0.4, 0.8, 0.8]
    log.warning("crash-loop gaps: %s", [round(gap, 3) for gap in gaps])
    for gap, minimum in zip(gaps, expected):
        assert gap >= minimum - 0.005, f"gaps {gaps} shorter than backoff {expected}"
    assert gaps[0] < 0.5

    status = manager.status()["task_lists"]["work"]
    assert status["crash_loop"] is True
    assert status["crashes"] >= 5
    assert status["backoff_seconds"] == 0.8


def test_closed_execution_restarts_without_backoff(
    events: EventPipe, start_manager: Callable[..., ManagerProcess]
) -> None:
    # A crash loop would wait 30 s before the third start; clean restarts do not wait.
    manager = start_manager(
        make_config(crash_window=30.0, backoff_initial=30.0, backoff_max=60.0),
        exiting_worker(str(events.path), exitcodes.EXECUTION_CLOSED),
    )
    first = events.wait_for(started_event)
    for _ in range(5):
        events.wait_for(started_event, after=len(events.events), timeout=5.0)
    assert len({e["pid"] for e in events.events if started_event(e)}) >= 6
    assert first["event"] == "started"
    status = manager.status()["task_lists"]["work"]
    assert status["crashes"] == 0
    assert status["crash_loop"] is False
    assert status["restarts"] >= 5


def test_sigterm_drains_running_task(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(drain_timeout=10.0), busy_worker(str(events.path), work_after_stop=0.3))
    task = events.wait_for(lambda e: e["event"] == "task_started")
    status = manager.status()
    assert status["task_lists"]["work"]["busy"] == 1
    assert status["workers"][0]["task"]["activity_id"] == "act-1"

    signalled_at = time.monotonic()
    manager.signal(signal.SIGTERM)
    events.wait_for(lambda e: e["event"] == "stop_requested")
    completed = events.wait_for(lambda e: e["event"] == "task_completed")
    assert manager.wait() == 0
    assert completed["pid"] == task["pid"]
    assert not [e for e in events.events if e["event"] == "handed_back"]
    assert completed["time"] - signalled_at < 10.0
    assert not (manager.state_dir / "manager.json").exists()
    assert wait_gone([task["pid"]]) == []


def test_drain_deadline_hands_task_back(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(
        make_config(drain_timeout=0.5, kill_grace=5.0), busy_worker(str(events.path), work_after_stop=None)
    )
    events.wait_for(lambda e: e["event"] == "task_started")
    signalled_at = time.monotonic()
    manager.signal(signal.SIGTERM)
    handed_back = events.wait_for(lambda e: e["event"] == "handed_back")
    assert manager.wait() == 0
    waited = handed_back["time"] - signalled_at
    log.warning("hand-back after drain deadline: %.3f s", waited)
    assert waited >= 0.5
    assert waited < 5.0


def test_stubborn_worker_gets_sigkill(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(drain_timeout=0.3, kill_grace=0.3), stubborn_worker(str(events.path)))
    task = events.wait_for(lambda e: e["event"] == "task_started")
    signalled_at = time.monotonic()
    manager.signal(signal.SIGTERM)
    assert manager.wait() == 0
    took = time.monotonic() - signalled_at
    assert took >= 0.6
    assert wait_gone([task["pid"]]) == []


def test_second_sigterm_escalates(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(
        make_config(drain_timeout=60.0, kill_grace=5.0), busy_worker(str(events.path), work_after_stop=None)
    )
    events.wait_for(lambda e: e["event"] == "task_started")
    manager.signal(signal.SIGTERM)
    events.wait_for(lambda e: e["event"] == "stop_requested")
    second_at = time.monotonic()
    manager.signal(signal.SIGINT)
    handed_back = events.wait_for(lambda e: e["event"] == "handed_back", timeout=5.0)
    assert manager.wait() == 0
    # Far under the 60 s drain deadline.
    assert handed_back["time"] - second_at < 5.0


def test_manager_sigkill_leaves_no_process(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(min_processes=2, max_processes=2), parent_of_grandchild_worker(str(events.path)))
    first = events.wait_for(started_event)
    second = events.wait_for(started_event, after=events.events.index(first) + 1)
    descendants = [p.pid for p in psutil.Process(manager.pid).children(recursive=True)]
    expected = {first["pid"], second["pid"], first["grandchild"], second["grandchild"]}
    assert expected <= set(descendants)

    manager.signal(signal.SIGKILL)
    assert manager.wait() == -signal.SIGKILL
    alive = wait_gone(descendants)
    assert alive == [], [(pid, psutil.Process(pid).cmdline()) for pid in alive if psutil.pid_exists(pid)]


def test_stuck_worker_killed_and_replaced(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(read_timeout=0.2, idle_margin=0.2), silent_worker(str(events.path)))
    first = events.wait_for(started_event)
    replacement = events.wait_for(started_event, after=events.events.index(first) + 1)
    assert replacement["pid"] != first["pid"]
    # The limit runs from the fork, a little before the stand-in's first event.
    assert replacement["time"] - first["time"] >= 0.3
    assert wait_gone([first["pid"]]) == []
    status = manager.status()["task_lists"]["work"]
    assert status["crashes"] == 0
    assert status["restarts"] >= 1


def test_ttin_ttou_within_bounds(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(min_processes=1, max_processes=2), idle_worker(str(events.path)))
    first = events.wait_for(started_event)

    manager.signal(signal.SIGTTIN)
    second = events.wait_for(started_event, after=events.events.index(first) + 1)
    assert manager.status()["task_lists"]["work"]["desired"] == 2
    # At the maximum: no third worker.
    manager.signal(signal.SIGTTIN)
    assert manager.status()["task_lists"]["work"]["desired"] == 2

    manager.signal(signal.SIGTTOU)
    stopped = events.wait_for(lambda e: e["event"] == "stopped")
    assert stopped["pid"] in (first["pid"], second["pid"])
    manager.signal(signal.SIGTTOU)
    status = manager.status()["task_lists"]["work"]
    assert status["desired"] == 1
    assert status["processes"] == 1
    assert len([e for e in events.events if e["event"] == "started"]) == 2


def test_sighup_replaces_workers(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    reloaded = make_config(min_processes=2, max_processes=3)
    manager = start_manager(make_config(), idle_worker(str(events.path)), reload_config=lambda: reloaded)
    first = events.wait_for(started_event)

    manager.signal(signal.SIGHUP)
    stopped = events.wait_for(lambda e: e["event"] == "stopped")
    assert stopped["pid"] == first["pid"]
    new_a = events.wait_for(started_event, after=events.events.index(first) + 1)
    new_b = events.wait_for(started_event, after=events.events.index(new_a) + 1)
    assert {new_a["pid"], new_b["pid"]}.isdisjoint({first["pid"]})
    work = manager.status()["task_lists"]["work"]
    assert work["min"] == 2
    assert work["max"] == 3
    assert work["crashes"] == 0


def test_status_socket_and_manager_file(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(), idle_worker(str(events.path)))
    events.wait_for(started_event)
    status = manager.status()
    assert status["pid"] == manager.pid
    assert status["state"] == "running"
    socket_path = manager.state_dir / "status.sock"
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    document = json.loads((manager.state_dir / "manager.json").read_text())
    assert document["pid"] == manager.pid
    assert document["domain"] == "test-domain"
    assert document["endpoint_url"] is None
    assert document["status_socket"] == str(socket_path)


def test_crashed_worker_group_cleaned(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(), parent_of_grandchild_worker(str(events.path)))
    first = events.wait_for(started_event)
    os.kill(first["pid"], signal.SIGKILL)
    replacement = events.wait_for(started_event, after=events.events.index(first) + 1)
    # The dead worker's `sleep` was in its process group: the manager killed it on reap.
    assert wait_gone([first["grandchild"]]) == []
    assert psutil.pid_exists(replacement["grandchild"])
    assert manager.status()["task_lists"]["work"]["restarts"] == 1


def test_second_manager_same_state_dir_rejected(
    tmp_path: Path, events: EventPipe, start_manager: Callable[..., ManagerProcess]
) -> None:
    manager = start_manager(make_config(), idle_worker(str(events.path)))
    events.wait_for(started_event)
    second = start_manager(make_config(), idle_worker(str(events.path)))
    assert second.wait() == exitcodes.CONFIG_ERROR
    # The first manager's files and socket are untouched.
    assert manager.status()["pid"] == manager.pid
    assert json.loads((manager.state_dir / "manager.json").read_text())["pid"] == manager.pid
    assert len([e for e in events.events if started_event(e)]) == 1


def test_idle_manager_does_not_spin(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    manager = start_manager(make_config(min_processes=2, max_processes=2), idle_worker(str(events.path)))
    events.wait_for(started_event)
    events.wait_for(started_event, after=1)
    before = manager.status()
    cpu_before = psutil.Process(manager.pid).cpu_times()
    # A measurement window, not a synchronisation: no event is expected during it.
    select.select([], [], [], 1.0)
    after = manager.status()
    cpu_after = psutil.Process(manager.pid).cpu_times()
    wakeups = after["wakeups"] - before["wakeups"]
    cpu_seconds = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    log.warning("idle manager: %d wake-ups and %.3f s CPU in 1 s", wakeups, cpu_seconds)
    # One wake-up for the status request, at most one for the 5 s idle timer, and some
    # slack for late progress lines.
    assert wakeups <= 5
    assert cpu_seconds < 0.1


def test_busy_worker_over_timeout_killed(events: EventPipe, start_manager: Callable[..., ManagerProcess]) -> None:
    logs = LogPipe()
    try:
        config = make_config(busy_grace=0.2)
        manager = start_manager(config, short_task_worker(str(events.path)), log_fd=logs.write_fd)
        os.close(logs.write_fd)
        logs.write_fd = -1
        first = events.wait_for(lambda e: e["event"] == "task_started")
        replacement = events.wait_for(lambda e: e["event"] == "task_started", after=events.events.index(first) + 1)
        assert replacement["pid"] != first["pid"]
        # START_TO_CLOSE 0.3 s + grace 0.2 s, counted from the task_started report.
        assert replacement["time"] - first["time"] >= 0.5

        (stuck,) = logs.wait_for(lambda r: str(r.get("message", "")).startswith("worker is stuck"))
        assert stuck["worker_pid"] == first["pid"]
        assert stuck["activity_id"] == "act-3"
        assert "START_TO_CLOSE 0.3 s" in stuck["message"]
        (stopped,) = logs.wait_for(
            lambda r: str(r.get("message", "")).startswith("worker stopped") and r.get("worker_pid") == first["pid"]
        )
        assert stopped["exit_signal"] == "SIGKILL"
        assert stopped["stop_reason"] == "stuck"
        assert stopped["last_workflow_id"] == "wf-3"
        assert stopped["last_run_id"] == "run-3"
        assert stopped["last_activity_id"] == "act-3"
        assert manager.status()["task_lists"]["work"]["restarts"] >= 1
    finally:
        logs.close()
