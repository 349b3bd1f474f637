"""The manager's client commands against the real localswf endpoint over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from manager.cli import main
from manager.registration import register_all
from workers.client import make_swf_client
from workers.config_loader import default_config

VIDEO_TASK_LIST = "video-decisions"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "manager.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[swf]\nendpoint_url = "local"\n')
    return path


@pytest.fixture
def swf(localswf):
    """A client on the endpoint, with the built-in domain and types registered."""
    client = make_swf_client(default_config(), localswf.url)
    register_all(client, default_config())
    return client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_submit_twice_already_running(localswf, swf, config_file: Path, capsys, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded by this test")
    media_uuid = str(uuid.uuid4())
    common = ["--config", str(config_file), "--endpoint-url", localswf.url]

    code, out, err = run(capsys, *common, "submit", str(video), "--media-uuid", media_uuid)
    assert code == 0, err
    match = re.search(rf"started workflow {media_uuid} run (\S+)", out)
    assert match, out
    run_id = match.group(1)

    code, out, err = run(capsys, *common, "submit", str(video), "--media-uuid", media_uuid)
    assert code == 1
    assert "already running" in err
    assert run_id in err

    executions = swf.list_open_workflow_executions(
        domain="swf-manager", startTimeFilter={"oldestDate": 0}, executionFilter={"workflowId": media_uuid}
    )["executionInfos"]
    assert [execution["execution"]["runId"] for execution in executions] == [run_id]


def test_submit_input_sent(localswf, swf, config_file: Path, capsys, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    media_uuid, user_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    code, _, err = run(
        capsys, "--config", str(config_file), "--endpoint-url", localswf.url,
        "submit", str(video), "--media-uuid", media_uuid, "--user", user_uuid,
    )
    assert code == 0, err
    task = swf.poll_for_decision_task(domain="swf-manager", taskList={"name": VIDEO_TASK_LIST})
    started = task["events"][0]["workflowExecutionStartedEventAttributes"]
    assert json.loads(started["input"]) == {
        "media_uuid": media_uuid,
        "user_uuid": user_uuid,
        "video_url": str(video.resolve()),
    }
    assert started["taskList"] == {"name": VIDEO_TASK_LIST}
    assert started["executionStartToCloseTimeout"] == "86400"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.mp4"], "video file 'missing.mp4' not found"),
        (["--media-uuid", "abc", "--input", "{}"], "--media-uuid 'abc' is not a UUID"),
        (["--user", "bob", "--input", "{}"], "--user 'bob' is not a UUID"),
        (["--input", "[1]"], "is not a JSON object"),
        (["--input", "{oops"], "is not valid JSON"),
        (["--workflow-type", "Nope", "--input", "{}"], "--workflow-type 'Nope' is not configured"),
        ([], "nothing to submit"),
    ],
)
def test_submit_bad_input(localswf, swf, config_file: Path, capsys, arguments: list[str], message: str) -> None:
    code, _, err = run(capsys, "--config", str(config_file), "--endpoint-url", localswf.url, "submit", *arguments)
    assert code == 2
    assert message in err


def test_submit_finds_running_manager(localswf, swf, config_file: Path, capsys, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = {"pid": os.getpid(), "endpoint_url": localswf.url, "domain": "swf-manager", "status_socket": ""}
    (state_dir / "manager.json").write_text(json.dumps(state))
    code, out, err = run(capsys, "--config", str(config_file), "submit", "--workflow-type", "Noop", "--input", "{}")
    assert code == 0, err
    assert "started workflow" in out


def test_no_running_manager(config_file: Path, capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "--config", str(config_file), "history", "some-id")
    assert code == 1
    assert "no running manager found" in err
    assert str(tmp_path / "state") in err


def test_stale_state_file_ignored(config_file: Path, capsys, tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = {"pid": int(finished.stdout), "endpoint_url": "http://127.0.0.1:9", "domain": "swf-manager"}
    (state_dir / "manager.json").write_text(json.dumps(state))
    code, _, err = run(capsys, "--config", str(config_file), "history", "some-id")
    assert code == 1
    assert "no running manager found" in err


def test_history_every_page(localswf, swf, config_file: Path, capsys) -> None:
    workflow_id = str(uuid.uuid4())
    code, _, err = run(
        capsys, "--config", str(config_file), "--endpoint-url", localswf.url,
        "submit", "--workflow-type", "Noop", "--media-uuid", workflow_id, "--input", '{"seconds": 0}',
    )
    assert code == 0, err
    for index in range(9):
        swf.signal_workflow_execution(domain="swf-manager", workflowId=workflow_id, signalName=f"signal-{index}")

    code, out, err = run(
        capsys, "--config", str(config_file), "--endpoint-url", localswf.url,
        "history", workflow_id, "--page-size", "2",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"workflow {workflow_id} run ")
    event_ids = [int(line.split()[0]) for line in lines[1:]]
    assert event_ids == list(range(1, len(event_ids) + 1))
    assert len(event_ids) >= 11
    assert "WorkflowExecutionStarted" in lines[1]
    assert "workflowType=Noop v1" in lines[1]
    signals = [line for line in lines if "WorkflowExecutionSignaled" in line]
    assert [re.search(r"signalName=(\S+)", line).group(1) for line in signals] == [f"signal-{i}" for i in range(9)]


def test_history_unknown_workflow(localswf, swf, config_file: Path, capsys) -> None:
    code, _, err = run(capsys, "--config", str(config_file), "--endpoint-url", localswf.url, "history", "nobody")
    assert code == 1
    assert "no workflow with id 'nobody'" in err


def decide_once(client, decision: dict) -> None:
    """Poll one decision task from the diagnostic list and respond to it with ``decision``."""
    while True:
        task = client.poll_for_decision_task(domain="swf-manager", taskList={"name": "diagnostic-decisions"})
        if task.get("taskToken"):
            break
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision])


@pytest.mark.parametrize(
    ("decision", "expected_code", "expected_text"),
    [
        (
            {"decisionType": "CompleteWorkflowExecution",
             "completeWorkflowExecutionDecisionAttributes": {"result": json.dumps({"faces": 3})}},
            0,
            '"faces": 3',
        ),
        (
            {"decisionType": "FailWorkflowExecution",
             "failWorkflowExecutionDecisionAttributes": {"reason": "FaceDetect failed: corrupt video",
                                                         "details": '{"retry": false}'}},
            1,
            "workflow failed: FaceDetect failed: corrupt video",
        ),
    ],
    ids=["completed", "failed"],
)
def test_submit_wait_prints_outcome(
    localswf, config_file: Path, capsys, decision: dict, expected_code: int, expected_text: str
) -> None:
    decider_client = make_swf_client(default_config(), localswf.url)
    register_all(decider_client, default_config())
    decider = threading.Thread(target=decide_once, args=(decider_client, decision), daemon=True)
    decider.start()
    code, out, err = run(
        capsys, "--config", str(config_file), "--endpoint-url", localswf.url,
        "submit", "--workflow-type", "Noop", "--input", "{}", "--wait",
    )
    decider.join(timeout=60)
    assert not decider.is_alive()
    assert code == expected_code, err
    assert "WorkflowExecutionStarted" in out
    assert "DecisionTaskCompleted" in out
    assert expected_text in out


def test_bad_config_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "manager.toml"
    path.write_text("[swf]\nretention_days = 400\n")
    code, _, err = run(capsys, "--config", str(path), "history", "x")
    assert code == 2
    assert "swf.retention_days = 400" in err


def test_bad_workers_flag_exits_2(config_file: Path, capsys) -> None:
    code, _, err = run(capsys, "--config", str(config_file), "--workers", "0", "status")
    assert code == 2
    assert "--workers = 0" in err


def test_status_without_manager(config_file: Path, capsys) -> None:
    code, _, err = run(capsys, "--config", str(config_file), "status")
    assert code == 1
    assert "no manager is running" in err


def test_local_swf_command(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "manager", "local-swf", "--db", str(tmp_path / "swf.sqlite3"), "--port", "0",
         "--max-poll-seconds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = process.stdout.readline().decode()
        match = re.search(r"localswf listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        client = make_swf_client(default_config(), match.group(1))
        assert client.list_domains(registrationStatus="REGISTERED")["domainInfos"] == []
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        process.stdout.close()


def test_submit_without_aws_credentials(localswf, swf, config_file: Path, tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment["HOME"] = str(tmp_path)
    # Keep botocore from asking the EC2 metadata address should the placeholder be missing.
    environment["AWS_EC2_METADATA_DISABLED"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "manager", "--config", str(config_file), "--endpoint-url", localswf.url,
         "submit", "--workflow-type", "Noop", "--input", "{}"],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "started workflow" in result.stdout
