"""ReleaseHeldPolls: a manager that shuts down lets its idle workers go at once."""

from __future__ import annotations

import threading
import time
from typing import Any

from localswf.testing import (
    LocalSwfProcess,
    register_test_domain,
    schedule_one_activity,
    swf_client,
    wait_for_held_polls,
)

HOLD_BOUND = 30.0


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
    schedule_one_activity(client)
    poller.join(timeout=HOLD_BOUND)

    assert not poller.is_alive()
    assert reply.get("activityId") == "a1"
