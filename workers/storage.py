"""Reading and writing media and results in a local folder or under an S3 prefix.

A ``Storage`` is built from the configured root, a folder or ``s3://bucket/prefix``. Writes
return a URL: an absolute path for a folder root, ``s3://bucket/key`` for an S3 root. Reads
take either kind of URL whatever the root is, so a worker with a local root can still read an
upload from S3.

The boto3 S3 client is built on first use and rebuilt when the process id changes, so a
``Storage`` made before a fork never shares a client with the child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from workers.errors import PermanentError

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key. The key may be empty.

    Raises PermanentError, a ValueError that no retry can fix, for a malformed URL.
    """
    if not url.startswith(S3_SCHEME):
        raise InvalidUrl(f"invalid S3 URL {url!r}: it must start with s3://")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise InvalidUrl(f"invalid S3 URL {url!r}: the bucket name is missing")
    return bucket, key


class InvalidUrl(PermanentError, ValueError):
    """A storage URL that cannot name anything; retrying it cannot help."""


def is_http_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def is_s3_url(url: str) -> bool:
    return url.startswith(S3_SCHEME)


def _checked_key(key: str) -> str:
    """Return ``key`` as a relative POSIX path, rejecting keys that could leave the root."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"invalid storage key {key!r}: use a relative path without '..'")
    return path.as_posix()


def _local_path(url: str) -> Path:
    if url.startswith("file://"):
        url = url[len("file://") :]
    return Path(url).expanduser()


def _is_missing_object(error: Exception) -> bool:
    response: Any = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


class Storage:
    """A folder or an S3 prefix that activities read inputs from and write results to."""

    def __init__(self, root: str) -> None:
        if not root:
            raise ValueError("storage root is empty: set storage.root to a folder or s3://bucket/prefix")
        self.root = root
        self._client: Any = None
        self._client_pid: int | None = None
        if is_s3_url(root):
            self.bucket, prefix = parse_s3_url(root)
            self.prefix = prefix.strip("/")
            self.folder: Path | None = None
        else:
            self.bucket = ""
            self.prefix = ""
            self.folder = _local_path(root).resolve()

    @property
    def is_s3(self) -> bool:
        return self.folder is None

    def check_writable(self) -> None:
        """Create a folder root and write a probe file in it; raise OSError when that fails.

        The manager calls it at start-up, so an unusable root stops it there instead of
        failing every task. An S3 root is not checked: that would need a network call.
        """
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".write-check-"):
            pass

    def _s3(self) -> Any:
        """Return this process's S3 client, building it on first use after each fork."""
        if self._client is None or self._client_pid != os.getpid():
            import boto3  # imported here so that local-only workers never load boto3

            # boto3 reads AWS_ENDPOINT_URL_S3 itself, which points tests at a local S3.
            self._client = boto3.client("s3")
            self._client_pid = os.getpid()
        return self._client

    def set_s3_client(self, client: Any) -> None:
        """Use ``client`` in this process instead of building one (for stubs in tests)."""
        self._client = client
        self._client_pid = os.getpid()

    def url_for(self, key: str) -> str:
        """Return the URL that ``put_bytes(key, ...)`` writes to."""
        key = _checked_key(key)
        if self.folder is not None:
            return str(self.folder / key)
        full_key = f"{self.prefix}/{key}" if self.prefix else key
        return f"{S3_SCHEME}{self.bucket}/{full_key}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` under the root and return its URL."""
        url = self.url_for(key)
        if self.folder is not None:
            path = Path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary name and rename, so a reader never sees half a file.
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(data)
            temporary.replace(path)
            return url
        bucket, object_key = parse_s3_url(url)
        self._s3().put_object(Bucket=bucket, Key=object_key, Body=data)
        return url

    def put_file(self, key: str, path: str | Path) -> str:
        """Copy the local file ``path`` to ``key`` under the root and return its URL."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot store {source}: file not found")
        url = self.url_for(key)
        if self.folder is not None:
            target = Path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(source, temporary)
            temporary.replace(target)
            return url
        bucket, object_key = parse_s3_url(url)
        self._s3().upload_file(str(source), bucket, object_key)
        return url

    def get_bytes(self, url: str) -> bytes:
        """Read the whole object at ``url``, a local path or an s3:// URL.

        Raises PermanentError when the file or object does not exist.
        """
        if is_s3_url(url):
            bucket, key = parse_s3_url(url)
            try:
                response = self._s3().get_object(Bucket=bucket, Key=key)
            except Exception as error:
                if _is_missing_object(error):
                    raise PermanentError(f"{url}: object not found in S3; check the bucket and key") from error
                raise
            return response["Body"].read()
        path = _local_path(url)
        try:
            return path.read_bytes()
        except FileNotFoundError as error:
            raise PermanentError(f"{url}: file not found; check the path") from error
        except IsADirectoryError as error:
            raise PermanentError(f"{url}: is a folder, not a file") from error

    @contextlib.contextmanager
    def local_copy(self, url: str) -> Iterator[Path]:
        """Yield a local file with the content at ``url``.

        A local path is yielded as it is. An s3:// or http(s):// URL is downloaded to a
        temporary file, which is deleted when the block exits. Raises PermanentError when the file or object
        does not exist.
        """
        if is_http_url(url):
            with _downloaded(url) as temporary:
                yield temporary
            return
        if not is_s3_url(url):
            path = _local_path(url)
            if not path.exists():
                raise PermanentError(f"{url}: file not found; check the path")
            if not path.is_file():
                raise PermanentError(f"{url}: is not a regular file")
            yield path
            return

        bucket, key = parse_s3_url(url)
        suffix = PurePosixPath(key).suffix
        handle, name = tempfile.mkstemp(prefix="swf-manager-", suffix=suffix)
        os.close(handle)
        temporary = Path(name)
        try:
            try:
                self._s3().download_file(bucket, key, str(temporary))
            except Exception as error:
                if _is_missing_object(error):
                    raise PermanentError(f"{url}: object not found in S3; check the bucket and key") from error
                raise
            log.debug("downloaded %s to %s", url, temporary)
            yield temporary
        finally:
            temporary.unlink(missing_ok=True)


# Bound on each network read of an HTTP download, in seconds.
HTTP_TIMEOUT = 60.0


@contextlib.contextmanager
def _downloaded(url: str) -> Iterator[Path]:
    """Download an http(s) URL to a temporary file that is deleted when the block exits.

    An HTTP 4xx response raises PermanentError because the same request would get the same
    response. Connection errors and 5xx responses propagate, so the task is retried.
    """
    suffix = PurePosixPath(urllib.parse.urlparse(url).path).suffix
    handle, name = tempfile.mkstemp(prefix="swf-manager-", suffix=suffix)
    temporary = Path(name)
    try:
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response, os.fdopen(handle, "wb") as output:
                shutil.copyfileobj(response, output, length=1024 * 1024)
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                raise PermanentError(f"{url}: the server responded HTTP {error.code} {error.reason}; check the URL") from error
            raise
        log.debug("downloaded %s to %s", url, temporary)
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)
