"""Fill a localswf database with closed executions, fast.

The first executions (up to REAL_SEED) run the same 7 calls as the round-trip benchmark through
localswf's own operation handlers, in-process with no HTTP and no boto3, so their rows and histories
are the ones a real run writes. The rest are SQL copies of those rows under new run and workflow
ids, because the handlers manage about 250 executions per second here and 100,000 would take
7 minutes. The database must not be open in a running server: `Service` takes the file's lock.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.roundtrip import ACTIVITY_TYPE, DOMAIN, WORKFLOW_TYPE, decide

REAL_SEED = 2_000


def _call(service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    from localswf.operations import OPERATIONS

    return OPERATIONS[operation](service, params)


def register_in_process(service: Any, domain: str = DOMAIN) -> None:
    from localswf.errors import SwfFault

    calls = [
        ("RegisterDomain", {"name": domain, "workflowExecutionRetentionPeriodInDays": "1"}),
        ("RegisterWorkflowType", {
            "domain": domain, **WORKFLOW_TYPE,
            "defaultTaskStartToCloseTimeout": "60", "defaultExecutionStartToCloseTimeout": "300",
            "defaultChildPolicy": "TERMINATE",
        }),
        ("RegisterActivityType", {
            "domain": domain, **ACTIVITY_TYPE,
            "defaultTaskStartToCloseTimeout": "60", "defaultTaskScheduleToStartTimeout": "60",
            "defaultTaskScheduleToCloseTimeout": "120", "defaultTaskHeartbeatTimeout": "NONE",
        }),
    ]
    for operation, params in calls:
        try:
            _call(service, operation, params)
        except SwfFault as fault:
            if "AlreadyExists" not in fault.code:
                raise


def seed_closed_executions(db_path: Path, count: int, domain: str = DOMAIN, progress: Any = None) -> float:
    """Run `count` one-activity workflows to completion in `db_path`; return the seconds it took."""
    from localswf.service import Service

    began = time.monotonic()
    service = Service(db_path, max_poll_seconds=1.0)
    service.start()
    try:
        register_in_process(service, domain)
        task_list = "seed"
        activity_task_list = task_list + "-activities"
        for number in range(count):
            workflow_id = uuid.uuid4().hex
            _call(service, "StartWorkflowExecution", {
                "domain": domain, "workflowId": workflow_id, "workflowType": WORKFLOW_TYPE,
                "taskList": {"name": task_list}, "input": "{}", "executionStartToCloseTimeout": "300",
                "taskStartToCloseTimeout": "60", "childPolicy": "TERMINATE",
            })
            for step in ("decide", "activity", "decide"):
                if step == "decide":
                    task = _call(service, "PollForDecisionTask", {"domain": domain, "taskList": {"name": task_list}, "identity": "seed"})
                    decision = decide(task["events"], activity_task_list, workflow_id)
                    _call(service, "RespondDecisionTaskCompleted", {"taskToken": task["taskToken"], "decisions": [decision]})
                else:
                    task = _call(service, "PollForActivityTask", {"domain": domain, "taskList": {"name": activity_task_list}, "identity": "seed"})
                    _call(service, "RespondActivityTaskCompleted", {"taskToken": task["taskToken"], "result": "{}"})
            if progress is not None and (number + 1) % 10_000 == 0:
                progress(number + 1, time.monotonic() - began)
    finally:
        service.stop()
        service.close()
    return time.monotonic() - began


def seed(db_path: Path, count: int, domain: str = DOMAIN) -> dict[str, Any]:
    """Give `db_path` `count` closed executions: real ones first, then copies; return timings."""
    real = min(count, REAL_SEED)
    real_seconds = seed_closed_executions(db_path, real, domain)
    began = time.monotonic()
    copied = copy_closed_executions(db_path, count - real)
    return {
        "closed_executions": count_closed(db_path), "real": real, "real_seconds": round(real_seconds, 1),
        "copied": copied, "copy_seconds": round(time.monotonic() - began, 1),
    }


def copy_closed_executions(db_path: Path, count: int) -> int:
    """Add `count` copies of closed executions with new ids to every table keyed by run_id; return the number added."""
    import sqlite3

    if count <= 0:
        return 0
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        columns = {table: conn.execute(f"PRAGMA table_info({table})").fetchall() for table in tables}
        keyed = [table for table in tables if any(column[1] == "run_id" for column in columns[table])]
        added = 0
        while added < count:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DROP TABLE IF EXISTS temp.seed_map")
            conn.execute(
                "CREATE TEMP TABLE seed_map AS SELECT run_id AS old_run_id, lower(hex(randomblob(22))) AS new_run_id,"
                " lower(hex(randomblob(16))) AS new_workflow_id FROM executions WHERE status = 'CLOSED' LIMIT ?",
                (count - added,),
            )
            batch = conn.execute("SELECT count(*) FROM temp.seed_map").fetchone()[0]
            if batch == 0:
                conn.execute("ROLLBACK")
                raise RuntimeError(f"{db_path} has no closed execution to copy; seed real ones first")
            for table in keyed:
                _copy_rows(conn, table, columns[table])
            conn.execute("COMMIT")
            added += batch
        return added
    finally:
        conn.close()


def _copy_rows(conn: Any, table: str, table_columns: list[Any]) -> None:
    # A lone INTEGER PRIMARY KEY is the rowid: leave it out so SQLite assigns new ones.
    primary = [column for column in table_columns if column[5]]
    rowid_alias = primary[0][1] if len(primary) == 1 and primary[0][2].upper() == "INTEGER" else None
    names = [column[1] for column in table_columns if column[1] != rowid_alias]
    selected = []
    for name in names:
        if name == "run_id":
            selected.append("m.new_run_id")
        elif table == "executions" and name == "workflow_id":
            selected.append("m.new_workflow_id")
        else:
            selected.append(f"t.{name}")
    conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(selected)}"
        f" FROM {table} t JOIN temp.seed_map m ON t.run_id = m.old_run_id"
    )


def count_closed(db_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(str(db_path)) as conn:
        return int(conn.execute("SELECT count(*) FROM executions WHERE status = 'CLOSED'").fetchone()[0])
