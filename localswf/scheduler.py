"""A thread that fires timeouts, timers and retention deletions when their deadline comes."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from localswf import engine
from localswf.engine import Context

if TYPE_CHECKING:
    import sqlite3

    from localswf.service import Service

log = logging.getLogger(__name__)

BATCH = 200  # deadlines fired per transaction, so a backlog after a restart does not hold the lock long


class DeadlineScheduler:
    """Waits on a condition variable until the earliest row of `deadlines` is due; `poke` moves the wait."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._condition = threading.Condition()
        self._next_due: float | None = None
        self._poked = True
        self._thread = threading.Thread(target=self._run, name="localswf-deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)

    def poke(self, due: float) -> None:
        with self._condition:
            if self._next_due is None or due < self._next_due:
                self._next_due = due
                self._poked = True
                self._condition.notify()

    def _run(self) -> None:
        while not self.service.stopping.is_set():
            current: list[int] = []
            try:
                fired = self.service.write(lambda ctx: fire_due(ctx, current))
                next_due = self.service.read(earliest_due)
            except Exception:
                # Drop the deadline that failed, so one bad row cannot stop every other timeout.
                log.exception("failed to fire deadline id %s; dropping it", current[-1] if current else None)
                if current:
                    self.service.write(lambda ctx: ctx.execute("DELETE FROM deadlines WHERE id = ?", (current[-1],)))
                fired, next_due = 0, time.time()
            if fired >= BATCH:
                continue
            with self._condition:
                if self._poked:
                    # A deadline committed after the read above may be earlier than `next_due`.
                    self._poked = False
                    continue
                self._next_due = next_due
                wait = None if next_due is None else next_due - time.time()
                if wait is not None and wait <= 0:
                    continue
                if self.service.stopping.is_set():
                    return
                self._condition.wait(timeout=wait)


def earliest_due(ctx: Context) -> float | None:
    row = ctx.one("SELECT MIN(due) AS due FROM deadlines")
    return row["due"] if row and row["due"] is not None else None


def fire_due(ctx: Context, current: list[int]) -> int:
    """Fire up to BATCH due deadlines in this transaction; `current` receives the id of each as it fires."""
    rows = ctx.execute("SELECT * FROM deadlines WHERE due <= ? ORDER BY due LIMIT ?", (ctx.now, BATCH)).fetchall()
    for row in rows:
        current.append(row["id"])
        ctx.execute("DELETE FROM deadlines WHERE id = ?", (row["id"],))
        try:
            fire(ctx, row)
        except Exception:
            log.error("failed to fire deadline %s for run %s ref %s", row["kind"], row["run_id"], row["ref"])
            raise
    return len(rows)


def fire(ctx: Context, row: sqlite3.Row) -> None:
    kind, run_id, ref = row["kind"], row["run_id"], row["ref"]
    if kind == engine.RETENTION:
        engine.delete_execution(ctx, run_id)
        return
    execution = engine.load_execution(ctx, run_id)
    if execution is None or not execution.is_open:
        return
    if kind == engine.DECISION_START_TO_CLOSE:
        if execution.dt_run_started != ref:
            return
        log.info("decision task timed out: run %s started event %d", run_id, ref)
        attributes = {"scheduledEventId": execution.dt_run_scheduled, "startedEventId": ref, "timeoutType": "START_TO_CLOSE"}
        execution.dt_run_started = execution.dt_run_scheduled = execution.dt_pending = 0
        engine.revert_temporary_override(execution)
        engine.append_event(ctx, execution, "DecisionTaskTimedOut", attributes)
        engine.request_decision(ctx, execution)
    elif kind == engine.DECISION_SCHEDULE_TO_START:
        if execution.dt_queued != ref:
            return
        log.info("decision task not started in time on its override task list: run %s scheduled event %d", run_id, ref)
        ctx.execute("DELETE FROM decision_queue WHERE run_id = ? AND scheduled_id = ?", (run_id, ref))
        execution.dt_queued = 0
        engine.revert_temporary_override(execution)
        attributes = {"scheduledEventId": ref, "startedEventId": 0, "timeoutType": "SCHEDULE_TO_START"}
        engine.append_event(ctx, execution, "DecisionTaskTimedOut", attributes)
        engine.request_decision(ctx, execution)
    elif kind == engine.WORKFLOW_START_TO_CLOSE:
        log.info("workflow execution timed out: run %s workflowId=%s", run_id, execution.workflow_id)
        attributes = {"timeoutType": "START_TO_CLOSE", "childPolicy": execution.config_dict["childPolicy"]}
        engine.close_execution(ctx, execution, "TIMED_OUT", "WorkflowExecutionTimedOut", attributes)
    elif kind == engine.TIMER:
        timer = ctx.one("SELECT * FROM timers WHERE run_id = ? AND started_id = ?", (run_id, ref))
        if timer is None:
            return
        ctx.execute("DELETE FROM timers WHERE run_id = ? AND started_id = ?", (run_id, ref))
        engine.append_event(ctx, execution, "TimerFired", {"timerId": timer["timer_id"], "startedEventId": ref}, wakes_decider=True)
    else:
        fire_activity_timeout(ctx, execution, kind, ref)


ACTIVITY_TIMEOUT_TYPES = {
    engine.ACTIVITY_SCHEDULE_TO_START: "SCHEDULE_TO_START",
    engine.ACTIVITY_SCHEDULE_TO_CLOSE: "SCHEDULE_TO_CLOSE",
    engine.ACTIVITY_START_TO_CLOSE: "START_TO_CLOSE",
    engine.ACTIVITY_HEARTBEAT: "HEARTBEAT",
}


def fire_activity_timeout(ctx: Context, execution: engine.Execution, kind: str, scheduled_id: int) -> None:
    activity = ctx.one("SELECT * FROM activities WHERE run_id = ? AND scheduled_id = ?", (execution.run_id, scheduled_id))
    if activity is None:
        return
    timeout_type = ACTIVITY_TIMEOUT_TYPES[kind]
    log.info(
        "activity task timed out (%s): run %s activityId=%s scheduled event %d",
        timeout_type, execution.run_id, activity["activity_id"], scheduled_id,
    )
    engine.remove_activity(ctx, execution.run_id, scheduled_id)
    attributes = {
        "timeoutType": timeout_type,
        "scheduledEventId": scheduled_id,
        "startedEventId": activity["started_id"],
        "details": activity["heartbeat_details"],
    }
    engine.append_event(ctx, execution, "ActivityTaskTimedOut", attributes, wakes_decider=True)
