"""The localswf process: ready line, signals, restart, bind rules and one server per database file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localswf.testing import READY_PATTERN, LocalSwfError, LocalSwfProcess, swf_client

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_ready_line_and_free_port(tmp_path: Path) -> None:
    server = LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=1)
    url = server.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert server.port > 0
        assert url == server.url
        client = swf_client(url)
        client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
        assert client.describe_domain(name="d")["domainInfo"]["status"] == "REGISTERED"
    finally:
        server.stop()
    assert server.process is not None
    assert server.process.returncode == 0


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    server = LocalSwfProcess(tmp_path / "db.sqlite3")
    server.start()
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 0


def test_restart_keeps_port_and_state(tmp_path: Path) -> None:
    with LocalSwfProcess(tmp_path / "db.sqlite3") as server:
        first_url = server.url
        swf_client(server.url).register_domain(name="kept", workflowExecutionRetentionPeriodInDays="3")
        first_pid = server.pid
        second_url = server.restart()
        assert second_url == first_url
        assert server.pid != first_pid
        detail = swf_client(second_url).describe_domain(name="kept")
        assert detail["configuration"]["workflowExecutionRetentionPeriodInDays"] == "3"


def test_second_server_on_same_db_refused(tmp_path: Path) -> None:
    with LocalSwfProcess(tmp_path / "db.sqlite3"):
        second = LocalSwfProcess(tmp_path / "db.sqlite3")
        with pytest.raises(LocalSwfError, match="exited with code 2"):
            second.start()
        assert "in use by another localswf process" in second.log_path.read_text()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localswf", *args], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT
    )


def test_remote_host_needs_allow_remote(tmp_path: Path) -> None:
    result = run_cli("--db", str(tmp_path / "db.sqlite3"), "--port", "0", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert result.stdout == ""


def test_allow_remote_logs_warning(tmp_path: Path) -> None:
    # 0.0.0.0 binds every interface; the test only reads the ready line and stops the server.
    server = LocalSwfProcess(tmp_path / "db.sqlite3", extra_args=["--host", "0.0.0.0", "--allow-remote"])
    url = server.start()
    try:
        assert READY_PATTERN.search(f"localswf listening on {url}")
        assert url.startswith("http://0.0.0.0:")
    finally:
        server.stop()
    assert "no authentication" in server.log_path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "invalid --port 70000"),
        (["--port", "0", "--max-poll-seconds", "0"], "invalid --max-poll-seconds 0"),
        (["--port", "0", "--log-level", "LOUD"], "invalid --log-level 'LOUD'"),
    ],
)
def test_bad_arguments_rejected(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("--db", str(tmp_path / "db.sqlite3"), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_main_entry_point_runs_server(tmp_path: Path) -> None:
    code = (
        "import sys, localswf\n"
        f"raise SystemExit(localswf.main(['--db', {str(tmp_path / 'db.sqlite3')!r}, '--port', '0']))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the process exits (EOF) if it cannot start
        match = READY_PATTERN.search(line)
        assert match, line
        swf_client(match.group(1)).register_domain(name="d", workflowExecutionRetentionPeriodInDays="0")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_sigterm_releases_held_polls(tmp_path: Path) -> None:
    import threading
    import time

    server = LocalSwfProcess(tmp_path / "db.sqlite3", max_poll_seconds=60)
    url = server.start()
    client = swf_client(url)
    client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
    replies: list[dict[str, object]] = []

    def poll() -> None:
        replies.append(swf_client(url).poll_for_decision_task(domain="d", taskList={"name": "tl"}))

    thread = threading.Thread(target=poll)
    thread.start()
    deadline = time.monotonic() + 10
    while server.held_polls() < 1:
        assert time.monotonic() < deadline, "the poll never reached the server"
    began = time.monotonic()
    server.stop()
    assert server.process is not None
    assert server.process.returncode == 0
    assert time.monotonic() - began < 5.0
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(replies) == 1
    assert "taskToken" not in replies[0]
