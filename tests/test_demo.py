"""``manager demo`` end to end: a real manager, the embedded endpoint and the video pipeline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

# The demo takes about 13 s on an idle two-core machine; the bound allows a loaded one.
DEMO_TIMEOUT = 600


def run_demo(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "manager", "demo", *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=DEMO_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    session = process.pid
    left = []
    for candidate in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(candidate.pid) == session:
                left.append(candidate.info)
        except (ProcessLookupError, PermissionError):
            continue
    assert left == [], f"processes left behind by the demo: {left}"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_demo_finds_faces(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    faces = re.search(r"^faces found: (\d+)$", result.stdout, re.MULTILINE)
    people = re.search(r"^people found: (\d+)$", result.stdout, re.MULTILINE)
    sheet = re.search(r"^contact sheet: (.+)$", result.stdout, re.MULTILINE)
    assert faces and int(faces.group(1)) > 0, result.stdout
    # The demo video shows two people: the astronaut and Grace Hopper.
    assert people and int(people.group(1)) == 2, result.stdout
    assert sheet, result.stdout
    sheet_path = Path(sheet.group(1))
    assert sheet_path.is_file()
    assert sheet_path.is_relative_to(tmp_path / "demo-output")
    assert (tmp_path / "demo-output" / "demo.mp4").is_file()
    assert "WorkflowExecutionCompleted" in result.stdout
    assert "the manager shut down cleanly" in result.stdout


def test_demo_bad_video_fails_with_reason(tmp_path: Path) -> None:
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    result = run_demo(tmp_path, "--video", str(video))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "manager demo: workflow failed: " in result.stderr
    assert "the manager shut down cleanly" in result.stdout


def test_demo_missing_video(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--video", str(tmp_path / "absent.mp4"))
    assert result.returncode == 2
    assert "absent.mp4' not found" in result.stderr
