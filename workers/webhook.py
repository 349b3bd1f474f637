"""The completion hook: a signed JSON POST to the web application when a workflow closes.

``WebhookSender.send`` only queues the summary, so the decider that closed the workflow is
never delayed. A daemon thread POSTs each summary and retries on connection errors,
timeouts, 429 and 5xx responses, with exponential backoff between attempts. A hook that still
fails is logged with the workflow id and dropped: it never fails the workflow.

Each request carries:

- ``X-Swf-Manager-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes under
  the key in the environment variable ``webhook.secret_env``, when that is configured;
- ``X-Swf-Manager-Delivery``, a uuid that stays the same across the retries of one summary,
  so the receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from workers.config import Config
from workers.metrics import (
    WORKFLOW_CANCELED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    Metrics,
)
from workers.sender_thread import SenderThread

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Swf-Manager-Signature"
DELIVERY_HEADER = "X-Swf-Manager-Delivery"
_CLOSE_EVENTS = {"completed": WORKFLOW_COMPLETED, "failed": WORKFLOW_FAILED, "canceled": WORKFLOW_CANCELED}

# HMAC keys shorter than this are rejected: they are guessable, and the log redaction filter
# skips values this short.
MIN_KEY_LENGTH = 16


def workflow_summary(closed: dict[str, Any], closed_at: float | None = None) -> dict[str, Any]:
    """Build the JSON summary the hook sends from the decider's report of a closed workflow.

    ``closed`` has "workflow_id", "run_id", "workflow_type", "workflow_input" and "status"
    ("completed", "failed" or "canceled"), then "result", or "reason" and "details", and
    optionally "started_at". Times are Unix timestamps in seconds; ``closed_at`` defaults
    to now.
    """
    workflow_input = closed.get("workflow_input")
    if not isinstance(workflow_input, dict):
        workflow_input = {}
    closed_at = time.time() if closed_at is None else closed_at
    started_at = closed.get("started_at")
    return {
        "workflow_id": closed.get("workflow_id"),
        "run_id": closed.get("run_id"),
        "workflow_type": closed.get("workflow_type"),
        "status": closed.get("status"),
        "media_uuid": workflow_input.get("media_uuid"),
        "user_uuid": workflow_input.get("user_uuid"),
        "started_at": started_at,
        "closed_at": closed_at,
        "duration": None if started_at is None else round(closed_at - started_at, 3),
        "result": closed.get("result"),
        "reason": closed.get("reason"),
        "details": closed.get("details"),
    }


class CompletionReporter:
    """The decider's on_workflow_closed callback: the completion hook and the Mixpanel event.

    Build it in the manager before the fork to check the settings early. Its senders start
    their threads in the process that first uses them, so each decider gets its own.
    """

    def __init__(self, sender: WebhookSender, metrics: Metrics) -> None:
        self.sender = sender
        self.metrics = metrics

    @classmethod
    def from_config(cls, config: Config) -> CompletionReporter:
        return cls(WebhookSender.from_config(config), Metrics.from_config(config))

    def __call__(self, closed: dict[str, Any]) -> None:
        summary = workflow_summary(closed)
        self.sender.send(summary)
        event = _CLOSE_EVENTS.get(str(summary["status"]))
        if event is None:
            return
        properties = {
            key: summary[key]
            for key in ("workflow_id", "run_id", "workflow_type", "media_uuid", "duration", "reason")
            if summary[key] is not None
        }
        self.metrics.track(event, summary["user_uuid"], properties)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, sharing ``timeout`` seconds between the two senders."""
        deadline = time.monotonic() + timeout
        self.sender.close(timeout / 2)
        self.metrics.close(max(0.0, deadline - time.monotonic()))


def _loggable_url(url: str) -> str:
    """Strip user info, query and fragment, which may carry credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def sign(key: bytes, body: bytes) -> str:
    """Return the signature header value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str) -> bool:
    """Check a signature header in constant time, as a receiver should."""
    return hmac.compare_digest(sign(key, body), header)


@dataclass(frozen=True)
class _Delivery:
    body: bytes
    delivery_id: str
    workflow_id: str
    run_id: str


_STOP = object()


class WebhookSender(SenderThread):
    """POSTs workflow summaries from a background thread. ``send`` only queues and never raises."""

    thread_name = "webhook-sender"

    def __init__(
        self,
        url: str | None,
        key: bytes | None,
        attempts: int = 5,
        timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        self.url = url
        self._key = key
        self.attempts = attempts
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        super().__init__(queue_size)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        # Set by close() when its deadline passes, to cut a backoff wait short.
        self._abort = threading.Event()

    @classmethod
    def from_config(cls, config: Config, backoff_initial: float = 1.0, backoff_max: float = 30.0) -> WebhookSender:
        """Build the sender for ``config.webhook``; with no URL it sends nothing.

        Raises ValueError when the settings are invalid, so the manager can check them
        before it forks.
        """
        settings = config.webhook
        if settings.url is None:
            return cls(None, None)
        if not settings.url.startswith(("https://", "http://")):
            raise ValueError(f"webhook.url {settings.url!r} is not an HTTP(S) URL; use https://host/path")
        if settings.attempts < 1:
            raise ValueError(f"webhook.attempts is {settings.attempts}; set it to 1 or more")
        if settings.timeout <= 0:
            raise ValueError(f"webhook.timeout is {settings.timeout}; set it to a positive number of seconds")
        key: bytes | None = None
        if settings.secret_env:
            value = os.environ.get(settings.secret_env, "")
            if not value:
                raise ValueError(
                    f"environment variable {settings.secret_env} (webhook.secret_env) is empty or not set; "
                    "set it to the HMAC key shared with the receiver, or remove webhook.secret_env"
                )
            if len(value) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"the HMAC key in {settings.secret_env} has {len(value)} characters; "
                    f"use at least {MIN_KEY_LENGTH}, for example the output of `openssl rand -hex 32`"
                )
            key = value.encode()
        else:
            logger.warning(
                "webhook.secret_env is not set, so completion hooks to %s are not signed", _loggable_url(settings.url)
            )
        return cls(
            settings.url,
            key,
            attempts=settings.attempts,
            timeout=settings.timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def send(self, summary: dict[str, Any]) -> None:
        """Queue one summary for delivery. It must be JSON-serialisable."""
        if self.url is None:
            return
        workflow_id = str(summary.get("workflow_id", ""))
        run_id = str(summary.get("run_id", ""))
        try:
            body = json.dumps(summary, separators=(",", ":"), sort_keys=True).encode()
            delivery = _Delivery(body, uuid.uuid4().hex, workflow_id, run_id)
            self._ensure_thread()
            self._queue.put_nowait(delivery)
        except queue.Full:
            self.dropped += 1
            logger.error(
                "completion hook queue is full (%d summaries); hook for workflow %s run %s dropped",
                self.queue_size,
                workflow_id,
                run_id,
            )
        except Exception:
            # A hook bug must never fail the workflow.
            logger.exception("cannot queue completion hook for workflow %s run %s", workflow_id, run_id)

    def _reset_after_fork(self) -> None:
        self._abort = threading.Event()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._abort.is_set():
                self.failed += 1
                logger.error(
                    "completion hook for workflow %s run %s dropped at shutdown, never sent",
                    item.workflow_id,
                    item.run_id,
                )
                continue
            try:
                self._deliver(item)
            except Exception:
                self.failed += 1
                logger.exception(
                    "completion hook for workflow %s run %s failed unexpectedly", item.workflow_id, item.run_id
                )

    def _deliver(self, delivery: _Delivery) -> None:
        assert self.url is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "swf-manager",
            DELIVERY_HEADER: delivery.delivery_id,
        }
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(self._key, delivery.body)
        delay = self.backoff_initial
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url, data=delivery.body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.delivered += 1
                logger.info(
                    "completion hook for workflow %s run %s delivered on attempt %d (HTTP %d)",
                    delivery.workflow_id,
                    delivery.run_id,
                    attempt,
                    response.status,
                )
                return
            except urllib.error.HTTPError as error:
                retryable = error.code == 429 or error.code >= 500
                problem = f"HTTP {error.code} {error.reason}"
            except (urllib.error.URLError, OSError) as error:
                retryable = True
                problem = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
            if not retryable or attempt == self.attempts:
                self.failed += 1
                logger.error(
                    "completion hook for workflow %s run %s to %s failed after %d attempts: %s; "
                    "the summary is dropped and the workflow is not affected",
                    delivery.workflow_id,
                    delivery.run_id,
                    _loggable_url(self.url),
                    attempt,
                    problem,
                )
                return
            logger.warning(
                "completion hook for workflow %s run %s failed on attempt %d of %d: %s; retrying in %.1f s",
                delivery.workflow_id,
                delivery.run_id,
                attempt,
                self.attempts,
                problem,
                delay,
            )
            if self._abort.wait(delay):
                self.failed += 1
                logger.error(
                    "completion hook for workflow %s run %s abandoned at shutdown after %d attempts",
                    delivery.workflow_id,
                    delivery.run_id,
                    attempt,
                )
                return
            delay = min(delay * 2, self.backoff_max)

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what is queued, waiting at most ``timeout`` seconds; True when all went out.

        At the deadline a backoff wait is cut short and the thread exits after the request
        in flight, which takes at most ``self.timeout`` more.
        """
        if self.url is None or not self._thread_running_here():
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return True
        pending = self._queue.qsize()
        self._abort.set()
        logger.error(
            "completion hook sender still busy after %.1f s; %d summaries were not delivered", timeout, pending
        )
        return False
