"""``manager demo``: run the manager on the embedded endpoint, process one video, stop cleanly."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from workers import exitcodes
from workers.config_loader import load_config

OUTPUT_DIR = Path("demo-output")
# Bound on the manager's start: the endpoint, registration and the first forks. A cold
# start on a loaded two-core machine takes a few seconds.
START_TIMEOUT = 120.0
# Bound on the whole video workflow; the demo video is four seconds long.
WORKFLOW_TIMEOUT = 900.0
# Maximum hold of an empty poll on the demo's endpoint, in seconds.
DEMO_POLL_SECONDS = 5
# Added to the drain timeout when waiting for the manager to exit after SIGTERM.
STOP_MARGIN = 30.0


class DemoError(Exception):
    """A step of the demo failed; the message names the step and the cause."""


def _write_config(folder: Path, storage_root: Path) -> Path:
    path = folder / "manager.toml"
    path.write_text(
        f"state_dir = {json.dumps(str(folder / 'state'))}\n"
        "\n[swf]\n"
        'endpoint_url = "local"\n'
        # Workers finish an empty poll before they exit, so a short hold makes shutdown quick.
        f"local_max_poll_seconds = {DEMO_POLL_SECONDS}\n"
        "\n[storage]\n"
        f"root = {json.dumps(str(storage_root))}\n"
    )
    return path


def _wait_until_ready(process: subprocess.Popen[bytes], notify: socket.socket, state_file: Path) -> dict[str, Any]:
    """Wait for READY=1 on the notify socket or the state file, whichever comes first.

    Raises DemoError when the manager exits or START_TIMEOUT passes.
    """
    deadline = time.monotonic() + START_TIMEOUT
    ready = False
    while True:
        if process.poll() is not None:
            raise DemoError(f"the manager exited with code {process.returncode} while starting; its log is above")
        if ready or state_file.exists():
            try:
                state = json.loads(state_file.read_text())
            except (FileNotFoundError, ValueError):
                state = None
            if isinstance(state, dict) and state.get("pid") == process.pid and state.get("endpoint_url"):
                return state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"the manager was not ready within {START_TIMEOUT:.0f} s ({state_file} missing)")
        # The state file has no change notification, so re-check it at least every 0.2 s.
        readable, _, _ = select.select([notify], [], [], min(remaining, 0.2))
        if readable:
            ready = ready or b"READY=1" in notify.recv(4096)


def _summarise(result: dict[str, Any]) -> list[str]:
    """Return the lines that tell how many faces and people were found and where the sheet is."""
    steps = {step.get("activity"): step for step in result.get("steps", []) if isinstance(step, dict)}
    detect = (steps.get("FaceDetect") or {}).get("result") or {}
    recognize = (steps.get("FaceRecognize") or {}).get("result") or {}
    lines = []
    face_count = recognize.get("face_count", detect.get("face_count"))
    lines.append(f"faces found: {face_count if face_count is not None else 'not reported'}")
    if "frames_sampled" in detect:
        lines.append(f"frames with faces: {detect.get('frames_with_faces')} of {detect['frames_sampled']} sampled")
    people = recognize.get("people_count")
    lines.append(f"people found: {people if people is not None else 'not reported'}")
    for person in recognize.get("people", []):
        name = person.get("name") or "unknown"
        count = person.get("face_count")
        lines.append(f"  person {person.get('id')}: {count} {'face' if count == 1 else 'faces'} ({name})")
    sheet = recognize.get("contact_sheet_url")
    lines.append(f"contact sheet: {sheet if sheet else 'not reported'}")
    return lines


def _stop_manager(process: subprocess.Popen[bytes], drain_timeout: float) -> int:
    """Send SIGTERM and wait for the manager to drain and exit; SIGKILL past the bound."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=drain_timeout + STOP_MARGIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DemoError(
            f"the manager did not exit within {drain_timeout + STOP_MARGIN:.0f} s of SIGTERM and was killed"
        ) from None


def run_demo(video: Path | None) -> int:
    """Run the demo and return the exit code: 0 when the workflow completed and the manager stopped cleanly."""
    from manager import submit
    from workers.client import make_swf_client

    output_dir = OUTPUT_DIR.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    if video is not None and not video.is_file():
        print(f"manager demo: --video {str(video)!r} not found. Pass an existing video file.", file=sys.stderr)
        return exitcodes.CONFIG_ERROR

    with tempfile.TemporaryDirectory(prefix="swf-manager-demo-") as temporary:
        folder = Path(temporary)
        demo_config_path = _write_config(folder, output_dir)
        config = load_config(demo_config_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(folder / "notify.sock"))
        environment = {**os.environ, "NOTIFY_SOCKET": str(folder / "notify.sock")}
        command = [sys.executable, "-m", "manager", "--config", str(demo_config_path)]
        # The manager's JSON log goes to a file, so the terminal shows the demo's progress.
        log_path = output_dir / "manager.log"
        print(f"starting the manager: {' '.join(command)}; its log: {log_path}", flush=True)
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        code = exitcodes.OK
        try:
            state = _wait_until_ready(process, notify, folder / "state" / "manager.json")
            endpoint_url = state["endpoint_url"]
            print(f"manager ready: pid {process.pid}, SWF endpoint {endpoint_url}", flush=True)

            if video is None:
                from workers.video.demo_video import build_demo_video

                video = build_demo_video(output_dir / "demo.mp4")
                print(f"built the demo video {video}", flush=True)

            client = make_swf_client(config, endpoint_url)
            media_uuid = str(uuid.uuid4())
            workflow_input = submit.build_input(str(video), media_uuid, None, None)
            run_id = submit.start_workflow(client, config, "VideoProcessing", media_uuid, workflow_input)
            print(f"submitted {video} as workflow {media_uuid} run {run_id}; progress:", flush=True)
            closing = submit.follow(
                client, config.swf.domain, media_uuid, run_id, sys.stdout, timeout=WORKFLOW_TIMEOUT
            )
            completed, text = submit.describe_close(closing)
            if completed:
                result = json.loads(closing["workflowExecutionCompletedEventAttributes"].get("result") or "{}")
                print("workflow completed", flush=True)
                for line in _summarise(result):
                    print(line, flush=True)
            else:
                print(f"manager demo: {text}", file=sys.stderr, flush=True)
                code = 1
        except (DemoError, submit.SubmitError) as error:
            print(f"manager demo: {error}", file=sys.stderr, flush=True)
            code = 1
        finally:
            print("stopping the manager with SIGTERM", flush=True)
            try:
                stop_code = _stop_manager(process, config.supervision.drain_timeout)
            except DemoError as error:
                print(f"manager demo: {error}", file=sys.stderr, flush=True)
                stop_code = 1
            notify.close()
        if code != 0:
            print(f"manager demo: the end of the manager's log, {log_path}:", file=sys.stderr)
            print(_log_tail(log_path), file=sys.stderr, flush=True)
        if stop_code != 0:
            print(f"manager demo: the manager exited with code {stop_code}, not a clean shutdown", file=sys.stderr)
            code = code or 1
        else:
            print("the manager shut down cleanly", flush=True)
    return code


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(cannot read the log: {error})"
