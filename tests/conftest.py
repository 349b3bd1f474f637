"""Shared fixtures: a fresh embedded SWF endpoint per test, over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localswf.testing import LocalSwfProcess

# Real test clips live outside the repository; SWF_MANAGER_MEDIA points elsewhere.
SHARED_MEDIA = Path(os.environ.get("SWF_MANAGER_MEDIA") or Path(__file__).resolve().parents[2] / "shared" / "media")


@pytest.fixture(autouse=True, scope="session")
def _fake_aws_credentials() -> Iterator[None]:
    """Keep boto3 away from real credentials: the embedded endpoint accepts any."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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
