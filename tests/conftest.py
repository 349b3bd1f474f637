"""Shared fixtures: a fresh embedded SWF endpoint per test, over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localswf.testing import LocalSwfProcess

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep boto3 away from real credentials: the embedded endpoint accepts any."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def localswf(tmp_path: Path) -> Iterator[LocalSwfProcess]:
    """A localswf server process on a free port with its own SQLite file."""
    server = LocalSwfProcess(db_path=tmp_path / "localswf.sqlite3")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def media_dir() -> Path:
    """The folder of real test clips; tests that need it skip when it is absent."""
    if not SHARED_MEDIA.is_dir() and not os.environ.get("CI"):
        pytest.skip(f"test media folder {SHARED_MEDIA} not found")
    return SHARED_MEDIA
