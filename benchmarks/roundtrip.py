"""Full round trips of a one-activity workflow with plain boto3, in N worker processes.

One round trip is 7 SWF calls made in sequence by one process on its own task lists:
StartWorkflowExecution, PollForDecisionTask, RespondDecisionTaskCompleted (ScheduleActivityTask),
PollForActivityTask, RespondActivityTaskCompleted, PollForDecisionTask and
RespondDecisionTaskCompleted (CompleteWorkflowExecution). Each process has its own task lists, so
every poll finds its task already scheduled and the rate measures the endpoint, not poll waits.

Processes are started with the "spawn" method and each builds its own boto3 client.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

DOMAIN = "bench"
WORKFLOW_TYPE = {"name": "BenchRoundTrip", "version": "1"}
ACTIVITY_TYPE = {"name": "BenchNoop", "version": "1"}
CALLS_PER_WORKFLOW = 7
READY_TIMEOUT = 120.0  # seconds for all children to import boto3 and run one warm-up workflow
RESULT_GRACE = 90.0  # seconds after the measuring window for children to finish their last workflow


def make_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "swf",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="benchmark",
        aws_secret_access_key="benchmark",
        config=Config(retries={"max_attempts": 1}, read_timeout=90, connect_timeout=10, max_pool_connections=4),
    )


def register(endpoint_url: str, domain: str = DOMAIN) -> None:
    """Register the domain and both types, ignoring those that exist already."""
    client = make_client(endpoint_url)
    calls = [
        (client.register_domain, {"name": domain, "workflowExecutionRetentionPeriodInDays": "1"}),
        (client.register_workflow_type, {
            "domain": domain, **WORKFLOW_TYPE,
            "defaultTaskStartToCloseTimeout": "60", "defaultExecutionStartToCloseTimeout": "300",
            "defaultChildPolicy": "TERMINATE",
        }),
        (client.register_activity_type, {
            "domain": domain, **ACTIVITY_TYPE,
            "defaultTaskStartToCloseTimeout": "60", "defaultTaskScheduleToStartTimeout": "60",
            "defaultTaskScheduleToCloseTimeout": "120", "defaultTaskHeartbeatTimeout": "NONE",
        }),
    ]
    for call, params in calls:
        try:
            call(**params)
        except client.exceptions.ClientError as error:
            if "AlreadyExists" not in error.response.get("Error", {}).get("Code", ""):
                raise
    client.close()


def decide(events: list[dict[str, Any]], activity_task_list: str, workflow_id: str) -> dict[str, Any]:
    """Return the next decision from the history: schedule the activity, or complete once it has completed."""
    if any(event["eventType"] == "ActivityTaskCompleted" for event in events):
        return {
            "decisionType": "CompleteWorkflowExecution",
            "completeWorkflowExecutionDecisionAttributes": {"result": "{}"},
        }
    return {
        "decisionType": "ScheduleActivityTask",
        "scheduleActivityTaskDecisionAttributes": {
            "activityType": ACTIVITY_TYPE,
            "activityId": "noop-" + workflow_id,
            "input": "{}",
            "taskList": {"name": activity_task_list},
            "scheduleToStartTimeout": "60",
            "scheduleToCloseTimeout": "120",
            "startToCloseTimeout": "60",
            "heartbeatTimeout": "NONE",
        },
    }


class RoundTripError(RuntimeError):
    """An endpoint returned no task or an unexpected history during a round trip."""


def run_one_workflow(client: Any, domain: str, task_list: str, identity: str) -> list[str]:
    """Run one workflow through its 7 calls; return the decision types sent, for checking."""
    activity_task_list = task_list + "-activities"
    workflow_id = uuid.uuid4().hex
    client.start_workflow_execution(
        domain=domain, workflowId=workflow_id, workflowType=WORKFLOW_TYPE, taskList={"name": task_list},
        input="{}", executionStartToCloseTimeout="300", taskStartToCloseTimeout="60", childPolicy="TERMINATE",
    )
    sent: list[str] = []
    for step in ("decide", "activity", "decide"):
        if step == "decide":
            task = client.poll_for_decision_task(domain=domain, taskList={"name": task_list}, identity=identity)
            if not task.get("taskToken"):
                raise RoundTripError(f"empty decision poll on {task_list} for workflow {workflow_id}")
            decision = decide(task["events"], activity_task_list, workflow_id)
            sent.append(decision["decisionType"])
            client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision])
        else:
            task = client.poll_for_activity_task(domain=domain, taskList={"name": activity_task_list}, identity=identity)
            if not task.get("taskToken"):
                raise RoundTripError(f"empty activity poll on {activity_task_list} for workflow {workflow_id}")
            client.respond_activity_task_completed(taskToken=task["taskToken"], result="{}")
    return sent


EXPECTED_DECISIONS = ["ScheduleActivityTask", "CompleteWorkflowExecution"]


def child_main(index: int, commands: Any, replies: Any) -> None:
    """Serve measurement commands from the parent until it sends None.

    For each command the child builds a client for the endpoint (one per URL, kept), runs one
    warm-up workflow, replies "ready", waits for the start time, runs workflows until the window
    closes and replies with its counts.
    """
    clients: dict[str, Any] = {}
    while True:
        command = commands.get()
        if command is None:
            break
        endpoint_url, domain, duration = command["url"], command["domain"], command["duration"]
        task_list = f"bench-{os.getpid()}-{index}-{command['run']}"
        identity = f"bench-{index}"
        try:
            client = clients.get(endpoint_url)
            if client is None:
                client = clients[endpoint_url] = make_client(endpoint_url)
            run_one_workflow(client, domain, task_list, identity)  # opens the connection, loads botocore's models
        except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
            replies.put(("ready", index, f"{type(error).__name__}: {error}"))
            continue
        replies.put(("ready", index, None))
        window_start = commands.get()
        if window_start is None:
            continue
        replies.put(("result", index, _run_window(client, domain, task_list, identity, window_start, duration)))
    for client in clients.values():
        client.close()


def _run_window(client: Any, domain: str, task_list: str, identity: str, window_start: float, duration: float) -> dict[str, Any]:
    window_end = window_start + duration
    while time.monotonic() < window_start:
        pass
    cpu_start = time.process_time()
    completed = 0
    finished_total = 0  # also counts the last workflow that ends after the window, whose CPU time is included
    errors: list[str] = []
    wrong_decisions = 0
    latencies: list[float] = []
    while True:
        began = time.monotonic()
        if began >= window_end:
            break
        try:
            sent = run_one_workflow(client, domain, task_list, identity)
        except Exception as error:  # noqa: BLE001 - counted and reported; one failure must not stop the window
            errors.append(f"{type(error).__name__}: {error}")
            if len(errors) >= 20:
                break
            continue
        finished = time.monotonic()
        finished_total += 1
        if finished <= window_end:
            completed += 1
            latencies.append(finished - began)
            if sent != EXPECTED_DECISIONS:
                wrong_decisions += 1
    return {
        "completed": completed, "errors": errors[:5], "error_count": len(errors), "wrong_decisions": wrong_decisions,
        "cpu_seconds": time.process_time() - cpu_start, "finished_total": finished_total, "latencies": latencies,
    }


@dataclass
class RoundTripResult:
    processes: int
    duration: float
    completed: int
    rate: float  # workflows per second over the window, all processes together
    client_cpu_ms_per_call: float
    server_cpu_ms_per_workflow: float | None
    median_latency_ms: float
    error_count: int
    errors: list[str] = field(default_factory=list)
    wrong_decisions: int = 0
    load_before: float = 0.0
    load_after: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _process_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


class RoundTripPool:
    """Worker processes kept across measurements, so each window costs no process start-up.

    The processes are started with "spawn" and build their boto3 clients themselves.
    """

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.replies = context.Queue()
        self.commands = [context.Queue() for _ in range(size)]
        self.children = [
            context.Process(target=child_main, args=(index, self.commands[index], self.replies), name=f"bench-roundtrip-{index}", daemon=True)
            for index in range(size)
        ]
        for child in self.children:
            child.start()
        self.runs = 0

    def measure(self, endpoint_url: str, processes: int, duration: float, server_pid: int | None = None, domain: str = DOMAIN) -> RoundTripResult:
        """Run `processes` children for a `duration`-second window against a registered endpoint."""
        if processes > len(self.children):
            raise ValueError(f"the pool has {len(self.children)} processes, {processes} requested")
        self.runs += 1
        for index in range(processes):
            self.commands[index].put({"url": endpoint_url, "domain": domain, "duration": duration, "run": self.runs})
        failures = {}
        ready = []
        for _ in range(processes):
            _, index, failure = self._reply("ready", READY_TIMEOUT)
            if failure is None:
                ready.append(index)
            else:
                failures[index] = failure
        if failures:
            for index in ready:
                self.commands[index].put(None)  # None as the start time cancels the window
            raise RoundTripError(f"warm-up workflows failed on {endpoint_url}: {failures}")
        load_before = os.getloadavg()[0]
        server_cpu_start = _process_cpu_seconds(server_pid)
        window_start = time.monotonic() + 0.05
        for index in range(processes):
            self.commands[index].put(window_start)
        reports = [self._reply("result", duration + RESULT_GRACE)[2] for _ in range(processes)]
        server_cpu_end = _process_cpu_seconds(server_pid)
        load_after = os.getloadavg()[0]
        return _summarize(processes, duration, reports, server_cpu_start, server_cpu_end, load_before, load_after)

    def _reply(self, kind: str, timeout: float) -> tuple[str, int, Any]:
        """Take the next reply, failing early when a child has exited."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.replies.get(timeout=1.0)
            except queue.Empty:
                crashed = [child.name for child in self.children if child.exitcode is not None]
                if crashed:
                    raise RoundTripError(f"round-trip processes {crashed} exited while the parent waited for {kind!r}") from None
                if time.monotonic() > deadline:
                    raise RoundTripError(f"no {kind!r} reply from the round-trip processes within {timeout:.0f} s") from None
                continue
            if reply[0] != kind:
                raise RoundTripError(f"expected a {kind!r} reply from the round-trip processes, got {reply[0]!r}")
            return reply

    def close(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for child in self.children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
                child.join(timeout=10)

    def __enter__(self) -> RoundTripPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _summarize(
    processes: int, duration: float, reports: list[dict[str, Any]],
    server_cpu_start: float | None, server_cpu_end: float | None, load_before: float, load_after: float,
) -> RoundTripResult:
    completed = sum(report["completed"] for report in reports)
    cpu = sum(report["cpu_seconds"] for report in reports)
    finished_total = sum(report["finished_total"] for report in reports)
    latencies = sorted(latency for report in reports for latency in report["latencies"])
    server_cpu = None
    if server_cpu_start is not None and server_cpu_end is not None and completed:
        server_cpu = (server_cpu_end - server_cpu_start) * 1000 / completed
    return RoundTripResult(
        processes=processes,
        duration=duration,
        completed=completed,
        rate=completed / duration,
        client_cpu_ms_per_call=cpu * 1000 / max(1, finished_total * CALLS_PER_WORKFLOW),
        server_cpu_ms_per_workflow=server_cpu,
        median_latency_ms=latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        error_count=sum(report["error_count"] for report in reports),
        errors=[error for report in reports for error in report["errors"]][:5],
        wrong_decisions=sum(report["wrong_decisions"] for report in reports),
        load_before=load_before,
        load_after=load_after,
    )
