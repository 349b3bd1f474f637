"""The embedded endpoint as a child process: start, restart, stop, and death with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from manager.endpoint import EmbeddedEndpoint, EndpointError
from workers.client import make_swf_client
from workers.config_loader import default_config


def test_start_serves_swf(tmp_path: Path) -> None:
    endpoint = EmbeddedEndpoint(tmp_path / "db" / "swf.sqlite3", max_poll_seconds=2)
    url = endpoint.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert endpoint.url == url
        assert endpoint.process is not None
        client = make_swf_client(default_config(), url)
        client.register_domain(name="endpoint-test", workflowExecutionRetentionPeriodInDays="1")
        names = [info["name"] for info in client.list_domains(registrationStatus="REGISTERED")["domainInfos"]]
        assert names == ["endpoint-test"]
    finally:
        endpoint.stop()


def test_restart_keeps_port_and_data(tmp_path: Path) -> None:
    endpoint = EmbeddedEndpoint(tmp_path / "swf.sqlite3", max_poll_seconds=2)
    url = endpoint.start()
    try:
        first_pid = endpoint.process.pid
        make_swf_client(default_config(), url).register_domain(
            name="kept", workflowExecutionRetentionPeriodInDays="1"
        )
        assert endpoint.restart() == url
        assert endpoint.process.pid != first_pid
        assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
        described = make_swf_client(default_config(), url).describe_domain(name="kept")
        assert described["domainInfo"]["status"] == "REGISTERED"
    finally:
        endpoint.stop()


def test_stop_ends_process(tmp_path: Path) -> None:
    endpoint = EmbeddedEndpoint(tmp_path / "swf.sqlite3", max_poll_seconds=2)
    endpoint.start()
    process = endpoint.process
    endpoint.stop()
    assert process.returncode == 0
    assert endpoint.process is None
    endpoint.stop()  # a second stop does nothing


def test_own_process_group(tmp_path: Path) -> None:
    endpoint = EmbeddedEndpoint(tmp_path / "swf.sqlite3", max_poll_seconds=2)
    endpoint.start()
    try:
        assert os.getpgid(endpoint.process.pid) == endpoint.process.pid
        assert os.getpgid(endpoint.process.pid) != os.getpgid(0)
    finally:
        endpoint.stop()


def test_port_in_use_reports_output(tmp_path: Path) -> None:
    first = EmbeddedEndpoint(tmp_path / "a.sqlite3", max_poll_seconds=2)
    first.start()
    try:
        second = EmbeddedEndpoint(tmp_path / "b.sqlite3", port=first.port, max_poll_seconds=2)
        with pytest.raises(EndpointError) as raised:
            second.start()
        message = str(raised.value)
        assert "exited with code 2 before it was ready" in message
        assert f"port {first.port}" in message
        assert "cannot listen" in message
    finally:
        first.stop()


def test_unwritable_db_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    endpoint = EmbeddedEndpoint(blocker / "sub" / "swf.sqlite3")
    with pytest.raises(EndpointError, match="cannot create the folder"):
        endpoint.start()
    assert endpoint.process is None


PARENT_SCRIPT = """
import sys
from pathlib import Path
from manager.endpoint import EmbeddedEndpoint
endpoint = EmbeddedEndpoint(Path(sys.argv[1]), max_poll_seconds=2)
endpoint.start()
print(endpoint.process.pid, flush=True)
sys.stdin.read()
"""


def test_dies_with_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(tmp_path / "swf.sqlite3")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = parent.stdout.readline()
        endpoint_pid = int(line)
        endpoint = psutil.Process(endpoint_pid)
        assert endpoint.is_running()
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        # PR_SET_PDEATHSIG makes the kernel kill it once the parent is gone.
        endpoint.wait(timeout=10)
        assert not endpoint.is_running()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdin.close()
        parent.stdout.close()
