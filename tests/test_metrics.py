"""Metrics against loopback stand-ins for the Mixpanel API: accepting, hanging, failing."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from loopback import LoopbackServer, QuietHandler

from workers import metrics as metrics_module
from workers.config import Config, MetricsConfig
from workers.metrics import Metrics

TOKEN = "0123456789abcdef0123456789abcdef"
TOKEN_ENV = "SWF_TEST_MIXPANEL_TOKEN"
# A track() call only builds a dict and puts it on a queue, well under a millisecond. A call
# that waited on the stand-in server would take its 1 s request timeout. The bound sits
# between the two, so a garbage-collector or scheduler pause on a loaded machine does not
# fail the test.
MAX_TRACK_SECONDS = 0.5


class MixpanelStandIn(LoopbackServer):
    """A loopback HTTP server that speaks enough of Mixpanel's /track to test the client."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.events: list[dict] = []
        self.requests = 0
        self.request_seen = threading.Event()
        self._lock = threading.Lock()
        stand_in = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                with stand_in._lock:
                    stand_in.requests += 1
                stand_in.request_seen.set()
                if stand_in.mode == "hang":
                    stand_in.release.wait(30)
                    return
                if stand_in.mode == "error":
                    self._reply(500, {"status": 0, "error": "internal error"})
                    return
                if stand_in.mode == "reject":
                    self._reply(200, {"status": 0, "error": "data, missing or empty"})
                    return
                batch = json.loads(form["data"][0])
                with stand_in._lock:
                    stand_in.events.extend(batch)
                self._reply(200, {"status": 1, "error": None})

            def _reply(self, code: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def make_config(api_host: str, queue_size: int = 10000, events_file: str | None = None) -> Config:
    return replace(
        Config(),
        metrics=MetricsConfig(
            mixpanel_token_env=TOKEN_ENV,
            mixpanel_api_host=api_host,
            events_file=events_file,
            queue_size=queue_size,
        ),
    )


def timed_tracks(metrics: Metrics, count: int) -> float:
    """Track ``count`` events and return the slowest call, in seconds."""
    slowest = 0.0
    for index in range(count):
        started = time.perf_counter()
        metrics.track(
            metrics_module.ACTIVITY_COMPLETED,
            f"user-{index % 3}",
            {"activity_type": "FaceDetect", "duration": 1.5, "index": index},
        )
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


@pytest.fixture
def closing() -> Iterator[list[Metrics]]:
    """Close every Metrics a test made, so no sender thread outlives it."""
    instances: list[Metrics] = []
    yield instances
    for metrics in instances:
        metrics.close(timeout=5)


def test_accepting_server_gets_all_events(token_env: None, closing: list[Metrics]) -> None:
    with MixpanelStandIn("accept") as server:
        metrics = Metrics.from_config(make_config(server.base_url), request_timeout=5)
        closing.append(metrics)
        slowest = timed_tracks(metrics, 120)
        metrics.track(metrics_module.WORKFLOW_STARTED, None, {"workflow_id": "media-1"})

        assert metrics.flush(timeout=30)

    assert slowest < MAX_TRACK_SECONDS
    assert len(server.events) == 121
    # 121 events go out as batches of at most 50.
    assert server.requests == 3
    first = server.events[0]
    assert first["event"] == "Activity Completed"
    assert first["properties"]["distinct_id"] == "user-0"
    assert first["properties"]["token"] == TOKEN
    assert first["properties"]["duration"] == 1.5
    assert sorted(event["properties"]["index"] for event in server.events[:120]) == list(range(120))
    no_user = server.events[120]
    assert no_user["event"] == "Workflow Started"
    assert no_user["properties"]["distinct_id"] == ""
    assert len({event["properties"]["$insert_id"] for event in server.events}) == 121
    assert metrics.dropped == 0


def test_hanging_server_never_blocks_caller(
    token_env: None, closing: list[Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="workers.metrics")
    with MixpanelStandIn("hang") as server:
        metrics = Metrics.from_config(
            make_config(server.base_url, queue_size=20), request_timeout=1, flush_interval=0.05
        )
        closing.append(metrics)
        metrics.track(metrics_module.WORKFLOW_STARTED, "user-1", {})
        # The first batch is now stuck in a request that the server never responds to.
        assert server.request_seen.wait(10)

        slowest = timed_tracks(metrics, 500)
        started = time.monotonic()
        finished_in_time = metrics.close(timeout=0.5)
        close_seconds = time.monotonic() - started

    assert slowest < MAX_TRACK_SECONDS
    # 500 events against a queue of 20 held by a stuck sender: most are dropped.
    assert metrics.dropped >= 500 - 20 - 1
    assert finished_in_time is False
    assert close_seconds < 5
    drop_warnings = [record for record in caplog.records if "metrics queue is full" in record.getMessage()]
    # Drops are reported at most once a minute, not once per event.
    assert len(drop_warnings) == 1


@pytest.mark.parametrize("mode", ["error", "reject"])
def test_failing_server_loses_batch_then_recovers(
    mode: str, token_env: None, closing: list[Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="workers.metrics")
    with MixpanelStandIn(mode) as server:
        metrics = Metrics.from_config(make_config(server.base_url), request_timeout=5)
        closing.append(metrics)
        slowest = timed_tracks(metrics, 60)
        assert metrics.flush(timeout=30)
        assert isinstance(metrics.sink, metrics_module.MixpanelSink)
        lost_while_failing = metrics.sink.lost

        server.mode = "accept"
        metrics.track(metrics_module.WORKFLOW_COMPLETED, "user-2", {"duration": 12.0})
        assert metrics.flush(timeout=30)

    assert slowest < MAX_TRACK_SECONDS
    assert lost_while_failing == 60
    # The failed events were dropped, not kept and sent again with the next batch.
    assert [event["event"] for event in server.events] == ["Workflow Completed"]
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors
    assert "events lost so far" in errors[0]
    assert all(TOKEN not in message for message in errors)


def test_unreachable_host_loses_events_quietly(token_env: None, closing: list[Metrics]) -> None:
    # A port that was just free has nothing listening, so connections are refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics.from_config(make_config(f"http://127.0.0.1:{port}"), request_timeout=2)
    closing.append(metrics)

    slowest = timed_tracks(metrics, 30)
    assert metrics.flush(timeout=30)

    assert slowest < MAX_TRACK_SECONDS
    assert isinstance(metrics.sink, metrics_module.MixpanelSink)
    assert metrics.sink.lost == 30
    assert metrics.sink.sent == 0


def test_events_file_without_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closing: list[Metrics], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    events_file = tmp_path / "events.jsonl"
    metrics = Metrics.from_config(make_config("api.invalid", events_file=str(events_file)))
    closing.append(metrics)

    metrics.track(metrics_module.ACTIVITY_TIMED_OUT, "user-9", {"activity_type": "FaceRecognize", "timeout": 300})
    metrics.track(metrics_module.WORKER_RESTARTED, None, {"task_list": "video", "exit_code": -9})
    assert metrics.flush(timeout=10)

    lines = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["Activity Timed Out", "Worker Restarted"]
    assert lines[0]["distinct_id"] == "user-9"
    assert lines[0]["timeout"] == 300
    assert lines[1]["distinct_id"] == ""
    assert lines[1]["exit_code"] == -9
    assert all(isinstance(line["time"], float) for line in lines)
    assert any(TOKEN_ENV in record.getMessage() for record in caplog.records)


def test_no_token_no_file_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    metrics = Metrics.from_config(make_config("api.invalid"))

    metrics.track(metrics_module.WORKFLOW_FAILED, "user-1", {"reason": "x"})

    assert metrics.enabled is False
    assert metrics.dropped == 0
    # No sender thread was started for an event that goes nowhere.
    assert metrics._thread is None


def test_invalid_queue_size_rejected(token_env: None) -> None:
    with pytest.raises(ValueError, match="metrics.queue_size is 0"):
        Metrics.from_config(make_config("api.invalid", queue_size=0))


def test_forked_child_starts_own_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    events_file = tmp_path / "events.jsonl"
    metrics = Metrics.from_config(make_config("api.invalid", events_file=str(events_file)))
    metrics.track(metrics_module.WORKFLOW_STARTED, "parent", {})
    assert metrics.flush(timeout=10)

    pid = os.fork()
    if pid == 0:
        # The child inherits the object but not the parent's sender thread.
        code = 1
        try:
            metrics.track(metrics_module.WORKFLOW_COMPLETED, "child", {})
            code = 0 if metrics.flush(timeout=10) else 3
        finally:
            os._exit(code)
    pidfd = os.pidfd_open(pid)
    try:
        readable, _, _ = select.select([pidfd], [], [], 30)
    finally:
        os.close(pidfd)
    if not readable:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    metrics.close(timeout=5)

    assert readable, "forked child did not exit within 30 s"

    assert os.waitstatus_to_exitcode(status) == 0
    ids = [json.loads(line)["distinct_id"] for line in events_file.read_text().splitlines()]
    assert ids == ["parent", "child"]


SWF_DOMAIN = "metrics-history"


def test_decision_task_events_from_real_history(localswf: Any) -> None:
    """Events built from histories that the embedded endpoint wrote: a completion and a timeout."""
    client = boto3.client("swf", endpoint_url=localswf.url, region_name="us-east-1")
    client.register_domain(name=SWF_DOMAIN, workflowExecutionRetentionPeriodInDays="1")
    client.register_workflow_type(domain=SWF_DOMAIN, name="Pipeline", version="1")
    client.register_activity_type(domain=SWF_DOMAIN, name="Step", version="1")
    workflow_input = {"media_uuid": "media-9", "user_uuid": "user-9"}
    run_id = client.start_workflow_execution(
        domain=SWF_DOMAIN,
        workflowId="media-9",
        workflowType={"name": "Pipeline", "version": "1"},
        taskList={"name": "decisions"},
        input=json.dumps(workflow_input),
        executionStartToCloseTimeout="600",
        taskStartToCloseTimeout="60",
        childPolicy="TERMINATE",
    )["runId"]

    def poll_decision() -> dict:
        task = client.poll_for_decision_task(domain=SWF_DOMAIN, taskList={"name": "decisions"}, identity="test")
        assert task.get("taskToken")
        return task

    def schedule(task: dict, activity_id: str, start_to_close: str) -> None:
        client.respond_decision_task_completed(
            taskToken=task["taskToken"],
            decisions=[
                {
                    "decisionType": "ScheduleActivityTask",
                    "scheduleActivityTaskDecisionAttributes": {
                        "activityType": {"name": "Step", "version": "1"},
                        "activityId": activity_id,
                        "taskList": {"name": "activities"},
                        "scheduleToStartTimeout": "60",
                        "scheduleToCloseTimeout": "120",
                        "startToCloseTimeout": start_to_close,
                        "heartbeatTimeout": "NONE",
                    },
                }
            ],
        )

    first = poll_decision()
    first_events = metrics_module.decision_task_events(first)
    schedule(first, "Step-1", "60")
    activity = client.poll_for_activity_task(domain=SWF_DOMAIN, taskList={"name": "activities"}, identity="test")
    client.respond_activity_task_completed(taskToken=activity["taskToken"], result="{}")

    second = poll_decision()
    second_events = metrics_module.decision_task_events(second)
    schedule(second, "Step-2", "1")
    # Taken and never completed: the endpoint times it out after 1 s and schedules a decision task.
    client.poll_for_activity_task(domain=SWF_DOMAIN, taskList={"name": "activities"}, identity="test")
    third_events = metrics_module.decision_task_events(poll_decision())

    assert [(name, user) for name, user, _ in first_events] == [("Workflow Started", "user-9")]
    assert first_events[0][2]["media_uuid"] == "media-9"
    assert first_events[0][2]["run_id"] == run_id
    # The second task reports the completion once, not the start again.
    assert [name for name, _, _ in second_events] == ["Activity Completed"]
    completed = second_events[0][2]
    assert completed["activity_type"] == "Step"
    assert completed["activity_id"] == "Step-1"
    assert 0 <= completed["run_seconds"] <= completed["total_seconds"] < 30
    assert [name for name, _, _ in third_events] == ["Activity Timed Out"]
    timed_out = third_events[0][2]
    assert timed_out["timeout_type"] == "START_TO_CLOSE"
    assert timed_out["activity_id"] == "Step-2"
    assert timed_out["run_seconds"] >= 1.0
    insert_ids = {properties["$insert_id"] for _, _, properties in first_events + second_events + third_events}
    assert len(insert_ids) == 3
    # A decision task delivered again reports the same ids, so Mixpanel drops the copies.
    again = metrics_module.decision_task_events(second)
    assert again[0][2]["$insert_id"] == completed["$insert_id"]
