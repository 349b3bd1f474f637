"""Draw a timeline PNG of a manager run from its JSON log lines.

One row per worker process (a restarted worker gets a new row), time on the x axis. Activities
are bars from their start to their end, decisions are ticks, a red cross marks a worker that died,
and dashed vertical lines mark scaling steps (green adds a worker, orange removes one).
Usage: `python -m benchmarks.timeline MANAGER_LOG OUTPUT_PNG [--title TEXT]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.managed import log_time


def read_events(log_path: Path) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the embedded endpoint's plain-text lines
        if isinstance(event, dict) and log_time(event) is not None:
            event["_t"] = log_time(event)
            events.append(event)
    return events


def build_rows(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Collect worker lifetimes, activity bars, decision ticks, deaths and scaling steps, in seconds from the first event."""
    origin = min(event["_t"] for event in events)
    workers: dict[int, dict[str, Any]] = {}
    bars: list[tuple[int, float, float, str]] = []
    ticks: list[tuple[int, float]] = []
    deaths: list[tuple[int, float, str]] = []
    steps: list[tuple[float, int, str]] = []
    for event in events:
        t = event["_t"] - origin
        message = str(event.get("message", ""))
        worker_pid = event.get("worker_pid")
        if message == "worker started" and worker_pid:
            workers[worker_pid] = {"task_list": event.get("task_list", "?"), "start": t, "end": None}
        elif worker_pid and message.startswith(("worker died", "worker stopped", "worker exited", "worker is stuck")):
            if worker_pid in workers:
                workers[worker_pid]["end"] = t
            if message.startswith(("worker died", "worker is stuck")):
                deaths.append((worker_pid, t, message))
        elif message.startswith("scaling step"):
            steps.append((t, int(event.get("delta", 0)), str(event.get("task_list", ""))))
        elif message.startswith("activity ") and " completed in " in message and "duration" in event:
            bars.append((int(event["pid"]), t - float(event["duration"]), float(event["duration"]), message.split()[1]))
        elif message.startswith("decision ") and event.get("pid"):
            ticks.append((int(event["pid"]), t))
    end = max(event["_t"] for event in events) - origin
    return {"workers": workers, "bars": bars, "ticks": ticks, "deaths": deaths, "steps": steps, "end": end}


def render(log_path: Path, png_path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = build_rows(read_events(log_path))
    workers = data["workers"]
    order = sorted(workers, key=lambda pid: (workers[pid]["task_list"], workers[pid]["start"]))
    row_of = {pid: row for row, pid in enumerate(order)}
    figure, axes = plt.subplots(figsize=(12, max(3.0, 0.35 * len(order) + 1.5)))
    palette = {}
    for pid in order:
        info = workers[pid]
        end = info["end"] if info["end"] is not None else data["end"]
        axes.hlines(row_of[pid], info["start"], end, colors="lightgrey", linewidth=6, zorder=1)
    for pid, start, duration, activity_id in data["bars"]:
        if pid not in row_of:
            continue
        kind = activity_id.rsplit("-", 1)[0]
        color = palette.setdefault(kind, f"C{len(palette)}")
        axes.broken_barh(
            [(start, max(duration, 0.01))], (row_of[pid] - 0.3, 0.6), facecolors=color, edgecolors="white", linewidth=0.4, zorder=2
        )
    tick_rows = [(row_of[pid], t) for pid, t in data["ticks"] if pid in row_of]
    if tick_rows:
        axes.scatter([t for _, t in tick_rows], [row for row, _ in tick_rows], marker="|", color="black", s=40, zorder=3, label="decision")
    death_rows = [(row_of[pid], t) for pid, t, _ in data["deaths"] if pid in row_of]
    if death_rows:
        axes.scatter([t for _, t in death_rows], [row for row, _ in death_rows], marker="x", color="red", s=60, zorder=4, label="worker died")
    for t, delta, task_list in data["steps"]:
        axes.axvline(t, color="green" if delta > 0 else "orange", linestyle="--", linewidth=1, zorder=0)
        axes.text(t, len(order) - 0.75, f" {'+' if delta > 0 else ''}{delta}", color="green" if delta > 0 else "orange", fontsize=8)
    axes.set_yticks(range(len(order)))
    axes.set_yticklabels([f"{workers[pid]['task_list']} {pid}" for pid in order], fontsize=8)
    axes.set_xlabel("seconds since the manager started")
    axes.set_xlim(0, data["end"] + 0.5)
    axes.set_title(title or f"manager run: {log_path}")
    handles, labels = axes.get_legend_handles_labels()
    for kind, color in palette.items():
        handles.append(plt.Rectangle((0, 0), 1, 1, color=color))
        labels.append(f"activity {kind}")
    if handles:
        axes.legend(handles, labels, loc="upper left", fontsize=8, bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline", description="Draw a timeline PNG from a manager's JSON log.")
    parser.add_argument("log", type=Path, help="the manager's stderr, one JSON object a line")
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--title", default="", help="title of the picture")
    args = parser.parse_args(argv)
    print(render(args.log, args.output, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
