"""A localswf server in a subprocess, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

READY_PATTERN = re.compile(r"localswf listening on (http://\S+)")
START_TIMEOUT = 30.0  # seconds to wait for the ready line; a cold start on a loaded machine takes about 1 s
STOP_TIMEOUT = 10.0


class LocalSwfError(RuntimeError):
    """The server process did not start or stop as expected."""


class LocalSwfProcess:
    """Run `python -m localswf` on one database file; `restart` keeps the file and the port."""

    def __init__(
        self, db_path: Path, port: int = 0, max_poll_seconds: float = 60.0, extra_args: Sequence[str] = ()
    ) -> None:
        self.db_path = Path(db_path)
        self.port = port
        self.max_poll_seconds = max_poll_seconds
        self.extra_args = list(extra_args)
        self.url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.db_path.with_name(self.db_path.name + ".log")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> str:
        """Spawn the server and wait for its ready line; returns its URL."""
        if self.process is not None and self.process.poll() is None:
            raise LocalSwfError(f"localswf already running as pid {self.process.pid}")
        command = [
            sys.executable, "-m", "localswf",
            "--db", str(self.db_path),
            "--port", str(self.port),
            "--max-poll-seconds", str(self.max_poll_seconds),
            *self.extra_args,
        ]
        repo_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = repo_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it after this function returns
        try:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log_file, env=env, preexec_fn=_die_with_parent
            )
        finally:
            log_file.close()
        self.url = self._wait_ready(self.process)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self.url

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> str:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        buffered = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffered:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise LocalSwfError(f"localswf printed no ready line within {START_TIMEOUT} s; see {self.log_path}")
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    code = process.wait(timeout=STOP_TIMEOUT)
                    raise LocalSwfError(f"localswf exited with code {code} before it was ready; see {self.log_path}")
                buffered += chunk
        line = buffered.split(b"\n", 1)[0].decode(errors="replace")
        match = READY_PATTERN.search(line)
        if match is None:
            self.kill()
            raise LocalSwfError(f"unexpected first line from localswf: {line!r}")
        return match.group(1)

    def reset(self) -> None:
        """Delete all state in the running server, which must run with extra_args=["--enable-reset"]."""
        import urllib.request

        if self.url is None:
            raise LocalSwfError("localswf is not running; call start() first")
        request = urllib.request.Request(
            self.url, data=b"{}", method="POST",
            headers={"X-Amz-Target": "LocalSwf.ResetDatabase", "Content-Type": "application/x-amz-json-1.0"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            if reply.status != 200:
                raise LocalSwfError(f"reset failed with HTTP {reply.status}")

    def held_polls(self) -> int:
        """Return how many long polls the server is holding now."""
        import urllib.request

        if self.url is None:
            raise LocalSwfError("localswf is not running; call start() first")
        with urllib.request.urlopen(self.url, timeout=30) as reply:
            return int(json.loads(reply.read())["heldPolls"])

    def release_held_polls(self) -> int:
        """Make the polls held now return empty; return how many there were."""
        if self.url is None:
            raise LocalSwfError("localswf is not running; call start() first")
        from localswf.admin import release_held_polls

        return release_held_polls(self.url)

    def stop(self) -> None:
        """Send SIGTERM and wait; SIGKILL if it has not exited within STOP_TIMEOUT seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            self._close_pipes()
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()

    def restart(self) -> str:
        """Stop the server if it runs and start it again on the same file and port."""
        self.stop()
        return self.start()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> LocalSwfProcess:
        if self.url is None or self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


# --- clients for tests --------------------------------------------------------------------------

EMPTY_POLL_OPERATIONS = ("PollForDecisionTask", "PollForActivityTask")


def reply_shape_problems(shape: Any, value: Any, path: str = "$") -> list[str]:
    """List where a JSON reply breaks botocore's output shape: unknown or missing members, wrong types, enums, lengths."""
    problems: list[str] = []
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        for key in value:
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
        for key in shape.required_members:
            if key not in value:
                problems.append(f"{path}.{key}: required member of {shape.name} is missing")
        for key, member_value in value.items():
            if key in shape.members:
                problems.extend(reply_shape_problems(shape.members[key], member_value, f"{path}.{key}"))
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        for index, item in enumerate(value):
            problems.extend(reply_shape_problems(shape.member, item, f"{path}[{index}]"))
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        enum = shape.enum
        if enum and value not in enum:
            problems.append(f"{path}: {value!r} is not one of {enum}")
        max_len = shape.metadata.get("max")
        if max_len is not None and len(value) > max_len:
            problems.append(f"{path}: length {len(value)} is above {max_len}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: expected epoch seconds, got {value!r}")
    return problems


class ReplyShapeError(AssertionError):
    """A reply from localswf does not match botocore's model of the operation."""


def check_reply(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
    """botocore `before-parse` hook: raise ReplyShapeError when a reply breaks the service model."""
    body = response_dict.get("body") or b"{}"
    payload = json.loads(body)
    name = operation_model.name
    if response_dict.get("status_code", 200) >= 300:
        error_type = str(payload.get("__type", ""))
        code = error_type.rsplit("#", 1)[-1]
        known = {shape.name for shape in operation_model.error_shapes} | {
            "ValidationException", "UnknownOperationException", "SerializationException", "InternalFailure",
        }
        problems = [] if code in known else [f"error type {error_type!r} is not modeled for {name}"]
        if not isinstance(payload.get("message"), str):
            problems.append("error reply has no message")
    else:
        problems = reply_shape_problems(operation_model.output_shape, payload) if operation_model.output_shape else (
            [] if payload == {} else [f"{name} has no output shape but replied {payload!r}"]
        )
        if name in EMPTY_POLL_OPERATIONS and "taskToken" not in payload:
            problems = [problem for problem in problems if "required member" not in problem]
    if problems:
        raise ReplyShapeError(f"{name} reply does not match the SWF model: " + "; ".join(problems))


def swf_client(url: str, *, check_replies: bool = True, read_timeout: float = 70.0) -> Any:
    """Build a boto3 SWF client for `url`; with check_replies it checks every reply against botocore's model."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "swf",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=read_timeout, retries={"max_attempts": 1}, max_pool_connections=50),
    )
    if check_replies:
        client.meta.events.register("before-parse.swf.*", check_reply)
    return client


def register_test_domain(
    client: Any,
    domain: str = "test",
    *,
    decision_timeout: str = "5",
    workflow_timeout: str = "60",
    activity_timeouts: tuple[str, str, str, str] = ("10", "10", "20", "NONE"),
    workflow_type: tuple[str, str] = ("Workflow", "1"),
    activity_type: tuple[str, str] = ("Activity", "1"),
) -> None:
    """Register a domain, one workflow type on task list "decisions" and one activity type on "activities".

    `activity_timeouts` are the defaults for schedule-to-start, start-to-close, schedule-to-close and heartbeat.
    """
    client.register_domain(name=domain, workflowExecutionRetentionPeriodInDays="1")
    client.register_workflow_type(
        domain=domain, name=workflow_type[0], version=workflow_type[1],
        defaultTaskList={"name": "decisions"}, defaultTaskStartToCloseTimeout=decision_timeout,
        defaultExecutionStartToCloseTimeout=workflow_timeout, defaultChildPolicy="TERMINATE",
    )
    schedule_to_start, start_to_close, schedule_to_close, heartbeat = activity_timeouts
    client.register_activity_type(
        domain=domain, name=activity_type[0], version=activity_type[1], defaultTaskList={"name": "activities"},
        defaultTaskScheduleToStartTimeout=schedule_to_start, defaultTaskStartToCloseTimeout=start_to_close,
        defaultTaskScheduleToCloseTimeout=schedule_to_close, defaultTaskHeartbeatTimeout=heartbeat,
    )


def wait_for_held_polls(server: LocalSwfProcess, count: int, timeout: float = 30.0) -> None:
    """Wait until `server` keeps `count` long polls open; raise AssertionError after `timeout` seconds.

    The server offers no push for this state, so it is read every 20 ms.
    """
    deadline = time.monotonic() + timeout
    while server.held_polls() != count:
        if time.monotonic() >= deadline:
            raise AssertionError(f"the server did not keep {count} polls open within {timeout:g} s")
        time.sleep(0.02)


def schedule_one_activity(client: Any, workflow_id: str = "w", activity_id: str = "a1") -> str:
    """Start a workflow in the test domain and schedule one activity from its first decision; return its run id."""
    client.start_workflow_execution(
        domain="test", workflowId=workflow_id, workflowType={"name": "Workflow", "version": "1"}
    )
    decision_task = client.poll_for_decision_task(domain="test", taskList={"name": "decisions"})
    client.respond_decision_task_completed(
        taskToken=decision_task["taskToken"],
        decisions=[
            decision(
                "ScheduleActivityTask", activityType={"name": "Activity", "version": "1"}, activityId=activity_id
            )
        ],
    )
    return decision_task["workflowExecution"]["runId"]

def decision(decision_type: str, **attributes: Any) -> dict[str, Any]:
    """Build one decision: decision("StartTimer", timerId="t", startToFireTimeout="1")."""
    key = decision_type[0].lower() + decision_type[1:] + "DecisionAttributes"
    return {"decisionType": decision_type, key: attributes}


def event_types(events: list[dict[str, Any]]) -> list[str]:
    return [event["eventType"] for event in events]


def attributes_of(event: dict[str, Any]) -> dict[str, Any]:
    key = event["eventType"][0].lower() + event["eventType"][1:] + "EventAttributes"
    return event[key]


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, SIGKILL the server when the process that started it dies.

    A test that fails before its clean-up would otherwise leave the server running.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

