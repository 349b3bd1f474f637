"""Fault injection: the SWF endpoint is unreachable for 30 s, and the manager's workers ride it out.

The manager runs against a separate localswf process (``endpoint_url = "http://..."``),
so the test can take the endpoint away without the manager restarting it. The test
SIGKILLs the endpoint while a Sleep activity runs and every worker has a poll open, so
those connections break as in a network failure instead of getting an empty reply. It
keeps the endpoint down for OUTAGE_SECONDS, then starts it again on the same port and
database.

It checks the status and the JSON logs: no worker crashed or crash-looped, and each
worker paused between failed polls with a backoff of at most POLL_ERROR_BACKOFF_MAX
instead of spinning. A workflow started after the recovery must complete within that
maximum backoff plus a margin. The activity caught by the outage must be retried, and
its workflow must complete.
"""

from __future__ import annotations

import collections
import re
import time
import uuid
from pathlib import Path

from chaos_support import (
    WorkflowStarter,
    endpoint_client,
    history,
    manager_toml,
    parse_log_lines,
    wait_for_closed,
    wait_until,
)
from manager_harness import ManagerProcess

from localswf.testing import LocalSwfProcess
from manager.status import query
from workers.config_loader import load_config
from workers.runtime import POLL_ERROR_BACKOFF_MAX

OUTAGE_SECONDS = 30.0
# Work after the first successful poll: two decision tasks and one Noop activity, on a
# loaded machine.
PROCESSING_MARGIN = 15.0
# The activity caught by the outage times out on HEARTBEAT once the endpoint is back,
# and its retry runs SLEEP_SECONDS.
SLEEP_SECONDS = 3.0
HEARTBEAT_TIMEOUT = 4
BEFORE_OUTAGE_TIMEOUT = 60.0
# Maximum failed polls one worker may log in the outage. The backoff doubles from 1 s up
# to 30 s, so about 6 fit in 30 s, and botocore's own retries happen inside each one.
MAX_FAILED_POLLS = 12
RETRY_PATTERN = re.compile(r"retrying in ([0-9.]+) s")


def worker_pids(status: dict) -> dict[int, str]:
    return {worker["pid"]: worker["task_list"] for worker in status["workers"]}


def test_endpoint_outage_no_crash_loop(tmp_path: Path) -> None:
    server = LocalSwfProcess(db_path=tmp_path / "swf.sqlite3", max_poll_seconds=2.0)
    url = server.start()
    config_text = manager_toml(
        url,
        tmp_path / "data",
        timeout_slots=(30, 30),
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
    )
    (tmp_path / "manager").mkdir()
    manager = ManagerProcess(tmp_path / "manager", config_text)
    try:
        manager.start()
        config = load_config(manager.config_path)
        starter = WorkflowStarter(url, config)
        client = endpoint_client(url)

        # The workers poll and finish work before the outage.
        before_id = f"before-{uuid.uuid4().hex[:8]}"
        before_run = starter.start("Noop", before_id, {})
        events = wait_for_closed(client, before_id, before_run, BEFORE_OUTAGE_TIMEOUT)
        assert events[-1]["eventType"] == "WorkflowExecutionCompleted"

        # An activity that is running when the endpoint goes away.
        caught_id = f"caught-{uuid.uuid4().hex[:8]}"
        caught_run = starter.start("Sleep", caught_id, {"seconds": SLEEP_SECONDS, "heartbeat_every": 0.5})
        wait_until(
            lambda: any(e["eventType"] == "ActivityTaskStarted" for e in history(client, caught_id, caught_run)),
            BEFORE_OUTAGE_TIMEOUT,
            "the Sleep activity to start",
            interval=0.1,
        )
        before = query(manager.state_dir)
        log_offset = manager.log_path.stat().st_size

        server.kill()
        # Waiting for a duration is the test itself: the endpoint stays unreachable this long.
        time.sleep(OUTAGE_SECONDS)
        during = query(manager.state_dir)
        server.start()
        assert server.url == url
        recovered_at = time.monotonic()

        after_id = f"after-{uuid.uuid4().hex[:8]}"
        after_run = starter.start("Noop", after_id, {})
        bound = POLL_ERROR_BACKOFF_MAX + PROCESSING_MARGIN
        events = wait_for_closed(client, after_id, after_run, bound)
        recovery_seconds = time.monotonic() - recovered_at
        assert events[-1]["eventType"] == "WorkflowExecutionCompleted"

        # The caught activity's heartbeats stopped with the outage, so its attempt times
        # out and the retry completes the workflow.
        caught_events = wait_for_closed(client, caught_id, caught_run, bound + HEARTBEAT_TIMEOUT + SLEEP_SECONDS)
        caught_seconds = time.monotonic() - recovered_at
        assert caught_events[-1]["eventType"] == "WorkflowExecutionCompleted"
        caught_types = [event["eventType"] for event in caught_events]

        after = query(manager.state_dir)
        assert manager.stop() == 0
    finally:
        manager.kill_everything()
        server.stop()

    with open(manager.log_path, errors="replace") as stream:
        stream.seek(log_offset)
        outage_records = parse_log_lines(stream.read().splitlines())
    exits = [record for record in outage_records if record.get("exit_kind") is not None]
    unexpected_exits = [record for record in exits if record.get("exit_kind") not in ("clean_restart", "requested")]
    crash_loops = [record for record in outage_records if "crash-looping" in record.get("message", "")]
    failed_polls = [record for record in outage_records if RETRY_PATTERN.search(record.get("message", ""))]
    polls_by_worker = collections.Counter(record.get("pid") for record in failed_polls)
    pauses = [float(RETRY_PATTERN.search(record["message"]).group(1)) for record in failed_polls]
    sampler_exits = [record for record in outage_records if record.get("message", "").startswith("backlog sampler exited")]

    print("fault injection counts:")
    print(f"  outage: {OUTAGE_SECONDS:g} s; workflow after recovery closed in {recovery_seconds:.1f} s (bound {bound:g} s)")
    print(f"  caught workflow closed {caught_seconds:.1f} s after recovery: {caught_types.count('ActivityTaskTimedOut')} timeouts")
    print(f"  failed polls per worker: {dict(polls_by_worker)}; longest pause {max(pauses, default=0):g} s")
    print(f"  worker exits: {[(r.get('worker_pid'), r.get('exit_kind')) for r in exits]}")
    print(f"  backlog sampler exits: {len(sampler_exits)}")

    assert during["state"] == "running"
    for status in (during, after):
        for name, entry in status["task_lists"].items():
            assert entry["crash_loop"] is False, f"{name} is crash-looping: {entry}"
            assert entry["crashes"] == before["task_lists"][name]["crashes"], f"{name} crashed: {entry}"
            # A worker whose task closed during the outage may exit once for a clean restart.
            assert entry["restarts"] - before["task_lists"][name]["restarts"] <= 1, f"{name} restarted: {entry}"
    assert worker_pids(during) == worker_pids(before), "workers were replaced during the outage"
    assert unexpected_exits == [], f"workers died: {unexpected_exits}"
    assert len([record for record in exits if record.get("exit_kind") == "clean_restart"]) <= 1
    assert crash_loops == []
    assert failed_polls, "no worker logged a failed poll, so the endpoint was never missed"
    assert max(polls_by_worker.values()) <= MAX_FAILED_POLLS, f"workers spun on failed polls: {polls_by_worker}"
    assert max(pauses) <= POLL_ERROR_BACKOFF_MAX
    assert "ActivityTaskTimedOut" in caught_types

