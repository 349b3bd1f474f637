"""Long polls for activity and decision tasks.

SWF replies to a poll that found no task after about 60 seconds with a reply whose
taskToken is missing, "" or None, depending on the SDK and endpoint. All three mean "no
task", and so does a read timeout on the poll.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.exceptions import ReadTimeoutError

from workers.client import call_with_backoff

log = logging.getLogger(__name__)

# SWF's maximum page size for PollForDecisionTask.
MAX_PAGE_SIZE = 1000


def has_task(response: dict[str, Any] | None) -> bool:
    """Return True when a poll reply carries a task, False for every empty shape."""
    return bool(response) and bool(response.get("taskToken"))


def poll_activity_task(
    client: Any, domain: str, task_list: str, identity: str, stop_event: threading.Event | None = None
) -> dict[str, Any] | None:
    """Poll once for an activity task and return it, or None when the poll found none."""
    try:
        response = call_with_backoff(
            client,
            "poll_for_activity_task",
            stop_event=stop_event,
            domain=domain,
            taskList={"name": task_list},
            identity=identity,
        )
    except ReadTimeoutError:
        log.info("activity poll on %s timed out on read; treated as an empty poll", task_list)
        return None
    return response if has_task(response) else None


def poll_decision_task(
    client: Any,
    domain: str,
    task_list: str,
    identity: str,
    stop_event: threading.Event | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> dict[str, Any] | None:
    """Poll once for a decision task and return it with every history page fetched.

    The returned task's "events" contains the whole history in event order, and its
    "nextPageToken" is removed. Returns None when the poll found no task.
    """
    params: dict[str, Any] = {
        "domain": domain,
        "taskList": {"name": task_list},
        "identity": identity,
        "maximumPageSize": page_size,
    }
    try:
        task = call_with_backoff(client, "poll_for_decision_task", stop_event=stop_event, **params)
    except ReadTimeoutError:
        log.info("decision poll on %s timed out on read; treated as an empty poll", task_list)
        return None
    if not has_task(task):
        return None

    events = list(task.get("events", []))
    next_page = task.get("nextPageToken")
    pages = 1
    while next_page:
        # The following pages come back at once: SWF does not hold them like a poll.
        page = call_with_backoff(client, "poll_for_decision_task", nextPageToken=next_page, **params)
        events.extend(page.get("events", []))
        next_page = page.get("nextPageToken")
        pages += 1
    task = dict(task)
    task["events"] = events
    task.pop("nextPageToken", None)
    if pages > 1:
        execution = task.get("workflowExecution", {})
        log.info(
            "fetched %d history pages, %d events, for workflow %s run %s",
            pages,
            len(events),
            execution.get("workflowId"),
            execution.get("runId"),
        )
    return task
