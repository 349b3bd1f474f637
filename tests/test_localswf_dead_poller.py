"""A poll whose client was killed gets no task: the task goes to a live poller at once."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from localswf.testing import (
    LocalSwfProcess,
    register_test_domain,
    schedule_one_activity,
    swf_client,
    wait_for_held_polls,
)

BOUND = 30.0

POLLER = """
import sys, boto3
from botocore.config import Config
client = boto3.client("swf", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", config=Config(read_timeout=70))
client.poll_for_activity_task(domain="test", taskList={"name": "activities"}, identity="doomed")
"""


def test_killed_poller_gets_no_task(localswf: LocalSwfProcess) -> None:
    client = swf_client(localswf.url)
    register_test_domain(client)
    doomed = subprocess.Popen([sys.executable, "-c", POLLER, localswf.url])
    wait_for_held_polls(localswf, 1)
    doomed.kill()
    doomed.wait(timeout=BOUND)

    reply: dict[str, Any] = {}
    live = threading.Thread(
        target=lambda: reply.update(
            swf_client(localswf.url).poll_for_activity_task(
                domain="test", taskList={"name": "activities"}, identity="live"
            )
        )
    )
    live.start()
    # The dead poll still counts until the server notices, so two are open now.
    wait_for_held_polls(localswf, 2)
    run_id = schedule_one_activity(client)
    # A held poll lasts 60 s. The live poller returns within the bound only if the dead poll
    # took no task and passed its wake-up on.
    live.join(timeout=BOUND)

    assert not live.is_alive(), "the task went to the killed poller; the live one is still waiting"
    assert reply.get("activityId") == "a1"
    execution = {"workflowId": "w", "runId": run_id}
    events = client.get_workflow_execution_history(domain="test", execution=execution)["events"]
    starts = [event for event in events if event["eventType"] == "ActivityTaskStarted"]
    assert [event["activityTaskStartedEventAttributes"]["identity"] for event in starts] == ["live"]
