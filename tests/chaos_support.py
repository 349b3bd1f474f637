"""Helpers of the chaos and fault-injection tests.

They build the manager's TOML, start workflows from the test process, pick and kill
worker processes, follow the manager's JSON log, and audit the SWF history of every
workflow for lost, doubled or stuck work.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from botocore.exceptions import BotoCoreError, ClientError

from localswf.testing import swf_client
from manager.status import StatusUnavailable, query
from manager.submit import start_workflow
from workers.client import error_code
from workers.config import Config

DOMAIN = "swf-manager"
# GetWorkflowExecutionHistory and the List* calls return at most 1000 items per page.
MAX_PAGE_SIZE = 1000
# A test-side call that fails to connect is tried again this often before the test fails.
START_ATTEMPTS = 20
START_RETRY_PAUSE = 0.25
# Interval of the loops that watch a log file or the endpoint, which offer no push API.
WATCH_INTERVAL = 0.05

CLOSE_EVENTS = frozenset({
    "WorkflowExecutionCompleted",
    "WorkflowExecutionFailed",
    "WorkflowExecutionTimedOut",
    "WorkflowExecutionTerminated",
    "WorkflowExecutionCanceled",
    "WorkflowExecutionContinuedAsNew",
})
ACTIVITY_CLOSE_EVENTS = frozenset({
    "ActivityTaskCompleted",
    "ActivityTaskFailed",
    "ActivityTaskTimedOut",
    "ActivityTaskCanceled",
})
# Events that record a decision SWF rejected. A correct decider produces none of them here.
ALLOWED_FAILED_EVENTS = frozenset({"ActivityTaskFailed", "WorkflowExecutionFailed"})


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manager_toml(
    endpoint_url: str,
    storage_root: Path,
    *,
    local_port: int = 0,
    max_poll_seconds: float = 2.0,
    activity_processes: tuple[int, int] = (2, 2),
    decider_processes: tuple[int, int] = (2, 2),
    activity_type: str = "Sleep",
    timeout_slots: tuple[int, ...] = (5,) * 8,
    heartbeat_timeout: int = 3,
    decision_timeout: int = 5,
    crash_window: float = 1.0,
    extra: str = "",
) -> str:
    """Build a manager configuration on the diagnostic task lists with short SWF timeouts.

    A killed worker's task is scheduled again only after its START_TO_CLOSE slot or
    HEARTBEAT timeout, and a killed decider's task after the workflow type's task
    START_TO_CLOSE, so those are seconds here. The video task lists run no process.
    """
    slots = ", ".join(str(slot) for slot in timeout_slots)
    local_keys = f"local_port = {local_port}\nlocal_max_poll_seconds = {max_poll_seconds}\n"
    return (
        "[swf]\n"
        f"endpoint_url = {json.dumps(endpoint_url)}\n"
        f"domain = {json.dumps(DOMAIN)}\n"
        f"{local_keys if endpoint_url == 'local' else ''}"
        "[storage]\n"
        f"root = {json.dumps(str(storage_root))}\n"
        "[supervision]\n"
        f"crash_window = {crash_window}\n"
        "drain_timeout = 30.0\n"
        "[[task_lists]]\n"
        'name = "video-decisions"\n'
        "min_processes = 0\n"
        "max_processes = 1\n"
        "[[task_lists]]\n"
        'name = "video-activities"\n'
        "min_processes = 0\n"
        "max_processes = 1\n"
        "[[task_lists]]\n"
        'name = "diagnostic-decisions"\n'
        f"min_processes = {decider_processes[0]}\n"
        f"max_processes = {decider_processes[1]}\n"
        "[[task_lists]]\n"
        'name = "diagnostic-activities"\n'
        f"min_processes = {activity_processes[0]}\n"
        f"max_processes = {activity_processes[1]}\n"
        "[[activity_types]]\n"
        f"name = {json.dumps(activity_type)}\n"
        f"start_to_close_timeout = {timeout_slots[0]}\n"
        f"heartbeat_timeout = {heartbeat_timeout}\n"
        "[activity_types.retry]\n"
        f"timeouts = [{slots}]\n"
        "[[workflow_types]]\n"
        f"name = {json.dumps(activity_type)}\n"
        f"task_start_to_close_timeout = {decision_timeout}\n"
        f"{extra}"
    )


def endpoint_client(url: str) -> Any:
    """Build the test process's own boto3 client: one attempt per call, so an outage shows at once."""
    return swf_client(url, check_replies=False, read_timeout=30.0)


def _epoch() -> datetime.datetime:
    return datetime.datetime(1970, 1, 2, tzinfo=datetime.UTC)


def list_executions(client: Any, workflow_id: str | None = None) -> list[dict[str, Any]]:
    """Return the open and closed executions of the domain, every page, optionally of one workflow id."""
    found: list[dict[str, Any]] = []
    for operation in ("list_open_workflow_executions", "list_closed_workflow_executions"):
        params: dict[str, Any] = {
            "domain": DOMAIN,
            "startTimeFilter": {"oldestDate": _epoch()},
            "maximumPageSize": MAX_PAGE_SIZE,
        }
        if workflow_id is not None:
            params["executionFilter"] = {"workflowId": workflow_id}
        while True:
            page = getattr(client, operation)(**params)
            found.extend(page.get("executionInfos", []))
            token = page.get("nextPageToken")
            if not token:
                break
            params["nextPageToken"] = token
    return found


def history(client: Any, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
    """Return every event of one run, following nextPageToken through every page."""
    params: dict[str, Any] = {
        "domain": DOMAIN,
        "execution": {"workflowId": workflow_id, "runId": run_id},
        "maximumPageSize": MAX_PAGE_SIZE,
    }
    events: list[dict[str, Any]] = []
    while True:
        page = client.get_workflow_execution_history(**params)
        events.extend(page.get("events", []))
        token = page.get("nextPageToken")
        if not token:
            return events
        params["nextPageToken"] = token


class WorkflowStarter:
    """Starts workflows from the test process and survives short endpoint outages.

    A start whose reply was lost may still have reached the endpoint. Before it tries
    again, the starter looks the workflow id up, so a lost reply never starts a second run.
    """

    def __init__(self, url: str, config: Config) -> None:
        self.client = endpoint_client(url)
        self.config = config
        self.started: dict[str, str] = {}
        self.retried_starts = 0

    def start(self, workflow_type: str, workflow_id: str, workflow_input: dict[str, Any]) -> str:
        last_error: Exception | None = None
        for attempt in range(START_ATTEMPTS):
            try:
                if attempt > 0:
                    existing = list_executions(self.client, workflow_id)
                    if existing:
                        run_id = existing[0]["execution"]["runId"]
                        self.started[workflow_id] = run_id
                        return run_id
                run_id = start_workflow(self.client, self.config, workflow_type, workflow_id, workflow_input)
                self.started[workflow_id] = run_id
                return run_id
            except (BotoCoreError, ClientError) as error:
                if isinstance(error, ClientError) and error_code(error) not in ("InternalFailure", "ServiceUnavailable"):
                    raise
                last_error = error
                self.retried_starts += 1
                # The endpoint is coming back, and a connection attempt costs little.
                time.sleep(START_RETRY_PAUSE)
        raise AssertionError(f"could not start workflow {workflow_id} in {START_ATTEMPTS} attempts: {last_error}")

    def count_closed(self) -> int:
        """Return how many executions of the domain are closed."""
        reply = self.client.count_closed_workflow_executions(domain=DOMAIN, startTimeFilter={"oldestDate": _epoch()})
        return int(reply["count"])


def wait_until(predicate: Callable[[], Any], timeout: float, description: str, interval: float = WATCH_INTERVAL) -> Any:
    """Call ``predicate`` until it returns a true value and return that value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {description}")
        time.sleep(interval)


def wait_for_closed(client: Any, workflow_id: str, run_id: str, timeout: float, interval: float = 0.2) -> list[dict[str, Any]]:
    """Return the history of a run once it has a close event; fail after ``timeout`` s."""

    def closed_history() -> list[dict[str, Any]] | None:
        events = history(client, workflow_id, run_id)
        return events if any(event["eventType"] in CLOSE_EVENTS for event in events) else None

    return wait_until(closed_history, timeout, f"workflow {workflow_id} to close", interval)


# ---------------------------------------------------------------- processes


def manager_children(manager_pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(manager_pid).children()
    except psutil.NoSuchProcess:
        return []


def endpoint_process(manager_pid: int) -> psutil.Process | None:
    """Return the manager's embedded endpoint child, found by its command line."""
    for child in manager_children(manager_pid):
        try:
            if "localswf" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def endpoint_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class Kill:
    """One SIGKILL the chaos loop sent to a worker, with the phase and task the manager's status showed for it."""

    pid: int
    role: str
    task_list: str
    phase: str
    task: dict[str, Any] | None


def kill_random_worker(state_dir: Path, manager_pid: int, rng: random.Random) -> Kill | None:
    """SIGKILL one worker that the manager's status lists and that is its child; None when there is none.

    The endpoint and the manager's helper processes never appear in the status's worker
    list, so they are never chosen.
    """
    try:
        status = query(state_dir)
    except StatusUnavailable:
        return None
    candidates = [worker for worker in status.get("workers", []) if worker.get("stop_reason") is None]
    rng.shuffle(candidates)
    for worker in candidates:
        try:
            process = psutil.Process(worker["pid"])
            # The parent check rules out a pid that a new process took after the status was read.
            if process.ppid() != manager_pid:
                continue
            os.kill(worker["pid"], signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
        try:
            process.wait(timeout=10)
        except psutil.TimeoutExpired:
            raise AssertionError(f"worker {worker['pid']} survived SIGKILL for 10 s") from None
        except psutil.NoSuchProcess:
            pass
        return Kill(worker["pid"], worker["role"], worker["task_list"], worker["phase"], worker.get("task"))
    return None


# ---------------------------------------------------------------- logs


def parse_log_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Return the JSON records among ``lines``, skipping the embedded endpoint's plain-text lines.

    The endpoint's output shares the manager's stderr, and a fragment of it can land in
    front of a record on the same line, so a record is read from its first ``{"``.
    """
    records = []
    for line in lines:
        start = line.find('{"')
        if start < 0:
            continue
        try:
            records.append(json.loads(line[start:]))
        except ValueError:
            continue
    return records


def interleaved_lines(path: Path) -> list[str]:
    """Return the log lines where other output precedes a JSON record, which a JSON log reader would reject."""
    return [line for line in path.read_text(errors="replace").splitlines() if line.find('{"') > 0]


def read_log(path: Path) -> list[dict[str, Any]]:
    return parse_log_lines(path.read_text(errors="replace").splitlines())


class LogFollower:
    """Reads the JSON records that a log file gained since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._partial = ""

    def new_records(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, errors="replace") as stream:
                stream.seek(self.offset)
                text = stream.read()
                self.offset = stream.tell()
        except FileNotFoundError:
            return []
        text = self._partial + text
        lines = text.split("\n")
        self._partial = lines.pop()
        return parse_log_lines(lines)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, description: str) -> dict[str, Any]:
        """Return the first new record that matches ``predicate``; fail after ``timeout`` s."""

        def match() -> dict[str, Any] | None:
            return next((record for record in self.new_records() if predicate(record)), None)

        return wait_until(match, timeout, description)


# ---------------------------------------------------------------- history audit


def _attributes(event: dict[str, Any]) -> dict[str, Any]:
    key = event["eventType"][0].lower() + event["eventType"][1:] + "EventAttributes"
    return event.get(key, {})


@dataclass
class HistoryAudit:
    """What one workflow's history shows: counts, and problems that mean lost or doubled work."""

    workflow_id: str
    close_event: str | None = None
    completions: int = 0
    activities_scheduled: int = 0
    activities_completed: int = 0
    activity_timeouts: collections.Counter[str] = field(default_factory=collections.Counter)
    failure_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    decision_timeouts: int = 0
    problems: list[str] = field(default_factory=list)


def audit_history(workflow_id: str, events: list[dict[str, Any]], steps: int = 1) -> HistoryAudit:
    """Check one run of a linear pipeline of ``steps`` activities for lost, doubled or overlapping work.

    Every scheduled activity must be started at most once and closed at most once, and a
    close must name the start it belongs to. No two activities may be open at once, and
    no decision may be rejected. Each step completes exactly once, and the run completes
    exactly once, with its last event.
    """
    audit = HistoryAudit(workflow_id)
    scheduled: dict[int, str] = {}
    started: dict[int, int] = {}
    closed: dict[int, str] = {}
    open_activities: set[int] = set()

    for event in events:
        kind = event["eventType"]
        attributes = _attributes(event)
        event_id = event["eventId"]
        if kind == "ActivityTaskScheduled":
            audit.activities_scheduled += 1
            if open_activities:
                audit.problems.append(f"event {event_id}: scheduled while activities {sorted(open_activities)} are open")
            scheduled[event_id] = attributes["activityId"]
            open_activities.add(event_id)
        elif kind == "ActivityTaskStarted":
            scheduled_id = attributes["scheduledEventId"]
            if scheduled_id not in scheduled:
                audit.problems.append(f"event {event_id}: started an activity never scheduled ({scheduled_id})")
            if scheduled_id in started:
                audit.problems.append(f"event {event_id}: activity of event {scheduled_id} started twice")
            started[scheduled_id] = event_id
        elif kind in ACTIVITY_CLOSE_EVENTS:
            scheduled_id = attributes["scheduledEventId"]
            if scheduled_id in closed:
                audit.problems.append(
                    f"event {event_id}: activity of event {scheduled_id} closed twice ({closed[scheduled_id]}, {kind})"
                )
            closed[scheduled_id] = kind
            open_activities.discard(scheduled_id)
            started_id = attributes.get("startedEventId")
            if kind in ("ActivityTaskCompleted", "ActivityTaskFailed") and started.get(scheduled_id) != started_id:
                audit.problems.append(
                    f"event {event_id}: {kind} names start {started_id}, but the start was {started.get(scheduled_id)}"
                )
            if kind == "ActivityTaskCompleted":
                audit.activities_completed += 1
            elif kind == "ActivityTaskTimedOut":
                audit.activity_timeouts[attributes.get("timeoutType", "?")] += 1
            elif kind == "ActivityTaskFailed":
                audit.failure_reasons[attributes.get("reason", "")] += 1
        elif kind == "DecisionTaskTimedOut":
            audit.decision_timeouts += 1
        elif kind.endswith("Failed") and kind not in ALLOWED_FAILED_EVENTS:
            audit.problems.append(f"event {event_id}: rejected decision {kind}: {attributes}")
        if kind == "WorkflowExecutionCompleted":
            audit.completions += 1
        if kind in CLOSE_EVENTS:
            if audit.close_event is not None:
                audit.problems.append(f"event {event_id}: second close event {kind} after {audit.close_event}")
            audit.close_event = kind

    if audit.close_event is None:
        audit.problems.append("the run is still open")
    elif events[-1]["eventType"] != audit.close_event:
        audit.problems.append(f"events follow the close event {audit.close_event}")
    if audit.close_event not in (None, "WorkflowExecutionCompleted"):
        audit.problems.append(f"the run closed with {audit.close_event}, not WorkflowExecutionCompleted")
    if audit.close_event == "WorkflowExecutionCompleted" and audit.activities_completed != steps:
        audit.problems.append(f"{audit.activities_completed} activity completions for {steps} steps")
    return audit


@dataclass
class AuditSummary:
    """Counts over the audited workflows, and every problem found, with its workflow id."""

    workflows: int = 0
    completed: int = 0
    activities_scheduled: int = 0
    activity_timeouts: collections.Counter[str] = field(default_factory=collections.Counter)
    failure_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    decision_timeouts: int = 0
    workflows_retried: int = 0
    problems: list[str] = field(default_factory=list)


def audit_workflows(client: Any, started: dict[str, str], steps: int = 1) -> AuditSummary:
    """Audit the history of every started workflow, and check the domain contains no other run of them."""
    summary = AuditSummary(workflows=len(started))
    runs: dict[str, list[str]] = collections.defaultdict(list)
    for info in list_executions(client):
        runs[info["execution"]["workflowId"]].append(info["execution"]["runId"])

    for workflow_id in sorted(set(runs) - set(started)):
        summary.problems.append(f"{workflow_id}: a run the test never started ({runs[workflow_id]})")
    for workflow_id, run_id in sorted(started.items()):
        if runs.get(workflow_id) != [run_id]:
            summary.problems.append(f"{workflow_id}: runs {runs.get(workflow_id)}, expected only {run_id}")
        audit = audit_history(workflow_id, history(client, workflow_id, run_id), steps)
        summary.problems.extend(f"{workflow_id}: {problem}" for problem in audit.problems)
        summary.completed += audit.completions
        summary.activities_scheduled += audit.activities_scheduled
        summary.activity_timeouts.update(audit.activity_timeouts)
        summary.failure_reasons.update(audit.failure_reasons)
        summary.decision_timeouts += audit.decision_timeouts
        if audit.activities_scheduled > steps or audit.decision_timeouts:
            summary.workflows_retried += 1
    return summary
