"""The ``manager`` command: the daemon, and the commands that talk to it or to SWF."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from workers import exitcodes
from workers.config import Config
from workers.config_loader import DEFAULT_CONFIG_PATH, REAL_SWF, ConfigError, load_config

log = logging.getLogger("manager")

# Exit code of a client command whose request failed (already running, workflow failed).
FAILED = 1
# 128 + SIGINT, as a shell reports a command ended by Ctrl-C.
INTERRUPTED = 130


def _add_common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Add the options every command takes. Subcommands use SUPPRESS so they keep top-level values."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", type=Path, default=default, metavar="PATH",
                        help=f"TOML configuration file (default {DEFAULT_CONFIG_PATH} if it exists, "
                             "else the built-in configuration)")
    parser.add_argument("--workers", type=int, default=default, metavar="N",
                        help="maximum number of processes on each activity task list")
    parser.add_argument("--drain-timeout", type=float, default=default, metavar="S",
                        help="seconds that running tasks may continue after SIGTERM")
    parser.add_argument("--log-level", default=default, metavar="L", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--endpoint-url", default=default, metavar="URL",
                        help=f'SWF endpoint: a URL, "local" for the embedded endpoint, "{REAL_SWF}" for real SWF. '
                             "Client commands find a running local manager without it.")
    parser.add_argument("--region", default=default, metavar="R", help="AWS region of SWF, such as us-east-1")
    parser.add_argument("--domain", default=default, metavar="D", help="SWF domain")
    parser.add_argument("--state-dir", type=Path, default=default, metavar="PATH",
                        help="folder of the status socket, state file and embedded database")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manager",
        description="Run Amazon SWF pipelines: without a command, run the manager daemon.",
    )
    _add_common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, **kwargs)
        if kwargs.get("add_help", True):
            _add_common_options(sub, suppress=True)
        return sub

    add("local-swf", "run the embedded SWF endpoint alone (options as for python -m localswf)", add_help=False)

    submit = add("submit", "start a workflow for a video")
    submit.add_argument("video", nargs="?", metavar="PATH_OR_URL", help="video file, s3:// or https:// URL")
    submit.add_argument("--user", metavar="UUID", help="uuid of the user who owns the video")
    submit.add_argument("--media-uuid", metavar="UUID", help="uuid of the video, used as the workflow id "
                                                             "(default: a new random uuid)")
    submit.add_argument("--workflow-type", default="VideoProcessing", metavar="NAME",
                        help="configured workflow type (default VideoProcessing)")
    submit.add_argument("--input", metavar="JSON", help="JSON object merged into the workflow input")
    submit.add_argument("--wait", action="store_true", help="show progress until the workflow closes, "
                                                            "then print its result")

    history = add("history", "print the event history of a workflow")
    history.add_argument("workflow_id", metavar="WORKFLOW_ID")
    history.add_argument("--run-id", help="run to show (default: the open run, else the latest closed one)")
    history.add_argument("--full", action="store_true", help="show long attribute values in full")
    history.add_argument("--page-size", type=int, default=1000, metavar="N",
                         help="events per GetWorkflowExecutionHistory page, 1 to 1000 (default 1000)")

    status = add("status", "show the running manager's task lists and workers")
    status.add_argument("--json", action="store_true", help="print the status document as JSON")

    demo = add("demo", "run the video pipeline once on a demo video, then stop")
    demo.add_argument("--video", type=Path, metavar="PATH", help="process this video instead of the built-in demo")

    try:
        import manager.manual as manual
    except ModuleNotFoundError as error:
        if error.name != "manager.manual":
            raise
    else:
        manual.register(commands)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Map the common flags to load_config overrides."""
    mapping = {
        "drain_timeout": "supervision.drain_timeout",
        "log_level": "logging.level",
        "endpoint_url": "swf.endpoint_url",
        "region": "swf.region",
        "domain": "swf.domain",
        "state_dir": "state_dir",
        "workers": "workers",
    }
    overrides = {}
    for attribute, key in mapping.items():
        value = getattr(args, attribute, None)
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "local-swf":
        import localswf

        return localswf.main(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    try:
        config = load_config(args.config, overrides_from(args))
    except ConfigError as error:
        print(f"manager: {error}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR

    if args.command is None:
        return run_daemon(config, args.config, overrides_from(args))
    if args.config is None and args.command not in ("demo",):
        try:
            config = _running_manager_config(config, overrides_from(args))
        except ConfigError as error:
            print(f"manager: the running manager's {error}", file=sys.stderr)
            return exitcodes.CONFIG_ERROR

    logging.basicConfig(level=config.logging.level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    try:
        if handler is not None:
            return handler(args, config)
        return COMMANDS[args.command](args, config)
    except ClientError as error:
        print(f"manager {args.command}: SWF request failed: {error}", file=sys.stderr)
        return FAILED
    except BotoCoreError as error:
        print(f"manager {args.command}: cannot reach SWF: {error}. Check --endpoint-url and that the "
              "manager is running.", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        # Ctrl-C ends a client command, never a workflow: it keeps running in SWF.
        print(f"manager {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away, as with `manager status | head -1`.
        sys.stderr.close()
        return FAILED


def _running_manager_config(config: Config, overrides: dict[str, Any]) -> Config:
    """Return the configuration file of the running manager, so client commands know its types.

    Without a running manager, or when it runs on built-in defaults, ``config`` is returned.
    """
    from manager.paths import read_state_file, state_dir_for

    state = read_state_file(state_dir_for(config))
    path = (state or {}).get("config_path")
    if not path or not Path(path).is_file():
        return config
    return load_config(Path(path), overrides)


class ConnectionLookupError(Exception):
    """No endpoint to talk to: no --endpoint-url and no running local manager."""


def run_daemon(config: Config, config_path: Path | None, overrides: dict[str, Any]) -> int:
    """Start the embedded endpoint when configured, register, and run the supervision loop."""
    from manager.arbiter import Arbiter
    from manager.endpoint import EmbeddedEndpoint, EndpointError
    from manager.paths import ensure_state_dir, local_db_path, state_dir_for
    from manager.registration import RegistrationError, register_in_child
    from workers.log_shipping import secret_env_names
    from workers.logs import configure_logging
    from workers.storage import Storage
    from workers.webhook import WebhookSender

    configure_logging(config.logging, secret_envs=secret_env_names(config), role="manager")
    try:
        # Deciders build these after the fork; an invalid setting must stop the start here.
        WebhookSender.from_config(config)
    except ValueError as error:
        log.error("invalid webhook settings: %s", error)
        return exitcodes.CONFIG_ERROR
    try:
        state_dir = ensure_state_dir(state_dir_for(config))
    except OSError as error:
        log.error("cannot use the state folder: %s", error)
        return exitcodes.CONFIG_ERROR
    try:
        Storage(config.storage.root).check_writable()
    except OSError as error:
        log.error(
            "storage.root %r cannot be written: %s. Set storage.root to a writable folder or s3://bucket/prefix.",
            config.storage.root,
            error,
        )
        return exitcodes.CONFIG_ERROR

    endpoint = None
    endpoint_url = config.swf.endpoint_url
    if endpoint_url == "local":
        endpoint = EmbeddedEndpoint(
            local_db_path(config, state_dir), config.swf.local_port, config.swf.local_max_poll_seconds
        )
        try:
            endpoint_url = endpoint.start()
        except EndpointError as error:
            log.error("cannot start the embedded SWF endpoint: %s", error)
            return FAILED
    log.info(
        "manager starting",
        extra={"endpoint_url": endpoint_url or f"real SWF in {config.swf.region}", "domain": config.swf.domain,
               "state_dir": str(state_dir)},
    )

    def reload_config() -> Config:
        """Read the configuration again and register new types. Raises ConfigError or RegistrationError."""
        new_config = load_config(config_path, overrides)
        register_in_child(new_config, endpoint_url)
        return new_config

    try:
        register_in_child(config, endpoint_url)
        return Arbiter(
            config, endpoint_url, state_dir, reload_config=reload_config, endpoint=endpoint, config_path=config_path
        ).run()
    except RegistrationError as error:
        log.error("%s", error)
        return FAILED
    finally:
        if endpoint is not None:
            endpoint.stop()


def _client_for(args: argparse.Namespace, config: Config) -> tuple[Any, str]:
    """Build an SWF client for a client command and return it with the domain to use.

    The endpoint is --endpoint-url when given, else the running manager's from its state
    file, else the configured one. The domain is --domain, else the running manager's,
    else the configured one.
    """
    from manager.paths import read_state_file, state_dir_for
    from workers.client import make_swf_client

    endpoint_url = config.swf.endpoint_url
    domain = config.swf.domain
    explicit_endpoint = getattr(args, "endpoint_url", None) not in (None, "local")
    if not explicit_endpoint:
        state_dir = state_dir_for(config)
        state = read_state_file(state_dir)
        if state is not None:
            endpoint_url = state.get("endpoint_url") or None
            if getattr(args, "domain", None) is None and state.get("domain"):
                domain = state["domain"]
        elif endpoint_url == "local":
            raise ConnectionLookupError(
                f"no running manager found: {state_dir}/manager.json is missing or its process has exited. "
                "Start one with `manager`, pass --state-dir of the running manager, or pass --endpoint-url URL."
            )
    return make_swf_client(config, endpoint_url), domain


def _submit(args: argparse.Namespace, config: Config) -> int:
    from manager import submit

    try:
        media_uuid = submit.parse_uuid(args.media_uuid, "--media-uuid") if args.media_uuid else str(uuid.uuid4())
        user_uuid = submit.parse_uuid(args.user, "--user") if args.user else None
        if args.video is None and args.input is None:
            raise submit.SubmitError("nothing to submit. Pass a video file or URL, or --input JSON.")
        workflow_input = submit.build_input(args.video, media_uuid, user_uuid, args.input)
        client, domain = _client_for(args, config)
        config = _with_domain(config, domain)
        run_id = submit.start_workflow(client, config, args.workflow_type, media_uuid, workflow_input)
    except submit.AlreadyRunning as error:
        print(f"manager submit: {error}", file=sys.stderr)
        return FAILED
    except (submit.SubmitError, ConnectionLookupError) as error:
        print(f"manager submit: {error}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR

    print(f"started workflow {media_uuid} run {run_id} ({args.workflow_type})", flush=True)
    if not args.wait:
        return exitcodes.OK
    closing = submit.follow(client, domain, media_uuid, run_id, sys.stdout)
    completed, text = submit.describe_close(closing)
    print(text, flush=True)
    return exitcodes.OK if completed else FAILED


def _history(args: argparse.Namespace, config: Config) -> int:
    from manager import submit

    if not 1 <= args.page_size <= submit.MAX_PAGE_SIZE:
        print(f"manager history: --page-size {args.page_size} is out of range. Use 1 to 1000.", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    try:
        client, domain = _client_for(args, config)
        run_id = args.run_id or submit.latest_run_id(client, domain, args.workflow_id)
    except (submit.SubmitError, ConnectionLookupError) as error:
        print(f"manager history: {error}", file=sys.stderr)
        return FAILED
    print(f"workflow {args.workflow_id} run {run_id} in domain {domain}")
    for event in submit.iter_history(client, domain, args.workflow_id, run_id, args.page_size):
        print(submit.format_event(event, full=args.full))
    return exitcodes.OK


def _status(args: argparse.Namespace, config: Config) -> int:
    from manager import status
    from manager.paths import state_dir_for

    state_dir = state_dir_for(config)
    try:
        document = status.query(state_dir)
    except status.StatusUnavailable as error:
        print(f"manager status: {error}", file=sys.stderr)
        return FAILED
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(status.format_table(document))
    return exitcodes.OK


def _demo(args: argparse.Namespace, config: Config) -> int:
    from manager.demo import run_demo

    return run_demo(args.video)


def _with_domain(config: Config, domain: str) -> Config:
    import dataclasses

    if domain == config.swf.domain:
        return config
    return dataclasses.replace(config, swf=dataclasses.replace(config.swf, domain=domain))


COMMANDS = {"submit": _submit, "history": _history, "status": _status, "demo": _demo}


if __name__ == "__main__":
    sys.exit(main())
