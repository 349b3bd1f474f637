"""Locations of a manager's runtime state: status socket, state file, endpoint database."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workers.config import Config

STATE_FILE_NAME = "manager.json"
LOCAL_DB_NAME = "localswf.sqlite3"


def state_dir_for(config: Config) -> Path:
    """Return the configured state folder, else $XDG_RUNTIME_DIR/swf-manager, else /tmp/swf-manager-<uid>."""
    if config.state_dir is not None:
        return Path(config.state_dir)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / "swf-manager"
    return Path("/tmp") / f"swf-manager-{os.getuid()}"


def ensure_state_dir(path: Path) -> Path:
    """Create the state folder with mode 0700, because it contains the status socket.

    Raises ``PermissionError`` naming the folder when another user owns it, since a
    shared folder in /tmp would let that user impersonate this manager.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(
            f"state folder {path} belongs to uid {info.st_uid}, not to this user (uid {os.getuid()}). "
            "Set state_dir in the configuration to a folder of your own."
        )
    return path


def local_db_path(config: Config, state_dir: Path) -> Path:
    """Return the embedded endpoint's SQLite file: swf.local_db, else one in the state folder."""
    if config.swf.local_db is not None:
        return Path(config.swf.local_db)
    return state_dir / LOCAL_DB_NAME


def read_state_file(state_dir: Path) -> dict[str, Any] | None:
    """Return the running manager's state file (pid, endpoint_url, domain, status_socket).

    Returns None when there is no such file, it is not valid JSON, or its pid is no longer
    alive, so a stale file left by a killed manager is ignored.
    """
    try:
        state = json.loads((state_dir / STATE_FILE_NAME).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return None
    return state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
