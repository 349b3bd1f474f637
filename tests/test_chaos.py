"""Chaos: every workflow completes exactly once while its workers, the manager and the endpoint die.

The test starts one-step Sleep workflows (0.2 s each) at a steady rate through a real
manager on its embedded endpoint. Meanwhile it

- sends SIGKILL to a random worker process, decider or activity worker, every 1 to 2 s;
- restarts the manager once: SIGTERM, wait for its exit, start it again on the same
  state folder and database, wait for READY=1 on the notify socket;
- sends SIGKILL to the embedded endpoint once, which the manager starts again on the
  same port.

Then it reads the SWF history of every workflow, every page. Each workflow id must have
one run, which completed once. Every scheduled activity must be started and closed at
most once, no two activities may be open at once, and no decision may be rejected.
Every workflow must close within SETTLE_TIMEOUT seconds of the last start.

Forms:
- short (default, for CI): 200 workflows, under 1 minute on 2 shared cores;
- full: ``SWF_MANAGER_CHAOS=full pytest tests/test_chaos.py -s``, 1,000 workflows,
  about 4.5 minutes. benchmarks/chaos_results.md records a full run.

``SWF_MANAGER_CHAOS_SEED`` fixes the random choices, which the test prints. Run with
``-s`` to see the counts: completed, activity attempts, retries after timeouts, kills
and restarts.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from chaos_support import (
    LogFollower,
    WorkflowStarter,
    audit_history,
    audit_workflows,
    endpoint_accepts,
    endpoint_process,
    free_port,
    history,
    interleaved_lines,
    kill_random_worker,
    list_executions,
    manager_toml,
    read_log,
    wait_until,
)
from manager_harness import ManagerProcess

from workers.config_loader import load_config

FULL = os.environ.get("SWF_MANAGER_CHAOS", "short") == "full"
WORKFLOWS = 1000 if FULL else 200
# Workflows started per second. Two activity workers can finish at most 10 Sleep tasks
# of 0.2 s per second, so the backlog stays short and the kills hit live work.
START_RATE = 4.0
SLEEP_SECONDS = 0.2
# Seconds between two worker kills, drawn uniformly: the scenario's cadence.
KILL_INTERVAL = (1.0, 2.0)
# A worker that dies within this many seconds of its start counts as a crash. With the
# default of 10 s, kills every 1 to 2 s among 4 workers often hit workers younger than
# that, and the lists back off as crash-looping for up to 60 s.
CRASH_WINDOW = 1.0
# After the last start, every workflow closes within this. The worst case is a few
# timed-out attempts of 5 s each and a decision task timeout of 5 s, on a loaded machine.
SETTLE_TIMEOUT = 180.0
# The manager drains within its 2 s empty poll and one 0.2 s task, so this only bounds a hang.
STOP_TIMEOUT = 60.0
ENDPOINT_RESTART_TIMEOUT = 30.0


def restart_manager(manager: ManagerProcess) -> float:
    """Stop the manager with SIGTERM, start it again on the same files and return the seconds it took."""
    began = time.monotonic()
    assert manager.process is not None
    old_pid = manager.pid
    manager.process.send_signal(signal.SIGTERM)
    code = manager.process.wait(timeout=STOP_TIMEOUT)
    assert code == 0, f"the manager exited with {code} on SIGTERM; log:\n{manager.log_tail()}"
    left = manager.leftover_processes()
    assert left == [], f"processes of manager {old_pid} outlived it: {[p.pid for p in left]}"
    # ManagerProcess.stop() would close the notify socket, so the restart reuses the object.
    manager.start()
    assert manager.pid != old_pid
    return time.monotonic() - began


def kill_endpoint(manager: ManagerProcess, port: int, follower: LogFollower) -> float:
    """SIGKILL the embedded endpoint, wait until the manager restarts it on ``port`` and return the seconds."""
    began = time.monotonic()
    endpoint = endpoint_process(manager.pid)
    assert endpoint is not None, "the manager has no localswf child process"
    endpoint.kill()
    record = follower.wait_for(
        lambda record: record.get("message") == "embedded endpoint restarted",
        ENDPOINT_RESTART_TIMEOUT,
        "the manager to restart its embedded endpoint",
    )
    assert record.get("endpoint_url") == f"http://127.0.0.1:{port}"
    assert endpoint_accepts(port)
    replacement = endpoint_process(manager.pid)
    assert replacement is not None and replacement.pid != endpoint.pid
    return time.monotonic() - began


def describe_open_workflows(starter: WorkflowStarter, limit: int = 5) -> str:
    """Describe a few workflows that are still open, with their last events, for a failure message."""
    open_ids = [
        info["execution"]["workflowId"]
        for info in list_executions(starter.client)
        if info.get("executionStatus") == "OPEN"
    ]
    lines = [f"{len(open_ids)} workflows still open"]
    for workflow_id in open_ids[:limit]:
        events = history(starter.client, workflow_id, starter.started[workflow_id])
        tail = ", ".join(f"{event['eventId']} {event['eventType']}" for event in events[-6:])
        lines.append(f"  {workflow_id}: {tail}")
    return "\n".join(lines)


@pytest.mark.timeout(1200 if FULL else 420)
def test_chaos_workflows_complete_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("SWF_MANAGER_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"chaos: {WORKFLOWS} workflows, seed {seed}")

    port = free_port()
    config_text = manager_toml("local", tmp_path / "data", local_port=port, crash_window=CRASH_WINDOW)
    manager = ManagerProcess(tmp_path, config_text)
    kills = []
    ticks = 0
    timings: dict[str, float] = {}
    try:
        state = manager.start()
        url = state["endpoint_url"]
        assert url == f"http://127.0.0.1:{port}"
        starter = WorkflowStarter(url, load_config(manager.config_path))
        follower = LogFollower(manager.log_path)

        restart_after = WORKFLOWS // 3
        endpoint_kill_after = 2 * WORKFLOWS // 3
        restarted = endpoint_killed = False
        began = time.monotonic()
        while len(starter.started) < WORKFLOWS:
            tick_began = time.monotonic()
            interval = rng.uniform(*KILL_INTERVAL)
            for _ in range(min(round(interval * START_RATE), WORKFLOWS - len(starter.started))):
                workflow_id = f"chaos-{len(starter.started):04d}-{uuid.uuid4().hex[:8]}"
                starter.start("Sleep", workflow_id, {"seconds": SLEEP_SECONDS, "heartbeat_every": 0.1})

            if not restarted and len(starter.started) >= restart_after:
                timings["manager restart"] = restart_manager(manager)
                restarted = True
                follower = LogFollower(manager.log_path)
            elif not endpoint_killed and len(starter.started) >= endpoint_kill_after:
                timings["endpoint restart"] = kill_endpoint(manager, port, follower)
                endpoint_killed = True

            ticks += 1
            kill = kill_random_worker(manager.state_dir, manager.pid, rng)
            if kill is not None:
                kills.append(kill)
            # The wait is the scenario's kill cadence, not a synchronisation.
            time.sleep(max(0.0, tick_began + interval - time.monotonic()))
        timings["starting"] = time.monotonic() - began

        settle_began = time.monotonic()
        try:
            wait_until(
                lambda: starter.count_closed() >= WORKFLOWS, SETTLE_TIMEOUT, "every workflow to close", interval=0.5
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{describe_open_workflows(starter)}") from None
        timings["settling"] = time.monotonic() - settle_began

        audit = audit_workflows(starter.client, starter.started)
        records = read_log(manager.log_path)
        broken_lines = interleaved_lines(manager.log_path)
        endpoint_tracebacks = manager.log_path.read_text(errors="replace").count("Exception occurred during processing")
        assert manager.stop() == 0
        assert manager.leftover_processes() == []
    finally:
        manager.kill_everything()

    deaths = [record for record in records if record.get("message", "").startswith("worker died")]
    sigkill_exits = {record.get("worker_pid") for record in records if record.get("exit_signal") == "SIGKILL"}
    endpoint_exits = [record for record in records if record.get("message", "").startswith("embedded endpoint exited")]
    crash_loops = [record for record in records if record.get("message", "").startswith("task list is crash-looping")]
    kills_by_role = collections.Counter(kill.role for kill in kills)
    busy_kills = sum(1 for kill in kills if kill.phase == "busy")

    counts: dict[str, Any] = {
        "workflows started": len(starter.started),
        "workflows completed": audit.completed,
        "activity attempts": audit.activities_scheduled,
        "activity timeouts": dict(audit.activity_timeouts),
        "decision task timeouts": audit.decision_timeouts,
        "activity failures by reason": dict(audit.failure_reasons),
        "workflows with a retry after a timeout": audit.workflows_retried,
        "worker kills": dict(kills_by_role),
        "worker kills while busy": busy_kills,
        "worker deaths logged by the manager": len(deaths),
        "crash-loop log lines": len(crash_loops),
        "manager restarts": 1,
        "endpoint kills": len(endpoint_exits),
        "starts retried by the test": starter.retried_starts,
        "endpoint tracebacks in the manager's log": endpoint_tracebacks,
        "JSON log lines with other output in front": len(broken_lines),
        "seconds": {name: round(value, 1) for name, value in timings.items()},
    }
    print("chaos counts:")
    for name, value in counts.items():
        print(f"  {name}: {value}")

    assert audit.problems == [], f"{len(audit.problems)} problems, first ones:\n" + "\n".join(audit.problems[:20])
    assert audit.completed == WORKFLOWS
    assert len(kills) >= ticks - 2, f"only {len(kills)} kills in {ticks} rounds"
    # A worker can exit on its own, for a recycle or a closed execution, just before the
    # SIGKILL lands. Any logged exit of the pid counts, and most of them are SIGKILL.
    logged_exits = {record.get("worker_pid") for record in records if "exit_signal" in record or "exit_code" in record}
    missed = [kill.pid for kill in kills if kill.pid not in logged_exits]
    assert missed == [], f"the manager logged no exit of killed workers {missed}"
    assert len([kill for kill in kills if kill.pid in sigkill_exits]) >= 0.9 * len(kills)
    assert len(endpoint_exits) == 1
    assert endpoint_exits[0].get("message") == "embedded endpoint exited: killed by SIGKILL"


def event(event_id: int, kind: str, **attributes: Any) -> dict[str, Any]:
    return {"eventId": event_id, "eventType": kind, kind[0].lower() + kind[1:] + "EventAttributes": attributes}


CLEAN_HISTORY = [
    event(1, "WorkflowExecutionStarted"),
    event(2, "DecisionTaskScheduled"),
    event(3, "DecisionTaskStarted"),
    event(4, "DecisionTaskCompleted"),
    event(5, "ActivityTaskScheduled", activityId="Sleep-1"),
    event(6, "ActivityTaskStarted", scheduledEventId=5),
    event(7, "ActivityTaskTimedOut", scheduledEventId=5, startedEventId=6, timeoutType="HEARTBEAT"),
    event(8, "ActivityTaskScheduled", activityId="Sleep-2"),
    event(9, "ActivityTaskStarted", scheduledEventId=8),
    event(10, "ActivityTaskCompleted", scheduledEventId=8, startedEventId=9),
    event(11, "WorkflowExecutionCompleted"),
]


@pytest.mark.parametrize(
    ("events", "expected_problem"),
    [
        (CLEAN_HISTORY[:-1], "the run is still open"),
        (CLEAN_HISTORY + [event(12, "WorkflowExecutionCompleted")], "second close event"),
        (
            CLEAN_HISTORY[:7] + [event(8, "ActivityTaskCompleted", scheduledEventId=5, startedEventId=6)],
            "closed twice",
        ),
        (
            CLEAN_HISTORY[:6] + [event(7, "ActivityTaskScheduled", activityId="Sleep-2")] + CLEAN_HISTORY[8:],
            "scheduled while activities [5] are open",
        ),
        (
            CLEAN_HISTORY[:6] + [event(7, "ActivityTaskCompleted", scheduledEventId=5, startedEventId=6)]
            + CLEAN_HISTORY[7:],
            "2 activity completions for 1 steps",
        ),
        (CLEAN_HISTORY[:9] + [event(10, "ActivityTaskStarted", scheduledEventId=8)] + CLEAN_HISTORY[9:], "started twice"),
        (CLEAN_HISTORY[:4] + [event(5, "ScheduleActivityTaskFailed", cause="ACTIVITY_ID_ALREADY_IN_USE")], "rejected"),
        (CLEAN_HISTORY[:-1] + [event(11, "WorkflowExecutionFailed")], "not WorkflowExecutionCompleted"),
    ],
)
def test_audit_flags_lost_or_doubled_work(events: list[dict[str, Any]], expected_problem: str) -> None:
    assert audit_history("w", CLEAN_HISTORY).problems == []
    problems = audit_history("w", events).problems
    assert any(expected_problem in problem for problem in problems), problems
