"""The manager's supervision loop.

One loop runs every step in order: read signals, reap dead children, read progress,
kill stuck workers and escalate overdue stops, sample and scale, then start or stop
workers until each task list has its desired count. Signal handlers only queue the signal;
``signal.set_wakeup_fd`` writes a byte to a self-pipe, which wakes the loop's ``select``.
SIGCHLD has a handler too, so a dead worker is reaped and replaced in the same wake-up.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import logging
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from manager import backoff, liveness, scaling
from manager.sampling import (
    BacklogSampler,
    BacklogTarget,
    ResourceSampler,
    run_backlog_sampler,
)
from manager.status import (
    MANAGER_FILE,
    StatusServer,
    task_list_entry,
    worker_entry,
    write_json_atomically,
)
from manager.systemd import Notifier
from manager.worker_process import (
    ChildSpec,
    GroupGuard,
    WorkerProcess,
    WorkerTarget,
    role_for_kind,
    run_real_worker,
    signal_group,
    signal_process,
    spawn_worker,
)
from workers import exitcodes
from workers.config import Config, TaskListConfig
from workers.metrics import WORKER_RESTARTED, Metrics
from workers.progress import parse_progress_lines

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)
# A backlog count older than this many sample intervals is treated as unknown.
BACKLOG_MAX_AGE_INTERVALS = 3
# Maximum time the loop waits when nothing is due, in seconds: the cost of a lost wake-up.
MAX_WAIT = 5.0


class Phase(enum.IntEnum):
    RUNNING = 0
    # Workers were asked to stop and may finish their tasks until the drain deadline.
    DRAINING = 1
    # A second signal arrived: every remaining group gets SIGTERM now.
    TERMINATING = 2
    # A third signal arrived: every remaining group gets SIGKILL now.
    KILLING = 3


@dataclass
class TaskListState:
    """Supervision state of one task list."""

    config: TaskListConfig
    desired: int
    limits: liveness.LivenessLimits
    backoff: backoff.BackoffState = field(default_factory=backoff.BackoffState)
    scaling: scaling.ScalingState = field(default_factory=scaling.ScalingState)
    restarts: int = 0
    crashes: int = 0
    last_decision: scaling.ScalingDecision | None = None
    last_step: scaling.ScalingDecision | None = None
    last_step_at: float | None = None
    backlog: int | None = None


def liveness_limits(config: Config, task_list: TaskListConfig) -> liveness.LivenessLimits:
    """Return the liveness limits of one task list.

    A poll blocks at most the client's read timeout, so that is the idle limit's base. A
    task without a reported START_TO_CLOSE gets the largest one configured for its list.
    """
    if task_list.kind == "decision":
        timeouts = [w.task_start_to_close_timeout for w in config.workflow_types if w.task_list == task_list.name]
    else:
        timeouts = []
        for activity_type in config.activity_types:
            if activity_type.task_list == task_list.name:
                timeouts.append(activity_type.start_to_close_timeout)
                timeouts.extend(activity_type.retry.timeouts)
    return liveness.LivenessLimits(
        poll_timeout=config.client.read_timeout,
        idle_margin=config.supervision.idle_margin,
        busy_grace=config.supervision.busy_grace,
        default_task_timeout=float(max(timeouts, default=3600)),
    )


def validate_bounds(config: Config) -> None:
    """Raise ValueError naming the task list when its process bounds are unusable."""
    for task_list in config.task_lists:
        if task_list.min_processes < 0 or task_list.max_processes < task_list.min_processes:
            raise ValueError(
                f"invalid process bounds for task list {task_list.name!r}: min_processes "
                f"{task_list.min_processes}, max_processes {task_list.max_processes}; set 0 <= min <= max"
            )


class Arbiter:
    """Keeps each task list's workers running, scaled and healthy until a stop signal."""

    def __init__(
        self,
        config: Config,
        endpoint_url: str | None,
        state_dir: Path,
        reload_config: Callable[[], Config] | None = None,
        endpoint: object | None = None,
        *,
        worker_target: WorkerTarget = run_real_worker,
        backlog_target: BacklogTarget | None = run_backlog_sampler,
        notifier: Notifier | None = None,
        config_path: Path | None = None,
    ) -> None:
        validate_bounds(config)
        self.config = config
        # Written to manager.json so that client commands load the same configuration.
        self.config_path = config_path.resolve() if config_path is not None else None
        self.endpoint_url = endpoint_url
        self.state_dir = Path(state_dir)
        self._reload_config = reload_config
        self._endpoint = endpoint
        self._worker_target = worker_target
        self._notifier = notifier if notifier is not None else Notifier()

        self.phase = Phase.RUNNING
        self.workers: dict[int, WorkerProcess] = {}
        self.lists: dict[str, TaskListState] = {}
        self._build_lists(config, previous={})

        self._signals: list[int] = []
        self._wake_read = -1
        self._wake_write = -1
        self._selector: selectors.BaseSelector | None = None
        self._status = StatusServer(self.state_dir)
        self._guard = GroupGuard()
        self._sampler = BacklogSampler(backlog_target) if backlog_target is not None else None
        self._resources: ResourceSampler | None = None
        self._system = scaling.SystemSample(cpu_percent=0.0, available_memory_mb=0.0)
        self._started_at = 0.0
        self._next_sample_at = 0.0
        self._next_watchdog_at: float | None = None
        self._drain_deadline: float | None = None
        self._endpoint_restart = backoff.HelperRestart()
        self._sampler_restart = backoff.HelperRestart()
        self._owns_state_files = False
        # Loop iterations so far: status shows it, so a busy loop is visible.
        self._wakeups = 0
        # Its sender thread starts on the first restart. Forked workers never touch it: the
        # sender makes a fresh queue in any other process.
        self._metrics = Metrics.from_config(config)

    # ---------------------------------------------------------------- set-up and tear-down

    def _build_lists(self, config: Config, previous: dict[str, TaskListState]) -> None:
        lists = {}
        for task_list in config.task_lists:
            old = previous.get(task_list.name)
            if old is None:
                lists[task_list.name] = TaskListState(
                    config=task_list,
                    desired=task_list.min_processes,
                    limits=liveness_limits(config, task_list),
                )
                continue
            old.config = task_list
            old.desired = max(task_list.min_processes, min(old.desired, task_list.max_processes))
            old.limits = liveness_limits(config, task_list)
            lists[task_list.name] = old
        self.lists = lists

    def run(self) -> int:
        """Supervise until a shutdown signal and the drain are done. Returns the exit code."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Arbiter.run must be called from the main thread, which receives signals")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._started_at = time.monotonic()
        self._endpoint_restart.started(self._started_at)
        self._selector = selectors.DefaultSelector()
        previous_handlers = self._install_signals()
        try:
            try:
                self._status.open()
            except (OSError, RuntimeError, ValueError) as error:
                log.error(f"cannot open the status socket: {error}", extra={"state_dir": str(self.state_dir)})
                return exitcodes.CONFIG_ERROR
            self._owns_state_files = True
            self._selector.register(self._status.fileno(), selectors.EVENT_READ, "status")
            self._guard.start()
            self._start_sampler(time.monotonic())
            self._resources = ResourceSampler()
            self._next_sample_at = time.monotonic() + self.config.scaling.sample_interval
            if self._notifier.watchdog_interval is not None:
                self._next_watchdog_at = time.monotonic()
            self._manage(time.monotonic())
            self._write_manager_file()
            log.info(
                "manager started",
                extra={
                    "task_lists": {name: state.desired for name, state in self.lists.items()},
                    "endpoint_url": self.endpoint_url,
                    "state_dir": str(self.state_dir),
                },
            )
            self._notifier.ready(status=self._short_status())
            self._loop()
        except Exception:
            log.exception("supervision loop failed: killing every worker process group")
            raise
        finally:
            self._tear_down(previous_handlers)
            self._metrics.close(timeout=self.config.supervision.kill_grace)
        log.info("manager stopped")
        return exitcodes.OK

    def _install_signals(self) -> dict[int, Any]:
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        previous = {}
        for sig in HANDLED_SIGNALS:
            previous[sig] = signal.signal(sig, self._queue_signal)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        return previous

    def _queue_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _tear_down(self, previous_handlers: dict[int, Any]) -> None:
        # Workers still alive here means run() is leaving on an exception: take them down.
        for worker in list(self.workers.values()):
            signal_group(worker.pid, signal.SIGKILL)
            try:
                os.waitpid(worker.pid, 0)
            except ChildProcessError:
                pass
            self._forget_worker(worker)

        if self._sampler is not None and self._sampler.pid is not None:
            signal_group(self._sampler.pid, signal.SIGKILL)
            self._wait_helper(self._sampler.pid)
            self._sampler.close()
            self._sampler.pid = None
        if self._endpoint is not None:
            try:
                self._endpoint.stop()
                log.info("stopped embedded endpoint", extra={"endpoint_url": self.endpoint_url})
            except Exception as error:  # noqa: BLE001 - shutdown goes on
                log.error("stopping embedded endpoint failed", extra={"error": repr(error)})

        self._guard.stop()
        if self._guard.pid is not None:
            self._wait_helper(self._guard.pid)

        # Another manager may own the files when this one failed to start.
        if self._owns_state_files:
            self._status.close()
            try:
                (self.state_dir / MANAGER_FILE).unlink()
            except FileNotFoundError:
                pass
        signal.set_wakeup_fd(-1)
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if self._selector is not None:
            self._selector.close()
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1

    @staticmethod
    def _wait_helper(pid: int) -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    # ---------------------------------------------------------------- the loop

    def _loop(self) -> None:
        while True:
            self._wakeups += 1
            now = time.monotonic()
            status_requested = self._wait(max(0.0, self._next_wakeup(now) - now))
            now = time.monotonic()
            self._handle_signals(now)
            self._reap(now)
            self._check_endpoint(now)
            self._murder(now)
            if self.phase is Phase.RUNNING:
                if now >= self._next_sample_at:
                    self._sample_and_scale(now)
                self._manage(now)
            self._ping_watchdog(now)
            # The reply goes out last, so it includes what this wake-up changed.
            if status_requested:
                self._status.serve_ready(self.status())
            if self.phase is not Phase.RUNNING and not self.workers and self._helpers_done():
                return

    def _wait(self, timeout: float) -> bool:
        """Block until a descriptor is ready or ``timeout`` passes, and read what is ready.

        Returns True when a status client is waiting for its reply.
        """
        if self._signals:
            timeout = 0.0
        try:
            ready = self._selector.select(timeout)
        except InterruptedError:
            return False
        status_requested = False
        for key, _ in ready:
            tag = key.data
            if tag == "wake":
                self._drain_wake_pipe()
            elif tag == "status":
                status_requested = True
            elif tag == "sampler":
                self._sampler.read()
                if self._sampler.fd < 0:
                    self._selector.unregister(key.fd)
            elif isinstance(tag, WorkerProcess):
                self._read_progress(tag, time.monotonic())
        return status_requested

    def _drain_wake_pipe(self) -> None:
        while True:
            try:
                if not os.read(self._wake_read, 4096):
                    return
            except BlockingIOError:
                return

    def _next_wakeup(self, now: float) -> float:
        candidates = [now + MAX_WAIT]
        if self.phase is Phase.RUNNING:
            candidates.append(self._next_sample_at)
            for name, state in self.lists.items():
                if self._active_count(name) < state.desired:
                    candidates.append(state.backoff.next_start_at)
        for worker in self.workers.values():
            candidates.append(self._worker_deadline(worker))
        if self._next_watchdog_at is not None:
            candidates.append(self._next_watchdog_at)
        if self.phase is Phase.RUNNING:
            for restart in (self._endpoint_restart, self._sampler_restart):
                if restart.pending:
                    candidates.append(restart.state.next_start_at)
        return min(candidates)

    def _worker_deadline(self, worker: WorkerProcess) -> float:
        supervision = self.config.supervision
        if worker.escalation == "SIGKILL":
            return float("inf")
        if worker.escalation == "SIGTERM":
            return (worker.escalated_at or 0.0) + supervision.kill_grace
        state = self.lists.get(worker.spec.task_list)
        deadline = float("inf")
        if state is not None:
            deadline = liveness.next_deadline(worker.activity, state.limits)
        if not worker.survived and worker.stop_requested_at is None:
            deadline = min(deadline, worker.started_at + supervision.crash_window)
        stop_deadline = worker.stop_deadline
        if stop_deadline is not None:
            deadline = min(deadline, stop_deadline)
        return deadline

    def _helpers_done(self) -> bool:
        return self._sampler is None or self._sampler.pid is None

    # ---------------------------------------------------------------- signals

    def _handle_signals(self, now: float) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._on_stop_signal(name, now)
            elif signum == signal.SIGHUP:
                self._on_reload(now)
            elif signum == signal.SIGTTIN:
                self._adjust_all(+1, name)
            elif signum == signal.SIGTTOU:
                self._adjust_all(-1, name)

    def _on_stop_signal(self, name: str, now: float) -> None:
        if self.phase is Phase.RUNNING:
            self._begin_shutdown(name, now)
        elif self.phase is Phase.DRAINING:
            self.phase = Phase.TERMINATING
            log.warning(
                "second stop signal: sending SIGTERM to every worker process group now",
                extra={"signal": name, "workers": len(self.workers)},
            )
            for worker in self.workers.values():
                worker.stop_deadline = now
        else:
            self.phase = Phase.KILLING
            log.warning(
                "third stop signal: sending SIGKILL to every worker process group now",
                extra={"signal": name, "workers": len(self.workers)},
            )
            for worker in self.workers.values():
                self._kill_group(worker, now, "SIGKILL")
        self._write_manager_file()

    def _begin_shutdown(self, name: str, now: float) -> None:
        self.phase = Phase.DRAINING
        self._drain_deadline = now + self.config.supervision.drain_timeout
        self._notifier.stopping()
        log.info(
            "shutting down: asking every worker to stop after its current poll or task",
            extra={
                "signal": name,
                "workers": len(self.workers),
                "drain_timeout": self.config.supervision.drain_timeout,
            },
        )
        for worker in self.workers.values():
            if worker.stop_requested_at is None:
                self._request_stop(worker, now, "shutdown")
            worker.stop_deadline = self._drain_deadline
        if self._sampler is not None and self._sampler.pid is not None:
            signal_group(self._sampler.pid, signal.SIGTERM)

    def _on_reload(self, now: float) -> None:
        if self.phase is not Phase.RUNNING:
            log.warning("ignoring SIGHUP during shutdown")
            return
        if self._reload_config is None:
            log.warning("ignoring SIGHUP: this manager was started without a configuration file to reload")
            return
        self._notifier.reloading()
        try:
            config = self._reload_config()
            validate_bounds(config)
        except Exception as error:  # noqa: BLE001 - keep running on the old configuration
            log.error("configuration reload failed, keeping the current configuration", extra={"error": str(error)})
            self._notifier.ready(status=self._short_status())
            return

        # These are read once at start-up; a reload cannot move them.
        for key, old_value, new_value in (
            ("state_dir", self.config.state_dir, config.state_dir),
            ("swf.endpoint_url", self.config.swf.endpoint_url, config.swf.endpoint_url),
            ("swf.domain", self.config.swf.domain, config.swf.domain),
        ):
            if old_value != new_value:
                log.warning(
                    f"{key} changed in the configuration file, but a reload cannot apply it: restart the manager",
                    extra={"key": key, "current": str(old_value), "file": str(new_value)},
                )
        self.config = config
        self._build_lists(config, previous=self.lists)
        replaced = 0
        for worker in self.workers.values():
            if worker.stop_requested_at is None:
                self._request_stop(worker, now, "reload")
                replaced += 1
        log.info(
            "configuration reloaded: replacing workers gracefully",
            extra={"replaced": replaced, "task_lists": {name: s.desired for name, s in self.lists.items()}},
        )
        if self._sampler is not None and self._sampler.pid is not None:
            # The sampler exits and is started again with the new configuration.
            signal_group(self._sampler.pid, signal.SIGTERM)
        self._write_manager_file()
        self._notifier.ready(status=self._short_status())

    def _adjust_all(self, delta: int, signal_name: str) -> None:
        if self.phase is not Phase.RUNNING:
            return
        for name, state in self.lists.items():
            bounded = max(state.config.min_processes, min(state.desired + delta, state.config.max_processes))
            if bounded == state.desired:
                log.info(
                    "task list already at its bound",
                    extra={"signal": signal_name, "task_list": name, "desired": state.desired},
                )
                continue
            log.info(
                "operator scaling step",
                extra={"signal": signal_name, "task_list": name, "from": state.desired, "to": bounded},
            )
            state.desired = bounded
            # The scaler treats the operator's step as its own: the cooldown starts now and an
            # idle list waits the whole scale-down delay again before it undoes the step.
            state.scaling = replace(
                state.scaling, last_step_at=time.monotonic(), last_direction=delta, idle_since=None, cpu_history=()
            )

    # ---------------------------------------------------------------- reaping

    def _reap(self, now: float) -> None:
        for worker in list(self.workers.values()):
            try:
                pid, wait_status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, wait_status = worker.pid, 0
                log.error("worker vanished without a wait status", extra={"worker_pid": worker.pid})
            if pid == 0:
                continue
            self._on_worker_exit(worker, backoff.ExitStatus.from_wait_status(wait_status), now)

        if self._sampler is not None and self._sampler.pid is not None:
            pid, wait_status = self._try_wait(self._sampler.pid)
            if pid:
                status = backoff.ExitStatus.from_wait_status(wait_status)
                self._sampler.read()
                self._sampler.close()
                self._sampler.pid = None
                if self.phase is Phase.RUNNING:
                    supervision = self.config.supervision
                    restart = self._sampler_restart
                    restart.exited(
                        status, now, supervision.crash_window, supervision.backoff_initial, supervision.backoff_max
                    )
                    log.warning(
                        f"backlog sampler exited: {status.describe()}",
                        extra={"restart_in": round(max(0.0, restart.state.next_start_at - now), 3)},
                    )
        if self._sampler is not None and self._sampler_restart.due(now) and self.phase is Phase.RUNNING:
            self._start_sampler(now)

        if self._guard.pid is not None and self.phase is Phase.RUNNING:
            pid, wait_status = self._try_wait(self._guard.pid)
            if pid:
                status = backoff.ExitStatus.from_wait_status(wait_status)
                log.error("process group guard exited, starting it again", extra={"exit": status.describe()})
                self._guard.exited()
                self._guard.start()

    @staticmethod
    def _try_wait(pid: int) -> tuple[int, int]:
        try:
            return os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return pid, 0

    def _on_worker_exit(self, worker: WorkerProcess, status: backoff.ExitStatus, now: float) -> None:
        self._read_progress(worker, now)
        self._forget_worker(worker)
        # Processes the worker started may still run in its group.
        if signal_group(worker.pid, signal.SIGKILL):
            log.warning("killed processes left in an exited worker's process group", extra={"worker_pid": worker.pid})

        uptime = now - worker.started_at
        supervision = self.config.supervision
        kind = backoff.classify_exit(status, uptime, supervision.crash_window, worker.stop_requested_at is not None)
        task = worker.activity.task
        fields = {
            "worker_pid": worker.pid,
            "task_list": worker.spec.task_list,
            "role": worker.spec.role,
            "exit_code": status.code,
            "exit_signal": signal.Signals(status.signal).name if status.signal else None,
            "uptime": round(uptime, 3),
            "exit_kind": kind.value,
            "stop_reason": worker.stop_reason,
            "phase": worker.activity.phase.value,
            "tasks_done": worker.activity.tasks_done,
            **({f"last_{key}": value for key, value in task.as_dict().items()} if task else {}),
        }
        state = self.lists.get(worker.spec.task_list)
        if kind is backoff.ExitKind.REQUESTED:
            log.info(f"worker stopped: {status.describe()}", extra=fields)
        elif kind is backoff.ExitKind.CLEAN_RESTART:
            log.info(f"worker exited for a clean restart: {status.describe()}", extra=fields)
        elif status.code == exitcodes.CONFIG_ERROR:
            log.error(
                "worker exited with a configuration error: fix the configuration and send SIGHUP; "
                "restarts back off until then",
                extra=fields,
            )
        else:
            log.warning(f"worker died: {status.describe()}", extra=fields)
        if state is None or self.phase is not Phase.RUNNING:
            return

        if kind is not backoff.ExitKind.REQUESTED or worker.stop_reason == "stuck":
            state.restarts += 1
            self._metrics.track(
                WORKER_RESTARTED, None, {key: value for key, value in fields.items() if value is not None}
            )
        if kind is backoff.ExitKind.CRASH:
            state.crashes += 1
        state.backoff = backoff.record_exit(
            state.backoff, kind, now, supervision.backoff_initial, supervision.backoff_max
        )
        if state.backoff.crash_looping and kind is backoff.ExitKind.CRASH:
            log.error(
                "task list is crash-looping: delaying the next start",
                extra={
                    "task_list": worker.spec.task_list,
                    "consecutive_crashes": state.backoff.consecutive_crashes,
                    "delay": state.backoff.delay,
                },
            )

    def _forget_worker(self, worker: WorkerProcess) -> None:
        self.workers.pop(worker.pid, None)
        if worker.progress_fd >= 0:
            try:
                self._selector.unregister(worker.progress_fd)
            except (KeyError, ValueError):
                pass
            os.close(worker.progress_fd)
            worker.progress_fd = -1
        self._guard.remove(worker.pid)

    # ---------------------------------------------------------------- progress and liveness

    def _read_progress(self, worker: WorkerProcess, now: float) -> None:
        while worker.progress_fd >= 0:
            try:
                data = os.read(worker.progress_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                # The worker closed its end, most likely by exiting: SIGCHLD follows.
                self._selector.unregister(worker.progress_fd)
                os.close(worker.progress_fd)
                worker.progress_fd = -1
                return
            events, worker.buffer = parse_progress_lines(worker.buffer + data)
            for event in events:
                idle = worker.activity.phase in (liveness.Phase.STARTING, liveness.Phase.POLLING)
                worker.activity = liveness.apply_event(worker.activity, event, now)
                if idle and event.get("event") == "stopping":
                    self._release_held_polls(worker)

    def _release_held_polls(self, worker: WorkerProcess) -> None:
        """Let an idle worker that acknowledged its stop leave its long poll now.

        Only the embedded endpoint can do this. Real SWF keeps the poll open for up to 60 s, and the
        worker exits when it returns. Other workers' polls return empty too and are sent again.
        """
        release = getattr(self._endpoint, "release_held_polls", None)
        if release is None:
            return
        released = release()
        log.info(
            "released held polls so an idle worker can stop",
            extra={"worker_pid": worker.pid, "task_list": worker.spec.task_list, "released_polls": released},
        )

    def _murder(self, now: float) -> None:
        """Kill stuck workers and escalate stops that passed their deadline."""
        supervision = self.config.supervision
        for worker in list(self.workers.values()):
            if worker.escalation == "SIGKILL":
                continue
            if worker.escalation == "SIGTERM":
                if now >= (worker.escalated_at or now) + supervision.kill_grace:
                    log.warning(
                        "worker process group still alive after kill grace: sending SIGKILL",
                        extra=self._worker_fields(worker),
                    )
                    self._kill_group(worker, now, "SIGKILL")
                continue
            stop_deadline = worker.stop_deadline
            if stop_deadline is not None and now >= stop_deadline:
                escalated_early = self._drain_deadline is not None and now < self._drain_deadline
                cause = "a second stop signal" if escalated_early else "the drain deadline passed"
                log.warning(
                    f"{cause}: sending SIGTERM to the worker's process group",
                    extra=self._worker_fields(worker),
                )
                self._kill_group(worker, now, "SIGTERM")
                continue
            state = self.lists.get(worker.spec.task_list)
            if state is None:
                continue
            reason = liveness.stuck_reason(worker.activity, now, state.limits)
            if reason is not None:
                log.error(f"worker is stuck, killing it: {reason}", extra=self._worker_fields(worker))
                if worker.stop_requested_at is None:
                    worker.stop_requested_at = now
                worker.stop_reason = "stuck"
                self._kill_group(worker, now, "SIGKILL")

    def _kill_group(self, worker: WorkerProcess, now: float, signal_name: str) -> None:
        signal_group(worker.pid, signal.Signals[signal_name])
        worker.escalation = signal_name
        worker.escalated_at = now

    @staticmethod
    def _worker_fields(worker: WorkerProcess) -> dict[str, Any]:
        task = worker.activity.task
        return {
            "worker_pid": worker.pid,
            "task_list": worker.spec.task_list,
            "phase": worker.activity.phase.value,
            **(task.as_dict() if task else {}),
        }

    # ---------------------------------------------------------------- scaling and spawning

    def _active(self, task_list: str) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.spec.task_list == task_list and w.stop_requested_at is None]

    def _active_count(self, task_list: str) -> int:
        return len(self._active(task_list))

    def _sample_and_scale(self, now: float) -> None:
        interval = self.config.scaling.sample_interval
        self._next_sample_at = now + interval
        reading = self._resources.system()
        self._system = scaling.SystemSample(
            cpu_percent=reading.cpu_percent, available_memory_mb=reading.available_memory_mb
        )
        self._resources.update_workers(self.workers.values())
        for name, state in self.lists.items():
            active = self._active(name)
            busy = sum(1 for w in active if w.activity.phase is liveness.Phase.BUSY)
            polling = sum(1 for w in active if w.activity.phase is liveness.Phase.POLLING)
            if self._sampler is not None:
                state.backlog = self._sampler.backlog(name, now, BACKLOG_MAX_AGE_INTERVALS * interval)
            sample = scaling.ListSample(
                processes=len(active),
                busy=busy,
                polling=polling,
                backlog=state.backlog,
                cpu_percent=sum(w.cpu_percent for w in active),
                memory_mb=sum(w.memory_mb for w in active),
            )
            decision, state.scaling = scaling.decide(
                sample,
                self._system,
                state.desired,
                state.config.min_processes,
                state.config.max_processes,
                state.scaling,
                now,
                self.config.scaling,
            )
            state.last_decision = decision
            if decision.delta != 0:
                state.desired += decision.delta
                state.last_step = decision
                state.last_step_at = now
                log.info(
                    f"scaling step: {decision.reason}",
                    # The inputs hold the count before the step, so "desired" comes last and wins.
                    extra={**decision.inputs, "task_list": name, "delta": decision.delta, "desired": state.desired},
                )

    def _manage(self, now: float) -> None:
        """Start or stop workers until each list runs its desired count."""
        supervision = self.config.supervision
        for name, state in self.lists.items():
            active = self._active(name)
            for worker in active:
                if not worker.survived and now - worker.started_at >= supervision.crash_window:
                    worker.survived = True
                    if state.backoff.consecutive_crashes:
                        log.info(
                            "task list recovered: a worker outlived the crash window",
                            extra={"task_list": name, "worker_pid": worker.pid, "crash_window": supervision.crash_window},
                        )
                    state.backoff = backoff.record_survivor(state.backoff)
            missing = state.desired - len(active)
            if missing > 0 and now >= state.backoff.next_start_at:
                for _ in range(missing):
                    self._spawn(state.config, now)
            elif missing < 0:
                for worker in self._pick_to_stop(active, -missing):
                    self._request_stop(worker, now, "scale-down")
        # Workers of lists that a reload removed.
        for worker in list(self.workers.values()):
            if worker.spec.task_list not in self.lists and worker.stop_requested_at is None:
                self._request_stop(worker, now, "task list removed")

    @staticmethod
    def _pick_to_stop(active: list[WorkerProcess], count: int) -> list[WorkerProcess]:
        """Prefer polling workers, then starting ones, then the newest busy ones."""
        order = {liveness.Phase.POLLING: 0, liveness.Phase.STARTING: 1, liveness.Phase.STOPPING: 2, liveness.Phase.BUSY: 3}
        ranked = sorted(active, key=lambda w: (order[w.activity.phase], -w.started_at))
        return ranked[:count]

    def _spawn(self, task_list: TaskListConfig, now: float) -> WorkerProcess | None:
        spec = ChildSpec(role=role_for_kind(task_list.kind), task_list=task_list.name)
        try:
            worker = spawn_worker(
                spec, self.config, self.endpoint_url, self._worker_target, now, guard_fd=self._guard.write_fd
            )
        except OSError as error:
            supervision = self.config.supervision
            state = self.lists[task_list.name]
            state.backoff = backoff.record_exit(
                state.backoff, backoff.ExitKind.CRASH, now, supervision.backoff_initial, supervision.backoff_max
            )
            # Even a first failure waits, so a fork that keeps failing cannot spin the loop.
            if state.backoff.next_start_at < now + supervision.backoff_initial:
                state.backoff = dataclasses.replace(state.backoff, next_start_at=now + supervision.backoff_initial)
            log.error("fork failed", extra={"task_list": task_list.name, "error": str(error)})
            return None
        self.workers[worker.pid] = worker
        self._guard.add(worker.pid)
        self._selector.register(worker.progress_fd, selectors.EVENT_READ, worker)
        log.info("worker started", extra={"worker_pid": worker.pid, "task_list": spec.task_list, "role": spec.role})
        return worker

    def _request_stop(self, worker: WorkerProcess, now: float, reason: str) -> None:
        """Ask a worker to stop after its current poll or task (the worker handles SIGTERM)."""
        worker.stop_requested_at = now
        worker.stop_reason = reason
        log.info(f"asking worker to stop: {reason}", extra=self._worker_fields(worker))
        signal_process(worker.pid, signal.SIGTERM)

    # ---------------------------------------------------------------- helpers

    def _start_sampler(self, now: float) -> None:
        if self._sampler is None or not self.config.task_lists:
            self._sampler_restart.pending = False
            return
        supervision = self.config.supervision
        try:
            self._sampler.start(self.config, self.endpoint_url, now)
        except OSError as error:
            self._sampler_restart.start_failed(now, supervision.backoff_initial, supervision.backoff_max)
            log.error("starting the backlog sampler failed", extra={"error": str(error)})
            return
        self._sampler_restart.started(now)
        self._selector.register(self._sampler.fd, selectors.EVENT_READ, "sampler")

    def _check_endpoint(self, now: float) -> None:
        """Notice the embedded endpoint's exit and start it again on the same port, with backoff."""
        if self._endpoint is None or self.phase is not Phase.RUNNING:
            return
        supervision = self.config.supervision
        restart = self._endpoint_restart
        if not restart.pending:
            process = getattr(self._endpoint, "process", None)
            code = process.poll() if process is not None else None
            if code is None:
                return
            status = backoff.ExitStatus(code=code, signal=None) if code >= 0 else backoff.ExitStatus(code=None, signal=-code)
            restart.exited(status, now, supervision.crash_window, supervision.backoff_initial, supervision.backoff_max)
            log.error(
                f"embedded endpoint exited: {status.describe()}",
                extra={"endpoint_url": self.endpoint_url, "restart_in": round(max(0.0, restart.state.next_start_at - now), 3)},
            )
        if not restart.due(now):
            return

        try:
            url = self._endpoint.restart()
        except Exception as error:  # noqa: BLE001 - retried with backoff on a later wake-up
            restart.start_failed(now, supervision.backoff_initial, supervision.backoff_max)
            log.error(
                "restarting the embedded endpoint failed",
                extra={"error": repr(error), "retry_in": round(restart.state.next_start_at - now, 3)},
            )
            return
        restart.started(time.monotonic())
        if url != self.endpoint_url:
            # TODO: running workers keep the old URL until they are replaced.
            log.warning("embedded endpoint came back on another URL", extra={"old": self.endpoint_url, "new": url})
            self.endpoint_url = url
        log.info("embedded endpoint restarted", extra={"endpoint_url": url})
        self._write_manager_file()

    def _ping_watchdog(self, now: float) -> None:
        if self._next_watchdog_at is None or now < self._next_watchdog_at:
            return
        self._notifier.watchdog()
        self._next_watchdog_at = now + (self._notifier.watchdog_interval or MAX_WAIT)

    def _write_manager_file(self) -> None:
        document = {
            "pid": os.getpid(),
            "endpoint_url": self.endpoint_url,
            "domain": self.config.swf.domain,
            "status_socket": str(self._status.path),
            "state": self.phase.name.lower(),
            "config_path": str(self.config_path) if self.config_path is not None else None,
        }
        try:
            write_json_atomically(self.state_dir / MANAGER_FILE, document)
        except OSError as error:
            if error.errno != errno.ENOENT:
                log.error("cannot write the manager state file", extra={"error": str(error)})

    def _short_status(self) -> str:
        return ", ".join(f"{name}: {self._active_count(name)}/{s.desired}" for name, s in self.lists.items())

    def status(self) -> dict[str, Any]:
        """Return the status document that ``manager status`` prints."""
        now = time.monotonic()
        task_lists = {
            name: task_list_entry(state, [w for w in self.workers.values() if w.spec.task_list == name], now)
            for name, state in self.lists.items()
        }
        return {
            "pid": os.getpid(),
            "state": self.phase.name.lower(),
            "uptime": round(now - self._started_at, 1),
            "wakeups": self._wakeups,
            "endpoint_url": self.endpoint_url,
            "domain": self.config.swf.domain,
            "system": {
                "cpu_percent": round(self._system.cpu_percent, 1),
                "available_memory_mb": round(self._system.available_memory_mb),
            },
            "drain_deadline_in": (
                round(max(0.0, self._drain_deadline - now), 1) if self._drain_deadline is not None else None
            ),
            "task_lists": task_lists,
            "workers": [worker_entry(w, now) for w in sorted(self.workers.values(), key=lambda w: w.pid)],
        }
