"""The SWF endpoints under test, each run as a child process on 127.0.0.1."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from localswf.testing import LocalSwfProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # seconds; moto imports for several seconds on a loaded machine
STOP_TIMEOUT = 10.0


class ServerStartError(RuntimeError):
    """A benchmark server did not print its ready line in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ReadyLineProcess:
    """A child process that prints a line matching `ready` on stdout or stderr once it serves."""

    def __init__(self, name: str, command: list[str], ready: re.Pattern[str], url_of: Callable[[re.Match[str]], str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.ready = ready
        self.url_of = url_of
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self._drain_thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> str:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT)
        )
        assert self.process.stdout is not None
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the drain thread closes it
        match = self._wait_ready(self.process.stdout, log_file)
        self.url = self.url_of(match)
        self._drain_thread = threading.Thread(
            target=self._drain, args=(self.process.stdout, log_file), name=f"{self.name}-log", daemon=True
        )
        self._drain_thread.start()
        return self.url

    def _wait_ready(self, stream: IO[bytes], log_file: IO[bytes]) -> re.Match[str]:
        deadline = time.monotonic() + START_TIMEOUT
        buffered = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    raise ServerStartError(f"{self.name} printed no ready line within {START_TIMEOUT} s; see {self.log_path}")
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    self.stop()
                    raise ServerStartError(f"{self.name} exited before it was ready; see {self.log_path}")
                log_file.write(chunk)
                buffered += chunk
                match = self.ready.search(buffered.decode(errors="replace"))
                if match:
                    log_file.flush()
                    return match

    @staticmethod
    def _drain(stream: IO[bytes], log_file: IO[bytes]) -> None:
        with log_file:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                log_file.write(chunk)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        if self._drain_thread is not None:
            self._drain_thread.join(timeout=STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


def moto_server(log_path: Path) -> ReadyLineProcess:
    """moto's standalone server (`python -m moto.server`), which needs a fixed port."""
    port = free_port()
    return ReadyLineProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        re.compile(r"Running on (http://127\.0\.0\.1:\d+)"),
        lambda match: match.group(1),
        log_path,
    )


def reset_moto(url: str) -> None:
    """Drop all of moto's state through its reset API, which is cheaper than a restart."""
    request = urllib.request.Request(url + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()


def ceiling_server(log_path: Path) -> ReadyLineProcess:
    return ReadyLineProcess(
        "ceiling",
        [sys.executable, "-m", "benchmarks.ceiling_server", "--port", "0"],
        re.compile(r"ceiling listening on (http://127\.0\.0\.1:\d+)"),
        lambda match: match.group(1),
        log_path,
    )


def localswf_server(db_path: Path) -> LocalSwfProcess:
    return LocalSwfProcess(db_path)
