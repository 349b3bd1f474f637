"""Exactly-once delivery to many polling processes, and long polls that neither spin nor block other calls."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from localswf.testing import LocalSwfProcess, decision, register_test_domain, swf_client

DOMAIN = "test"
WORKFLOW = {"name": "Workflow", "version": "1"}
ACTIVITY = {"name": "Activity", "version": "1"}
REPO_ROOT = Path(__file__).resolve().parents[1]

# One polling process: takes activity tasks until an empty poll, completes each, prints the activity ids as JSON.
WORKER = """
import json, sys, boto3
client = boto3.client("swf", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="a", aws_secret_access_key="b")
taken = []
while True:
    task = client.poll_for_activity_task(domain="test", taskList={"name": "activities"}, identity=sys.argv[2])
    if "taskToken" not in task:
        break
    taken.append(task["activityId"])
    client.respond_activity_task_completed(taskToken=task["taskToken"], result=sys.argv[2])
print(json.dumps(taken))
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalSwfProcess]:
    with LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=2) as process:
        yield process


def test_eight_processes_get_each_task_once(server: LocalSwfProcess) -> None:
    client = swf_client(server.url or "")
    register_test_domain(client, DOMAIN, decision_timeout="60", activity_timeouts=("120", "120", "240", "NONE"))
    expected = set()
    for workflow in range(2):
        client.start_workflow_execution(domain=DOMAIN, workflowId=f"wf{workflow}", workflowType=WORKFLOW)
        task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"})
        ids = [f"wf{workflow}-{index}" for index in range(500)]
        expected.update(ids)
        client.respond_decision_task_completed(
            taskToken=task["taskToken"],
            decisions=[decision("ScheduleActivityTask", activityType=ACTIVITY, activityId=activity_id) for activity_id in ids],
        )
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})["count"] == 1000

    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, server.url or "", f"worker-{number}"], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        for number in range(8)
    ]
    taken: list[str] = []
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        taken.extend(json.loads(output))
    duplicates = [activity_id for activity_id, count in Counter(taken).items() if count > 1]
    assert duplicates == []
    assert set(taken) == expected
    assert client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "activities"})["count"] == 0
    for workflow in range(2):
        run_id = client.list_open_workflow_executions(
            domain=DOMAIN, startTimeFilter={"oldestDate": 0}, executionFilter={"workflowId": f"wf{workflow}"}
        )["executionInfos"][0]["execution"]["runId"]
        paginator = client.get_paginator("get_workflow_execution_history")
        events = [event for page in paginator.paginate(domain=DOMAIN, execution={"workflowId": f"wf{workflow}", "runId": run_id}) for event in page["events"]]
        completed = [event for event in events if event["eventType"] == "ActivityTaskCompleted"]
        assert len(completed) == 500


def raw_poll(url: str, task_list: str) -> http.client.HTTPConnection:
    """Send a PollForActivityTask without reading the reply, so the poll stays held on the server."""
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    body = json.dumps({"domain": DOMAIN, "taskList": {"name": task_list}})
    connection.request("POST", "/", body=body, headers={
        "X-Amz-Target": "SimpleWorkflowService.PollForActivityTask", "Content-Type": "application/x-amz-json-1.0",
    })
    return connection


def test_held_polls_do_not_delay_other_calls(server: LocalSwfProcess) -> None:
    client = swf_client(server.url or "")
    register_test_domain(client, DOMAIN)
    held = [raw_poll(server.url or "", f"idle-{number % 10}") for number in range(300)]
    try:
        deadline = time.monotonic() + 30
        while server.held_polls() < 300:
            assert time.monotonic() < deadline, f"only {server.held_polls()} of 300 polls reached the server"
        # Time ordinary calls while the 300 polls wait on the server.
        slowest = 0.0
        for _ in range(30):
            began = time.monotonic()
            client.describe_domain(name=DOMAIN)
            client.count_pending_activity_tasks(domain=DOMAIN, taskList={"name": "idle-1"})
            slowest = max(slowest, time.monotonic() - began)
        assert slowest < 1.0, f"a call took {slowest:.2f} s with 300 held polls"
        # A task scheduled now goes to one of the held pollers on that list at once.
        client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW)
        task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"})
        began = time.monotonic()
        client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[
            decision("ScheduleActivityTask", activityType=ACTIVITY, activityId="a", taskList={"name": "idle-3"}),
        ])
        replies = []
        for connection in held[3::10]:
            replies.append(json.loads(connection.getresponse().read()))
        delivered = [reply for reply in replies if "taskToken" in reply]
        assert len(delivered) == 1
        assert delivered[0]["activityId"] == "a"
        assert time.monotonic() - began < 5.0
    finally:
        for connection in held:
            connection.close()


def test_long_poll_wakes_when_task_scheduled(tmp_path: Path) -> None:
    with LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=30) as server:
        client = swf_client(server.url or "")
        register_test_domain(client, DOMAIN)
        result: dict[str, Any] = {}
        poller_client = swf_client(server.url or "")

        def poll() -> None:
            result["task"] = poller_client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"})
            result["returned"] = time.monotonic()

        thread = threading.Thread(target=poll)
        thread.start()
        deadline = time.monotonic() + 10
        while server.held_polls() < 1:
            assert time.monotonic() < deadline, "the poll never reached the server"
        started = time.monotonic()
        client.start_workflow_execution(domain=DOMAIN, workflowId="wf", workflowType=WORKFLOW)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert result["task"]["workflowExecution"]["workflowId"] == "wf"
        assert result["returned"] - started < 2.0
