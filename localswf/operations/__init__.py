"""The table of SWF operations: name -> handler(service, params) -> reply dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localswf.operations import decisions, executions, registry, tasks

Handler = Callable[[Any, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Handler] = {}
for module in (registry, executions, tasks, decisions):
    OPERATIONS.update(module.OPERATIONS)
