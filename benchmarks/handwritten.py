"""A minimal hand-written decider and activity worker with plain boto3: the throughput limit.

Each process long-polls one task list until the parent sets `stop` and a poll comes back empty.
The decider schedules one activity, then completes the workflow; the worker completes each
activity task at once. Processes are started with "spawn" and build their own boto3 clients.
"""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

from benchmarks.roundtrip import decide, make_client

DECISIONS = "hand-decisions"
ACTIVITIES = "hand-activities"


def decider_main(endpoint_url: str, domain: str, stop: Any, ready: Any) -> None:
    client = make_client(endpoint_url)
    ready.put("decider")
    identity = f"hand-decider-{socket.gethostname()}"
    while True:
        task = client.poll_for_decision_task(domain=domain, taskList={"name": DECISIONS}, identity=identity)
        token = task.get("taskToken")
        if not token:
            if stop.is_set():
                break
            continue
        events = task["events"]
        while task.get("nextPageToken"):
            task = client.poll_for_decision_task(
                domain=domain, taskList={"name": DECISIONS}, identity=identity, nextPageToken=task["nextPageToken"]
            )
            events += task["events"]
        workflow_id = task["workflowExecution"]["workflowId"]
        client.respond_decision_task_completed(taskToken=token, decisions=[decide(events, ACTIVITIES, workflow_id)])
    client.close()


def worker_main(endpoint_url: str, domain: str, stop: Any, ready: Any) -> None:
    client = make_client(endpoint_url)
    ready.put("worker")
    identity = f"hand-worker-{socket.gethostname()}"
    while True:
        task = client.poll_for_activity_task(domain=domain, taskList={"name": ACTIVITIES}, identity=identity)
        token = task.get("taskToken")
        if not token:
            if stop.is_set():
                break
            continue
        client.respond_activity_task_completed(taskToken=token, result="{}")
    client.close()


class HandwrittenFleet:
    """`deciders` decider processes and `workers` activity processes on one endpoint."""

    def __init__(self, endpoint_url: str, domain: str, deciders: int, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.ready = context.Queue()
        self.processes = [
            context.Process(target=decider_main, args=(endpoint_url, domain, self.stop_event, self.ready), name=f"hand-decider-{n}", daemon=True)
            for n in range(deciders)
        ] + [
            context.Process(target=worker_main, args=(endpoint_url, domain, self.stop_event, self.ready), name=f"hand-worker-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self, timeout: float = 120.0) -> None:
        """Start the processes and wait until each has built its client."""
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.ready.get(timeout=timeout)

    def stop(self, timeout: float) -> list[str]:
        """Ask every process to stop after its next empty poll; kill those still running after `timeout`."""
        self.stop_event.set()
        killed = []
        for process in self.processes:
            process.join(timeout=timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
                killed.append(process.name)
        return killed
