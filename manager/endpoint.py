"""The embedded SWF endpoint (localswf) as a child process of the manager."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

READY_PATTERN = re.compile(rb"localswf listening on (http://127\.0\.0\.1:(\d+))")
# The endpoint opens its SQLite file and binds its port in well under a second; this
# bound only catches a hung start.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Bound on the release call; it blocks the supervision loop, and a local server replies in milliseconds.
RELEASE_TIMEOUT = 2.0
_PR_SET_PDEATHSIG = 1


class EndpointError(Exception):
    """The embedded endpoint failed to start or stop."""


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGKILL it when the manager dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)


class EmbeddedEndpoint:
    """Starts ``python -m localswf`` on 127.0.0.1 and keeps it tied to this process.

    The endpoint runs in its own process group, so a Ctrl-C on the terminal reaches
    the manager alone and the endpoint keeps serving the workers while they drain. It
    dies with the manager through PR_SET_PDEATHSIG, even when the manager is killed
    with SIGKILL. Its output is copied to this process's stderr by a thread that uses
    only raw file descriptors, so a fork in another thread cannot inherit a held lock.
    """

    def __init__(self, db_path: Path, port: int = 0, max_poll_seconds: float = 60) -> None:
        self.db_path = Path(db_path)
        self.port = port
        self.max_poll_seconds = max_poll_seconds
        self.url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._copier: threading.Thread | None = None

    def start(self) -> str:
        """Start the endpoint and return its URL once it prints its ready line.

        Raises ``EndpointError`` when it exits or prints nothing ready within
        START_TIMEOUT seconds; the message includes its output.
        """
        if self.process is not None and self.process.poll() is None:
            raise EndpointError(f"embedded endpoint already running as pid {self.process.pid} at {self.url}")
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EndpointError(
                f"cannot create the folder of the endpoint database {self.db_path}: {error}. "
                "Set swf.local_db or state_dir to a writable folder."
            ) from error
        command = [
            sys.executable,
            "-m",
            "localswf",
            "--db",
            str(self.db_path),
            "--port",
            str(self.port),
            "--max-poll-seconds",
            f"{self.max_poll_seconds:g}",
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            process_group=0,
            close_fds=True,
        )
        assert self.process.stdout is not None
        output_fd = self.process.stdout.fileno()
        try:
            url, port, seen = self._read_ready_line(output_fd)
        except EndpointError:
            self._kill()
            raise
        self.url = url
        # Keep the port: restart() must come back on the same URL that workers hold.
        self.port = port
        if seen:
            os.write(sys.stderr.fileno(), seen)
        self._copier = threading.Thread(
            target=_copy_output, args=(output_fd,), name="localswf-output", daemon=True
        )
        self._copier.start()
        log.info("embedded SWF endpoint started", extra={"url": url, "endpoint_pid": self.process.pid})
        return url

    def _read_ready_line(self, fd: int) -> tuple[str, int, bytes]:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        output = b""
        while True:
            match = READY_PATTERN.search(output)
            if match:
                line_end = output.find(b"\n", match.end())
                rest = output[line_end + 1 :] if line_end >= 0 else b""
                return match.group(1).decode(), int(match.group(2)), rest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EndpointError(
                    f"embedded endpoint (pid {self.process.pid}) printed no ready line within "
                    f"{START_TIMEOUT:.0f} s. Output so far: {output.decode(errors='replace')[-2000:]!r}"
                )
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.process.wait(timeout=STOP_TIMEOUT)
                raise EndpointError(
                    f"embedded endpoint exited with code {code} before it was ready "
                    f"(database {self.db_path}, port {self.port}). Its output: "
                    f"{output.decode(errors='replace')[-2000:]!r}"
                )
            output += chunk

    def release_held_polls(self) -> int | None:
        """Make the endpoint return its currently held polls empty; return how many, or None on failure.

        Workers that were asked to stop then exit at once instead of waiting out a
        long poll. No task is handed out by a released poll, so none is lost.
        """
        from localswf.admin import release_held_polls

        if self.url is None:
            return None
        try:
            return release_held_polls(self.url, timeout=RELEASE_TIMEOUT)
        except (OSError, ValueError, KeyError) as error:
            log.warning("releasing the held polls failed", extra={"endpoint_url": self.url, "error": repr(error)})
            return None

    def restart(self) -> str:
        """Stop the endpoint and start it again on the same database and port."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        """Send SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning(
                    "embedded endpoint ignored SIGTERM, killing it",
                    extra={"endpoint_pid": process.pid, "timeout": STOP_TIMEOUT},
                )
                self._kill()
        log.info("embedded SWF endpoint stopped", extra={"endpoint_pid": process.pid, "code": process.returncode})
        if self._copier is not None:
            # The copier reads end of file once the endpoint has exited.
            self._copier.join(timeout=STOP_TIMEOUT)
            self._copier = None
        if process.stdout is not None:
            process.stdout.close()
        self.process = None

    def _kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _copy_output(fd: int) -> None:
    """Copy the endpoint's output to stderr, whole lines only, until it closes its end.

    The manager writes its own JSON lines to the same stderr, so a partial line copied
    here would splice into one of them.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            if pending:
                _write_stderr(pending + b"\n")
            return
        pending += chunk
        complete, newline, pending = pending.rpartition(b"\n")
        if newline and not _write_stderr(complete + newline):
            return


def _write_stderr(data: bytes) -> bool:
    """Write all of ``data`` to fd 2 in one call where possible; return False once stderr is gone."""
    try:
        while data:
            written = os.write(2, data)
            data = data[written:]
    except OSError:
        return False
    return True
