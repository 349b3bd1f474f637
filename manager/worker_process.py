"""Forking one child process and tracking it: workers and the manager's helper children.

In the child, ``fork_child`` puts the process in its own process group and sets
PR_SET_PDEATHSIG, so the kernel sends it SIGKILL when the manager dies. It then restores
default signal handling and closes every inherited file descriptor except stdio and the
ones it keeps. Last it runs the target and passes its return value to ``os._exit``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from manager.liveness import WorkerActivity, new_activity
from workers.config import Config

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# Exit code of a child whose parent died between fork and PR_SET_PDEATHSIG.
ORPHANED_AT_START = 70

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class ChildSpec:
    """Role ("decider" or "activity") and task list of one worker child."""

    role: str
    task_list: str


# Runs in the forked child: (spec, config, progress_fd, endpoint_url) -> exit code.
WorkerTarget = Callable[[ChildSpec, Config, int, "str | None"], int]


def role_for_kind(kind: str) -> str:
    if kind == "decision":
        return "decider"
    if kind == "activity":
        return "activity"
    raise ValueError(f"invalid task list kind {kind!r}: expected 'decision' or 'activity'")


def make_identity(task_list: str) -> str:
    """Return this process's SWF identity: host, pid and task list, at most 256 characters."""
    return f"{os.uname().nodename}:{os.getpid()}:{task_list}"[:256]


def run_real_worker(spec: ChildSpec, config: Config, progress_fd: int, endpoint_url: str | None) -> int:
    """Run ``workers.runtime.run_worker`` in the child: the default worker target."""
    from workers import logs
    from workers.runtime import WorkerSpec, run_worker

    logs.set_process_fields(role=spec.role, task_list=spec.task_list)
    worker_spec = WorkerSpec(role=spec.role, task_list=spec.task_list, identity=make_identity(spec.task_list))
    if spec.role != "decider":
        return run_worker(worker_spec, config, progress_fd, endpoint_url)
    from workers.webhook import CompletionReporter

    reporter = CompletionReporter.from_config(config)
    try:
        return run_worker(
            worker_spec, config, progress_fd, endpoint_url, on_workflow_closed=reporter, metrics=reporter.metrics
        )
    finally:
        reporter.close(timeout=config.supervision.kill_grace)


def _set_parent_death_signal(sig: int) -> None:
    if _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")


def _prepare_child(
    parent_pid: int, keep_fds: Iterable[int], death_signal: int | None, guard_fd: int | None
) -> None:
    os.setpgid(0, 0)
    if death_signal is not None:
        _set_parent_death_signal(death_signal)
    # The parent may have died before prctl, and then no death signal will come.
    if os.getppid() != parent_pid:
        os._exit(ORPHANED_AT_START)
    if guard_fd is not None:
        # Register the new process group before the target can start a grandchild, so no
        # grandchild can outlive a manager that was killed right after the fork. The
        # descriptor is closed below with the other inherited ones.
        os.write(guard_fd, f"add {os.getpid()}\n".encode())

    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    # Python ignores SIGPIPE at start-up; a child that writes to a closed pipe should get
    # BrokenPipeError, which SIG_IGN gives, so restore that one.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())

    keep = sorted({0, 1, 2, *keep_fds})
    low = 0
    for fd in keep:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def fork_child(
    target: Callable[[], int],
    keep_fds: Iterable[int] = (),
    death_signal: int | None = signal.SIGKILL,
    guard_fd: int | None = None,
) -> int:
    """Fork a child that runs ``target()`` and exits with its return value. Returns the pid.

    ``death_signal`` is what the kernel sends the child when the manager dies; None sends
    nothing, for a child that must outlive the manager to clean up after it. ``guard_fd``
    is the write end of a ``GroupGuard`` pipe that the child registers its group with.
    """
    keep = tuple(keep_fds)
    parent_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    # Block signals across fork: a signal sent to the new child before it resets its
    # handlers would otherwise run the manager's handler in the child and be lost. The
    # child unblocks them after the reset, so such a signal reaches the default action.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pid

    code = 1
    try:
        _prepare_child(parent_pid, keep, death_signal, guard_fd)
        result = target()
        code = result if isinstance(result, int) else 0
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must reach os._exit, never return to the caller
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            code = 1
    finally:
        os._exit(code)


@dataclass
class WorkerProcess:
    """One live worker as the arbiter tracks it."""

    pid: int
    spec: ChildSpec
    started_at: float
    # Read end of the worker's progress pipe, non-blocking; -1 once closed.
    progress_fd: int
    activity: WorkerActivity
    buffer: bytes = b""
    # time.monotonic() of the graceful stop request, None while the worker should run.
    stop_requested_at: float | None = None
    stop_reason: str | None = None
    # time.monotonic() after which the worker's process group gets SIGTERM (set at shutdown).
    stop_deadline: float | None = None
    # Escalation already sent to the process group: None, "SIGTERM" or "SIGKILL".
    escalation: str | None = None
    escalated_at: float | None = None
    # True once the worker lived past the crash window and the list's crash count was reset.
    survived: bool = False
    cpu_percent: float = 0.0
    memory_mb: float = 0.0
    proc_handle: object | None = field(default=None, repr=False)


def spawn_worker(
    spec: ChildSpec,
    config: Config,
    endpoint_url: str | None,
    target: WorkerTarget,
    now: float,
    guard_fd: int | None = None,
) -> WorkerProcess:
    """Fork one worker with a fresh progress pipe and return its record."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = fork_child(
            lambda: target(spec, config, write_fd, endpoint_url), keep_fds=(write_fd,), guard_fd=guard_fd
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return WorkerProcess(
        pid=pid, spec=spec, started_at=now, progress_fd=read_fd, activity=new_activity(now)
    )


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``. Returns False when the group is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as error:
        log.error("cannot signal process group", extra={"pgid": pid, "signal": sig, "error": str(error)})
        return False
    return True


def signal_process(pid: int, sig: int) -> bool:
    """Send ``sig`` to one process. Returns False when it is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _run_group_guard(read_fd: int) -> int:
    """Keep the set of worker process groups and SIGKILL them all when the manager is gone.

    The manager writes "add PGID" and "remove PGID" lines. End of file means the manager
    exited or was killed, because only the manager has the write end.
    """
    groups: set[int] = set()
    buffer = b""
    while True:
        try:
            data = os.read(read_fd, 4096)
        except InterruptedError:
            continue
        if not data:
            break
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                continue
            if parts[0] == b"add":
                groups.add(int(parts[1]))
            elif parts[0] == b"remove":
                groups.discard(int(parts[1]))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    return 0


class GroupGuard:
    """A child that kills every worker process group, grandchildren included, when the manager dies.

    NOTE: a grandchild that leaves its worker's process group (setsid, setpgid) escapes it.

    PR_SET_PDEATHSIG only reaches the worker itself, while processes a worker started stay in
    its process group. The guard has no death signal. When the manager dies, the guard reads
    end of file on its pipe and sends SIGKILL to each group still registered.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self._write_fd = -1
        self._groups: set[int] = set()

    def start(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        self.pid = fork_child(lambda: _run_group_guard(read_fd), keep_fds=(read_fd,), death_signal=None)
        os.close(read_fd)
        self._write_fd = write_fd
        for pgid in self._groups:
            self._send(f"add {pgid}")
        log.info("started process group guard", extra={"guard_pid": self.pid})

    @property
    def write_fd(self) -> int | None:
        """The pipe a new worker registers its group on, None while no guard runs."""
        return self._write_fd if self._write_fd >= 0 else None

    def _send(self, line: str) -> None:
        if self._write_fd < 0:
            return
        try:
            os.write(self._write_fd, (line + "\n").encode())
        except OSError as error:
            log.error("cannot write to process group guard", extra={"guard_pid": self.pid, "error": str(error)})

    def add(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(f"add {pgid}")

    def remove(self, pgid: int) -> None:
        self._groups.discard(pgid)
        self._send(f"remove {pgid}")

    def exited(self) -> None:
        """Forget the dead guard's pipe; ``start`` forks a new one with the current groups."""
        if self._write_fd >= 0:
            os.close(self._write_fd)
        self._write_fd = -1
        self.pid = None

    def stop(self) -> None:
        """Close the pipe after every group was removed: the guard exits with nothing to kill."""
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1
