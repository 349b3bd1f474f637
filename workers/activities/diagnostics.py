"""Diagnostic activities for tests and benchmarks.

Each reads its parameters from the workflow input, ``task_input["workflow"]``, or from
the top level of ``task_input`` when there is no "workflow" key.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import time
from typing import Any

from workers.errors import PermanentError


def _params(task_input: dict[str, Any]) -> dict[str, Any]:
    params = task_input.get("workflow", task_input)
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise PermanentError(f"diagnostic activity input must be a JSON object, got {type(params).__name__}")
    return params


def _seconds(params: dict[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PermanentError(f"{key} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def noop(task_input: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return at once with the activity id and the size of the previous step's result.

    ``pad`` (a character count) adds a string of that length to the result of the first
    step (the one with no previous result), to test results passed by reference.
    """
    params = _params(task_input)
    result: dict[str, Any] = {
        "activity_id": context.activity_id,
        "pid": os.getpid(),
        "previous_chars": len(json.dumps(task_input.get("previous"))),
    }
    pad = params.get("pad", 0)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise PermanentError(f"pad must be a character count >= 0, got {pad!r}")
    if pad and task_input.get("previous") is None:
        result["pad"] = "p" * pad
    return result


def sleep(task_input: dict[str, Any], context: Any) -> dict[str, Any]:
    """Wait ``seconds`` (default 1), heartbeating every ``heartbeat_every`` seconds (default 0.5).

    The wait ends early, through TaskCancelled, when SWF requests a cancel.
    """
    params = _params(task_input)
    seconds = _seconds(params, "seconds", 1.0)
    every = max(0.05, _seconds(params, "heartbeat_every", 0.5))
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        context.heartbeat({"remaining_seconds": round(max(0.0, remaining), 3)})
        if remaining <= 0:
            break
        # Waiting on the event wakes the handler as soon as the heartbeat thread sets the cancel event.
        context.cancelled.wait(min(every, remaining))
    return {"slept_seconds": seconds, "pid": os.getpid()}


def burn_cpu(task_input: dict[str, Any], context: Any) -> dict[str, Any]:
    """Spin for ``seconds`` (default 1) of this process's CPU time, heartbeating every 0.5 s of it.

    With ``"heartbeat": false`` it never calls ``context.heartbeat``, like a handler stuck
    in a library call, so only the heartbeat thread can stop the task.
    """
    params = _params(task_input)
    seconds = _seconds(params, "seconds", 1.0)
    cooperative = params.get("heartbeat", True) is not False
    start = time.process_time()
    last_beat = start
    iterations = 0
    while (now := time.process_time()) - start < seconds:
        iterations += 1
        if cooperative and now - last_beat >= 0.5:
            context.heartbeat({"cpu_seconds": round(now - start, 3)})
            last_beat = now
    return {"cpu_seconds": round(time.process_time() - start, 3), "iterations": iterations}


def fail(task_input: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise PermanentError when ``permanent`` is true, else RuntimeError (a transient error).

    ``message`` sets the error message and ``message_repeat`` repeats it that many times,
    to test messages over SWF's limits. ``fail_attempts`` limits the failures to the
    first N attempts of the workflow, counted by the activity id's suffix ("Fail-3" is
    attempt 3), so a retry can succeed.
    """
    params = _params(task_input)
    message = str(params.get("message", "diagnostic failure")) * int(params.get("message_repeat", 1))
    fail_attempts = params.get("fail_attempts")
    if fail_attempts is not None:
        attempt = int(str(context.activity_id).rsplit("-", 1)[-1])
        if attempt > int(fail_attempts):
            return {"attempt": attempt, "failed_attempts": int(fail_attempts)}
    if params.get("permanent"):
        raise PermanentError(message)
    raise RuntimeError(message)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when its parent dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def spawn_child(task_input: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start a ``sleep`` grandchild for ``seconds`` (default 30) and wait for it, heartbeating.

    The grandchild's pid goes into the heartbeat details ("child_pid") and the result.
    The grandchild is killed when the task is cancelled or fails, and Linux kills it when
    the worker dies, so it never outlives its worker.
    """
    params = _params(task_input)
    seconds = _seconds(params, "seconds", 30.0)
    child = subprocess.Popen(["sleep", str(seconds)], preexec_fn=_die_with_parent)  # noqa: PLW1509
    try:
        while True:
            context.heartbeat({"child_pid": child.pid})
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return {"child_pid": child.pid, "child_exit_code": code}
