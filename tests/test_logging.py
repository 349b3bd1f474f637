"""JSON log records, syslog output, Loggly bulk shipping and secret redaction."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import LoopbackServer, QuietHandler

from workers import logs
from workers.config import Config, LoggingConfig, MetricsConfig, WebhookConfig
from workers.log_shipping import (
    REDACTED,
    LogglyBulkHandler,
    SecretRedactionFilter,
    secret_env_names,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

SECRETS = {
    "SWF_TEST_MIXPANEL_TOKEN": "mp0123456789abcdef0123456789abcd",
    "SWF_TEST_WEBHOOK_KEY": "whk-secret-0123456789abcdef",
    "SWF_TEST_LOGGLY_TOKEN": "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
    # The example key pair from AWS's documentation: the right shape, valid nowhere.
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


class Recorder(LoopbackServer):
    """A loopback HTTP server that responds to every POST with one status and keeps the requests.

    In mode "hang" it leaves each request open until the test ends. In mode "echo" it responds
    with a Mixpanel-style error that quotes the whole request body, token included.
    """

    def __init__(self, mode: str = "ok", status: int = 200) -> None:
        self.mode = mode
        self.status = status
        self.requests: list[tuple[str, bytes]] = []
        self.condition = threading.Condition()
        recorder = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recorder.condition:
                    recorder.requests.append((self.path, body))
                    recorder.condition.notify_all()
                if recorder.mode == "hang":
                    recorder.release.wait(30)
                    return
                reply = b""
                if recorder.mode == "echo":
                    reply = json.dumps({"status": 0, "error": f"invalid data {body.decode()}"}).encode()
                self.send_response(recorder.status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        super().__init__(Handler)

    def wait_for_requests(self, count: int, timeout: float = 30) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: len(self.requests) >= count, timeout)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def test_json_record_has_all_fields(restore_root_logger: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(LoggingConfig(level="INFO"), role="activity", task_list="video-detect")

    with logs.log_context(workflow_id="media-7", run_id="run-7", activity_id="FaceDetect-1"):
        with logs.log_context(media_uuid="media-7", user_uuid="user-7"):
            logging.getLogger("workers.activity").info("task finished", extra={"duration": 3.25})

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    record = lines[-1]
    assert record["message"] == "task finished"
    assert record["level"] == "INFO"
    assert record["logger"] == "workers.activity"
    assert record["pid"] == os.getpid()
    assert record["role"] == "activity"
    assert record["task_list"] == "video-detect"
    assert record["workflow_id"] == "media-7"
    assert record["run_id"] == "run-7"
    assert record["activity_id"] == "FaceDetect-1"
    assert record["media_uuid"] == "media-7"
    assert record["user_uuid"] == "user-7"
    assert record["duration"] == 3.25
    assert record["timestamp"]


def test_syslog_output_reaches_socket(tmp_path: Path, restore_root_logger: None) -> None:
    address = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        listener.settimeout(10)
        logs.configure_logging(
            LoggingConfig(output="syslog", syslog_address=str(address), syslog_facility="local0"),
            role="manager",
        )

        logging.getLogger("manager.supervisor").warning("worker restarted", extra={"duration": 0.5})
        datagram = listener.recv(65536).decode()

    # <132> is facility local0 (16) * 8 + severity warning (4).
    assert datagram.startswith("<132>swf-manager: {")
    record = json.loads(datagram[len("<132>swf-manager: ") :].rstrip("\x00"))
    assert record["message"] == "worker restarted"
    assert record["role"] == "manager"
    assert record["level"] == "WARNING"


def test_redaction_filter_covers_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    redaction = SecretRedactionFilter(SECRETS)
    token = SECRETS["SWF_TEST_MIXPANEL_TOKEN"]
    secret_key = SECRETS["AWS_SECRET_ACCESS_KEY"]
    try:
        raise RuntimeError(f"signing failed with {secret_key}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("workers.test", logging.ERROR, __file__, 1, "token %s in %r", (token, [token]), exc_info)
    record.details = {"nested": [f"x{token}y"], "count": 3}
    record.stack_info = f"Stack (most recent call last): {secret_key}"

    assert redaction.filter(record) is True
    formatted = logs.make_formatter().format(record)

    for value in SECRETS.values():
        assert value not in formatted
    parsed = json.loads(formatted)
    assert parsed["message"] == f"token {REDACTED} in ['{REDACTED}']"
    assert parsed["details"] == {"nested": [f"x{REDACTED}y"], "count": 3}
    assert f"signing failed with {REDACTED}" in parsed["exc_info"]
    assert "RuntimeError" in parsed["exc_info"]
    assert REDACTED in parsed["stack_info"]


def test_redaction_keeps_short_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test suite's fake AWS key "testing" is shorter than any real key, so ordinary
    # words in log lines stay readable.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "testing AKIAABCDEFGHIJKLMNOP", None, None)

    SecretRedactionFilter().filter(record)

    assert record.getMessage() == f"testing {REDACTED}"


def test_secret_env_names_from_config() -> None:
    config = Config(
        logging=LoggingConfig(loggly_token_env="LOGGLY_TOKEN"),
        metrics=MetricsConfig(mixpanel_token_env="MIXPANEL_TOKEN"),
        webhook=WebhookConfig(url="https://example.invalid/hook", secret_env="HOOK_KEY"),
    )

    names = secret_env_names(config)

    assert names[:3] == ("MIXPANEL_TOKEN", "HOOK_KEY", "LOGGLY_TOKEN")
    assert "AWS_SECRET_ACCESS_KEY" in names
    assert "AWS_SESSION_TOKEN" in names


def test_loggly_handler_ships_bulk_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    token = SECRETS["SWF_TEST_LOGGLY_TOKEN"]
    monkeypatch.setenv("SWF_TEST_LOGGLY_TOKEN", token)
    with Recorder() as loggly:
        config = LoggingConfig(
            loggly_token_env="SWF_TEST_LOGGLY_TOKEN", loggly_url=loggly.base_url + "/bulk/{token}/tag/swf-manager/"
        )
        handler = LogglyBulkHandler.from_config(config)
        assert handler is not None
        handler.setFormatter(logs.make_formatter())
        test_logger = logging.getLogger("tests.loggly")
        test_logger.addHandler(handler)
        test_logger.propagate = False
        try:
            for index in range(25):
                test_logger.warning("step %d\nsecond line", index)
            assert handler.flush(timeout=30)
        finally:
            test_logger.removeHandler(handler)
            test_logger.propagate = True
            handler.close(timeout=10)

    paths = {path for path, _ in loggly.requests}
    assert paths == {f"/bulk/{token}/tag/swf-manager/"}
    lines = [line for _, body in loggly.requests for line in body.decode().split("\n")]
    assert len(lines) == 25
    assert [json.loads(line)["message"] for line in lines[:2]] == ["step 0\nsecond line", "step 1\nsecond line"]
    assert handler.sent_lines == 25


def test_loggly_hanging_never_blocks_logging() -> None:
    with Recorder(mode="hang") as loggly:
        handler = LogglyBulkHandler(loggly.base_url + "/bulk/t/tag/x/", queue_size=10, batch_size=1, timeout=1)
        handler.setFormatter(logs.make_formatter())
        test_logger = logging.getLogger("tests.loggly.hang")
        test_logger.addHandler(handler)
        test_logger.propagate = False
        try:
            test_logger.error("first")
            assert loggly.wait_for_requests(1)
            slowest = 0.0
            for index in range(300):
                started = time.perf_counter()
                test_logger.error("line %d", index)
                slowest = max(slowest, time.perf_counter() - started)
        finally:
            test_logger.removeHandler(handler)
            test_logger.propagate = True
            started = time.monotonic()
            handler.close(timeout=0.5)
            close_seconds = time.monotonic() - started

    # A call that waited on the hanging server would take the handler's 1 s timeout.
    assert slowest < 0.5
    assert handler.dropped >= 300 - 10 - 1
    assert close_seconds < 5


def test_loggly_url_rejected_without_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWF_TEST_LOGGLY_TOKEN", "token-value-1234")
    config = LoggingConfig(loggly_token_env="SWF_TEST_LOGGLY_TOKEN", loggly_url="https://logs.example/bulk/")

    with pytest.raises(ValueError, match="placeholder"):
        LogglyBulkHandler.from_config(config)


# Runs in a child process, logging the way a worker does, with every secret set. It drives
# each path that handles secrets. Mixpanel's stand-in quotes the token back in its error, and
# the webhook and Loggly fail. botocore logs a signed request at DEBUG. Careless log calls
# pass secrets as arguments, extras and exception text.
LEAK_SCRIPT = r"""
import json, logging, os, sys
from dataclasses import replace

import boto3
from botocore.config import Config as BotoConfig

from workers import logs
from workers.config import Config, LoggingConfig, MetricsConfig, WebhookConfig
from workers.log_shipping import LogglyBulkHandler, SecretRedactionFilter, secret_env_names
from workers.metrics import Metrics
from workers.webhook import WebhookSender

mixpanel_url, hook_url, loggly_url, closed_url = sys.argv[1:5]
config = Config(
    logging=LoggingConfig(level="DEBUG", loggly_token_env="SWF_TEST_LOGGLY_TOKEN", loggly_url=loggly_url),
    metrics=MetricsConfig(mixpanel_token_env="SWF_TEST_MIXPANEL_TOKEN", mixpanel_api_host=mixpanel_url),
    webhook=WebhookConfig(url=hook_url, secret_env="SWF_TEST_WEBHOOK_KEY", attempts=2, timeout=5),
)
# Until configure_logging takes secret_envs and attaches the filter and the Loggly handler
# itself, add them here the same way.
try:
    logs.configure_logging(config.logging, secret_envs=secret_env_names(config), role="decider", task_list="d")
except TypeError:
    logs.configure_logging(config.logging, role="decider", task_list="d")
root = logging.getLogger()
loggly = next((handler for handler in root.handlers if isinstance(handler, LogglyBulkHandler)), None)
if loggly is None:
    loggly = LogglyBulkHandler.from_config(config.logging)
    loggly.setFormatter(logs.make_formatter())
    root.addHandler(loggly)
redaction = SecretRedactionFilter(secret_env_names(config))
for handler in root.handlers:
    if not any(isinstance(f, SecretRedactionFilter) for f in handler.filters):
        handler.addFilter(redaction)
logging.getLogger("botocore").setLevel(logging.DEBUG)

metrics = Metrics.from_config(config, request_timeout=5)
metrics.track("Workflow Started", "user-1", {"workflow_id": "media-1"})
assert metrics.flush(timeout=30)
hook = WebhookSender.from_config(config, backoff_initial=0.01)
hook.send({"workflow_id": "media-1", "run_id": "run-1"})
assert hook.close(timeout=30)

swf = boto3.client(
    "swf", endpoint_url=closed_url, region_name="us-east-1",
    config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=2),
)
try:
    swf.list_domains(registrationStatus="REGISTERED")
except Exception:
    logging.getLogger("workers.client").exception("ListDomains failed")

log = logging.getLogger("workers.careless")
for name in secret_env_names(config):
    log.warning("value of %s is %s", name, os.environ.get(name))
log.info("settings", extra={"settings": {"token": os.environ["SWF_TEST_MIXPANEL_TOKEN"]}})
try:
    raise PermissionError("bad secret " + os.environ["AWS_SECRET_ACCESS_KEY"])
except PermissionError:
    log.exception("upload failed")
assert loggly.flush(timeout=30)
loggly.close(timeout=10)
print(json.dumps({"loggly_failed_batches": loggly.failed_batches}))
"""


def test_secrets_never_logged(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with Recorder(mode="echo", status=200) as mixpanel, Recorder(status=500) as hook, Recorder(status=503) as loggly:
        environment = {**os.environ, **SECRETS, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                LEAK_SCRIPT,
                mixpanel.base_url,
                hook.base_url + "/hook",
                loggly.base_url + "/bulk/{token}/tag/swf-manager/",
                closed_url,
            ],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        loggly_bodies = "\n".join(body.decode() for _, body in loggly.requests)

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # Loggly responded 503 to every upload, so each shows up as a logged error.
    assert summary["loggly_failed_batches"] >= 1
    assert loggly_bodies
    output = result.stderr + result.stdout + loggly_bodies
    # The paths ran: each left its trace in the log.
    assert "Mixpanel rejected or did not respond" in output
    assert "completion hook for workflow media-1" in output
    assert "Loggly bulk upload" in output
    assert "ListDomains failed" in output
    assert "value of AWS_SECRET_ACCESS_KEY is" in output
    # The server quoted the token back, so its error text went through the filter.
    assert "invalid data" in output
    for name, value in SECRETS.items():
        assert value not in output, f"{name} leaked into the log output"
    assert "value of AWS_SECRET_ACCESS_KEY is [REDACTED]" in output
