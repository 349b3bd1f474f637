"""Endpoint benchmark: one-activity round trips per second on localswf, moto and the ceiling server.

Every repeat measures each server with 1, 2 and 4 processes, in a rotating order, so each ratio
compares measurements taken seconds apart. "Fresh" localswf gets a new database at the start of
each repeat. The seeded localswf servers keep their databases, which start with 10,000 (and in
full mode 100,000) closed executions and grow by the few hundred each window adds.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks import roundtrip, seeding, servers
from benchmarks.common import Settings, ratio
from benchmarks.machine import load_average

PROCESS_COUNTS = (1, 2, 4)
GOAL_VS_MOTO = 8.0
GOAL_VS_CEILING = 0.5
GOAL_SEEDED_DROP = 0.10  # at most 10% below the fresh rate


def _settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"window_seconds": 2.0, "repeats": 3, "seeded_closed": [10_000]}
    return {"window_seconds": 6.0, "repeats": 5, "seeded_closed": [10_000, 100_000]}


def run(settings: Settings) -> dict[str, Any]:
    plan = _settings(settings.quick)
    window = plan["window_seconds"]
    workdir = settings.workdir / "endpoint"
    workdir.mkdir(parents=True, exist_ok=True)

    seeded_runs: dict[str, Any] = {}
    seed_info: dict[str, Any] = {}
    for closed in plan["seeded_closed"]:
        db_path = workdir / f"seeded-{closed}.db"
        settings.log(f"endpoint: seeding {closed:,} closed executions into {db_path}")
        seed_info[str(closed)] = seeding.seed(db_path, closed)
        settings.log(f"endpoint: seeded {seed_info[str(closed)]}")

    started: list[Any] = []
    measurements: list[dict[str, Any]] = []
    try:
        moto = servers.moto_server(workdir / "moto.log")
        moto_url = moto.start()
        started.append(moto)
        ceiling = servers.ceiling_server(workdir / "ceiling.log")
        ceiling_url = ceiling.start()
        started.append(ceiling)
        roundtrip.register(ceiling_url)
        for closed in plan["seeded_closed"]:
            server = servers.localswf_server(workdir / f"seeded-{closed}.db")
            seeded_runs[f"localswf-{closed}"] = (server, server.start())
            started.append(server)

        with roundtrip.RoundTripPool(max(PROCESS_COUNTS)) as pool:
            for repeat in range(plan["repeats"]):
                fresh = servers.localswf_server(workdir / f"fresh-{repeat}.db")
                fresh_url = fresh.start()
                started.append(fresh)
                roundtrip.register(fresh_url)
                targets = [("localswf-fresh", fresh, fresh_url), ("moto", moto, moto_url), ("ceiling", ceiling, ceiling_url)]
                targets += [(name, server, url) for name, (server, url) in seeded_runs.items()]
                for processes in PROCESS_COUNTS:
                    shift = (repeat + processes) % len(targets)
                    for name, server, url in targets[shift:] + targets[:shift]:
                        if name == "moto":
                            servers.reset_moto(url)  # moto slows down as executions pile up; each window starts empty
                            roundtrip.register(url)
                        result = pool.measure(url, processes, window, server.pid)
                        record = {"server": name, "repeat": repeat, **result.as_dict()}
                        measurements.append(record)
                        settings.log(
                            f"endpoint: repeat {repeat} {name} x{processes}: {result.rate:.1f} workflows/s"
                            f" (client {result.client_cpu_ms_per_call:.2f} ms CPU/call, load {result.load_before:.1f},"
                            f" errors {result.error_count})"
                        )
                fresh.stop()
                started.remove(fresh)
    finally:
        for server in reversed(started):
            server.stop()

    closed_after = {
        name: seeding.count_closed(workdir / f"seeded-{name.split('-')[1]}.db") for name in seeded_runs
    }
    return {
        "name": "endpoint",
        "plan": {**plan, "process_counts": list(PROCESS_COUNTS), "calls_per_workflow": roundtrip.CALLS_PER_WORKFLOW},
        "seeding": seed_info,
        "closed_executions_at_end": closed_after,
        "measurements": measurements,
        "summary": summarize(measurements, list(seeded_runs)),
    }


def _values(measurements: list[dict[str, Any]], server: str, processes: int, key: str) -> dict[int, float]:
    return {m["repeat"]: m[key] for m in measurements if m["server"] == server and m["processes"] == processes}


def _paired_ratio(measurements: list[dict[str, Any]], top: str, bottom: str, processes: int, key: str = "rate") -> float | None:
    """Median over repeats of top/bottom, each pair measured in the same repeat."""
    tops = _values(measurements, top, processes, key)
    bottoms = _values(measurements, bottom, processes, key)
    values = [value for repeat in tops if (value := ratio(tops[repeat], bottoms.get(repeat))) is not None]
    return statistics.median(values) if values else None


def summarize(measurements: list[dict[str, Any]], seeded_names: list[str]) -> dict[str, Any]:
    names = ["localswf-fresh", "moto", "ceiling", *seeded_names]
    table = []
    for processes in PROCESS_COUNTS:
        row: dict[str, Any] = {"processes": processes}
        for name in names:
            subset = [m for m in measurements if m["server"] == name and m["processes"] == processes]
            if not subset:
                continue
            row[name] = {
                "median_rate": statistics.median(m["rate"] for m in subset),
                "rates": [m["rate"] for m in subset],
                "median_client_cpu_ms_per_call": statistics.median(m["client_cpu_ms_per_call"] for m in subset),
                "median_server_cpu_ms_per_workflow": statistics.median(
                    m["server_cpu_ms_per_workflow"] for m in subset if m["server_cpu_ms_per_workflow"] is not None
                ) if any(m["server_cpu_ms_per_workflow"] is not None for m in subset) else None,
                "median_latency_ms": statistics.median(m["median_latency_ms"] for m in subset),
                "errors": sum(m["error_count"] for m in subset),
                "wrong_decisions": sum(m["wrong_decisions"] for m in subset),
                "median_load": statistics.median(m["load_before"] for m in subset),
            }
        row["localswf_vs_moto"] = _paired_ratio(measurements, "localswf-fresh", "moto", processes)
        row["moto_server_cpu_vs_localswf"] = _paired_ratio(
            measurements, "moto", "localswf-fresh", processes, key="server_cpu_ms_per_workflow"
        )
        row["localswf_vs_ceiling"] = _paired_ratio(measurements, "localswf-fresh", "ceiling", processes)
        for name in seeded_names:
            row[f"{name}_vs_fresh"] = _paired_ratio(measurements, name, "localswf-fresh", processes)
        table.append(row)

    def all_at_least(key: str, goal: float) -> bool:
        return all(row[key] is not None and row[key] >= goal for row in table)

    goals = {
        "vs_moto_at_least_8x": all_at_least("localswf_vs_moto", GOAL_VS_MOTO),
        "vs_ceiling_at_least_0.5x": all_at_least("localswf_vs_ceiling", GOAL_VS_CEILING),
    }
    for name in seeded_names:
        goals[f"{name}_within_10pct_of_fresh"] = all_at_least(f"{name}_vs_fresh", 1 - GOAL_SEEDED_DROP)
    return {"by_processes": table, "goals": goals, "load_at_end": load_average(), "finished_at": time.time()}
