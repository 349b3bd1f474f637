"""Input that no retry can fix is rejected where it enters: at submit, at start-up, or once in the activity."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager.submit import SubmitError, build_input
from workers.errors import PermanentError
from workers.storage import Storage, parse_s3_url


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("s3://", "names no bucket or no key"),
        ("s3://bucket-only", "names no bucket or no key"),
        ("https://", "names no host"),
        ("ftp://host/video.mp4", "unsupported scheme"),
        ("/dev/null", "not a regular file"),
    ],
)
def test_submit_rejects_bad_location(location: str, message: str) -> None:
    with pytest.raises(SubmitError, match=message):
        build_input(location, "m", None, None)


def test_submit_rejects_folder(tmp_path: Path) -> None:
    with pytest.raises(SubmitError, match="is a folder"):
        build_input(str(tmp_path), "m", None, None)


@pytest.mark.parametrize("key", ["media_uuid", "video_url", "user_uuid"])
def test_submit_input_cannot_override_ids(tmp_path: Path, key: str) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")

    with pytest.raises(SubmitError, match=key):
        build_input(str(video), "m", None, f'{{"{key}": "other"}}')


def test_malformed_s3_url_is_permanent() -> None:
    with pytest.raises(PermanentError, match="bucket name is missing"):
        parse_s3_url("s3://")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "clip.bin").write_bytes(b"video bytes")
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_video_is_downloaded(http_server: str, tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))

    with storage.local_copy(f"{http_server}/clip.bin") as path:
        assert path.read_bytes() == b"video bytes"
        downloaded = path
    assert not downloaded.exists()


def test_http_not_found_is_permanent(http_server: str, tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))

    with pytest.raises(PermanentError, match="HTTP 404"):
        with storage.local_copy(f"{http_server}/missing.mp4"):
            pass


def test_unwritable_storage_root_stops_manager(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    config = tmp_path / "manager.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[swf]\nendpoint_url = "local"\n[storage]\nroot = "{tmp_path / "afile" / "sub"}"\n'
    )

    result = subprocess.run(
        [sys.executable, "-m", "manager", "--config", str(config)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 2
    assert "storage.root" in result.stderr
    assert "afile/sub" in result.stderr
