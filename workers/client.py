"""The boto3 SWF client of a worker process and a throttling-safe way to call it.

Build the client in the process that uses it, after the fork: a boto3 client holds
sockets and locks that a forked child must not share with its parent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from urllib.parse import urlparse

import boto3
from botocore.config import Config as BotocoreConfig
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from workers.config import Config

log = logging.getLogger(__name__)

# Error codes SWF returns when a caller goes over a rate or an open-item limit. A retry
# after a pause succeeds.
THROTTLING_CODES = frozenset({"ThrottlingException", "LimitExceededFault", "Throttling", "TooManyRequestsException"})
UNKNOWN_RESOURCE = "UnknownResourceFault"

# How long a task's response is retried while SWF cannot be reached. After the task's own
# timeout SWF rejects the response with UnknownResourceFault, which ends the retries sooner.
RESPONSE_RETRY_SECONDS = 600.0

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# The embedded endpoint accepts any credentials, but botocore signs every request and
# refuses to without some, so SWF clients of a loopback endpoint get these.
PLACEHOLDER_CREDENTIALS = {"aws_access_key_id": "localswf", "aws_secret_access_key": "localswf"}


def make_swf_client(config: Config, endpoint_url: str | None) -> Any:
    """Build a boto3 SWF client from ``config.client``.

    ``endpoint_url`` is the URL of an SWF endpoint such as the embedded one, or None for
    real SWF in ``config.swf.region``. The manager resolves "local" to a URL before it
    forks, so "local" here is a caller's mistake.
    """
    if endpoint_url == "local":
        raise ValueError(
            "endpoint_url 'local' must be resolved to the embedded endpoint's URL "
            "(http://127.0.0.1:PORT) before make_swf_client is called"
        )
    botocore_config = BotocoreConfig(
        read_timeout=config.client.read_timeout,
        connect_timeout=config.client.connect_timeout,
        retries={"mode": config.client.retry_mode, "total_max_attempts": config.client.max_attempts},
        max_pool_connections=config.client.max_pool_connections,
    )
    credentials: dict[str, str] = {}
    if endpoint_url is not None and urlparse(endpoint_url).hostname in LOOPBACK_HOSTS:
        # Explicit credentials also keep botocore from looking for an EC2 instance role,
        # which would shadow nothing here but costs a metadata request.
        credentials = PLACEHOLDER_CREDENTIALS
    session = boto3.session.Session()
    return session.client(
        "swf", region_name=config.swf.region, endpoint_url=endpoint_url, config=botocore_config, **credentials
    )


def error_code(error: BaseException) -> str | None:
    """Return the SWF error code of a ClientError, or None for any other exception."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


def is_throttling(error: BaseException) -> bool:
    return error_code(error) in THROTTLING_CODES


def is_unknown_resource(error: BaseException) -> bool:
    return error_code(error) == UNKNOWN_RESOURCE


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Return a full-jitter delay for retry number ``attempt`` (1 for the first retry)."""
    return random.uniform(0.0, min(cap, base * (2 ** (attempt - 1))))


def call_with_backoff(
    client: Any,
    operation: str,
    *,
    max_attempts: int = 10,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    stop_event: threading.Event | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    retry_connection_errors_for: float = 0.0,
    **params: Any,
) -> dict[str, Any]:
    """Call ``client.<operation>(**params)`` and retry throttling errors with jittered backoff.

    ``operation`` is the boto3 method name, such as "poll_for_activity_task". Only
    ThrottlingException and LimitExceededFault are retried here, on top of botocore's own
    retries. UnknownResourceFault and every other error are raised at once. When
    ``stop_event`` is set during a pause, the last throttling error is raised.

    With ``retry_connection_errors_for`` > 0, connection errors and read timeouts are
    retried too, for that many seconds. Task responses use it: a result that cannot be
    delivered costs the whole task. SWF rejects the retry of a response it already recorded
    with UnknownResourceFault, which is not retried.
    """
    method = getattr(client, operation)
    attempt = 0
    connection_deadline = time.monotonic() + retry_connection_errors_for
    while True:
        attempt += 1
        try:
            return method(**params)
        except (BotocoreConnectionError, HTTPClientError) as error:
            if time.monotonic() >= connection_deadline:
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            log.warning("%s could not reach SWF (%s), retrying in %.2f s", operation, error, delay)
            if stop_event is not None:
                if stop_event.wait(delay):
                    raise
            else:
                sleep(delay)
        except ClientError as error:
            if not is_throttling(error) or attempt >= max_attempts:
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            log.warning(
                "SWF throttled %s (%s), retry %d of %d in %.2f s",
                operation,
                error_code(error),
                attempt,
                max_attempts - 1,
                delay,
            )
            if stop_event is not None:
                if stop_event.wait(delay):
                    raise
            else:
                sleep(delay)
