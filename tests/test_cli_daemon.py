"""The ``manager`` daemon as a real process: start, serve the client commands, stop on SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from workers.client import make_swf_client
from workers.config_loader import default_config

READY_TIMEOUT = 120.0
# Workers finish their empty poll (2 s here) before they exit, so a clean stop is quick.
STOP_TIMEOUT = 60.0


class Daemon:
    def __init__(self, process: subprocess.Popen[bytes], config_path: Path, state_dir: Path) -> None:
        self.process = process
        self.config_path = config_path
        self.state_dir = state_dir


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "manager.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[swf]\n"
        'endpoint_url = "local"\n'
        "local_max_poll_seconds = 2\n"
        f"{extra}"
        "[storage]\n"
        f'root = "{tmp_path / "data"}"\n'
    )
    return path


def start_daemon(tmp_path: Path, config_path: Path, *flags: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    environment = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with open(tmp_path / "manager.log", "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "manager", "--config", str(config_path), *flags],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    return process, notify


def wait_ready(process: subprocess.Popen[bytes], notify: socket.socket, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no READY=1 within {READY_TIMEOUT} s: {log_path.read_text()[-3000:]}"
        readable, _, _ = select.select([notify], [], [], min(remaining, 1.0))
        if readable and b"READY=1" in notify.recv(4096):
            return
        assert process.poll() is None, f"manager exited with {process.returncode}: {log_path.read_text()[-3000:]}"


def session_processes(session: int) -> list[dict]:
    found = []
    for candidate in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(candidate.pid) == session:
                found.append(candidate.info)
        except (ProcessLookupError, PermissionError):
            continue
    return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config_path = write_config(tmp_path)
    process, notify = start_daemon(tmp_path, config_path, "--workers", "1")
    try:
        wait_ready(process, notify, tmp_path / "manager.log")
        yield Daemon(process, config_path, tmp_path / "state")
    finally:
        notify.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def cli(config_path: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manager", "--config", str(config_path), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_daemon_runs_workflow_and_stops(daemon: Daemon) -> None:
    state = json.loads((daemon.state_dir / "manager.json").read_text())
    assert state["pid"] == daemon.process.pid
    assert state["endpoint_url"].startswith("http://127.0.0.1:")
    assert state["domain"] == "swf-manager"

    # No --endpoint-url: the commands find the endpoint in manager.json.
    submitted = cli(daemon.config_path, "submit", "--workflow-type", "Noop", "--input", "{}", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    assert "WorkflowExecutionCompleted" in submitted.stdout
    assert "workflow completed. Result:" in submitted.stdout
    workflow_id = submitted.stdout.split()[2]

    history = cli(daemon.config_path, "history", workflow_id)
    assert history.returncode == 0, history.stderr
    assert "ActivityTaskCompleted" in history.stdout
    assert history.stdout.rstrip().splitlines()[-1].split()[3] == "WorkflowExecutionCompleted"

    status = cli(daemon.config_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["pid"] == daemon.process.pid

    # The types were registered with the configured values.
    client = make_swf_client(default_config(), state["endpoint_url"])
    described = client.describe_activity_type(domain="swf-manager", activityType={"name": "Noop", "version": "1"})
    assert described["configuration"]["defaultTaskHeartbeatTimeout"] == "30"

    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=STOP_TIMEOUT) == 0
    assert session_processes(daemon.process.pid) == []
    assert not (daemon.state_dir / "manager.json").exists()


def test_daemon_bad_config_exits_2(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, extra="retention_days = 91\n")
    result = subprocess.run(
        [sys.executable, "-m", "manager", "--config", str(config_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "swf.retention_days = 91" in result.stderr
    assert "0 to 90 days" in result.stderr


def test_daemon_endpoint_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config_path = write_config(tmp_path, extra=f"local_port = {port}\n")
        result = subprocess.run(
            [sys.executable, "-m", "manager", "--config", str(config_path)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert "cannot start the embedded SWF endpoint" in result.stderr
    assert f"port {port}" in result.stderr


def test_daemon_registration_failure(localswf, tmp_path: Path) -> None:
    client = make_swf_client(default_config(), localswf.url)
    client.register_domain(name="swf-manager", workflowExecutionRetentionPeriodInDays="7")
    client.deprecate_domain(name="swf-manager")
    config_path = write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "manager", "--config", str(config_path), "--endpoint-url", localswf.url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "domain 'swf-manager' is deprecated" in result.stderr
