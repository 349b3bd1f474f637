"""ReleaseHeldPolls: a manager that shuts down lets its idle workers go at once."""

from __future__ import annotations

import threading
import time
from typing import Any

from localswf.testing import LocalSwfProcess, register_test_domain, swf_client

HOLD_BOUND = 30.0


def wait_for_held_polls(server: LocalSwfProcess, count: int) -> None:
    """Wait until the server keeps ``count`` polls open. The server offers no push for this state."""
    deadline = time.monotonic() + HOLD_BOUND
    while server.held_polls() != count:
        assert time.monotonic() < deadline, f"the server never held {count} polls"
        time.sleep(0.02)


def test_release_returns_held_polls_empty(localswf: LocalSwfProcess) -> None:
    client = swf_client(localswf.url)
    register_test_domain(client)
    replies: list[dict[str, Any]] = []

    def poll() -> None:
        replies.append(swf_client(localswf.url).poll_for_activity_task(domain="test", taskList={"name": "activities"}))

    pollers = [threading.Thread(target=poll) for _ in range(3)]
    started = time.monotonic()
    for poller in pollers:
        poller.start()
    wait_for_held_polls(localswf, 3)

    released = localswf.release_held_polls()
    for poller in pollers:
        poller.join(timeout=HOLD_BOUND)

    assert released == 3
    assert all(not poller.is_alive() for poller in pollers)
    # The server holds an empty poll 60 s; released polls return long before that.
    assert time.monotonic() - started < 30
    assert [reply.get("taskToken") for reply in replies] == [None, None, None]


def test_release_leaves_later_polls_held(localswf: LocalSwfProcess) -> None:
    client = swf_client(localswf.url)
    register_test_domain(client)
    assert localswf.release_held_polls() == 0

    reply: dict[str, Any] = {}
    poller = threading.Thread(
        target=lambda: reply.update(
            swf_client(localswf.url).poll_for_activity_task(domain="test", taskList={"name": "activities"})
        )
    )
    poller.start()
    wait_for_held_polls(localswf, 1)
    client.start_workflow_execution(domain="test", workflowId="w", workflowType={"name": "Workflow", "version": "1"})
    decision_task = client.poll_for_decision_task(domain="test", taskList={"name": "decisions"})
    client.respond_decision_task_completed(
        taskToken=decision_task["taskToken"],
        decisions=[
            {
                "decisionType": "ScheduleActivityTask",
                "scheduleActivityTaskDecisionAttributes": {
                    "activityType": {"name": "Activity", "version": "1"},
                    "activityId": "a1",
                },
            }
        ],
    )
    poller.join(timeout=HOLD_BOUND)

    assert not poller.is_alive()
    assert reply.get("activityId") == "a1"
