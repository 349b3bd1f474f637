"""Start workflows, follow them to their close, and print their histories."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from workers.client import call_with_backoff, error_code
from workers.config import Config

# GetWorkflowExecutionHistory returns at most 1000 events per page.
MAX_PAGE_SIZE = 1000
# Seconds between two history reads while following a workflow. SWF has no push API.
FOLLOW_INTERVAL = 1.0
# Maximum length of an attribute value that a history line shows in full.
MAX_VALUE_CHARS = 200
CLOSE_EVENTS = frozenset({
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionCanceled",
    "WorkflowExecutionContinuedAsNew",
})


class SubmitError(Exception):
    """Invalid submit input or a failed SWF call; the message names the value and the fix."""


class AlreadyRunning(SubmitError):
    """A workflow with this id is open; ``run_id`` is its run."""

    def __init__(self, workflow_id: str, run_id: str | None) -> None:
        self.workflow_id = workflow_id
        self.run_id = run_id
        super().__init__(
            f"workflow {workflow_id} is already running (run id {run_id}). Wait for it to close "
            f"(manager history {workflow_id}), or submit with another --media-uuid."
        )


def parse_uuid(value: str, option: str) -> str:
    """Return ``value`` as a canonical UUID string, or raise SubmitError naming ``option``."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SubmitError(f"{option} {value!r} is not a UUID. Pass one such as {uuid.uuid4()}.") from None


def video_location(path_or_url: str) -> str:
    """Return an s3:// or http(s):// URL unchanged, or a local file as an absolute path."""
    parsed = urlparse(path_or_url)
    if parsed.scheme == "s3":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise SubmitError(f"{path_or_url!r} names no bucket or no key. Pass s3://bucket/key.")
        return path_or_url
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise SubmitError(f"{path_or_url!r} names no host. Pass a URL such as https://host/video.mp4.")
        return path_or_url
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SubmitError(
            f"{path_or_url!r} has an unsupported scheme {parsed.scheme!r}. Pass a file, s3:// or https://."
        )
    path = Path(path_or_url).expanduser()
    if path.is_dir():
        raise SubmitError(f"{path_or_url!r} is a folder. Pass a video file.")
    if not path.exists():
        raise SubmitError(f"video file {path_or_url!r} not found. Pass an existing file or an s3:// URL.")
    if not path.is_file():
        raise SubmitError(f"{path_or_url!r} is not a regular file. Pass a video file.")
    return str(path.resolve())


def build_input(
    path_or_url: str | None, media_uuid: str, user_uuid: str | None, extra_input: str | None
) -> dict[str, Any]:
    """Build the workflow input: media_uuid, user_uuid and video_url, updated by ``extra_input`` JSON."""
    document: dict[str, Any] = {"media_uuid": media_uuid, "user_uuid": user_uuid}
    if path_or_url is not None:
        document["video_url"] = video_location(path_or_url)
    if extra_input is not None:
        try:
            extra = json.loads(extra_input)
        except ValueError as error:
            raise SubmitError(f"--input {extra_input!r} is not valid JSON ({error}). Pass a JSON object.") from None
        if not isinstance(extra, dict):
            raise SubmitError(f"--input {extra_input!r} is not a JSON object. Pass one such as '{{\"seconds\": 5}}'.")
        # These keys decide the workflow id and where results go; they come from the options,
        # which are checked, not from free-form input.
        reserved = sorted(key for key in ("media_uuid", "user_uuid", "video_url") if key in extra)
        if reserved:
            raise SubmitError(
                f"--input sets {', '.join(reserved)}, which come from the options. Use --media-uuid, --user "
                "and the PATH_OR_URL argument instead."
            )
        document.update(extra)
    return document


def start_workflow(
    client: Any, config: Config, workflow_type_name: str, workflow_id: str, workflow_input: dict[str, Any]
) -> str:
    """Start a workflow with every timeout set explicitly; return its run id.

    Raises AlreadyRunning when an execution with ``workflow_id`` is open.
    """
    try:
        workflow = config.workflow_type(workflow_type_name)
    except KeyError:
        known = ", ".join(workflow.name for workflow in config.workflow_types)
        raise SubmitError(
            f"--workflow-type {workflow_type_name!r} is not configured. Use one of: {known}."
        ) from None
    try:
        response = call_with_backoff(
            client,
            "start_workflow_execution",
            domain=config.swf.domain,
            workflowId=workflow_id,
            workflowType={"name": workflow.name, "version": workflow.version},
            taskList={"name": workflow.task_list},
            input=json.dumps(workflow_input),
            executionStartToCloseTimeout=str(workflow.execution_start_to_close_timeout),
            taskStartToCloseTimeout=str(workflow.task_start_to_close_timeout),
            childPolicy=workflow.child_policy,
        )
    except ClientError as error:
        if error_code(error) == "WorkflowExecutionAlreadyStartedFault":
            raise AlreadyRunning(workflow_id, open_run_id(client, config.swf.domain, workflow_id)) from None
        if error_code(error) == "UnknownResourceFault":
            raise SubmitError(
                f"SWF does not know workflow type {workflow.name} version {workflow.version} in domain "
                f"{config.swf.domain!r} ({error}). Start the manager once so it registers its types."
            ) from None
        raise
    return response["runId"]


def _epoch() -> datetime.datetime:
    return datetime.datetime(1970, 1, 2, tzinfo=datetime.timezone.utc)


def open_run_id(client: Any, domain: str, workflow_id: str) -> str | None:
    """Return the run id of the open execution with ``workflow_id``, or None."""
    response = call_with_backoff(
        client,
        "list_open_workflow_executions",
        domain=domain,
        startTimeFilter={"oldestDate": _epoch()},
        executionFilter={"workflowId": workflow_id},
    )
    executions = response.get("executionInfos", [])
    return executions[0]["execution"]["runId"] if executions else None


def latest_run_id(client: Any, domain: str, workflow_id: str) -> str:
    """Return the open run of ``workflow_id``, else its most recently started closed run."""
    run_id = open_run_id(client, domain, workflow_id)
    if run_id is not None:
        return run_id
    response = call_with_backoff(
        client,
        "list_closed_workflow_executions",
        domain=domain,
        startTimeFilter={"oldestDate": _epoch()},
        executionFilter={"workflowId": workflow_id},
        reverseOrder=False,
    )
    executions = response.get("executionInfos", [])
    if not executions:
        raise SubmitError(
            f"no workflow with id {workflow_id!r} in domain {domain!r}. Check the id, --domain and --endpoint-url."
        )
    newest = max(executions, key=lambda info: info["startTimestamp"])
    return newest["execution"]["runId"]


def iter_history(
    client: Any, domain: str, workflow_id: str, run_id: str, page_size: int = MAX_PAGE_SIZE
) -> Iterator[dict[str, Any]]:
    """Yield every event of one run, oldest first, following nextPageToken through every page."""
    params: dict[str, Any] = {
        "domain": domain,
        "execution": {"workflowId": workflow_id, "runId": run_id},
        "maximumPageSize": page_size,
    }
    while True:
        page = call_with_backoff(client, "get_workflow_execution_history", **params)
        yield from page.get("events", [])
        token = page.get("nextPageToken")
        if not token:
            return
        params["nextPageToken"] = token


def _attributes(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventAttributes") and isinstance(value, dict):
            return value
    return {}


def _short(value: Any, full: bool) -> str:
    if isinstance(value, dict) and set(value) == {"name", "version"}:
        text = f"{value['name']} v{value['version']}"
    elif isinstance(value, dict) and set(value) == {"name"}:
        text = str(value["name"])
    elif isinstance(value, dict) and set(value) == {"workflowId", "runId"}:
        text = f"{value['workflowId']}/{value['runId']}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    if not full and len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"... ({len(text)} chars; `manager history --full` shows all)"
    return text


def format_event(event: dict[str, Any], full: bool = False) -> str:
    """Render one history event as one line: id, time, type and its attributes."""
    timestamp = event.get("eventTimestamp")
    if isinstance(timestamp, datetime.datetime):
        when = timestamp.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    else:
        when = str(timestamp)
    attributes = " ".join(f"{key}={_short(value, full)}" for key, value in _attributes(event).items())
    return f"{event.get('eventId', '?'):>5}  {when}  {event.get('eventType', '?')}  {attributes}".rstrip()


def follow(
    client: Any,
    domain: str,
    workflow_id: str,
    run_id: str,
    out: TextIO,
    interval: float = FOLLOW_INTERVAL,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Print each new event until the run closes; follow continue-as-new runs. Return the close event.

    Raises SubmitError when ``timeout`` seconds pass first; the workflow keeps running.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    while True:
        events = list(iter_history(client, domain, workflow_id, run_id))
        for event in events[printed:]:
            print(format_event(event), file=out, flush=True)
        printed = len(events)
        closing = next((event for event in events if event.get("eventType") in CLOSE_EVENTS), None)
        if closing is not None:
            if closing["eventType"] != "WorkflowExecutionContinuedAsNew":
                return closing
            run_id = _attributes(closing)["newExecutionRunId"]
            printed = 0
            print(f"continued as new run {run_id}", file=out, flush=True)
            continue
        if deadline is not None and time.monotonic() >= deadline:
            raise SubmitError(
                f"workflow {workflow_id} run {run_id} was still open after {timeout:g} s; "
                f"follow it with: manager history {workflow_id}"
            )
        time.sleep(interval)


def describe_close(closing: dict[str, Any]) -> tuple[bool, str]:
    """Return (completed, text) for a close event: the result, or the reason and details."""
    attributes = _attributes(closing)
    kind = closing["eventType"]
    if kind == "WorkflowExecutionCompleted":
        result = attributes.get("result")
        try:
            text = json.dumps(json.loads(result), indent=2, sort_keys=True) if result else "(no result)"
        except ValueError:
            text = result
        return True, f"workflow completed. Result:\n{text}"
    if kind == "WorkflowExecutionFailed":
        return False, f"workflow failed: {attributes.get('reason', '(no reason)')}\n{attributes.get('details', '')}".rstrip()
    if kind == "WorkflowExecutionTimedOut":
        return False, f"workflow timed out ({attributes.get('timeoutType', 'START_TO_CLOSE')})"
    if kind == "WorkflowExecutionTerminated":
        reason = attributes.get("reason") or attributes.get("cause") or "no reason given"
        return False, f"workflow terminated: {reason}"
    return False, f"workflow closed with {kind}"
