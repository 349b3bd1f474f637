"""Status socket server, client and table format."""

from __future__ import annotations

import select
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from manager.status import StatusServer, StatusUnavailable, format_table, query

DOCUMENT: dict[str, Any] = {
    "pid": 4242,
    "state": "running",
    "uptime": 12.5,
    "endpoint_url": "http://127.0.0.1:8765",
    "system": {"cpu_percent": 42.0, "available_memory_mb": 2048},
    "task_lists": {
        "video-activities": {
            "kind": "activity",
            "min": 1,
            "max": 4,
            "processes": 3,
            "busy": 2,
            "idle": 1,
            "backlog": 7,
            "cpu_percent": 150.5,
            "memory_mb": 900.0,
            "restarts": 2,
            "crash_loop": False,
            "backoff_seconds": 0.0,
            "last_scaling": {"delta": 1, "reason": "add a worker: backlog 7", "ago": 3.0},
        },
        "decisions": {
            "kind": "decision",
            "min": 1,
            "max": 1,
            "processes": 0,
            "busy": 0,
            "idle": 0,
            "backlog": None,
            "cpu_percent": 0.0,
            "memory_mb": 0.0,
            "restarts": 9,
            "crash_loop": True,
            "backoff_seconds": 8.0,
            "last_scaling": None,
        },
    },
}


def test_format_table_rows() -> None:
    table = format_table(DOCUMENT)
    lines = table.splitlines()
    assert lines[0].startswith("manager pid 4242, running")
    assert "endpoint http://127.0.0.1:8765" in lines[0]
    assert lines[1].split()[:3] == ["TASK", "LIST", "KIND"]
    decisions = next(line for line in lines if line.startswith("decisions"))
    videos = next(line for line in lines if line.startswith("video-activities"))
    assert "yes, next start in 8 s" in decisions
    assert " 9 " in decisions
    assert "add a worker: backlog 7 (3 s ago)" in videos
    assert "150.5" in videos
    assert "1-4" in videos


def test_format_table_without_lists() -> None:
    assert "(no task lists)" in format_table({"pid": 1, "state": "running", "task_lists": {}})


def test_query_reads_server_reply(tmp_path: Path) -> None:
    server = StatusServer(tmp_path / "state")
    server.open()
    try:
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
        result: dict[str, Any] = {}
        client = threading.Thread(target=lambda: result.update(query(tmp_path / "state")))
        client.start()
        ready, _, _ = select.select([server.fileno()], [], [], 5.0)
        assert ready
        server.serve_ready(DOCUMENT)
        client.join(5.0)
        assert not client.is_alive()
        assert result == DOCUMENT
    finally:
        server.close()
    assert not server.path.exists()


def test_query_without_manager_names_directory(tmp_path: Path) -> None:
    with pytest.raises(StatusUnavailable, match="no manager is running with state directory"):
        query(tmp_path)


def test_second_server_on_live_socket_rejected(tmp_path: Path) -> None:
    first = StatusServer(tmp_path)
    first.open()
    try:
        with pytest.raises(RuntimeError, match="another manager is listening"):
            StatusServer(tmp_path).open()
    finally:
        first.close()


def test_stale_socket_file_replaced(tmp_path: Path) -> None:
    (tmp_path / "status.sock").write_text("left over")
    server = StatusServer(tmp_path)
    server.open()
    try:
        assert stat.S_ISSOCK(server.path.stat().st_mode)
    finally:
        server.close()


def test_long_state_dir_rejected(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(ValueError, match="longer than the 107 bytes"):
        StatusServer(deep).open()
