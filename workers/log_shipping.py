"""Secret redaction for log records, and an optional Loggly bulk handler.

``SecretRedactionFilter`` replaces secrets with ``[REDACTED]``: the values of the secret
environment variables (the Mixpanel token, the webhook key, the Loggly token, AWS keys) and
anything shaped like an AWS access key id. It covers every part of a record that a formatter
prints: the message, its arguments, extra fields, the exception text and the stack. Attach
it to every handler.

``LogglyBulkHandler`` sends formatted records to Loggly's HTTPS bulk endpoint from a
background thread. ``emit`` only puts the line on a bounded queue, so a slow or unreachable
Loggly never blocks the caller. Lines that do not fit are dropped and counted.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from workers.config import Config, LoggingConfig

REDACTED = "[REDACTED]"

# Environment variables that contain AWS credentials, whatever the configuration names.
AWS_SECRET_ENV_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

# Values shorter than this are not redacted, because replacing a short common word in every
# log line would make logs unreadable. Real tokens and keys are far longer: Mixpanel project
# tokens have 32 characters, AWS access key ids 20 and secret keys 40.
MIN_SECRET_LENGTH = 8

# Long-term (AKIA) and temporary (ASIA) AWS access key ids, wherever they come from.
_AWS_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")

# Attributes every LogRecord has. Anything else on a record came from ``extra`` or from a
# filter such as workers.logs.ContextFilter.
_STANDARD_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def secret_env_names(config: Config) -> tuple[str, ...]:
    """Return the names of every environment variable that contains a secret for ``config``."""
    names = [
        config.metrics.mixpanel_token_env,
        config.webhook.secret_env,
        config.logging.loggly_token_env,
        *AWS_SECRET_ENV_NAMES,
    ]
    return tuple(dict.fromkeys(name for name in names if name))


class SecretRedactionFilter(logging.Filter):
    """Replaces secret values in a record with ``[REDACTED]``; never drops a record.

    The values are read from the environment on each record, so a secret set after logging
    was configured is still redacted.
    """

    def __init__(self, env_names: Iterable[str] = AWS_SECRET_ENV_NAMES) -> None:
        super().__init__()
        self.env_names = tuple(env_names)

    def secrets(self) -> list[str]:
        values = {os.environ.get(name, "") for name in self.env_names}
        # Longest first, so a secret that contains another is replaced whole.
        return sorted((value for value in values if len(value) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def redact(self, text: str, secrets: list[str] | None = None) -> str:
        for secret in self.secrets() if secrets is None else secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _AWS_ACCESS_KEY_ID.sub(REDACTED, text)

    def _redact_value(self, value: Any, secrets: list[str]) -> Any:
        if isinstance(value, str):
            return self.redact(value, secrets)
        if isinstance(value, dict):
            return {key: self._redact_value(item, secrets) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._redact_value(item, secrets) for item in value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        # Merge the arguments into the message first, so a secret passed as an argument is
        # caught, and a formatter later prints the redacted text as it is.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redact(message, secrets)
        record.args = None

        if record.exc_info:
            # Format the traceback now and drop exc_info, so no handler formats the original.
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, secrets)

        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_RECORD_ATTRIBUTES:
                setattr(record, key, self._redact_value(value, secrets))
        return True


class LogglyBulkHandler(logging.Handler):
    """Sends formatted records to Loggly's bulk endpoint, in batches, from a background thread.

    The thread starts on the first record, and again after a fork, because threads do not
    survive one. Records of this module's own logger are not shipped, so a failing Loggly
    cannot feed itself.
    """

    def __init__(
        self,
        url: str,
        queue_size: int = 10000,
        batch_size: int = 500,
        flush_interval: float = 5.0,
        timeout: float = 10.0,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        # The URL contains the customer token: it is never logged.
        self._url = url
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._pid = -1
        self._queue: queue.Queue[str | threading.Event | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0
        self.failed_batches = 0
        self.sent_lines = 0
        self._last_drop_report = 0.0
        self._closed = False

    @classmethod
    def from_config(cls, config: LoggingConfig) -> LogglyBulkHandler | None:
        """Build the handler when the configured token variable is set; None otherwise."""
        if not config.loggly_token_env:
            return None
        token = os.environ.get(config.loggly_token_env, "")
        if not token:
            logging.getLogger(__name__).warning(
                "Loggly shipping is off: environment variable %s is empty or not set; "
                "set it to the Loggly customer token or remove logging.loggly_token_env",
                config.loggly_token_env,
            )
            return None
        if not config.loggly_url.startswith(("https://", "http://")) or "{token}" not in config.loggly_url:
            raise ValueError(
                f"logging.loggly_url {config.loggly_url!r} is not an HTTP(S) URL with a {{token}} placeholder; "
                "use a URL such as https://logs-01.loggly.com/bulk/{token}/tag/swf-manager/"
            )
        return cls(config.loggly_url.replace("{token}", token))

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # After a fork the old queue may have been locked by a thread that no longer
            # exists, so the child takes a fresh one and leaves the parent's lines alone.
            self._queue = queue.Queue(maxsize=self._queue_size)
            self._thread = threading.Thread(target=self._run, name="loggly-shipper", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed or record.name == __name__:
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_report >= 60.0:
                self._last_drop_report = now
                logging.getLogger(__name__).warning(
                    "Loggly queue is full (%d lines): %d lines dropped so far", self._queue_size, self.dropped
                )

    def _run(self) -> None:
        batch: list[str] = []
        deadline = time.monotonic() + self._flush_interval
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ""
            if isinstance(item, str) and item:
                batch.append(item)
                if len(batch) < self._batch_size:
                    continue
            # A full batch, the flush interval, a flush request or the stop marker.
            if batch:
                self._post(batch)
                batch = []
            deadline = time.monotonic() + self._flush_interval
            if isinstance(item, threading.Event):
                item.set()
            elif item is None:
                return

    def _post(self, lines: list[str]) -> None:
        # Loggly's bulk endpoint takes one event per line.
        body = "\n".join(line.replace("\n", " ") for line in lines).encode()
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
            self.sent_lines += len(lines)
        except (urllib.error.URLError, OSError, ValueError) as error:
            self.failed_batches += 1
            # The URL contains the token and is left out. The redaction filter also removes the
            # token from the error text.
            logging.getLogger(__name__).error(
                "Loggly bulk upload of %d lines failed: %s: %s; %d batches failed so far",
                len(lines),
                type(error).__name__,
                error,
                self.failed_batches,
            )

    def flush(self, timeout: float = 30.0) -> bool:
        """Send the queued lines now; return False when that did not finish within ``timeout``."""
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, waiting at most ``timeout`` seconds, and stop the thread."""
        self._closed = True
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
                self._thread.join(timeout)
            except queue.Full:
                pass
            if self._thread.is_alive():
                print(
                    f"swf-manager: Loggly handler closed with lines still queued after {timeout} s",
                    file=sys.stderr,
                )
        super().close()
