"""State survives SIGKILL: every acknowledged call is on disk, and timers and timeouts fire after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from localswf.testing import LocalSwfProcess, attributes_of, decision, event_types, register_test_domain, swf_client

DOMAIN = "test"
WORKFLOW = {"name": "Workflow", "version": "1"}
ACTIVITY = {"name": "Activity", "version": "1"}
WAIT_LIMIT = 15.0


def poll_decision(client: Any) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "decisions"}, identity="decider")
        if "taskToken" in task:
            return task
    raise AssertionError(f"no decision task within {WAIT_LIMIT} s")


def history(client: Any, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
    return client.get_workflow_execution_history(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id})["events"]


def test_sigkill_loses_nothing_and_timeouts_fire_after_restart(tmp_path: Path) -> None:
    server = LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=1)
    server.start()
    try:
        client = swf_client(server.url or "")
        register_test_domain(client, DOMAIN, decision_timeout="30")
        runs = {}
        for index in range(20):
            timeout = "2" if index == 2 else "30"
            runs[f"wf{index}"] = client.start_workflow_execution(
                domain=DOMAIN, workflowId=f"wf{index}", workflowType=WORKFLOW, taskStartToCloseTimeout=timeout
            )["runId"]
        # wf0: a 2 s timer; wf1: an activity whose 2 s START_TO_CLOSE runs out while the server is down;
        # wf2: a decision task taken by a decider that never replies (2 s START_TO_CLOSE).
        first = poll_decision(client)
        assert first["workflowExecution"]["workflowId"] == "wf0"
        client.respond_decision_task_completed(taskToken=first["taskToken"], decisions=[decision("StartTimer", timerId="t", startToFireTimeout="2")])
        second = poll_decision(client)
        client.respond_decision_task_completed(taskToken=second["taskToken"], decisions=[
            decision("ScheduleActivityTask", activityType=ACTIVITY, activityId="a", startToCloseTimeout="2"),
        ])
        activity = client.poll_for_activity_task(domain=DOMAIN, taskList={"name": "activities"}, identity="w")
        assert activity["workflowExecution"]["workflowId"] == "wf1"
        held = poll_decision(client)
        assert held["workflowExecution"]["workflowId"] == "wf2"
        for index in range(50):
            client.signal_workflow_execution(domain=DOMAIN, workflowId="wf19", signalName=f"s{index}")
        acknowledged = len(history(client, "wf19", runs["wf19"]))
        all_due = time.monotonic() + 2.5

        server.kill()
        assert server.process is not None
        assert server.process.returncode == -9
        # Stay down until all three deadlines have passed: they must fire at start-up, not be lost.
        threading.Event().wait(max(0.0, all_due - time.monotonic()))
        server.start()
        client = swf_client(server.url or "")

        assert len(history(client, "wf19", runs["wf19"])) == acknowledged
        open_count = client.count_open_workflow_executions(domain=DOMAIN, startTimeFilter={"oldestDate": 0})["count"]
        assert open_count == 20
        seen: dict[str, list[str]] = {}
        deadline = time.monotonic() + WAIT_LIMIT
        while {"wf0", "wf1", "wf2"} - set(seen) and time.monotonic() < deadline:
            task = poll_decision(client)
            workflow_id = task["workflowExecution"]["workflowId"]
            seen[workflow_id] = event_types(task["events"])
            client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision("CompleteWorkflowExecution")])
        assert "TimerFired" in seen["wf0"]
        assert "ActivityTaskTimedOut" in seen["wf1"]
        assert "DecisionTaskTimedOut" in seen["wf2"]
        timed_out = next(e for e in history(client, "wf1", runs["wf1"]) if e["eventType"] == "ActivityTaskTimedOut")
        assert attributes_of(timed_out)["timeoutType"] == "START_TO_CLOSE"
        # The worker that held the activity across the crash gets UnknownResourceFault.
        try:
            client.respond_activity_task_completed(taskToken=activity["taskToken"])
        except client.exceptions.UnknownResourceFault:
            pass
        else:
            raise AssertionError("a timed-out activity task was accepted after the restart")
        # The decider that held wf2's old task is refused as well.
        try:
            client.respond_decision_task_completed(taskToken=held["taskToken"], decisions=[])
        except client.exceptions.UnknownResourceFault:
            pass
        else:
            raise AssertionError("a timed-out decision task was accepted after the restart")
    finally:
        server.stop()


def test_sigkill_during_concurrent_writes(tmp_path: Path) -> None:
    """Each start that got a reply before the kill is present after the restart."""
    server = LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=1)
    server.start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def starter(prefix: str) -> None:
        client = swf_client(server.url or "", read_timeout=5)
        index = 0
        while not stop.is_set():
            workflow_id = f"{prefix}-{index}"
            try:
                client.start_workflow_execution(domain=DOMAIN, workflowId=workflow_id, workflowType=WORKFLOW)
            except Exception:  # noqa: BLE001 - the server is killed under the thread; the failed call is not acknowledged
                return
            with lock:
                acknowledged.append(workflow_id)
            index += 1

    try:
        register_test_domain(swf_client(server.url or ""), DOMAIN)
        threads = [threading.Thread(target=starter, args=(f"t{number}",)) for number in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + WAIT_LIMIT
        while time.monotonic() < deadline:
            with lock:
                if len(acknowledged) >= 100:
                    break
            threading.Event().wait(0.05)  # pacing only: the loop waits for a count with a bound
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.start()
        client = swf_client(server.url or "")
        count = client.count_open_workflow_executions(domain=DOMAIN, startTimeFilter={"oldestDate": 0})["count"]
        assert len(acknowledged) >= 100
        assert count >= len(acknowledged)
        assert count <= len(acknowledged) + 4  # at most one unacknowledged start per thread was committed
        for workflow_id in acknowledged[-8:]:
            infos = client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter={"oldestDate": 0}, executionFilter={"workflowId": workflow_id})
            assert len(infos["executionInfos"]) == 1
    finally:
        stop.set()
        server.stop()
