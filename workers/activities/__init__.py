"""Activity handlers by activity type name, imported only when first used.

Each handler is ``handle(task_input: dict, context: ActivityContext) -> dict``. The map
contains "module:function" strings so that a worker imports cv2 and dlib only when it runs
a video activity.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

HANDLERS: dict[str, str] = {
    "FaceDetect": "workers.activities.face_detect:handle",
    "FaceRecognize": "workers.activities.face_recognize:handle",
    "Noop": "workers.activities.diagnostics:noop",
    "Sleep": "workers.activities.diagnostics:sleep",
    "BurnCpu": "workers.activities.diagnostics:burn_cpu",
    "Fail": "workers.activities.diagnostics:fail",
    "SpawnChild": "workers.activities.diagnostics:spawn_child",
}

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_resolved: dict[str, Handler] = {}


class UnknownActivityType(LookupError):
    """No handler is registered for an activity type name."""


def resolve_handler(name: str) -> Handler:
    """Import and return the handler of activity type ``name``.

    Raises UnknownActivityType when ``name`` is not in HANDLERS, and ImportError or
    AttributeError when its module or function cannot be loaded.
    """
    if name in _resolved:
        return _resolved[name]
    target = HANDLERS.get(name)
    if target is None:
        known = ", ".join(sorted(HANDLERS))
        raise UnknownActivityType(f"no handler for activity type {name!r}: add it to workers.activities.HANDLERS (known: {known})")
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name)
    _resolved[name] = handler
    return handler
