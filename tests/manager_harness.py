"""Start a real manager process for a test and wait for it on its sd_notify socket.

The manager sends READY=1 to $NOTIFY_SOCKET once its endpoint runs, its types are
registered and its workers are forked, so a test waits on that datagram instead of
polling or sleeping.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

START_TIMEOUT = 120.0


def embedded_endpoint_config(storage: Path, extra: str = "") -> str:
    """Return TOML for a manager on its own embedded endpoint, storing results under ``storage``.

    Idle workers finish their poll before they exit, so a 5 s hold keeps shutdown quick
    even where no poll is released.
    """
    return (
        "[swf]\n"
        'endpoint_url = "local"\n'
        "local_max_poll_seconds = 5\n"
        "[storage]\n"
        f"root = {json.dumps(str(storage))}\n"
        f"{extra}"
    )


class ManagerProcess:
    """One `python -m manager` process with its own config, state folder and notify socket."""

    def __init__(self, folder: Path, config_text: str, arguments: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.state_dir = folder / "state"
        self.config_path = folder / "manager.toml"
        self.config_path.write_text(f"state_dir = {json.dumps(str(self.state_dir))}\n{config_text}")
        self.arguments = arguments
        self.log_path = folder / "manager.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(folder / "notify.sock"))
        self.state: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> dict[str, Any]:
        """Start the manager and return its state file once it has sent READY=1."""
        environment = {**os.environ, "NOTIFY_SOCKET": str(self.folder / "notify.sock")}
        command = [sys.executable, "-m", "manager", "--config", str(self.config_path), *self.arguments]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.wait_for_notification(b"READY=1")
        self.state = json.loads((self.state_dir / "manager.json").read_text())
        return self.state

    def wait_for_notification(self, message: bytes, timeout: float = START_TIMEOUT) -> None:
        """Wait for a datagram containing ``message``; fail when the manager exits first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {message!r} from the manager within {timeout:g} s; log:\n{self.log_tail()}")
            # The short select bound only lets the loop notice an exited manager.
            readable, _, _ = select.select([self.notify], [], [], min(remaining, 0.5))
            if readable and message in self.notify.recv(4096):
                return
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the manager exited with {self.process.returncode} before {message!r}; log:\n{self.log_tail()}"
                )

    def stop(self, timeout: float = 150.0) -> int:
        """Send SIGTERM, wait for the exit and return its code; SIGKILL the group past the bound."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"the manager ignored SIGTERM for {timeout:g} s; log:\n{self.log_tail()}")
        self.notify.close()
        return self.process.returncode

    def leftover_processes(self) -> list[psutil.Process]:
        """Return the processes still in the manager's session, which should be none after it exits."""
        assert self.process is not None
        left = []
        for candidate in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getsid(candidate.pid) == self.process.pid:
                    left.append(candidate)
            except (ProcessLookupError, PermissionError):
                continue
        return left

    def kill_everything(self) -> None:
        """SIGKILL whatever is left of the manager's session; for test clean-up."""
        if self.process is None:
            return
        for leftover in self.leftover_processes():
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except FileNotFoundError:
            return "(no log)"
