"""An SWF endpoint that replies at once with a valid canned reply and keeps no executions.

It measures the ceiling of the round-trip benchmark: the cost of boto3, HTTP and Python's
`http.server` with no SWF work behind them. Run it alone with
`python -m benchmarks.ceiling_server --port 0`; it prints `ceiling listening on http://127.0.0.1:PORT`.

The only state is one flag per decision task list. Polls on a task list alternate between the
history of a fresh workflow and the history after its activity completed, which is what the
benchmark's loop receives from a real endpoint (one start, one activity, then completion).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_PREFIX = "SimpleWorkflowService."
CONTENT_TYPE = "application/x-amz-json-1.0"


def _event(event_id: int, event_type: str, attributes_key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": event_id, "eventTimestamp": time.time(), "eventType": event_type, attributes_key: attributes}


def _history_start(task_list: str) -> list[dict[str, Any]]:
    return [
        _event(1, "WorkflowExecutionStarted", "workflowExecutionStartedEventAttributes", {
            "input": "{}",
            "executionStartToCloseTimeout": "300",
            "taskStartToCloseTimeout": "60",
            "childPolicy": "TERMINATE",
            "taskList": {"name": task_list},
            "workflowType": {"name": "BenchRoundTrip", "version": "1"},
        }),
        _event(2, "DecisionTaskScheduled", "decisionTaskScheduledEventAttributes", {
            "taskList": {"name": task_list}, "startToCloseTimeout": "60",
        }),
        _event(3, "DecisionTaskStarted", "decisionTaskStartedEventAttributes", {"identity": "bench", "scheduledEventId": 2}),
    ]


def _history_after_activity(task_list: str) -> list[dict[str, Any]]:
    events = _history_start(task_list)
    events += [
        _event(4, "DecisionTaskCompleted", "decisionTaskCompletedEventAttributes", {"scheduledEventId": 2, "startedEventId": 3}),
        _event(5, "ActivityTaskScheduled", "activityTaskScheduledEventAttributes", {
            "activityType": {"name": "BenchNoop", "version": "1"},
            "activityId": "noop",
            "input": "{}",
            "scheduleToStartTimeout": "60",
            "scheduleToCloseTimeout": "120",
            "startToCloseTimeout": "60",
            "heartbeatTimeout": "NONE",
            "taskList": {"name": task_list + "-activities"},
            "decisionTaskCompletedEventId": 4,
        }),
        _event(6, "ActivityTaskStarted", "activityTaskStartedEventAttributes", {"identity": "bench", "scheduledEventId": 5}),
        _event(7, "ActivityTaskCompleted", "activityTaskCompletedEventAttributes", {
            "result": "{}", "scheduledEventId": 5, "startedEventId": 6,
        }),
        _event(8, "DecisionTaskScheduled", "decisionTaskScheduledEventAttributes", {
            "taskList": {"name": task_list}, "startToCloseTimeout": "60",
        }),
        _event(9, "DecisionTaskStarted", "decisionTaskStartedEventAttributes", {"identity": "bench", "scheduledEventId": 8}),
    ]
    return events


class CeilingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, CeilingHandler)
        self.flags_lock = threading.Lock()
        self.after_activity: dict[str, bool] = {}

    def next_history(self, task_list: str) -> tuple[list[dict[str, Any]], int]:
        """Return the canned history for the next decision poll on `task_list` and its previousStartedEventId."""
        with self.flags_lock:
            after = self.after_activity.get(task_list, False)
            self.after_activity[task_list] = not after
        if after:
            return _history_after_activity(task_list), 3
        return _history_start(task_list), 0


class CeilingHandler(BaseHTTPRequestHandler):
    server: CeilingServer
    protocol_version = "HTTP/1.1"
    server_version = "ceiling"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the body by 40 ms

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        params = json.loads(body or b"{}")
        self._reply(self._answer(operation, params))

    def _answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartWorkflowExecution":
            return {"runId": uuid.uuid4().hex}
        if operation == "PollForDecisionTask":
            task_list = params.get("taskList", {}).get("name", "")
            events, previous_started = self.server.next_history(task_list)
            return {
                "taskToken": uuid.uuid4().hex,
                "startedEventId": events[-1]["eventId"],
                "previousStartedEventId": previous_started,
                "workflowExecution": {"workflowId": "ceiling", "runId": uuid.uuid4().hex},
                "workflowType": {"name": "BenchRoundTrip", "version": "1"},
                "events": events,
            }
        if operation == "PollForActivityTask":
            return {
                "taskToken": uuid.uuid4().hex,
                "activityId": "noop",
                "startedEventId": 6,
                "workflowExecution": {"workflowId": "ceiling", "runId": uuid.uuid4().hex},
                "activityType": {"name": "BenchNoop", "version": "1"},
                "input": "{}",
            }
        if operation in ("CountPendingActivityTasks", "CountPendingDecisionTasks"):
            return {"count": 0, "truncated": False}
        # Register*, Respond* and every other call: an empty reply is valid for them.
        return {}

    def _reply(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.ceiling_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free port (default 0)")
    args = parser.parse_args(argv)
    server = CeilingServer(("127.0.0.1", args.port))
    print(f"ceiling listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
