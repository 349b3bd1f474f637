"""Supervision benchmarks of the manager on its embedded endpoint.

Run A uses the built-in configuration except a 1 s crash window (so the benchmark may kill a
worker 1 s after it started without the replacement counting as a crash loop) and a 10 s drain.
It measures restart latency after SIGKILL, idle CPU, memory per worker and the time from a
backlog of BurnCpu tasks to every core busy.

Run B samples every 1 s with a 3 s cooldown and lets the diagnostic activity list grow to twice
the cores. It then keeps a backlog of 1-s BurnCpu tasks and records how close CPU stays to the
80% target and how often the scaler changes direction.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

import psutil

from benchmarks.common import RESULTS_DIR, Settings
from benchmarks.machine import load_average
from benchmarks.managed import ManagerRun, log_time, start_workflows

DOMAIN = "swf-manager"
ACTIVITIES = "diagnostic-activities"
CRASH_WINDOW = 1.0
RESTART_GOAL = 0.1  # seconds

CONFIG_A = f"""
state_dir = "@STATE_DIR@"

[swf]
endpoint_url = "local"

[supervision]
crash_window = {CRASH_WINDOW}
drain_timeout = 10.0
"""

CONFIG_B = """
state_dir = "@STATE_DIR@"

[swf]
endpoint_url = "local"

[scaling]
sample_interval = 1.0
cooldown = 3.0
scale_down_delay = 5.0

[supervision]
drain_timeout = 10.0

[[task_lists]]
name = "video-activities"
min_processes = 0

[[task_lists]]
name = "video-decisions"
min_processes = 0

[[task_lists]]
name = "diagnostic-activities"
min_processes = 1
max_processes = @MAX@
"""


def run(settings: Settings) -> dict[str, Any]:
    quick = settings.quick
    cores = os.cpu_count() or 1
    plan = {
        "kills": 6 if quick else 20,
        "idle_seconds": 10.0 if quick else 30.0,
        "burn_task_seconds": 10.0,
        "target_window_seconds": 20.0 if quick else 120.0,
        "backlog_timeout_seconds": 30.0 if quick else 60.0,
        "cores": cores,
    }
    result: dict[str, Any] = {"name": "supervision", "plan": plan}

    settings.log("supervision: run A (built-in configuration)")
    with ManagerRun(settings.workdir / "supervision-a", CONFIG_A) as manager:
        _wait_all_polling(manager, timeout=60)
        result["idle_cpu"] = measure_idle_cpu(manager, plan["idle_seconds"])
        result["memory"] = measure_memory(manager)
        result["backlog_to_cores"] = measure_backlog_to_cores(manager, cores, plan["burn_task_seconds"], plan["backlog_timeout_seconds"])
        # Restarts come last: a SIGKILLed worker leaves its long poll open in the endpoint for up to
        # 60 s, and a task handed to that poll waits for its timeout, which would skew the backlog figures.
        result["backlog_to_cores"]["terminated_after"] = _terminate_open_workflows(manager)
        _wait_all_polling(manager, timeout=60)
        result["restart"] = measure_restarts(manager, plan["kills"], settings)
    result["run_a_stop"] = manager.stop()
    result["timelines"] = [_timeline(manager, "timeline-supervision-a.png", "Run A: idle, BurnCpu backlog, then SIGKILL restarts", settings)]

    settings.log("supervision: run B (1 s samples, up to 2 workers per core)")
    with ManagerRun(settings.workdir / "supervision-b", CONFIG_B.replace("@MAX@", str(cores * 2))) as manager:
        _wait_all_polling(manager, timeout=60)
        result["cpu_target"] = measure_cpu_target(manager, cores, plan["target_window_seconds"])
    result["run_b_stop"] = manager.stop()
    result["timelines"].append(_timeline(manager, "timeline-supervision-b.png", "Run B: 1-s BurnCpu backlog, scaling steps", settings))
    result["report_lines"] = report_lines(result)
    return result


def _timeline(manager: ManagerRun, file_name: str, title: str, settings: Settings) -> str | None:
    """Draw the run's timeline into benchmarks/results/; a drawing failure costs only the picture."""
    from benchmarks.timeline import render

    try:
        return render(manager.log_path, RESULTS_DIR / file_name, title).name
    except Exception as error:  # noqa: BLE001 - the figures matter more than the picture
        settings.log(f"supervision: timeline {file_name} failed: {type(error).__name__}: {error}")
        return None


def _wait_all_polling(manager: ManagerRun, timeout: float) -> dict[str, Any]:
    """Sample the status until every worker is polling (no status event exists for it)."""
    deadline = time.monotonic() + timeout
    while True:
        status = manager.status()
        workers = status.get("workers", [])
        if workers and all(worker["phase"] == "polling" for worker in workers):
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not all polling after {timeout:.0f} s: {[w['phase'] for w in workers]}")
        time.sleep(0.1)


def _terminate_open_workflows(manager: ManagerRun) -> int:
    """Terminate the backlog left after a measurement; its workers then exit for a clean restart."""
    from benchmarks.managed import swf_client

    client = swf_client(manager.status()["endpoint_url"])
    terminated = 0
    try:
        reply = client.list_open_workflow_executions(domain=DOMAIN, startTimeFilter={"oldestDate": 0}, maximumPageSize=1000)
        for info in reply["executionInfos"]:
            client.terminate_workflow_execution(
                domain=DOMAIN, workflowId=info["execution"]["workflowId"], runId=info["execution"]["runId"],
                reason="benchmark: backlog measured",
            )
            terminated += 1
    finally:
        client.close()
    return terminated


def measure_restarts(manager: ManagerRun, kills: int, settings: Settings) -> dict[str, Any]:
    """SIGKILL one worker at a time, rotating over the task lists, and time its replacement.

    `seen_s` runs from os.kill to this process reading the manager's "worker started" log line
    for the same task list. `logged_s` is the manager's own gap between its "worker died" and
    "worker started" lines (millisecond timestamps).
    """
    samples = []
    rotation = 0
    for _ in range(kills):
        status = manager.status()
        workers = sorted(status["workers"], key=lambda worker: worker["task_list"])
        victim = workers[rotation % len(workers)]
        rotation += 1
        wait = CRASH_WINDOW + 0.3 - victim["uptime"]
        if wait > 0:
            time.sleep(wait)  # a kill inside the crash window would count as a crash and back off
        manager.drain_events()
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        seen_at, started = manager.wait_event(
            lambda event, task_list=victim["task_list"]: event.get("message") == "worker started" and event.get("task_list") == task_list,
            timeout=30,
        )
        died = next(
            (event for _, event in reversed(manager.events)
             if event.get("worker_pid") == victim["pid"] and str(event.get("message", "")).startswith("worker died")),
            None,
        )
        new_pid = started.get("worker_pid")
        logged = None
        if died is not None and log_time(died) is not None and log_time(started) is not None:
            logged = log_time(started) - log_time(died)
        samples.append({
            "task_list": victim["task_list"], "killed_pid": victim["pid"], "new_pid": new_pid,
            "new_pid_alive": bool(new_pid) and psutil.pid_exists(new_pid),
            "seen_s": seen_at - killed_at, "logged_s": logged, "load": load_average(),
        })
        settings.log(f"supervision: killed {victim['pid']} ({victim['task_list']}), replaced by {new_pid} after {seen_at - killed_at:.3f} s")
    seen = [sample["seen_s"] for sample in samples]
    logged_values = [sample["logged_s"] for sample in samples if sample["logged_s"] is not None]
    return {
        "samples": samples,
        "median_seen_s": statistics.median(seen),
        "max_seen_s": max(seen),
        "median_logged_s": statistics.median(logged_values) if logged_values else None,
        "all_replaced": all(sample["new_pid_alive"] for sample in samples),
        "goal_met": statistics.median(seen) <= RESTART_GOAL,
        "max_within_goal": max(seen) <= RESTART_GOAL,
    }


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure_idle_cpu(manager: ManagerRun, seconds: float) -> dict[str, Any]:
    """CPU of the manager process and of its children while every worker waits in a long poll."""
    manager_process = psutil.Process(manager.pid)
    children = manager.descendants()
    before = {process.pid: _cpu_seconds(process) for process in [manager_process, *children]}
    load_before = load_average()
    time.sleep(seconds)  # the measuring window itself
    after = {}
    for process in [manager_process, *children]:
        try:
            after[process.pid] = _cpu_seconds(process)
        except psutil.NoSuchProcess:
            pass
    status = manager.status()
    worker_pids = {worker["pid"] for worker in status["workers"]}
    endpoint_pids = {process.pid for process in children if "localswf" in " ".join(_cmdline(process))}

    def percent(pids: set[int]) -> float:
        return sum(after[pid] - before[pid] for pid in pids if pid in after and pid in before) * 100 / seconds

    helpers = {process.pid for process in children if process.ppid() == manager.pid} - worker_pids - endpoint_pids
    return {
        "window_s": seconds,
        "manager_percent_of_core": percent({manager.pid}),
        "manager_helpers_percent_of_core": percent(helpers),  # backlog sampler and process-group guard
        "workers_percent_of_core": percent(worker_pids),
        "endpoint_percent_of_core": percent(endpoint_pids),
        "workers": len(worker_pids),
        "load": load_before,
    }


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def measure_memory(manager: ManagerRun) -> dict[str, Any]:
    """RSS, PSS and USS of the manager and of each idle worker, in MiB."""
    status = manager.status()
    rows = []
    for entry in [{"pid": manager.pid, "task_list": "-", "role": "manager"}, *status["workers"]]:
        try:
            info = psutil.Process(entry["pid"]).memory_full_info()
        except psutil.Error:
            continue
        rows.append({
            "pid": entry["pid"], "role": entry["role"], "task_list": entry["task_list"],
            "rss_mib": info.rss / 2**20, "pss_mib": getattr(info, "pss", 0) / 2**20, "uss_mib": info.uss / 2**20,
        })
    return {"processes": rows}


def measure_backlog_to_cores(manager: ManagerRun, cores: int, task_seconds: float, timeout: float) -> dict[str, Any]:
    """Start cores x 2 BurnCpu workflows at once and time until `cores` activity workers are busy.

    The status is sampled every 50 ms because the manager writes no event when a worker turns busy,
    so the figures have 50 ms resolution.
    """
    status = manager.status()
    count = cores * 2
    manager.drain_events()
    began = time.monotonic()
    start_workflows(status["endpoint_url"], DOMAIN, "BurnCpu", count, {"seconds": task_seconds}, f"burn-{int(time.time())}")
    submitted = time.monotonic() - began
    first_busy = None
    all_busy = None
    deadline = began + timeout
    samples = []
    psutil.cpu_percent(interval=None)
    reasons: dict[str, int] = {}
    while time.monotonic() < deadline:
        document = manager.status()
        entry = document["task_lists"][ACTIVITIES]
        reason = entry["last_decision"] or "none yet"
        reasons[reason] = reasons.get(reason, 0) + 1
        now = time.monotonic() - began
        samples.append({
            "t": round(now, 3), "processes": entry["processes"], "busy": entry["busy"],
            "system_cpu": psutil.cpu_percent(interval=None), "manager_cpu_sample": document["system"]["cpu_percent"],
        })
        if entry["busy"] >= 1 and first_busy is None:
            first_busy = now
        if entry["busy"] >= cores:
            all_busy = now
            break
        time.sleep(0.05)
    steps = [event for _, event in manager.events if str(event.get("message", "")).startswith("scaling step") and event.get("task_list") == ACTIVITIES]
    return {
        "workflows": count, "task_cpu_seconds": task_seconds, "submit_s": submitted,
        "first_busy_s": first_busy, "all_cores_busy_s": all_busy, "cores": cores,
        "scaling_steps": [{"delta": event.get("delta"), "desired": event.get("desired"), "message": event.get("message")} for event in steps],
        "last_decision": entry["last_decision"], "decision_samples": reasons, "median_system_cpu": statistics.median(s["system_cpu"] for s in samples[1:] or samples),
        "samples": samples[-20:], "load": load_average(),
    }


def measure_cpu_target(manager: ManagerRun, cores: int, window: float) -> dict[str, Any]:
    """Keep a backlog of 1-s BurnCpu tasks for `window` seconds; sample CPU and count scaling reversals."""
    status = manager.status()
    url = status["endpoint_url"]
    count = int(window * cores * 1.5)
    manager.drain_events()
    began = time.monotonic()
    start_workflows(url, DOMAIN, "BurnCpu", count, {"seconds": 1.0}, f"target-{int(time.time())}")

    samples = []
    psutil.cpu_percent(interval=None)
    while time.monotonic() - began < window:
        time.sleep(0.5)  # sampling period
        system = psutil.cpu_percent(interval=None)
        entry = manager.status()["task_lists"][ACTIVITIES]
        samples.append({"t": round(time.monotonic() - began, 2), "cpu": system, "processes": entry["processes"], "busy": entry["busy"]})

    steps = [
        {"t": round(arrived - began, 2), "delta": event.get("delta"), "desired": event.get("desired"), "message": event.get("message")}
        for arrived, event in manager.events
        if arrived >= began and str(event.get("message", "")).startswith("scaling step") and event.get("task_list") == ACTIVITIES
    ]
    signs = [1 if step["delta"] > 0 else -1 for step in steps if step["delta"]]
    reversals = sum(1 for previous, current in zip(signs, signs[1:]) if previous != current)

    cpus = [sample["cpu"] for sample in samples]
    target = 80.0
    return {
        "window_s": window, "workflows": count, "target_percent": target,
        "median_cpu": statistics.median(cpus), "mean_cpu": statistics.fmean(cpus),
        "mean_abs_error": statistics.fmean(abs(cpu - target) for cpu in cpus),
        "share_within_10_points": sum(1 for cpu in cpus if abs(cpu - target) <= 10) / len(cpus),
        "share_above_95": sum(1 for cpu in cpus if cpu > 95) / len(cpus),
        "steps": steps, "step_count": len(steps), "reversals": reversals,
        "reversals_per_minute": reversals * 60 / window,
        "median_processes": statistics.median(sample["processes"] for sample in samples),
        "samples": samples, "load": load_average(),
    }


def report_lines(result: dict[str, Any]) -> list[str]:
    restart = result["restart"]
    idle = result["idle_cpu"]
    backlog = result["backlog_to_cores"]
    target = result["cpu_target"]
    plan = result["plan"]
    lines = [
        "The manager runs on its embedded endpoint with the built-in configuration, except a 1 s crash "
        "window and a 10 s drain (run A) and, for the CPU-target run, 1 s samples, a 3 s cooldown and "
        f"up to {plan['cores'] * 2} workers on the diagnostic activity list (run B). Source: `benchmarks/supervision.py`.",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
        f"| restart after SIGKILL, kill to \"worker started\" log line read (median / max of {len(restart['samples'])}) | "
        f"{restart['median_seen_s'] * 1000:.1f} ms / {restart['max_seen_s'] * 1000:.1f} ms | at most 100 ms: "
        f"{'met' if restart['goal_met'] else 'not met'} (median), {'met' if restart['max_within_goal'] else 'not met'} (max); simpleflow 5.0 s |",
        f"| restart, manager's own \"worker died\" to \"worker started\" (median) | "
        f"{_ms(restart['median_logged_s'])} | |",
        f"| manager idle CPU, {idle['window_s']:.0f} s with {idle['workers']} workers in long polls "
        f"(resolution {1 / idle['window_s']:.2f}% with 10 ms CPU ticks) | "
        f"{idle['manager_percent_of_core']:.2f}% of a core (its sampler and guard children: {idle['manager_helpers_percent_of_core']:.2f}%, "
        f"idle workers together: {idle['workers_percent_of_core']:.2f}%, endpoint: {idle['endpoint_percent_of_core']:.2f}%) | |",
        f"| backlog of {backlog['workflows']} BurnCpu tasks to all {backlog['cores']} cores busy | "
        f"{_s(backlog['all_cores_busy_s'])} (first task busy after {_s(backlog['first_busy_s'])}; starting the workflows took "
        f"{backlog['submit_s']:.2f} s; median system CPU meanwhile {backlog['median_system_cpu']:.0f}%; the scaler's "
        f"decisions seen, with the count of 50 ms status samples: {_reasons(backlog['decision_samples'])}) | |",
        f"| CPU during {target['window_s']:.0f} s of 1-s BurnCpu backlog, target {target['target_percent']:.0f}% | "
        f"median {target['median_cpu']:.0f}%, mean {target['mean_cpu']:.0f}%, mean distance to target {target['mean_abs_error']:.0f} points, "
        f"{target['share_within_10_points'] * 100:.0f}% of samples within 10 points | |",
        f"| scaling steps in that window | {target['step_count']} step(s), {target['reversals']} change(s) of direction "
        f"({target['reversals_per_minute']:.1f} per minute), median {target['median_processes']} workers | no flapping |",
        "",
        "Memory per process with every worker idle (MiB; PSS splits shared pages between the processes that share them):",
        "",
        "| process | task list | RSS | PSS | USS |",
        "|---|---|---|---|---|",
    ]
    for row in result["memory"]["processes"]:
        lines.append(f"| {row['role']} | {row['task_list']} | {row['rss_mib']:.1f} | {row['pss_mib']:.1f} | {row['uss_mib']:.1f} |")
    lines.append("")
    for name in result.get("timelines", []):
        if name:
            lines.append(f"![{name}](benchmarks/results/{name})")
            lines.append("")
    lines.append(
        f"Load average during the restarts: {statistics.median(s['load'] for s in restart['samples']):.1f}; idle window: "
        f"{idle['load']:.1f}; backlog: {backlog['load']:.1f}; CPU-target window: {target['load']:.1f}. Other jobs share the "
        "2 cores, so the system CPU in run B includes their load, and the scaler sees it too."
    )
    return lines


def _reasons(counts: dict[str, int]) -> str:
    return "; ".join(f"\"{reason}\" x{count}" for reason, count in sorted(counts.items(), key=lambda item: -item[1]))


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def _s(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f} s"
