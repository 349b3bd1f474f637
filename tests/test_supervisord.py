"""A real supervisord runs the manager with supervisor/swf-manager.conf and restarts it mid-task."""

from __future__ import annotations

import configparser
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from localswf.testing import LocalSwfProcess
from manager.registration import register_all
from workers.client import make_swf_client
from workers.config_loader import default_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRAM_CONF = REPO_ROOT / "supervisor" / "swf-manager.conf"
BIN = Path(sys.executable).parent
DOMAIN = "supervisord-test"
# Long enough that the restart lands while the activity runs, far below the drain timeout.
SLEEP_SECONDS = 6.0


@pytest.fixture
def localswf(tmp_path: Path) -> Iterator[LocalSwfProcess]:
    """An endpoint that keeps an empty poll open 2 s, so a stopping manager's idle workers return quickly."""
    server = LocalSwfProcess(db_path=tmp_path / "localswf.sqlite3", max_poll_seconds=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def supervisord_config(tmp_path: Path, manager_config: Path) -> Path:
    """Write a supervisord configuration whose [program:manager] is ours, run from tmp_path.

    Only what must differ in a test changes: the command, the folder, the user and the log
    paths, and startsecs, which would add 10 s to each start. Stop settings stay as shipped.
    """
    shipped = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    shipped.read(PROGRAM_CONF)
    program = dict(shipped["program:manager"])
    program.update(
        command=f"{BIN / 'manager'} --config {manager_config}",
        directory=str(tmp_path),
        stdout_logfile=str(tmp_path / "manager.out.log"),
        stderr_logfile=str(tmp_path / "manager.err.log"),
        startsecs="1",
    )
    program.pop("user", None)

    config = configparser.ConfigParser(interpolation=None)
    config["unix_http_server"] = {"file": str(tmp_path / "supervisor.sock"), "chmod": "0700"}
    config["supervisord"] = {
        "logfile": str(tmp_path / "supervisord.log"),
        "pidfile": str(tmp_path / "supervisord.pid"),
        "childlogdir": str(tmp_path),
        "nodaemon": "true",
    }
    config["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    config["supervisorctl"] = {"serverurl": f"unix://{tmp_path / 'supervisor.sock'}"}
    config["program:manager"] = program
    path = tmp_path / "supervisord.conf"
    with path.open("w") as file:
        config.write(file)
    return path


def ctl(config: Path, *args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(config), *args], capture_output=True, text=True, timeout=timeout
    )


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns a true value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(interval)


def manager_pid(config: Path) -> int | None:
    result = ctl(config, "status", "manager", timeout=30)
    if "RUNNING" not in result.stdout:
        return None
    return int(result.stdout.split("pid ", 1)[1].split(",", 1)[0])


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def history(client: Any, workflow_id: str, run_id: str) -> list[dict]:
    events: list[dict] = []
    params: dict[str, Any] = {"domain": DOMAIN, "execution": {"workflowId": workflow_id, "runId": run_id}}
    while True:
        page = client.get_workflow_execution_history(**params)
        events.extend(page["events"])
        if not page.get("nextPageToken"):
            return events
        params["nextPageToken"] = page["nextPageToken"]


def test_restart_during_task_completes_workflow(localswf: LocalSwfProcess, tmp_path: Path) -> None:
    if not (BIN / "manager").exists() or not (BIN / "supervisord").exists():
        pytest.skip("the manager console script and supervisord must be installed in this venv")
    manager_config = tmp_path / "manager.toml"
    manager_config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[swf]\nendpoint_url = "{localswf.url}"\ndomain = "{DOMAIN}"\n'
        '[[task_lists]]\nname = "diagnostic-activities"\nkind = "activity"\nmin_processes = 1\nmax_processes = 1\n'
    )
    config = default_config()
    config = dataclasses.replace(config, swf=dataclasses.replace(config.swf, endpoint_url=localswf.url, domain=DOMAIN))
    client = make_swf_client(config, localswf.url)
    register_all(client, config)

    conf = supervisord_config(tmp_path, manager_config)
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seen: list[psutil.Process] = []
    try:
        first_pid = wait_until(lambda: manager_pid(conf), 60, "supervisord to report the manager RUNNING")
        run_id = client.start_workflow_execution(
            domain=DOMAIN,
            workflowId="media-restart",
            workflowType={"name": "Sleep", "version": "1"},
            taskList={"name": "diagnostic-decisions"},
            input=json.dumps({"seconds": SLEEP_SECONDS, "heartbeat_every": 0.5}),
        )["runId"]
        wait_until(
            lambda: any(e["eventType"] == "ActivityTaskStarted" for e in history(client, "media-restart", run_id)),
            60,
            "a worker to start the Sleep activity",
        )
        old_tree = process_tree(first_pid)
        seen.extend(old_tree)
        # The workers run in process groups of their own, under the manager.
        assert len(old_tree) >= 3

        restart_wall_time = time.time()
        started = time.monotonic()
        restart = ctl(conf, "restart", "manager")
        restart_seconds = time.monotonic() - started

        assert restart.returncode == 0, restart.stdout + restart.stderr
        second_pid = manager_pid(conf)
        assert second_pid is not None
        assert second_pid != first_pid
        # Nothing of the old manager's tree outlived it: no worker was left to init.
        survivors = [process for process in old_tree if process.is_running() and process.status() != "zombie"]
        assert survivors == []
        seen.extend(process_tree(second_pid))

        def closed_events() -> list[dict] | None:
            events = history(client, "media-restart", run_id)
            return events if events[-1]["eventType"].startswith("WorkflowExecution") and len(events) > 1 else None

        events = wait_until(closed_events, 120, "the workflow to close after the restart", interval=0.2)
    finally:
        ctl(conf, "shutdown", timeout=200)
        try:
            supervisord.wait(timeout=200)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait(timeout=10)
        # Record what outlived supervisord before the cleanup kills it, so the check below can fail.
        leftovers = [process for process in seen if process.is_running() and process.status() != "zombie"]
        for process in leftovers:
            process.kill()

    types = [event["eventType"] for event in events]
    assert types[-1] == "WorkflowExecutionCompleted"
    # The drain let the running activity finish: it completed on its first attempt, and no
    # attempt timed out or was handed back.
    assert types.count("ActivityTaskScheduled") == 1
    assert types.count("ActivityTaskCompleted") == 1
    assert "ActivityTaskTimedOut" not in types
    assert "ActivityTaskFailed" not in types
    # It was still running when the restart began, so the restart really waited for it.
    completed = next(event for event in events if event["eventType"] == "ActivityTaskCompleted")
    assert completed["eventTimestamp"].timestamp() > restart_wall_time
    # supervisord waited for the drain rather than killing the manager.
    shipped = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    shipped.read(PROGRAM_CONF)
    assert restart_seconds < float(shipped["program:manager"]["stopwaitsecs"])
    log = (tmp_path / "supervisord.log").read_text()
    assert "stopped: manager (exit status 0)" in log
    assert "killing 'manager'" not in log
    assert leftovers == []
    print(f"supervisorctl restart took {restart_seconds:.1f} s with a {SLEEP_SECONDS:g} s activity in flight")
