"""Mixpanel events about workflows, activities and workers.

``Metrics.track`` only puts the event on a bounded queue and returns, so a slow or
unreachable Mixpanel cannot delay or crash a worker. A daemon thread takes the events
off the queue and sends them in batches through the ``mixpanel`` package's
BufferedConsumer. Events that do not fit in the queue are dropped and counted; a batch that
Mixpanel rejects or that times out is dropped, counted and logged.

Without a token, events are appended as JSON lines to ``metrics.events_file``, or dropped
when that is not set either.

Threads do not survive ``fork``, so the consumer thread starts on the first event in each
process, and again in a child that inherited a Metrics object from its parent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mixpanel import BufferedConsumer, Mixpanel, MixpanelException

from workers.config import Config
from workers.replay import CARRIED_KEY
from workers.sender_thread import SenderThread

logger = logging.getLogger(__name__)

WORKFLOW_STARTED = "Workflow Started"
WORKFLOW_COMPLETED = "Workflow Completed"
WORKFLOW_FAILED = "Workflow Failed"
WORKFLOW_CANCELED = "Workflow Canceled"
ACTIVITY_COMPLETED = "Activity Completed"
ACTIVITY_FAILED = "Activity Failed"
ACTIVITY_TIMED_OUT = "Activity Timed Out"
WORKER_RESTARTED = "Worker Restarted"

# Mixpanel's /track endpoint takes at most 50 events per request; BufferedConsumer caps
# its buffer there too.
MAX_BATCH = 50
# Drops are logged at most once per this many seconds, with the running count.
DROP_REPORT_INTERVAL = 60.0


@dataclass(frozen=True)
class Event:
    name: str
    distinct_id: str
    properties: dict[str, Any]


class EventSink(Protocol):
    def send(self, event: Event) -> None: ...

    def flush(self) -> None: ...


class MixpanelSink:
    """Sends events through a BufferedConsumer; drops a batch that fails to send."""

    def __init__(self, token: str, api_host: str, request_timeout: float, retry_limit: int) -> None:
        self._token = token
        self._request_timeout = request_timeout
        self._retry_limit = retry_limit
        # The mixpanel package builds https://{api_host}/track. A full base URL such as
        # http://127.0.0.1:8080 is accepted too, for a local stand-in of the API. The package
        # (5.4) mounts its retrying adapter for https:// only, so plain HTTP gets no retries.
        if api_host.startswith(("http://", "https://")):
            self._events_url: str | None = api_host.rstrip("/") + "/track"
        else:
            self._events_url = None
        self._api_host = api_host
        self.sent = 0
        self.lost = 0
        self._buffered = 0
        self._client = self._new_client()

    def _new_client(self) -> Mixpanel:
        consumer = BufferedConsumer(
            max_size=MAX_BATCH,
            events_url=self._events_url,
            api_host=self._api_host,
            request_timeout=self._request_timeout,
            retry_limit=self._retry_limit,
        )
        self._consumer = consumer
        return Mixpanel(self._token, consumer=consumer)

    def send(self, event: Event) -> None:
        self._buffered += 1
        try:
            # BufferedConsumer posts the batch once it contains MAX_BATCH events.
            self._client.track(event.distinct_id, event.name, event.properties)
        except MixpanelException as error:
            self._drop_buffer(error)
            return
        if self._buffered >= MAX_BATCH:
            self.sent += self._buffered
            self._buffered = 0

    def flush(self) -> None:
        if not self._buffered:
            return
        try:
            self._consumer.flush()
        except MixpanelException as error:
            self._drop_buffer(error)
            return
        self.sent += self._buffered
        self._buffered = 0

    def _drop_buffer(self, error: MixpanelException) -> None:
        # BufferedConsumer keeps a batch that failed and retries it with the next one, so
        # its buffer would grow without bound while Mixpanel is down. A fresh client drops it.
        self.lost += self._buffered
        logger.error(
            "Mixpanel rejected or did not respond to a batch of %d events: %s; %d events lost so far",
            self._buffered,
            _describe(error),
            self.lost,
        )
        self._buffered = 0
        self._client = self._new_client()


class JsonLinesSink:
    """Appends events to a file as JSON lines; each line is written with one ``write``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lines: list[str] = []
        self.lost = 0

    def send(self, event: Event) -> None:
        record = {"event": event.name, "distinct_id": event.distinct_id, **event.properties}
        self._lines.append(json.dumps(record, default=str) + "\n")
        if len(self._lines) >= MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            # O_APPEND makes each write land at the end even with several processes writing.
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for line in lines:
                    os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as error:
            self.lost += len(lines)
            logger.error(
                "cannot append %d events to %s: %s; check metrics.events_file; %d events lost so far",
                len(lines),
                self._path,
                error,
                self.lost,
            )


class _FlushRequest:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class Metrics(SenderThread):
    """Queues events for a background sender. ``track`` never waits on the network and never raises."""

    thread_name = "metrics-sender"

    def __init__(
        self,
        sink: EventSink | None,
        queue_size: int = 10000,
        flush_interval: float = 5.0,
    ) -> None:
        super().__init__(queue_size)
        self.sink = sink
        self.flush_interval = flush_interval
        self.dropped = 0
        self._last_drop_report = float("-inf")

    @classmethod
    def from_config(
        cls,
        config: Config,
        request_timeout: float = 10.0,
        retry_limit: int = 2,
        flush_interval: float = 5.0,
    ) -> Metrics:
        """Build the sender that ``config.metrics`` selects: Mixpanel, a JSON-lines file or none.

        ``request_timeout`` bounds one HTTP request in seconds; a batch may take
        ``retry_limit + 1`` of them before it is dropped.
        """
        settings = config.metrics
        if settings.queue_size < 1:
            raise ValueError(f"metrics.queue_size is {settings.queue_size}; set it to 1 or more")
        sink: EventSink | None = None
        token = os.environ.get(settings.mixpanel_token_env, "") if settings.mixpanel_token_env else ""
        if token:
            sink = MixpanelSink(token, settings.mixpanel_api_host, request_timeout, retry_limit)
            destination = f"Mixpanel at {settings.mixpanel_api_host}"
        elif settings.events_file:
            sink = JsonLinesSink(Path(settings.events_file))
            destination = f"JSON lines in {settings.events_file}"
        else:
            destination = "nowhere (metrics are off)"
        if settings.mixpanel_token_env and not token:
            logger.warning(
                "environment variable %s (metrics.mixpanel_token_env) is empty or not set, so events go to %s",
                settings.mixpanel_token_env,
                destination,
            )
        else:
            logger.info("metrics events go to %s", destination)
        return cls(sink, queue_size=settings.queue_size, flush_interval=flush_interval)

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def track(self, event: str, distinct_id: str | None, properties: dict[str, Any] | None = None) -> None:
        """Queue one event. ``distinct_id`` is the user's uuid, or None for no user."""
        if self.sink is None:
            return
        try:
            merged = dict(properties or {})
            # The event time is when it happened, not when the thread sends it.
            merged.setdefault("time", time.time())
            merged.setdefault("$insert_id", uuid.uuid4().hex)
            # Mixpanel counts an event with an empty distinct_id as belonging to no user.
            item = Event(event, distinct_id or "", merged)
            self._ensure_thread()
            self._queue.put_nowait(item)
        except queue.Full:
            self._count_drop(event)
        except Exception:
            # A metrics bug must never fail a workflow.
            logger.exception("cannot queue metrics event %r", event)

    def _count_drop(self, event: str) -> None:
        with self._lock:
            self.dropped += 1
            now = time.monotonic()
            report = now - self._last_drop_report >= DROP_REPORT_INTERVAL
            if report:
                self._last_drop_report = now
        if report:
            logger.warning(
                "metrics queue is full (%d events), event %r dropped; %d events dropped so far",
                self.queue_size,
                event,
                self.dropped,
            )

    def _run(self) -> None:
        assert self.sink is not None
        while True:
            try:
                item = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                self._flush_sink()
                continue
            if isinstance(item, Event):
                try:
                    self.sink.send(item)
                except Exception:
                    logger.exception("metrics sender failed on event %r", item.name)
                continue
            self._flush_sink()
            if isinstance(item, _FlushRequest):
                item.done.set()
            elif item is _STOP:
                return

    def _flush_sink(self) -> None:
        assert self.sink is not None
        try:
            self.sink.flush()
        except Exception:
            logger.exception("metrics sender failed to flush")

    def flush(self, timeout: float = 30.0) -> bool:
        """Send every queued event now; return False when that did not finish within ``timeout``."""
        if self.sink is None or self._pid != os.getpid():
            return True
        request = _FlushRequest()
        try:
            self._queue.put(request, timeout=timeout)
        except queue.Full:
            return False
        return request.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued, wait at most ``timeout`` seconds, and stop the thread.

        Returns False when the thread was still sending at the deadline. It is a daemon
        thread, so it does not keep the process alive.
        """
        if self.sink is None or not self._thread_running_here():
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("metrics sender did not take the stop request within %.1f s", timeout)
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            logger.warning("metrics sender still busy after %.1f s; %d events queued", timeout, self._queue.qsize())
            return False
        return True


_ACTIVITY_CLOSE_EVENTS = {
    "ActivityTaskCompleted": ACTIVITY_COMPLETED,
    "ActivityTaskFailed": ACTIVITY_FAILED,
    "ActivityTaskTimedOut": ACTIVITY_TIMED_OUT,
}


def decision_task_events(task: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """Return (event, distinct_id, properties) for what happened since the previous decision.

    ``task`` is a decision task whose "events" contain the whole history. The events are
    Workflow Started for a new run (not for a run continued from an earlier one), and one
    activity event per ActivityTaskCompleted, Failed or TimedOut, with ``run_seconds``
    (started to closed) and ``total_seconds`` (scheduled to closed). Each event's
    ``$insert_id`` comes from the history event, so Mixpanel drops the duplicate when a
    decision task times out and the next one reports the same events again.
    """
    events = task.get("events", [])
    execution = task.get("workflowExecution", {})
    workflow_id = execution.get("workflowId", "")
    run_id = execution.get("runId", "")
    workflow_type = task.get("workflowType", {}).get("name", "")
    previous = int(task.get("previousStartedEventId") or 0)
    by_id = {event["eventId"]: event for event in events}
    workflow_input, continued = _started_input(events)
    user_uuid = workflow_input.get("user_uuid") if isinstance(workflow_input, dict) else None
    base = {
        "workflow_id": workflow_id,
        "run_id": run_id,
        "workflow_type": workflow_type,
        "media_uuid": workflow_input.get("media_uuid") if isinstance(workflow_input, dict) else None,
    }

    found: list[tuple[str, str | None, dict[str, Any]]] = []
    for event in events:
        if event["eventId"] <= previous:
            continue
        kind = event["eventType"]
        properties = {**base, "time": _timestamp(event), "$insert_id": _insert_id(workflow_id, run_id, event)}
        if kind == "WorkflowExecutionStarted" and not continued:
            found.append((WORKFLOW_STARTED, user_uuid, properties))
        elif kind in _ACTIVITY_CLOSE_EVENTS:
            attributes = event.get(kind[0].lower() + kind[1:] + "EventAttributes", {})
            scheduled = by_id.get(attributes.get("scheduledEventId"), {})
            started = by_id.get(attributes.get("startedEventId"))
            scheduled_attributes = scheduled.get("activityTaskScheduledEventAttributes", {})
            properties["activity_type"] = scheduled_attributes.get("activityType", {}).get("name")
            properties["activity_id"] = scheduled_attributes.get("activityId")
            if scheduled:
                properties["total_seconds"] = round(_timestamp(event) - _timestamp(scheduled), 3)
            if started is not None:
                properties["run_seconds"] = round(_timestamp(event) - _timestamp(started), 3)
            if kind == "ActivityTaskTimedOut":
                properties["timeout_type"] = attributes.get("timeoutType")
            if kind == "ActivityTaskFailed":
                properties["reason"] = attributes.get("reason")
            found.append((_ACTIVITY_CLOSE_EVENTS[kind], user_uuid, properties))
    return found


def _started_input(events: list[dict[str, Any]]) -> tuple[Any, bool]:
    """Return the run's workflow input and whether the run continued an earlier one."""
    for event in events:
        if event["eventType"] != "WorkflowExecutionStarted":
            continue
        attributes = event.get("workflowExecutionStartedEventAttributes", {})
        try:
            document = json.loads(attributes.get("input") or "null")
        except ValueError:
            return None, False
        if isinstance(document, dict) and CARRIED_KEY in document:
            return document.get("workflow"), True
        return document, bool(attributes.get("continuedExecutionRunId"))
    return None, False


def _timestamp(event: dict[str, Any]) -> float:
    value = event.get("eventTimestamp")
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return float(value or 0.0)


def _insert_id(workflow_id: str, run_id: str, event: dict[str, Any]) -> str:
    # Mixpanel accepts up to 36 alphanumeric characters or dashes.
    return hashlib.sha256(f"{workflow_id}/{run_id}/{event['eventId']}".encode()).hexdigest()[:32]


def _describe(error: BaseException) -> str:
    # The token travels in the request body, which no requests error quotes. A server's
    # error text could still echo it, so the redaction filter on the handlers is the guard.
    return f"{type(error).__name__}: {error}"
