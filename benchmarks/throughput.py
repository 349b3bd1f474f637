"""Throughput of one-activity no-op workflows: the manager, a hand-written boto3 loop, simpleflow.

Each contender gets its own localswf server on a new database and the same fleet: 2 decider
processes and 2 activity processes. The benchmark waits until the fleet polls, starts a backlog
of workflows from one thread, and waits until all of them have closed. The rate is the number
of workflows divided by the time from the first start to the last close, both taken from the
endpoint's own timestamps (ListClosedWorkflowExecutions).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import handwritten, simpleflow_workflow
from benchmarks.common import REPO_ROOT, Settings, ratio
from benchmarks.machine import load_average
from benchmarks.managed import ManagerRun, swf_client
from benchmarks.roundtrip import WORKFLOW_TYPE, register
from localswf.testing import LocalSwfProcess

DECIDERS = 2
WORKERS = 2
MAX_POLL_SECONDS = 2.0  # short empty polls, so the loops notice the stop request quickly
DRAIN_TIMEOUT = {"quick": 30.0, "full": 180.0}  # seconds for a backlog to close; after it the run counts as incomplete
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark", "AWS_DEFAULT_REGION": "us-east-1",
}
GOAL_VS_HANDWRITTEN = 0.9
GOAL_VS_SIMPLEFLOW = 1.0

MANAGER_CONFIG = f"""
state_dir = "@STATE_DIR@"

[swf]
endpoint_url = "@URL@"
domain = "swf-manager"

[supervision]
drain_timeout = 10.0

[[task_lists]]
name = "video-activities"
min_processes = 0

[[task_lists]]
name = "video-decisions"
min_processes = 0

[[task_lists]]
name = "diagnostic-decisions"
min_processes = {DECIDERS}
max_processes = {DECIDERS}

[[task_lists]]
name = "diagnostic-activities"
min_processes = {WORKERS}
max_processes = {WORKERS}
"""


def run(settings: Settings) -> dict[str, Any]:
    plan = {
        "workflows": 200 if settings.quick else 1000,
        "repeats": 3,
        "deciders": DECIDERS,
        "workers": WORKERS,
    }
    contenders = {"manager": run_manager, "handwritten": run_handwritten, "simpleflow": run_simpleflow}
    runs: list[dict[str, Any]] = []
    for repeat in range(plan["repeats"]):
        names = list(contenders)
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            workdir = settings.workdir / "throughput" / f"{name}-{repeat}"
            workdir.mkdir(parents=True, exist_ok=True)
            load = load_average()
            try:
                outcome = contenders[name](workdir, plan["workflows"], DRAIN_TIMEOUT["quick" if settings.quick else "full"])
            except Exception as error:  # noqa: BLE001 - one contender failing must not hide the others
                outcome = {"error": f"{type(error).__name__}: {error}"}
            runs.append({"contender": name, "repeat": repeat, "load_before": load, **outcome})
            settings.log(f"throughput: repeat {repeat} {name}: {outcome.get('rate', 'n/a')} workflows/s {outcome.get('error', '')}")
    result = {"name": "throughput", "plan": plan, "runs": runs, "summary": summarize(runs)}
    result["report_lines"] = report_lines(result)
    return result


def _server(workdir: Path) -> LocalSwfProcess:
    server = LocalSwfProcess(workdir / "localswf.db", max_poll_seconds=MAX_POLL_SECONDS)
    server.start()
    return server


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def drain(
    url: str, domain: str, workflow_type: dict[str, str], count: int, workflow_input: str, task_list: str | None, timeout: float
) -> dict[str, Any]:
    """Start `count` workflows, wait until all have closed, and return the rate from the endpoint's timestamps.

    When `timeout` passes first, "incomplete" is true, "open_at_end" counts the workflows still
    open, and the rate counts only the closed ones, up to the last close.
    """
    client = swf_client(url)
    started = time.monotonic()
    for number in range(count):
        params: dict[str, Any] = {
            "domain": domain, "workflowId": f"tp-{number}", "workflowType": workflow_type, "input": workflow_input,
            "executionStartToCloseTimeout": "3600", "taskStartToCloseTimeout": "60", "childPolicy": "TERMINATE",
        }
        if task_list:
            params["taskList"] = {"name": task_list}
        client.start_workflow_execution(**params)
    submit_seconds = time.monotonic() - started
    time_filter = {"oldestDate": datetime(2000, 1, 1, tzinfo=UTC)}
    deadline = time.monotonic() + timeout
    incomplete = False
    while True:
        closed = client.count_closed_workflow_executions(domain=domain, startTimeFilter=time_filter)["count"]
        if closed >= count:
            break
        if time.monotonic() > deadline:
            incomplete = True
            break
        time.sleep(0.2)  # the endpoint sends no notice when the last workflow closes, so sample the count
    stuck = _describe_open(client, domain, time_filter) if incomplete else []
    infos: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    while True:
        reply = client.list_closed_workflow_executions(domain=domain, startTimeFilter=time_filter, maximumPageSize=1000, **page)
        infos += reply["executionInfos"]
        if not reply.get("nextPageToken"):
            break
        page = {"nextPageToken": reply["nextPageToken"]}
    client.close()
    if not infos:
        return {
            "workflows": 0, "rate": 0.0, "incomplete": True, "open_at_end": count, "stuck": stuck,
            "submit_seconds": submit_seconds, "load_after": load_average(),
        }
    first_start = min(_timestamp(info["startTimestamp"]) for info in infos)
    last_close = max(_timestamp(info["closeTimestamp"]) for info in infos)
    statuses: dict[str, int] = {}
    for info in infos:
        statuses[info.get("closeStatus", "?")] = statuses.get(info.get("closeStatus", "?"), 0) + 1
    latencies = sorted(_timestamp(info["closeTimestamp"]) - _timestamp(info["startTimestamp"]) for info in infos)
    return {
        "workflows": len(infos), "close_statuses": statuses, "seconds": last_close - first_start,
        "rate": len(infos) / (last_close - first_start), "submit_seconds": submit_seconds,
        "median_workflow_seconds": latencies[len(latencies) // 2], "incomplete": incomplete,
        "open_at_end": count - len(infos), "stuck": stuck, "load_after": load_average(),
    }


def _describe_open(client: Any, domain: str, time_filter: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the id, last event type and the identity in that event of each workflow still open (first 5)."""
    described = []
    reply = client.list_open_workflow_executions(domain=domain, startTimeFilter=time_filter, maximumPageSize=5)
    for info in reply["executionInfos"]:
        history = client.get_workflow_execution_history(domain=domain, execution=info["execution"], reverseOrder=True, maximumPageSize=1)
        last = history["events"][0] if history["events"] else {}
        attributes = next((value for key, value in last.items() if key.endswith("EventAttributes")), {})
        described.append({
            "workflow_id": info["execution"]["workflowId"], "last_event": last.get("eventType"),
            "identity": attributes.get("identity"),
        })
    return described


def run_manager(workdir: Path, count: int, timeout: float) -> dict[str, Any]:
    server = _server(workdir)
    try:
        config = MANAGER_CONFIG.replace("@URL@", server.url or "")
        manager = ManagerRun(workdir / "manager", config, env=DUMMY_CREDENTIALS)
        manager.start()
        try:
            _wait_manager_polling(manager, DECIDERS + WORKERS)
            outcome = drain(server.url or "", "swf-manager", {"name": "Noop", "version": "1"}, count, "{}", None, timeout)
        finally:
            outcome_stop = manager.stop()
        outcome["stop"] = outcome_stop
        outcome["fleet_check"] = "2 deciders and 2 activity workers, fixed by min_processes = max_processes"
        return outcome
    finally:
        server.stop()


def _wait_manager_polling(manager: ManagerRun, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        workers = manager.status().get("workers", [])
        polling = [w for w in workers if w["task_list"].startswith("diagnostic") and w["phase"] == "polling"]
        if len(polling) >= expected:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(polling)} of {expected} manager workers polling after {timeout:.0f} s")
        time.sleep(0.1)  # the manager logs no event when a worker starts polling


def run_handwritten(workdir: Path, count: int, timeout: float) -> dict[str, Any]:
    server = _server(workdir)
    try:
        register(server.url or "", "bench")
        fleet = handwritten.HandwrittenFleet(server.url or "", "bench", DECIDERS, WORKERS)
        fleet.start()
        try:
            outcome = drain(server.url or "", "bench", WORKFLOW_TYPE, count, "{}", handwritten.DECISIONS, timeout)
        finally:
            killed = fleet.stop(timeout=MAX_POLL_SECONDS + 30)
        outcome["killed_at_stop"] = killed
        return outcome
    finally:
        server.stop()


def run_simpleflow(workdir: Path, count: int, timeout: float) -> dict[str, Any]:
    """simpleflow 0.36's `decider.start` and `worker.start`, pointed at localswf through AWS_ENDPOINT_URL_SWF.

    simpleflow builds its boto3 client without an endpoint argument, and botocore reads the
    service-specific endpoint variable, so simpleflow runs unmodified.
    """
    server = _server(workdir)
    env = dict(os.environ)
    env.update(DUMMY_CREDENTIALS)
    env["AWS_ENDPOINT_URL_SWF"] = server.url or ""
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        register(server.url or "", "bench")
        client = swf_client(server.url or "")
        client.register_workflow_type(
            domain="bench", name=simpleflow_workflow.NoopWorkflow.name, version="1",
            defaultTaskList={"name": simpleflow_workflow.DECISIONS}, defaultTaskStartToCloseTimeout="60",
            defaultExecutionStartToCloseTimeout="3600", defaultChildPolicy="TERMINATE",
        )
        # simpleflow names an activity type after its module and function.
        client.register_activity_type(
            domain="bench", name="benchmarks.simpleflow_workflow.noop", version="1",
            defaultTaskList={"name": simpleflow_workflow.ACTIVITIES}, defaultTaskStartToCloseTimeout="60",
            defaultTaskScheduleToStartTimeout="600", defaultTaskScheduleToCloseTimeout="900", defaultTaskHeartbeatTimeout="60",
        )
        client.close()
        simpleflow = str(Path(sys.executable).parent / "simpleflow")
        commands = [
            ([simpleflow, "decider.start", "--domain", "bench", "--task-list", simpleflow_workflow.DECISIONS,
              "--nb-processes", str(DECIDERS), "benchmarks.simpleflow_workflow.NoopWorkflow"], "starting DeciderPoller", DECIDERS),
            ([simpleflow, "worker.start", "--domain", "bench", "--task-list", simpleflow_workflow.ACTIVITIES,
              "--nb-processes", str(WORKERS)], "starting ActivityPoller", WORKERS),
        ]
        for command, ready_text, ready_count in commands:
            log_path = workdir / (command[1] + ".log")
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT), start_new_session=True
            )
            processes.append(process)
            _wait_lines(process, re.compile(re.escape(ready_text)), ready_count, log_path)
        outcome = drain(server.url or "", "bench", {"name": simpleflow_workflow.NoopWorkflow.name, "version": "1"}, count,
                        '{"args": [], "kwargs": {}}', None, timeout)
        outcome["fleet_check"] = f"decider.start and worker.start with --nb-processes {DECIDERS} and {WORKERS}"
        return outcome
    finally:
        for process in processes:
            _stop_group(process)
        server.stop()


def _wait_lines(process: subprocess.Popen[bytes], pattern: re.Pattern[str], count: int, log_path: Path, timeout: float = 120.0) -> None:
    """Read the process's output until `pattern` matched `count` lines; the rest of the output goes to `log_path`."""
    assert process.stdout is not None
    seen = 0
    buffered = b""
    deadline = time.monotonic() + timeout
    with open(log_path, "ab") as log_file, selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while seen < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{log_path.stem}: {seen} of {count} ready lines within {timeout:.0f} s; see {log_path}")
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"{log_path.stem} exited with code {process.wait()}; see {log_path}")
            log_file.write(chunk)
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            seen += sum(1 for line in lines if pattern.search(line.decode(errors="replace")))
    # Copy the rest of the output in the background, so the process never blocks on a full pipe.
    import threading

    def copy_rest() -> None:
        with open(log_path, "ab") as rest:
            for chunk in iter(lambda: os.read(process.stdout.fileno(), 65536), b""):
                rest.write(chunk)

    threading.Thread(target=copy_rest, name=f"{log_path.stem}-log", daemon=True).start()


def _stop_group(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group this benchmark started, then SIGKILL it if it outlives `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # also the group's children that outlived their parent
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_name: dict[str, dict[str, Any]] = {}
    for name in ("manager", "handwritten", "simpleflow"):
        rates = [run["rate"] for run in runs if run["contender"] == name and "rate" in run]
        errors = [run["error"] for run in runs if run["contender"] == name and "error" in run]
        incomplete = sum(1 for run in runs if run["contender"] == name and run.get("incomplete"))
        by_name[name] = {
            "median_rate": statistics.median(rates) if rates else None, "rates": rates, "errors": errors, "incomplete_runs": incomplete,
        }
    repeats = sorted({run["repeat"] for run in runs})

    def paired(top: str, bottom: str) -> float | None:
        values = []
        for repeat in repeats:
            top_rate = next((run.get("rate") for run in runs if run["contender"] == top and run["repeat"] == repeat), None)
            bottom_rate = next((run.get("rate") for run in runs if run["contender"] == bottom and run["repeat"] == repeat), None)
            value = ratio(top_rate, bottom_rate)
            if value is not None:
                values.append(value)
        return statistics.median(values) if values else None

    vs_hand = paired("manager", "handwritten")
    vs_simpleflow = paired("manager", "simpleflow")
    return {
        "by_contender": by_name,
        "manager_vs_handwritten": vs_hand,
        "manager_vs_simpleflow": vs_simpleflow,
        "goals": {
            "vs_handwritten_at_least_0.9x": None if vs_hand is None else vs_hand >= GOAL_VS_HANDWRITTEN,
            "vs_simpleflow_at_least_1x": None if vs_simpleflow is None else vs_simpleflow >= GOAL_VS_SIMPLEFLOW,
        },
    }


def report_lines(result: dict[str, Any]) -> list[str]:
    plan = result["plan"]
    summary = result["summary"]
    lines = [
        f"A backlog of {plan['workflows']} one-activity no-op workflows, {plan['repeats']} repeats in rotating order. "
        f"Every contender runs {plan['deciders']} decider and {plan['workers']} activity processes against its own "
        "localswf server (new database, 2 s empty polls). The rate is workflows divided by the time from the first "
        "start to the last close, both from the endpoint's timestamps. Source: `benchmarks/throughput.py`.",
        "",
        "- manager: `python -m manager` with the built-in Noop workflow, the diagnostic lists fixed at 2 processes each;",
        "- hand-written: `benchmarks/handwritten.py`, a plain boto3 long-poll loop per process, the limit;",
        "- simpleflow 0.36: `simpleflow decider.start` and `worker.start` with `--nb-processes 2`, unmodified, pointed at "
        "the endpoint with `AWS_ENDPOINT_URL_SWF`; its worker forks a process for every activity task and its decider one "
        "for every decision task.",
        "",
        "| contender | median workflows/s | runs (workflows/s) | runs cut off by the drain timeout | errors |",
        "|---|---|---|---|---|",
    ]
    for name, entry in summary["by_contender"].items():
        rates = ", ".join(f"{rate:.1f}" for rate in entry["rates"]) or "-"
        median = "n/a" if entry["median_rate"] is None else f"{entry['median_rate']:.1f}"
        lines.append(f"| {name} | {median} | {rates} | {entry['incomplete_runs']} | {'; '.join(entry['errors']) or 0} |")
    lines.append("")
    goals = summary["goals"]

    def verdict(flag: bool | None) -> str:
        if flag is None:
            return "not measured"
        return "**met**" if flag else "**not met**"

    vs_hand = summary["manager_vs_handwritten"]
    vs_sf = summary["manager_vs_simpleflow"]
    lines.append(f"- manager / hand-written: {'n/a' if vs_hand is None else f'{vs_hand:.2f}x'}; goal at least 0.9x: {verdict(goals['vs_handwritten_at_least_0.9x'])};")
    lines.append(f"- manager / simpleflow: {'n/a' if vs_sf is None else f'{vs_sf:.2f}x'}; goal at least 1x: {verdict(goals['vs_simpleflow_at_least_1x'])}.")
    for run in result["runs"]:
        if run.get("incomplete"):
            stuck = ", ".join(
                f"{entry['workflow_id']} (last event {entry['last_event']}, identity {entry['identity']})" for entry in run.get("stuck", [])
            )
            lines.append(
                f"- {run['contender']}, repeat {run['repeat']}: {run.get('open_at_end')} workflows still open when the drain "
                f"timeout ended the run; the rate counts the closed ones. Open: {stuck or 'not listed'}."
            )
    loads = [run["load_before"] for run in result["runs"]]
    lines.append("")
    lines.append(f"Load average before the runs: median {statistics.median(loads):.1f} (from {min(loads):.1f} to {max(loads):.1f}).")
    return lines
