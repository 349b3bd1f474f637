"""Tests of workers.storage on a real folder and on moto's in-process S3 mock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workers.errors import PermanentError
from workers.storage import Storage, parse_s3_url


def test_folder_put_and_get_bytes(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    url = storage.put_bytes("media-1/faces.json", b'{"faces": []}')
    assert url == str((tmp_path / "root" / "media-1" / "faces.json").resolve())
    assert Path(url).is_absolute()
    assert storage.get_bytes(url) == b'{"faces": []}'
    leftovers = [p.name for p in Path(url).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_folder_put_file_and_local_copy(tmp_path: Path) -> None:
    source = tmp_path / "clip.bin"
    source.write_bytes(b"\x00\x01video")
    storage = Storage(str(tmp_path / "root"))
    url = storage.put_file("m/clip.bin", source)
    with storage.local_copy(url) as local:
        assert local == Path(url)
        assert local.read_bytes() == b"\x00\x01video"


def test_folder_missing_file_is_permanent(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(PermanentError, match="nope.mp4: file not found"):
        storage.get_bytes(missing)
    with pytest.raises(PermanentError, match="nope.mp4: file not found"):
        with storage.local_copy(missing):
            pass
    with pytest.raises(PermanentError, match="not a regular file"):
        with storage.local_copy(str(tmp_path)):
            pass


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../escape", "a/../../b"])
def test_key_outside_root_rejected(tmp_path: Path, key: str) -> None:
    storage = Storage(str(tmp_path))
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put_bytes(key, b"x")


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://bucket/a/b.mp4") == ("bucket", "a/b.mp4")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="bucket name is missing"):
        parse_s3_url("s3:///key")
    with pytest.raises(ValueError, match="must start with s3://"):
        parse_s3_url("/local/path")


@pytest.fixture
def moto_s3():
    """moto's in-process S3 mock with one bucket; no network is used."""
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="media")
        yield


@pytest.mark.stubbed
def test_s3_round_trip(moto_s3: None, tmp_path: Path) -> None:
    """S3 through moto's in-process mock, because the tests have no real bucket."""
    storage = Storage("s3://media/results/")
    assert storage.is_s3
    url = storage.put_bytes("m1/faces.json", b"[1, 2]")
    assert url == "s3://media/results/m1/faces.json"
    assert storage.get_bytes(url) == b"[1, 2]"

    source = tmp_path / "clip.mp4"
    source.write_bytes(b"not really a video")
    file_url = storage.put_file("m1/clip.mp4", source)
    assert file_url == "s3://media/results/m1/clip.mp4"
    with storage.local_copy(file_url) as local:
        downloaded = local
        assert local.suffix == ".mp4"
        assert local.read_bytes() == b"not really a video"
    assert not downloaded.exists()


@pytest.mark.stubbed
def test_s3_missing_object_is_permanent(moto_s3: None) -> None:
    """A missing S3 key through moto's in-process mock."""
    storage = Storage("s3://media")
    with pytest.raises(PermanentError, match="s3://media/none.mp4: object not found"):
        storage.get_bytes("s3://media/none.mp4")
    with pytest.raises(PermanentError, match="object not found"):
        with storage.local_copy("s3://media/none.mp4"):
            pass


@pytest.mark.stubbed
def test_s3_client_rebuilt_after_fork(moto_s3: None) -> None:
    """The client is per process: a changed pid makes a fresh one (moto in-process mock)."""
    storage = Storage("s3://media")
    first = storage._s3()
    assert storage._s3() is first
    storage._client_pid = os.getpid() + 1  # what a forked child would see
    assert storage._s3() is not first


def test_storage_builds_no_client_up_front() -> None:
    storage = Storage("s3://media/prefix")
    assert storage._client is None
    assert storage.url_for("a/b") == "s3://media/prefix/a/b"
