"""The activity runtime: runs one activity task with a heartbeat thread and responds to SWF.

The handler runs on the worker's main thread. A heartbeat thread records the handler's
latest progress with SWF every third of the type's heartbeat timeout, sets
``context.cancelled`` when SWF requests a cancel, and hands the task back when the worker
receives a second stop signal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workers import exitcodes
from workers.exitcodes import ABORTED
from workers.activities import UnknownActivityType, resolve_handler
from workers.client import RESPONSE_RETRY_SECONDS, call_with_backoff, is_unknown_resource
from workers.config import ActivityTypeConfig, Config
from workers.errors import ExecutionClosed, PermanentError, TaskCancelled
from workers.failure import MAX_DETAILS_CHARS, MAX_HEARTBEAT_DETAILS_CHARS, encode_details, failure_payload
from workers.logs import log_context
from workers.progress import ProgressReporter
from workers.results import encode_result, resolve_result

log = logging.getLogger(__name__)

# Shortest heartbeat interval, so a tiny heartbeat timeout cannot make the thread spin.
MIN_HEARTBEAT_INTERVAL = 0.2


@dataclass
class ActivityContext:
    """The task's ids, the configuration and the heartbeat of a running handler."""

    workflow_id: str
    run_id: str
    activity_id: str
    activity_type: str
    config: Config
    storage_root: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set when SWF returned UnknownResourceFault to a heartbeat: the execution closed or
    # the task timed out.
    closed: threading.Event = field(default_factory=threading.Event)
    _details: dict[str, Any] | None = None
    _details_lock: threading.Lock = field(default_factory=threading.Lock)

    def heartbeat(self, details: dict[str, Any] | None = None) -> None:
        """Record progress for the heartbeat thread to send.

        Raises TaskCancelled once SWF has requested a cancel, and ExecutionClosed once
        SWF returned UnknownResourceFault for the task, so the handler stops its work.
        """
        if details is not None:
            with self._details_lock:
                self._details = dict(details)
        if self.closed.is_set():
            raise ExecutionClosed(f"activity {self.activity_id} of workflow {self.workflow_id} is no longer known to SWF")
        if self.cancelled.is_set():
            raise TaskCancelled(f"SWF requested a cancel of activity {self.activity_id}")

    def latest_details(self) -> dict[str, Any] | None:
        with self._details_lock:
            return None if self._details is None else dict(self._details)

    @property
    def storage(self) -> Any:
        """A ``workers.storage.Storage`` for ``storage_root``."""
        from workers.storage import Storage

        return Storage(self.storage_root)


class _LazyStorage:
    """Builds the context's storage on first use, so tasks with small results never import it."""

    def __init__(self, context: ActivityContext) -> None:
        self._context = context
        self._storage: Any = None

    def _get(self) -> Any:
        if self._storage is None:
            self._storage = self._context.storage
        return self._storage

    def put_bytes(self, key: str, data: bytes) -> str:
        return self._get().put_bytes(key, data)

    def get_bytes(self, url: str) -> bytes:
        return self._get().get_bytes(url)


class ResponseGate:
    """Lets exactly one thread send the task's final response to SWF."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True


class HeartbeatThread(threading.Thread):
    """Sends heartbeats for one task until stopped, and hands the task back on abort."""

    def __init__(
        self,
        client: Any,
        task_token: str,
        context: ActivityContext,
        interval: float,
        progress: ProgressReporter,
        abort: threading.Event,
        gate: ResponseGate,
        exit_process: Callable[[int], Any] = os._exit,
    ) -> None:
        super().__init__(name=f"heartbeat-{context.activity_id}", daemon=True)
        self._client = client
        self._token = task_token
        self._context = context
        self._interval = max(MIN_HEARTBEAT_INTERVAL, interval)
        self._progress = progress
        self._abort = abort
        self._gate = gate
        self._exit_process = exit_process
        self._stop_event = threading.Event()
        self._wake_event = threading.Event()
        self.beats = 0
        self.failures_in_a_row = 0

    def stop(self) -> None:
        self._stop_event.set()
        self._wake_event.set()

    def wake(self) -> None:
        """Make the thread check the abort flag now. Safe to call from a signal handler."""
        self._wake_event.set()

    def run(self) -> None:
        ids = self._ids()
        with log_context(**ids):
            if self._abort.is_set():
                # The abort came after the task was polled but before this thread started.
                self._hand_back_and_exit()
                return
            next_beat = time.monotonic() + self._interval
            while True:
                self._wake_event.wait(max(0.0, next_beat - time.monotonic()))
                self._wake_event.clear()
                if self._abort.is_set():
                    self._hand_back_and_exit()
                    return
                if self._stop_event.is_set():
                    return
                if time.monotonic() >= next_beat:
                    self._beat()
                    next_beat = time.monotonic() + self._interval
                    if self._context.closed.is_set():
                        self._wait_for_handler_or_exit()
                        return

    def _ids(self) -> dict[str, str]:
        return {
            "workflow_id": self._context.workflow_id,
            "run_id": self._context.run_id,
            "activity_id": self._context.activity_id,
        }

    def _beat(self) -> None:
        params: dict[str, Any] = {"taskToken": self._token}
        details = self._context.latest_details()
        if details is not None:
            params["details"] = encode_details(details, MAX_HEARTBEAT_DETAILS_CHARS)
        try:
            response = call_with_backoff(self._client, "record_activity_task_heartbeat", stop_event=self._stop_event, **params)
        except Exception as error:  # noqa: BLE001 - the heartbeat thread must survive any transient error
            if is_unknown_resource(error):
                log.warning(
                    "heartbeat of activity %s of workflow %s run %s got UnknownResourceFault: the execution closed "
                    "or the task timed out; stopping the task",
                    self._context.activity_id,
                    self._context.workflow_id,
                    self._context.run_id,
                )
                self._context.closed.set()
                self._context.cancelled.set()
                return
            self.failures_in_a_row += 1
            # Log the first failure and every tenth after it, so an outage does not flood the log.
            if self.failures_in_a_row % 10 == 1:
                log.warning(
                    "heartbeat of activity %s failed, will retry next interval (%d failures in a row): %r",
                    self._context.activity_id,
                    self.failures_in_a_row,
                    error,
                )
            return
        if self.failures_in_a_row:
            log.info("heartbeat of activity %s sent again after %d failures", self._context.activity_id, self.failures_in_a_row)
            self.failures_in_a_row = 0
        self.beats += 1
        self._progress.heartbeat(self._context.activity_id)
        if response.get("cancelRequested") and not self._context.cancelled.is_set():
            log.info("SWF requested a cancel of activity %s", self._context.activity_id)
            self._context.cancelled.set()

    def _wait_for_handler_or_exit(self) -> None:
        """Give a handler that does not heartbeat one interval to stop, then exit the process."""
        if self._stop_event.wait(self._interval):
            return
        log.warning(
            "handler of activity %s did not stop within %.1f s after the execution closed; exiting the worker",
            self._context.activity_id,
            self._interval,
        )
        self._progress.task_finished("closed")
        self._exit_process(exitcodes.EXECUTION_CLOSED)

    def _hand_back_and_exit(self) -> None:
        if not self._gate.claim():
            # The main thread is sending the task's response, and the worker loop exits after it.
            return
        log.warning("aborting: handing activity %s back to SWF", self._context.activity_id)
        reason, details = failure_payload(True, "HandedBack", "the worker was told to stop at once (a second stop signal, or the drain deadline passed) while the task ran")
        try:
            self._client.respond_activity_task_failed(taskToken=self._token, reason=reason, details=details)
            self._progress.task_finished("handed_back")
        except Exception as error:  # noqa: BLE001 - exiting anyway; SWF times the task out
            log.warning("handing back activity %s failed: %r; SWF will time it out", self._context.activity_id, error)
        self._exit_process(ABORTED)


def heartbeat_interval(activity_type: ActivityTypeConfig) -> float:
    """Return a third of the heartbeat timeout, so two heartbeats can be lost without a timeout."""
    return activity_type.heartbeat_timeout / 3.0


def longest_start_to_close(activity_type: ActivityTypeConfig) -> int:
    return max((*activity_type.retry.timeouts, activity_type.start_to_close_timeout))


@dataclass
class TaskIds:
    workflow_id: str
    run_id: str
    activity_id: str
    activity_type: str

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> TaskIds:
        execution = task.get("workflowExecution", {})
        return cls(
            workflow_id=execution.get("workflowId", ""),
            run_id=execution.get("runId", ""),
            activity_id=task.get("activityId", ""),
            activity_type=task.get("activityType", {}).get("name", ""),
        )


def respond(client: Any, ids: TaskIds, operation: str, **params: Any) -> None:
    """Send a task's response. On UnknownResourceFault, log the ids and raise ExecutionClosed."""
    try:
        call_with_backoff(client, operation, retry_connection_errors_for=RESPONSE_RETRY_SECONDS, **params)
    except Exception as error:
        if is_unknown_resource(error):
            log.warning(
                "%s for activity %s of workflow %s run %s got UnknownResourceFault: the execution closed or the "
                "task timed out; not retried",
                operation,
                ids.activity_id,
                ids.workflow_id,
                ids.run_id,
            )
            raise ExecutionClosed(f"{operation} for activity {ids.activity_id}: {error}") from error
        raise


def respond_failed(client: Any, ids: TaskIds, token: str, retry: bool, error: str, message: str) -> None:
    reason, details = failure_payload(retry, error, message)
    respond(client, ids, "respond_activity_task_failed", taskToken=token, reason=reason, details=details)


def hand_back(client: Any, task: dict[str, Any], progress: ProgressReporter) -> None:
    """Fail a task that this worker will not run with "retry": true, so the decider reschedules it."""
    ids = TaskIds.from_task(task)
    with log_context(workflow_id=ids.workflow_id, run_id=ids.run_id, activity_id=ids.activity_id):
        log.info("handing back activity %s: the worker is stopping", ids.activity_id)
        try:
            respond_failed(client, ids, task["taskToken"], True, "HandedBack", "the worker stopped before it started the task")
            progress.task_finished("handed_back")
        except ExecutionClosed:
            progress.task_finished("closed")


@dataclass
class ActivityRunner:
    """Runs activity tasks for one worker process."""

    client: Any
    config: Config
    progress: ProgressReporter
    abort: threading.Event
    exit_process: Callable[[int], Any] = os._exit
    # The heartbeat thread of the task in hand, for the abort signal handler to wake.
    current_heartbeat: HeartbeatThread | None = None
    # True from the moment a task is taken until its response is sent.
    task_in_hand: bool = False

    def run(self, task: dict[str, Any]) -> str:
        """Run ``task`` and respond to SWF. Returns the outcome for progress reports.

        Raises ExecutionClosed when SWF returns UnknownResourceFault for the task.
        """
        ids = TaskIds.from_task(task)
        self.task_in_hand = True
        try:
            with log_context(workflow_id=ids.workflow_id, run_id=ids.run_id, activity_id=ids.activity_id):
                return self._run(task, ids)
        finally:
            self.task_in_hand = False

    def _run(self, task: dict[str, Any], ids: TaskIds) -> str:
        token = task["taskToken"]
        try:
            activity_type = self.config.activity_type(ids.activity_type)
        except KeyError:
            message = f"activity type {ids.activity_type!r} is not configured on this worker: add it to activity_types"
            log.error(message)
            self.progress.task_started(ids.workflow_id, ids.run_id, ids.activity_id, ids.activity_type, None)
            respond_failed(self.client, ids, token, False, "NotConfigured", message)
            return "failed"
        context = ActivityContext(
            workflow_id=ids.workflow_id,
            run_id=ids.run_id,
            activity_id=ids.activity_id,
            activity_type=ids.activity_type,
            config=self.config,
            storage_root=self.config.storage.root,
        )
        gate = ResponseGate()
        heartbeat = HeartbeatThread(
            self.client, token, context, heartbeat_interval(activity_type), self.progress, self.abort, gate, self.exit_process
        )
        self.current_heartbeat = heartbeat
        heartbeat.start()
        self.progress.task_started(
            ids.workflow_id, ids.run_id, ids.activity_id, ids.activity_type, longest_start_to_close(activity_type)
        )
        try:
            answer = self._call_handler(task, ids, context)
        finally:
            heartbeat.stop()
            heartbeat.join()
            self.current_heartbeat = None

        if context.closed.is_set():
            raise ExecutionClosed(f"activity {ids.activity_id} of workflow {ids.workflow_id} closed while it ran")
        if not gate.claim():
            # The heartbeat thread handed the task back and is exiting the process.
            return "handed_back"
        return self._send(answer, ids, token)

    def _call_handler(self, task: dict[str, Any], ids: TaskIds, context: ActivityContext) -> tuple[str, Any]:
        """Run the handler and return ("completed", result) or ("canceled" | "failed", payload)."""
        started = time.monotonic()
        storage = _LazyStorage(context)
        try:
            handler = resolve_handler(ids.activity_type)
            task_input = _parse_input(task.get("input"))
            if isinstance(task_input, dict) and "previous" in task_input:
                task_input["previous"] = resolve_result(task_input["previous"], storage)
            result = handler(task_input, context)
            if result is None:
                result = {}
            key = f"results/{ids.workflow_id}/{ids.run_id}/{ids.activity_id}.json"
            encoded = encode_result(result, storage, key)
        except TaskCancelled as error:
            log.info("activity %s stopped on a cancel request", ids.activity_id)
            return "canceled", str(error)
        except ExecutionClosed:
            return "closed", None
        except (PermanentError, UnknownActivityType) as error:
            log.warning("activity %s failed for good: %s: %s", ids.activity_id, type(error).__name__, error)
            return "failed", (False, type(error).__name__, str(error))
        except Exception as error:  # noqa: BLE001 - any handler error becomes a retryable failure
            log.exception("activity %s failed, a retry may succeed", ids.activity_id)
            return "failed", (True, type(error).__name__, str(error))
        log.info(
            "activity %s completed in %.3f s",
            ids.activity_id,
            time.monotonic() - started,
            extra={"duration": time.monotonic() - started},
        )
        return "completed", encoded

    def _send(self, answer: tuple[str, Any], ids: TaskIds, token: str) -> str:
        outcome, payload = answer
        if outcome == "completed":
            respond(self.client, ids, "respond_activity_task_completed", taskToken=token, result=payload)
        elif outcome == "canceled":
            details = encode_details({"message": payload}, MAX_DETAILS_CHARS)
            respond(self.client, ids, "respond_activity_task_canceled", taskToken=token, details=details)
        elif outcome == "closed":
            raise ExecutionClosed(f"activity {ids.activity_id} of workflow {ids.workflow_id} closed while it ran")
        else:
            retry, error, message = payload
            respond_failed(self.client, ids, token, retry, error, message)
        return outcome


def _parse_input(text: str | None) -> Any:
    if text is None or text == "":
        return {}
    try:
        return json.loads(text)
    except ValueError as error:
        raise PermanentError(f"activity input is not valid JSON ({error}): {text[:200]!r}") from error
