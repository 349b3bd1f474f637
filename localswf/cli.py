"""Command line: `python -m localswf --db PATH --port PORT`."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from localswf.server import SwfHttpServer
from localswf.service import Service
from localswf.store import DatabaseLockedError

log = logging.getLogger("localswf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localswf", description="An Amazon SWF endpoint that keeps its state in one SQLite file.")
    parser.add_argument("--db", required=True, type=Path, help="SQLite database file; created when missing")
    parser.add_argument("--port", required=True, type=int, help="TCP port to listen on; 0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host; the endpoint has no authentication"
    )
    parser.add_argument(
        "--max-poll-seconds", type=float, default=60.0, help="how long an empty poll waits for a task, in seconds (default 60)"
    )
    parser.add_argument(
        "--enable-reset", action="store_true",
        help="accept X-Amz-Target: LocalSwf.ResetDatabase, which deletes all state (for test suites)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the endpoint until SIGTERM or SIGINT; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        parser.error(f"invalid --log-level {args.log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: use 0 to 65535 (0 picks a free port)")
    if not 0 < args.max_poll_seconds <= 3600:
        parser.error(f"invalid --max-poll-seconds {args.max_poll_seconds}: use a number of seconds above 0 and at most 3600")
    if not is_loopback(args.host):
        if not args.allow_remote:
            parser.error(f"--host {args.host} is not a loopback address: add --allow-remote to listen on it")
        log.warning("listening on %s: this endpoint has no authentication, anyone who can reach it controls it", args.host)

    try:
        service = Service(args.db, max_poll_seconds=args.max_poll_seconds)
    except DatabaseLockedError as error:
        log.error("%s", error)
        return 2
    except (OSError, sqlite3.Error) as error:
        log.error("cannot open the database --db %s: %s; pass a file in a writable folder", args.db, error)
        return 2
    try:
        server = SwfHttpServer((args.host, args.port), service, enable_reset=args.enable_reset)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s; pick another --port", args.host, args.port, error)
        service.close()
        return 2

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    service.start()
    serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="localswf-http", daemon=True)
    serve_thread.start()
    host, port = server.server_address[:2]
    url_host = f"[{host}]" if ":" in str(host) else host
    print(f"localswf listening on http://{url_host}:{port}", flush=True)
    log.info("serving %s on http://%s:%d", args.db, url_host, port)
    try:
        stop_requested.wait()
    finally:
        service.stop()
        server.shutdown()
        server.server_close()
        service.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return 0
