"""JSON logging with workflow and activity ids on every record.

Each record carries timestamp, level, logger, pid, role and task list, plus the ids bound
with ``log_context`` (workflow_id, run_id, activity_id, media_uuid, user_uuid) and any
``extra`` fields such as duration.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from workers.config import LoggingConfig
from workers.log_shipping import AWS_SECRET_ENV_NAMES, LogglyBulkHandler, SecretRedactionFilter

CONTEXT_FIELDS = ("workflow_id", "run_id", "activity_id", "media_uuid", "user_uuid")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("swf_log_context", default={})
_process_fields: dict[str, Any] = {}


class ContextFilter(logging.Filter):
    """Adds the process fields and the bound ids to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = os.getpid()
        for key, value in _process_fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Bind ids (workflow_id, activity_id, ...) to every record logged inside the block."""
    merged = {**_context.get(), **{key: value for key, value in ids.items() if value is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def set_process_fields(**fields: Any) -> None:
    """Set fields such as role and task_list that every record of this process carries."""
    _process_fields.update({key: value for key, value in fields.items() if value is not None})


def make_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure_logging(
    config: LoggingConfig, *, secret_envs: Iterable[str] = AWS_SECRET_ENV_NAMES, **process_fields: Any
) -> None:
    """Replace the root logger's handlers with one JSON handler for ``config.output``.

    Call it again in each forked child, with that child's role and task list.
    """
    set_process_fields(**process_fields)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()

    handler: logging.Handler
    if config.output == "syslog":
        handler = logging.handlers.SysLogHandler(address=config.syslog_address, facility=config.syslog_facility)
        # rsyslog expects "tag: message"; the tag lets the Loggly forwarding rule pick these lines.
        handler.ident = "swf-manager: "
    else:
        handler = logging.StreamHandler(sys.stderr)
    redaction = SecretRedactionFilter(secret_envs)
    handler.setFormatter(make_formatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(redaction)
    root.addHandler(handler)
    loggly = LogglyBulkHandler.from_config(config)
    if loggly is not None:
        loggly.setFormatter(make_formatter())
        loggly.addFilter(ContextFilter())
        loggly.addFilter(redaction)
        root.addHandler(loggly)
    root.setLevel(config.level.upper())
    # botocore logs every retry at DEBUG and credentials lookups at INFO; keep them quiet.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
