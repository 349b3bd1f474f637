"""`python -m benchmarks [--quick] [--only NAME ...]`: run the benchmarks and rewrite BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import importlib
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import report
from benchmarks.common import REPO_ROOT, RESULTS_DIR, Settings, rounded, write_json
from benchmarks.machine import describe_machine, load_average

# Name -> module with run(settings) -> dict, in the order they run.
BENCHMARKS = {
    "endpoint": "benchmarks.endpoint",
    "supervision": "benchmarks.supervision",
    "throughput": "benchmarks.throughput",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the benchmarks, store raw results in benchmarks/results/ and rewrite BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="short windows and fewer repeats: under 5 minutes on 2 cores")
    parser.add_argument(
        "--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
        help=f"run only these benchmarks: {', '.join(BENCHMARKS)} (default all)",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep the scratch directory with databases and logs")
    parser.add_argument(
        "--no-report", action="store_true", help="store the JSON results but leave BENCHMARKS.md unchanged",
    )
    return parser


def _record_invocation(mode: str, names: list[str], seconds: float, failed: list[str]) -> None:
    """Append this run's mode, benchmarks and duration to results/invocations.json (the last 50 are kept)."""
    path = RESULTS_DIR / "invocations.json"
    try:
        history = json.loads(path.read_text()) if path.exists() else []
    except ValueError:
        history = []
    history.append({
        "mode": mode, "benchmarks": names, "seconds": round(seconds, 1), "failed": failed,
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    })
    write_json(path, history[-50:])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = args.only or list(BENCHMARKS)
    mode = "quick" if args.quick else "full"
    command = "python -m benchmarks" + (" " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    workdir = Path(tempfile.mkdtemp(prefix="swf-benchmarks-"))
    settings = Settings(quick=args.quick, workdir=workdir)
    machine = describe_machine()

    failed = []
    began = time.monotonic()
    settings.log(f"running {', '.join(names)} in {mode} mode; scratch directory {workdir}")
    try:
        for name in names:
            started = datetime.now(UTC)
            load_before = load_average()
            step_began = time.monotonic()
            try:
                module = importlib.import_module(BENCHMARKS[name])
                result = module.run(settings)
            except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                settings.log(f"{name} failed: {type(error).__name__}: {error}")
                traceback.print_exc()
                result = {"name": name, "error": f"{type(error).__name__}: {error}"}
                failed.append(name)
            record = {
                "benchmark": name,
                "mode": mode,
                "command": command,
                "started_utc": started.strftime("%Y-%m-%d %H:%M:%S"),
                "seconds": round(time.monotonic() - step_began, 1),
                "load_before": load_before,
                "load_after": load_average(),
                "machine": machine,
                "result": rounded(result, 3),
            }

            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            write_json(RESULTS_DIR / "runs" / f"{stamp}-{name}-{mode}.json", record)
            if "error" not in result:
                write_json(RESULTS_DIR / f"latest-{name}.json", record)
    finally:
        if args.keep_workdir:
            settings.log(f"kept scratch directory {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    _record_invocation(mode, names, time.monotonic() - began, failed)
    if not args.no_report:
        path = report.write(RESULTS_DIR, REPO_ROOT / "BENCHMARKS.md")
        settings.log(f"wrote {path}")
    settings.log(f"done in {time.monotonic() - began:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
