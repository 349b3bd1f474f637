"""Status of a running manager: a UNIX socket server, its client and the table format.

The manager listens on ``<state_dir>/status.sock`` (mode 0600, so only its user can read
it). A client connects, and the manager writes one JSON document and closes the socket.
The manager also writes ``<state_dir>/manager.json`` with its pid, endpoint, domain and
socket path, which the CLI reads to find a running manager.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manager.liveness import Phase

if TYPE_CHECKING:
    from manager.arbiter import TaskListState
    from manager.worker_process import WorkerProcess

log = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"
MANAGER_FILE = "manager.json"
# A status client waits at most this long for the manager's reply.
QUERY_TIMEOUT = 5.0
# The manager gives a slow client at most this long to take the reply.
SEND_TIMEOUT = 1.0


class StatusUnavailable(Exception):
    """No running manager replied on the status socket."""


def socket_path(state_dir: Path) -> Path:
    return Path(state_dir) / SOCKET_NAME


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` through a temporary file and a rename, mode 0600."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(document, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


class StatusServer:
    """A non-blocking listening socket that the arbiter polls with its other descriptors."""

    def __init__(self, state_dir: Path) -> None:
        self.path = socket_path(state_dir)
        self._socket: socket.socket | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if len(os.fsencode(self.path)) >= 108:
            raise ValueError(
                f"status socket path {str(self.path)!r} is longer than the 107 bytes a UNIX socket allows: "
                "choose a shorter state directory"
            )
        self._reject_live_socket()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The umask makes the socket 0600 from the moment it exists; chmod repeats it.
        old_umask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        self._socket = listener

    def _reject_live_socket(self) -> None:
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:
            return
        finally:
            probe.close()
        raise RuntimeError(
            f"another manager is listening on {self.path}: stop it or choose another state directory"
        )

    def fileno(self) -> int:
        return self._socket.fileno() if self._socket is not None else -1

    def serve_ready(self, document: dict[str, Any]) -> None:
        """Send ``document`` to every pending connection and close it."""
        if self._socket is None:
            return
        payload = (json.dumps(document, sort_keys=True) + "\n").encode()
        while True:
            try:
                client, _ = self._socket.accept()
            except BlockingIOError:
                return
            except OSError as error:
                log.error("status socket accept failed", extra={"error": str(error)})
                return
            with client:
                client.settimeout(SEND_TIMEOUT)
                try:
                    client.sendall(payload)
                except OSError as error:
                    log.warning("status client did not take the reply", extra={"error": str(error)})

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def query(state_dir: Path, timeout: float = QUERY_TIMEOUT) -> dict[str, Any]:
    """Return the status document of the manager that uses ``state_dir``.

    Raises StatusUnavailable when no manager replies.
    """
    path = socket_path(state_dir)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(str(path))
        chunks = []
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError) as error:
        raise StatusUnavailable(
            f"no manager is running with state directory {state_dir} ({path}: {error.strerror}): "
            "start one with `manager`, or pass --state-dir of the running manager"
        ) from error
    except TimeoutError as error:
        raise StatusUnavailable(f"the manager on {path} did not reply within {timeout:g} s") from error
    finally:
        client.close()
    try:
        return json.loads(b"".join(chunks))
    except ValueError as error:
        raise StatusUnavailable(f"the manager on {path} sent an invalid status reply: {error}") from error


def task_list_entry(state: TaskListState, workers: list[WorkerProcess], now: float) -> dict[str, Any]:
    """Build the status of one task list from its supervision state and all its workers."""
    active = [w for w in workers if w.stop_requested_at is None]
    last = state.last_step
    last_scaling = None
    if last is not None:
        last_scaling = {
            "delta": last.delta,
            "reason": last.reason,
            "inputs": last.inputs,
            "ago": round(now - state.last_step_at, 1) if state.last_step_at is not None else None,
        }
    return {
        "kind": state.config.kind,
        "min": state.config.min_processes,
        "max": state.config.max_processes,
        "desired": state.desired,
        "processes": len(active),
        "busy": sum(1 for w in active if w.activity.phase is Phase.BUSY),
        "idle": sum(1 for w in active if w.activity.phase is Phase.POLLING),
        "starting": sum(1 for w in active if w.activity.phase is Phase.STARTING),
        "stopping": len(workers) - len(active),
        "backlog": state.backlog,
        "cpu_percent": round(sum(w.cpu_percent for w in active), 1),
        "memory_mb": round(sum(w.memory_mb for w in active), 1),
        "restarts": state.restarts,
        "crashes": state.crashes,
        "crash_loop": state.backoff.crash_looping,
        "consecutive_crashes": state.backoff.consecutive_crashes,
        "backoff_seconds": state.backoff.delay,
        "next_start_in": round(max(0.0, state.backoff.next_start_at - now), 3),
        "last_scaling": last_scaling,
        "last_decision": state.last_decision.reason if state.last_decision is not None else None,
    }


def worker_entry(worker: WorkerProcess, now: float) -> dict[str, Any]:
    """Build the status of one worker, with the ids of the task it is running."""
    activity = worker.activity
    running = activity.task is not None and activity.task_started_at is not None
    return {
        "pid": worker.pid,
        "task_list": worker.spec.task_list,
        "role": worker.spec.role,
        "phase": activity.phase.value,
        "uptime": round(now - worker.started_at, 1),
        "stop_reason": worker.stop_reason,
        "cpu_percent": round(worker.cpu_percent, 1),
        "memory_mb": round(worker.memory_mb, 1),
        "task": activity.task.as_dict() if running else None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


COLUMNS = (
    ("TASK LIST", "name"),
    ("KIND", "kind"),
    ("PROCS", "processes"),
    ("MIN-MAX", "bounds"),
    ("BUSY", "busy"),
    ("IDLE", "idle"),
    # Workers asked to stop that have not exited yet, such as busy ones during a drain.
    ("STOPPING", "stopping"),
    ("BACKLOG", "backlog"),
    ("CPU%", "cpu_percent"),
    ("MEM MB", "memory_mb"),
    ("RESTARTS", "restarts"),
    ("CRASH LOOP", "crash_loop_text"),
    ("LAST SCALING", "last_scaling_text"),
)


def format_table(status: dict[str, Any]) -> str:
    """Render a status document as a text table, one row per task list, with a header line."""
    system = status.get("system") or {}
    header = (
        f"manager pid {status.get('pid')}, {status.get('state')}, up {_cell(status.get('uptime'))} s, "
        f"system CPU {_cell(system.get('cpu_percent'))}%, "
        f"available memory {_cell(system.get('available_memory_mb'))} MB"
    )
    if status.get("endpoint_url"):
        header += f", endpoint {status['endpoint_url']}"

    rows = []
    for name, entry in sorted((status.get("task_lists") or {}).items()):
        backoff = entry.get("backoff_seconds") or 0
        crash_loop = f"yes, next start in {backoff:g} s" if entry.get("crash_loop") else "no"
        scaling = entry.get("last_scaling") or {}
        scaling_text = scaling.get("reason") or "-"
        if scaling.get("ago") is not None:
            scaling_text = f"{scaling_text} ({scaling['ago']:.0f} s ago)"
        row = {
            **entry,
            "name": name,
            "bounds": f"{entry.get('min')}-{entry.get('max')}",
            "crash_loop_text": crash_loop,
            "last_scaling_text": scaling_text,
        }
        rows.append([_cell(row.get(key)) for _, key in COLUMNS])

    titles = [title for title, _ in COLUMNS]
    widths = [max(len(titles[i]), *(len(row[i]) for row in rows)) if rows else len(titles[i]) for i in range(len(titles))]
    lines = [header, "  ".join(title.ljust(width) for title, width in zip(titles, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not rows:
        lines.append("(no task lists)")
    return "\n".join(lines)
