"""The entry point of a forked worker process: signals, the poll loop and recycling.

The manager forks, then calls ``run_worker`` in the child and passes its return value to
``os._exit``. Signals:

- the first SIGTERM or SIGINT stops polling. A poll in flight may still return a task:
  an activity task is handed back (failed with "retry": true and error "HandedBack"), a
  decision task is decided. A task already running continues to its end.
- a second SIGTERM or SIGINT aborts: the heartbeat thread hands the running activity
  task back and the process exits at once with ``os._exit``. A decider, and an activity
  worker with no task in hand, exit at once; SWF times out a decision task in hand.

Python runs a signal handler once for signals that arrive before it runs, so a second
signal counts only after the worker has reported ``stopping`` for the first.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from workers import exitcodes
from workers.activity import ABORTED, ActivityRunner, hand_back
from workers.client import error_code, is_unknown_resource, make_swf_client
from workers.config import Config, TaskListConfig
from workers.decider_loop import DecisionRunner
from workers.errors import ExecutionClosed
from workers.failure import MAX_ID_CHARS, cut_text
from workers.log_shipping import secret_env_names
from workers.logs import configure_logging
from workers.polling import poll_activity_task, poll_decision_task
from workers.progress import ProgressReporter

log = logging.getLogger(__name__)

# Pause after a poll that failed with an error other than throttling, doubling up to the cap.
POLL_ERROR_BACKOFF = 1.0
POLL_ERROR_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    """The role of one worker process, the task list it polls and its SWF identity."""

    role: Literal["decider", "activity"]
    task_list: str
    identity: str

    def __post_init__(self) -> None:
        if self.role not in ("decider", "activity"):
            raise ValueError(f"invalid worker role {self.role!r}: use 'decider' or 'activity'")
        if not self.task_list:
            raise ValueError("worker task list is empty: name the task list the worker polls")


@dataclass
class WorkerControls:
    """Flags that the signal handlers set and the loops read."""

    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    progress: ProgressReporter | None = None
    signals_received: int = 0
    activity_runner: ActivityRunner | None = None
    exit_process: Callable[[int], Any] = os._exit

    def on_signal(self, signum: int, frame: Any) -> None:
        # No logging here: the signal may interrupt a logging call that holds its lock.
        # A progress report is one os.write of a whole line, so it cannot interleave.
        self.signals_received += 1
        if self.signals_received == 1:
            self.stop.set()
            if self.progress is not None:
                self.progress.stopping(f"{signal.Signals(signum).name} received")
            return
        self.abort.set()
        self.stop.set()
        runner = self.activity_runner
        if runner is None or not runner.task_in_hand:
            self.exit_process(ABORTED)
            return
        # The heartbeat thread hands the task back and exits the process. Before it
        # starts, it checks the abort flag; after it stopped, the loop exits once the
        # task's response is sent.
        heartbeat = runner.current_heartbeat
        if heartbeat is not None:
            heartbeat.wake()


def install_signal_handlers(controls: WorkerControls) -> None:
    signal.signal(signal.SIGTERM, controls.on_signal)
    signal.signal(signal.SIGINT, controls.on_signal)


def _task_list_limits(config: Config, task_list: str) -> TaskListConfig:
    try:
        return config.task_list(task_list)
    except KeyError:
        return TaskListConfig(name=task_list, kind="activity")


def recycle_reason(limits: TaskListConfig, tasks_done: int) -> str | None:
    """Return why the worker should exit for a recycle, or None to keep going."""
    if limits.max_tasks_per_process and tasks_done >= limits.max_tasks_per_process:
        return f"ran {tasks_done} tasks, max_tasks_per_process is {limits.max_tasks_per_process}"
    if limits.max_memory_mb:
        rss_mb = psutil.Process().memory_info().rss / (1024 * 1024)
        if rss_mb > limits.max_memory_mb:
            return f"resident memory {rss_mb:.0f} MB is above max_memory_mb {limits.max_memory_mb}"
    return None


def run_worker(
    spec: WorkerSpec,
    config: Config,
    progress_fd: int | None,
    endpoint_url: str | None,
    *,
    on_workflow_closed: Callable[[dict[str, Any]], Any] | None = None,
    metrics: Any = None,
) -> int:
    """Run the worker described by ``spec`` until it is stopped, and return its exit code.

    ``on_workflow_closed`` is called by a decider with a summary each time it closes a
    workflow; its errors are logged and otherwise ignored.
    """
    configure_logging(
        config.logging, secret_envs=secret_env_names(config), role=spec.role, task_list=spec.task_list
    )
    identity = cut_text(spec.identity, MAX_ID_CHARS)
    if identity != spec.identity:
        log.warning("worker identity is over %d characters and was cut to %r", MAX_ID_CHARS, identity)
    progress = ProgressReporter(progress_fd)
    controls = WorkerControls(progress=progress)
    install_signal_handlers(controls)
    log.info("worker started: %s on task list %s as %s, pid %d", spec.role, spec.task_list, identity, os.getpid())

    client = make_swf_client(config, endpoint_url)
    loop = WorkerLoop(spec, identity, config, client, progress, controls, on_workflow_closed, metrics)
    code = loop.run()
    log.info("worker stopping with exit code %d after %d tasks", code, loop.tasks_done)
    return code


class WorkerLoop:
    """Polls one task list and runs what it gets until stopped, closed out or recycled."""

    def __init__(
        self,
        spec: WorkerSpec,
        identity: str,
        config: Config,
        client: Any,
        progress: ProgressReporter,
        controls: WorkerControls,
        on_workflow_closed: Callable[[dict[str, Any]], Any] | None = None,
        metrics: Any = None,
    ) -> None:
        self.spec = spec
        self.identity = identity
        self.config = config
        self.client = client
        self.progress = progress
        self.controls = controls
        self.limits = _task_list_limits(config, spec.task_list)
        self.tasks_done = 0
        self.kind = "decision" if spec.role == "decider" else "activity"
        if spec.role == "activity":
            self.activity_runner: ActivityRunner | None = ActivityRunner(
                client, config, progress, controls.abort, controls.exit_process
            )
            controls.activity_runner = self.activity_runner
            self.decision_runner: DecisionRunner | None = None
        else:
            self.activity_runner = None
            self.decision_runner = DecisionRunner(client, config, identity, on_workflow_closed, metrics)

    def run(self) -> int:
        poll_errors = 0
        while not self.controls.stop.is_set():
            self.progress.poll_started(self.kind)
            try:
                task = self._poll()
            except (ClientError, BotoCoreError) as error:
                self.progress.poll_returned(False)
                if is_unknown_resource(error):
                    log.error(
                        "poll on task list %s failed: domain %s is not registered (%s); fix swf.domain or register it",
                        self.spec.task_list,
                        self.config.swf.domain,
                        error,
                    )
                    return exitcodes.CONFIG_ERROR
                poll_errors += 1
                delay = min(POLL_ERROR_BACKOFF * 2 ** (poll_errors - 1), POLL_ERROR_BACKOFF_MAX)
                log.warning(
                    "poll on %s failed (%s), retrying in %.1f s: %s",
                    self.spec.task_list,
                    error_code(error) or type(error).__name__,
                    delay,
                    error,
                )
                self.controls.stop.wait(delay)
                continue
            poll_errors = 0
            self.progress.poll_returned(task is not None)
            if task is None:
                continue

            code = self._handle(task)
            if code is not None:
                return code
            self.tasks_done += 1
            if self.controls.abort.is_set():
                self.progress.stopping("abort")
                return ABORTED
            reason = recycle_reason(self.limits, self.tasks_done)
            if reason is not None:
                log.info("recycling the worker: %s", reason)
                self.progress.stopping("recycle")
                return exitcodes.RECYCLE

        self.progress.stopping("stop requested")
        return exitcodes.OK

    def _poll(self) -> dict[str, Any] | None:
        domain = self.config.swf.domain
        stop = self.controls.stop
        if self.spec.role == "decider":
            return poll_decision_task(self.client, domain, self.spec.task_list, self.identity, stop_event=stop)
        return poll_activity_task(self.client, domain, self.spec.task_list, self.identity, stop_event=stop)

    def _handle(self, task: dict[str, Any]) -> int | None:
        """Run or hand back one task. Returns an exit code when the worker must exit now."""
        try:
            if self.decision_runner is not None:
                outcome = self.decision_runner.run(task)
            elif self.controls.stop.is_set():
                hand_back(self.client, task, self.progress)
                return None
            else:
                assert self.activity_runner is not None
                outcome = self.activity_runner.run(task)
        except ExecutionClosed as error:
            log.warning("task closed by SWF, exiting for a fresh process: %s", error)
            self.progress.task_finished("closed")
            return exitcodes.EXECUTION_CLOSED
        except (ClientError, BotoCoreError) as error:
            # The response did not reach SWF, which times the task out and schedules it again.
            execution = task.get("workflowExecution", {})
            log.error(
                "responding to SWF failed for workflow %s run %s activity %s: %s",
                execution.get("workflowId"),
                execution.get("runId"),
                task.get("activityId"),
                error,
            )
            self.progress.task_finished("failed")
            return None
        self.progress.task_finished(outcome)
        return None
