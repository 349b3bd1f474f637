"""sd_notify messages, on their own and from a running manager."""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_supervision import (
    EventPipe,
    ManagerProcess,
    idle_worker,
    make_config,
    manager_starter,
    open_event_pipe,
    started_event,
)

from manager.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "notify.sock"))
    yield receiver
    receiver.close()


@pytest.fixture
def events(tmp_path: Path) -> Iterator[EventPipe]:
    yield from open_event_pipe(tmp_path)


@pytest.fixture
def start_manager(tmp_path: Path) -> Iterator[Callable[..., ManagerProcess]]:
    yield from manager_starter(tmp_path)


def receive(receiver: socket.socket, timeout: float = 10.0) -> str:
    ready, _, _ = select.select([receiver], [], [], timeout)
    assert ready, f"no notification within {timeout} s"
    return receiver.recv(4096).decode()


def test_ready_and_stopping(tmp_path: Path, notify_socket: socket.socket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert notifier.enabled
    assert notifier.ready(status="work: 1/1")
    message = receive(notify_socket)
    assert "READY=1" in message.splitlines()
    assert f"MAINPID={os.getpid()}" in message.splitlines()
    assert "STATUS=work: 1/1" in message.splitlines()
    assert notifier.stopping()
    assert receive(notify_socket) == "STOPPING=1"


def test_abstract_socket_name() -> None:
    name = f"swf-manager-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert receive(receiver) == "WATCHDOG=1"
    finally:
        receiver.close()


def test_disabled_without_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert Notifier(environ).watchdog_interval == interval


def test_missing_socket_path_reports_false(tmp_path: Path) -> None:
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")}).ready()


def test_manager_notifies_systemd(
    tmp_path: Path,
    notify_socket: socket.socket,
    events: EventPipe,
    start_manager: Callable[..., ManagerProcess],
) -> None:
    environ = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
    manager = start_manager(make_config(), idle_worker(str(events.path)), notifier=Notifier(environ))
    events.wait_for(started_event)
    messages = [receive(notify_socket) for _ in range(3)]
    assert any("READY=1" in message for message in messages)
    assert "WATCHDOG=1" in messages
    manager.signal(signal.SIGTERM)
    assert manager.wait() == 0
    rest = []
    while True:
        ready, _, _ = select.select([notify_socket], [], [], 0)
        if not ready:
            break
        rest.append(notify_socket.recv(4096).decode())
    assert "STOPPING=1" in rest
