"""The SWF client: botocore settings, throttling backoff, empty polls and history pages."""

from __future__ import annotations

import datetime
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from worker_harness import canned_server  # noqa: F401 - pytest fixture

from workers.client import call_with_backoff, make_swf_client
from workers.config import ClientConfig, Config
from workers.polling import has_task, poll_activity_task, poll_decision_task

# botocore's own retries are off so that each stubbed reply is seen by call_with_backoff.
NO_BOTOCORE_RETRY = replace(Config(), client=ClientConfig(max_attempts=1))


ACTIVITY_TASK = {
    "taskToken": "t-1",
    "activityId": "Noop-1",
    "startedEventId": 5,
    "workflowExecution": {"workflowId": "w", "runId": "r"},
    "activityType": {"name": "Noop", "version": "1"},
}


@pytest.fixture
def stubbed() -> Iterator[tuple[object, Stubber]]:
    client = make_swf_client(NO_BOTOCORE_RETRY, None)
    with Stubber(client) as stubber:
        yield client, stubber


def test_client_settings_from_config():
    config = replace(
        Config(),
        client=ClientConfig(read_timeout=75, connect_timeout=4, retry_mode="adaptive", max_attempts=7, max_pool_connections=3),
    )

    client = make_swf_client(config, "http://127.0.0.1:9")

    assert client.meta.config.read_timeout == 75
    assert client.meta.config.connect_timeout == 4
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert client.meta.config.max_pool_connections == 3
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "us-east-1"


def test_real_swf_when_endpoint_none():
    config = replace(Config(), swf=replace(Config().swf, region="eu-west-1"))

    client = make_swf_client(config, None)

    assert client.meta.endpoint_url == "https://swf.eu-west-1.amazonaws.com"


def test_unresolved_local_endpoint_rejected():
    with pytest.raises(ValueError, match="must be resolved"):
        make_swf_client(Config(), "local")


@pytest.mark.stubbed
@pytest.mark.parametrize("code", ["ThrottlingException", "LimitExceededFault"])
def test_throttled_poll_retried_with_jitter(stubbed, code):
    """Stubbed: the embedded endpoint never throttles, so the throttling replies are stubbed."""
    client, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error("poll_for_activity_task", service_error_code=code, http_status_code=400)
    stubber.add_response("poll_for_activity_task", ACTIVITY_TASK)
    delays: list[float] = []

    response = call_with_backoff(
        client,
        "poll_for_activity_task",
        sleep=delays.append,
        base_delay=0.5,
        domain="d",
        taskList={"name": "l"},
    )

    assert response["taskToken"] == "t-1"
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, start=1):
        assert 0.0 <= delay <= 0.5 * 2 ** (attempt - 1)
    stubber.assert_no_pending_responses()


@pytest.mark.stubbed
def test_throttled_register_retried(stubbed):
    """Stubbed: Register* throttling, which the embedded endpoint cannot produce."""
    client, stubber = stubbed
    stubber.add_client_error("register_activity_type", service_error_code="ThrottlingException", http_status_code=400)
    stubber.add_response("register_activity_type", {})
    delays: list[float] = []

    call_with_backoff(client, "register_activity_type", sleep=delays.append, domain="d", name="Noop", version="1")

    assert len(delays) == 1
    stubber.assert_no_pending_responses()


@pytest.mark.stubbed
def test_unknown_resource_never_retried(stubbed):
    """Stubbed: the exact UnknownResourceFault reply shape of real SWF."""
    client, stubber = stubbed
    stubber.add_client_error(
        "respond_activity_task_completed",
        service_error_code="UnknownResourceFault",
        service_message="Unknown activity task",
        http_status_code=400,
    )
    stubber.add_response("respond_activity_task_completed", {})
    delays: list[float] = []

    with pytest.raises(ClientError) as raised:
        call_with_backoff(client, "respond_activity_task_completed", sleep=delays.append, taskToken="t")

    assert raised.value.response["Error"]["Code"] == "UnknownResourceFault"
    assert delays == []
    # The second reply was never asked for: the call was not retried.
    with pytest.raises(AssertionError):
        stubber.assert_no_pending_responses()


@pytest.mark.stubbed
def test_throttling_gives_up_after_max_attempts(stubbed):
    """Stubbed: persistent throttling."""
    client, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error("count_pending_activity_tasks", service_error_code="ThrottlingException", http_status_code=400)

    with pytest.raises(ClientError, match="ThrottlingException"):
        call_with_backoff(
            client, "count_pending_activity_tasks", max_attempts=3, sleep=lambda _: None, domain="d", taskList={"name": "l"}
        )
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("response", [{}, {"taskToken": ""}, {"taskToken": None}, None, {"startedEventId": 0}])
def test_every_empty_poll_shape_means_no_task(response):
    assert has_task(response) is False


def _client_for(server: http.server.HTTPServer):
    return make_swf_client(NO_BOTOCORE_RETRY, f"http://127.0.0.1:{server.server_address[1]}")


@pytest.mark.parametrize("body", [{}, {"taskToken": ""}, {"taskToken": None}, {"startedEventId": 0}])
def test_empty_activity_poll_over_http_returns_none(canned_server, body):
    canned_server.replies.append((200, body))

    assert poll_activity_task(_client_for(canned_server), "d", "l", "me") is None


@pytest.mark.parametrize("body", [{}, {"taskToken": ""}, {"taskToken": None, "events": []}, {"startedEventId": 0, "events": []}])
def test_empty_decision_poll_over_http_returns_none(canned_server, body):
    canned_server.replies.append((200, body))

    assert poll_decision_task(_client_for(canned_server), "d", "l", "me") is None


def test_throttling_over_http_then_task(canned_server):
    canned_server.replies.extend(
        [
            (400, {"__type": "com.amazonaws.swf.base.model#LimitExceededFault", "message": "too many"}),
            (200, ACTIVITY_TASK),
        ]
    )

    task = call_with_backoff(
        _client_for(canned_server), "poll_for_activity_task", sleep=lambda _: None, domain="d", taskList={"name": "l"}
    )

    assert task["taskToken"] == "t-1"
    assert canned_server.replies == []


def _event(event_id: int) -> dict:
    return {
        "eventId": event_id,
        "eventType": "WorkflowExecutionSignaled",
        "eventTimestamp": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        "workflowExecutionSignaledEventAttributes": {"signalName": "s"},
    }


@pytest.mark.stubbed
def test_decision_poll_fetches_every_page(stubbed):
    """Stubbed: real SWF's page shape; the embedded-endpoint test in test_worker_integration covers paging too."""
    client, stubber = stubbed
    task = {
        "taskToken": "tok",
        "startedEventId": 260,
        "workflowExecution": {"workflowId": "w", "runId": "r"},
        "workflowType": {"name": "P", "version": "1"},
    }
    base = {"domain": "d", "taskList": {"name": "l"}, "identity": "me", "maximumPageSize": 100}
    stubber.add_response("poll_for_decision_task", {**task, "events": [_event(i) for i in range(1, 101)], "nextPageToken": "p2"}, base)
    stubber.add_response(
        "poll_for_decision_task", {**task, "events": [_event(i) for i in range(101, 201)], "nextPageToken": "p3"}, {**base, "nextPageToken": "p2"}
    )
    stubber.add_response("poll_for_decision_task", {**task, "events": [_event(i) for i in range(201, 261)]}, {**base, "nextPageToken": "p3"})

    result = poll_decision_task(client, "d", "l", "me", page_size=100)

    assert [event["eventId"] for event in result["events"]] == list(range(1, 261))
    assert "nextPageToken" not in result
    stubber.assert_no_pending_responses()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never replies."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                connection, _ = listener.accept()
                accepted.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_poll_read_timeout_is_empty_poll(silent_server):
    config = replace(Config(), client=ClientConfig(read_timeout=0.3, connect_timeout=1, max_attempts=1))
    client = make_swf_client(config, silent_server)

    assert poll_activity_task(client, "d", "l", "me") is None
    assert poll_decision_task(client, "d", "l", "me") is None


class FlakyConnection:
    """A client method that cannot reach SWF ``failures`` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def respond_activity_task_completed(self, **params: object) -> dict[str, object]:
        from botocore.exceptions import EndpointConnectionError

        self.calls += 1
        if self.calls <= self.failures:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return {}


def test_response_retried_through_connection_errors() -> None:
    client = FlakyConnection(failures=2)

    call_with_backoff(
        client, "respond_activity_task_completed", retry_connection_errors_for=60, sleep=lambda _: None, taskToken="t"
    )

    assert client.calls == 3


def test_connection_error_raised_without_budget() -> None:
    from botocore.exceptions import EndpointConnectionError

    client = FlakyConnection(failures=1)

    with pytest.raises(EndpointConnectionError):
        call_with_backoff(client, "respond_activity_task_completed", sleep=lambda _: None, taskToken="t")
    assert client.calls == 1
