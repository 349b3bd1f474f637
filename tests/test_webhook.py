"""Completion hook against a loopback receiver: signature, retries, failures."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from loopback import LoopbackServer, QuietHandler

from workers.config import Config, MetricsConfig, WebhookConfig
from workers.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    CompletionReporter,
    WebhookSender,
    sign,
    verify,
    workflow_summary,
)

KEY = "test-hmac-key-0123456789abcdef"
KEY_ENV = "SWF_TEST_WEBHOOK_KEY"
MAX_SEND_SECONDS = 0.05


class Receiver(LoopbackServer):
    """A loopback web application that responds with the status codes in ``script``.

    After the script runs out it responds 200. Each request is kept with its headers and body.
    """

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.condition = threading.Condition()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.condition:
                    code = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append((dict(self.headers), body, code))
                    receiver.condition.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/swf"

    def wait_for_requests(self, count: int, timeout: float = 30) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: len(self.requests) >= count, timeout)



def make_config(url: str | None, secret_env: str | None = KEY_ENV, attempts: int = 4) -> Config:
    return replace(Config(), webhook=WebhookConfig(url=url, secret_env=secret_env, attempts=attempts, timeout=5))


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def senders() -> Iterator[list[WebhookSender]]:
    instances: list[WebhookSender] = []
    yield instances
    for sender in instances:
        sender.close(timeout=5)


def closed_report(workflow_id: str = "media-1", status: str = "completed") -> dict:
    """A report in the shape the decider passes to on_workflow_closed."""
    report = {
        "workflow_id": workflow_id,
        "run_id": "run-1",
        "workflow_type": "VideoProcessing",
        "workflow_input": {"media_uuid": workflow_id, "user_uuid": "user-1", "video_url": "/v.mp4"},
        "status": status,
        "started_at": 1000.0,
    }
    if status == "completed":
        report["result"] = {"faces": 12, "people": 3}
    else:
        report["reason"] = "FaceDetect failed: corrupt video"
        report["details"] = {"retry": False}
    return report


def summary(workflow_id: str = "media-1") -> dict:
    return workflow_summary(closed_report(workflow_id), closed_at=1042.5)


def timed_send(sender: WebhookSender, payload: dict) -> float:
    started = time.perf_counter()
    sender.send(payload)
    return time.perf_counter() - started


def test_delivers_signed_summary(key_env: None, senders: list[WebhookSender]) -> None:
    with Receiver([]) as receiver:
        sender = WebhookSender.from_config(make_config(receiver.url))
        senders.append(sender)
        send_seconds = timed_send(sender, summary())
        assert receiver.wait_for_requests(1)
        assert sender.close(timeout=10)

    headers, body, code = receiver.requests[0]
    assert send_seconds < MAX_SEND_SECONDS
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    # The receiver recomputes the HMAC over the exact bytes it got.
    assert verify(KEY.encode(), body, headers[SIGNATURE_HEADER])
    assert not verify(b"another-key-0123456789", body, headers[SIGNATURE_HEADER])
    assert not verify(KEY.encode(), body + b" ", headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["workflow_id"] == "media-1"
    assert payload["media_uuid"] == "media-1"
    assert payload["user_uuid"] == "user-1"
    assert payload["duration"] == 42.5
    assert payload["result"] == {"faces": 12, "people": 3}
    assert sender.delivered == 1


def test_sign_matches_reference_hmac() -> None:
    # HMAC-SHA256 of an empty body under the key "key", computed independently with
    # `printf '' | openssl dgst -sha256 -hmac key`.
    expected = "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"

    assert sign(b"key", b"") == f"sha256={expected}"


def test_retries_until_success(
    key_env: None, senders: list[WebhookSender], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workers.webhook")
    with Receiver([500, 503, 429]) as receiver:
        sender = WebhookSender.from_config(make_config(receiver.url), backoff_initial=0.01, backoff_max=0.05)
        senders.append(sender)
        send_seconds = timed_send(sender, summary())
        assert receiver.wait_for_requests(4)
        assert sender.close(timeout=10)

    assert send_seconds < MAX_SEND_SECONDS
    assert [code for _, _, code in receiver.requests] == [500, 503, 429, 200]
    bodies = {body for _, body, _ in receiver.requests}
    delivery_ids = {headers[DELIVERY_HEADER] for headers, _, _ in receiver.requests}
    # Every retry sends the same bytes under the same delivery id.
    assert len(bodies) == 1
    assert len(delivery_ids) == 1
    assert sender.delivered == 1
    assert sender.failed == 0
    retries = [record.getMessage() for record in caplog.records if "retrying in" in record.getMessage()]
    assert len(retries) == 3
    assert "media-1" in retries[0]


def test_always_failing_hook_gives_up(
    key_env: None, senders: list[WebhookSender], caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver([500] * 10) as receiver:
        sender = WebhookSender.from_config(
            make_config(receiver.url, attempts=3), backoff_initial=0.01, backoff_max=0.05
        )
        senders.append(sender)
        send_seconds = timed_send(sender, summary("media-2"))
        assert sender.close(timeout=10)

    assert send_seconds < MAX_SEND_SECONDS
    assert len(receiver.requests) == 3
    assert sender.failed == 1
    assert sender.delivered == 0
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "media-2" in errors[0]
    assert "after 3 attempts" in errors[0]
    assert KEY not in caplog.text


def test_client_error_not_retried(key_env: None, senders: list[WebhookSender]) -> None:
    with Receiver([400]) as receiver:
        sender = WebhookSender.from_config(make_config(receiver.url), backoff_initial=0.01)
        senders.append(sender)
        sender.send(summary())
        assert sender.close(timeout=10)

    assert [code for _, _, code in receiver.requests] == [400]
    assert sender.failed == 1


def test_unreachable_hook_does_not_block(key_env: None, senders: list[WebhookSender]) -> None:
    with Receiver([]) as receiver:
        url = receiver.url
    # The receiver is closed now, so every connection is refused.
    sender = WebhookSender.from_config(make_config(url, attempts=2), backoff_initial=0.01)
    senders.append(sender)

    slowest = max(timed_send(sender, summary(f"media-{index}")) for index in range(20))
    assert sender.close(timeout=20)

    assert slowest < MAX_SEND_SECONDS
    assert sender.failed == 20


def test_close_abandons_backoff_at_deadline(key_env: None, senders: list[WebhookSender]) -> None:
    with Receiver([500] * 10) as receiver:
        # A 60 s backoff would hold close() far past its deadline if it were not cut short.
        sender = WebhookSender.from_config(make_config(receiver.url, attempts=5), backoff_initial=60)
        senders.append(sender)
        sender.send(summary())
        assert receiver.wait_for_requests(1)
        started = time.monotonic()
        finished = sender.close(timeout=0.2)
        sender._thread.join(10)
        elapsed = time.monotonic() - started

    assert finished is False
    assert elapsed < 10
    assert not sender._thread.is_alive()
    assert sender.failed == 1


def test_unsigned_without_secret_env(senders: list[WebhookSender]) -> None:
    with Receiver([]) as receiver:
        sender = WebhookSender.from_config(make_config(receiver.url, secret_env=None))
        senders.append(sender)
        sender.send(summary())
        assert receiver.wait_for_requests(1)

    headers, _, _ = receiver.requests[0]
    assert SIGNATURE_HEADER not in headers


def test_no_url_sends_nothing() -> None:
    sender = WebhookSender.from_config(make_config(None))

    sender.send(summary())

    assert sender.enabled is False
    assert sender._thread is None


@pytest.mark.parametrize(
    ("url", "key", "message"),
    [
        ("ftp://example.invalid/hook", KEY, "is not an HTTP"),
        ("http://127.0.0.1:9/hook", "", f"{KEY_ENV} .webhook.secret_env. is empty or not set"),
        ("http://127.0.0.1:9/hook", "short", "has 5 characters"),
    ],
)
def test_invalid_settings_rejected(url: str, key: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, key)

    with pytest.raises(ValueError, match=message):
        WebhookSender.from_config(make_config(url))


@pytest.mark.parametrize(("status", "event"), [("completed", "Workflow Completed"), ("failed", "Workflow Failed")])
def test_completion_reporter_sends_hook_and_event(
    status: str, event: str, key_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_file = tmp_path / "events.jsonl"
    with Receiver([]) as receiver:
        config = replace(
            make_config(receiver.url),
            metrics=MetricsConfig(mixpanel_token_env=None, events_file=str(events_file)),
        )
        reporter = CompletionReporter.from_config(config)
        reporter(closed_report("media-5", status))
        assert receiver.wait_for_requests(1)
        reporter.close(timeout=10)

    headers, body, _ = receiver.requests[0]
    payload = json.loads(body)
    assert verify(KEY.encode(), body, headers[SIGNATURE_HEADER])
    assert payload["status"] == status
    assert payload["workflow_id"] == "media-5"
    assert payload["user_uuid"] == "user-1"
    assert payload["started_at"] == 1000.0
    assert payload["duration"] == round(payload["closed_at"] - 1000.0, 3)
    tracked = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [line["event"] for line in tracked] == [event]
    assert tracked[0]["distinct_id"] == "user-1"
    assert tracked[0]["media_uuid"] == "media-5"
    assert tracked[0]["duration"] == payload["duration"]
    assert ("reason" in tracked[0]) == (status == "failed")


def test_summary_without_start_time() -> None:
    report = closed_report()
    del report["started_at"]

    payload = workflow_summary(report, closed_at=50.0)

    assert payload["started_at"] is None
    assert payload["duration"] is None
    assert payload["closed_at"] == 50.0
