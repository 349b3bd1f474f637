"""manager inject, signal, terminate and retry against the embedded endpoint over HTTP."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localswf.testing import LocalSwfProcess
from manager import submit
from manager.cli import main
from manager.registration import register_all
from workers.client import make_swf_client
from workers.config_loader import default_config
from workers.replay import CARRIED_KEY

DOMAIN = "manual-commands"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def localswf(tmp_path: Path) -> Iterator[LocalSwfProcess]:
    """An endpoint that keeps an empty poll open 2 s, so a stopping manager's workers return quickly.

    Workers finish the poll in flight before they exit, and the default 60 s hold would
    make each manager shutdown take a minute.
    """
    server = LocalSwfProcess(db_path=tmp_path / "localswf.sqlite3", max_poll_seconds=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def swf(localswf: LocalSwfProcess) -> Any:
    """A client on a fresh endpoint whose domain has the built-in types registered."""
    config = default_config()
    config = dataclasses.replace(config, swf=dataclasses.replace(config.swf, endpoint_url=localswf.url, domain=DOMAIN))
    client = make_swf_client(config, localswf.url)
    register_all(client, config)
    return client


def run_cli(localswf: LocalSwfProcess, tmp_path: Path, *argv: str) -> int:
    return main([*argv, "--endpoint-url", str(localswf.url), "--domain", DOMAIN, "--state-dir", str(tmp_path)])


def start(client: Any, workflow_id: str, workflow_input: dict, workflow_type: str = "Noop", timeout: str = "3600") -> str:
    response = client.start_workflow_execution(
        domain=DOMAIN,
        workflowId=workflow_id,
        workflowType={"name": workflow_type, "version": "1"},
        taskList={"name": "diagnostic-decisions"},
        input=json.dumps(workflow_input),
        executionStartToCloseTimeout=timeout,
        taskStartToCloseTimeout="60",
        childPolicy="TERMINATE",
    )
    return response["runId"]


def history(client: Any, workflow_id: str, run_id: str) -> list[dict]:
    return list(submit.iter_history(client, DOMAIN, workflow_id, run_id))


def describe(client: Any, workflow_id: str, run_id: str) -> dict:
    return client.describe_workflow_execution(domain=DOMAIN, execution={"workflowId": workflow_id, "runId": run_id})


def decide(client: Any, decision: dict) -> dict:
    """Act as the decider once: take the pending decision task and respond with ``decision``."""
    task = client.poll_for_decision_task(domain=DOMAIN, taskList={"name": "diagnostic-decisions"}, identity="test")
    assert task.get("taskToken"), "no decision task was pending"
    client.respond_decision_task_completed(taskToken=task["taskToken"], decisions=[decision])
    return task


def wait_closed(client: Any, workflow_id: str, run_id: str) -> dict:
    return submit.follow(client, DOMAIN, workflow_id, run_id, io.StringIO(), interval=0.05, timeout=30)


def fail_decision(reason: str) -> dict:
    return {
        "decisionType": "FailWorkflowExecution",
        "failWorkflowExecutionDecisionAttributes": {"reason": reason, "details": '{"retry": false}'},
    }


def test_signal_reaches_history(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> None:
    run_id = start(swf, "media-signal", {"seconds": 1})

    code = run_cli(localswf, tmp_path, "signal", "media-signal", "review-done", "--input", '{"approved": true}')

    assert code == 0
    signaled = [event for event in history(swf, "media-signal", run_id) if event["eventType"] == "WorkflowExecutionSignaled"]
    assert len(signaled) == 1
    attributes = signaled[0]["workflowExecutionSignaledEventAttributes"]
    assert attributes["signalName"] == "review-done"
    assert json.loads(attributes["input"]) == {"approved": True}


def test_signal_rejects_invalid_json(
    swf: Any, localswf: LocalSwfProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start(swf, "media-bad-json", {})

    code = run_cli(localswf, tmp_path, "signal", "media-bad-json", "x", "--input", "{not json")

    assert code == 2
    assert "--input is not valid JSON" in capsys.readouterr().err
    assert not [e for e in history(swf, "media-bad-json", run_id) if e["eventType"] == "WorkflowExecutionSignaled"]


def test_signal_unknown_workflow(
    swf: Any, localswf: LocalSwfProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(localswf, tmp_path, "signal", "no-such-workflow", "x")

    assert code == 2
    assert "no open execution of workflow 'no-such-workflow'" in capsys.readouterr().err


def test_terminate_closes_workflow(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> None:
    run_id = start(swf, "media-terminate", {})

    code = run_cli(localswf, tmp_path, "terminate", "media-terminate", "--reason", "stuck in review")

    assert code == 0
    info = describe(swf, "media-terminate", run_id)["executionInfo"]
    assert info["executionStatus"] == "CLOSED"
    assert info["closeStatus"] == "TERMINATED"
    closing = history(swf, "media-terminate", run_id)[-1]
    assert closing["workflowExecutionTerminatedEventAttributes"]["reason"] == "stuck in review"


def test_terminate_rejects_long_reason(
    swf: Any, localswf: LocalSwfProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start(swf, "media-long-reason", {})

    code = run_cli(localswf, tmp_path, "terminate", "media-long-reason", "--reason", "x" * 257)

    assert code == 2
    assert "--reason has 257 characters" in capsys.readouterr().err
    assert describe(swf, "media-long-reason", run_id)["executionInfo"]["executionStatus"] == "OPEN"


def test_retry_timed_out_workflow(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> None:
    workflow_input = {"seconds": 5, "media_uuid": "media-timeout"}
    # The endpoint enforces the 1 s execution timeout in real time.
    old_run = start(swf, "media-timeout", workflow_input, workflow_type="Sleep", timeout="1")
    assert wait_closed(swf, "media-timeout", old_run)["eventType"] == "WorkflowExecutionTimedOut"

    code = run_cli(localswf, tmp_path, "retry", "media-timeout")

    assert code == 0
    new_run = submit.open_run_id(swf, DOMAIN, "media-timeout")
    assert new_run is not None
    assert new_run != old_run
    started = history(swf, "media-timeout", new_run)[0]["workflowExecutionStartedEventAttributes"]
    assert json.loads(started["input"]) == workflow_input
    assert started["workflowType"] == {"name": "Sleep", "version": "1"}
    assert started["taskList"] == {"name": "diagnostic-decisions"}
    assert started["executionStartToCloseTimeout"] == "1"


def test_retry_failed_workflow(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> None:
    old_run = start(swf, "media-failed", {"media_uuid": "media-failed"})
    decide(swf, fail_decision("FaceDetect failed for good"))

    code = run_cli(localswf, tmp_path, "retry", "media-failed")

    assert code == 0
    new_run = submit.open_run_id(swf, DOMAIN, "media-failed")
    assert new_run not in (None, old_run)
    started = history(swf, "media-failed", new_run)[0]["workflowExecutionStartedEventAttributes"]
    assert json.loads(started["input"]) == {"media_uuid": "media-failed"}
    assert started["workflowType"] == {"name": "Noop", "version": "1"}


def test_retry_drops_carried_state(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> None:
    original = {"media_uuid": "media-continued"}
    first_run = start(swf, "media-continued", original)
    carried_input = json.dumps({"workflow": original, CARRIED_KEY: {"step": 1, "results": []}})
    decide(
        swf,
        {
            "decisionType": "ContinueAsNewWorkflowExecution",
            "continueAsNewWorkflowExecutionDecisionAttributes": {"input": carried_input, "workflowTypeVersion": "1"},
        },
    )
    continued = history(swf, "media-continued", first_run)[-1]
    assert continued["eventType"] == "WorkflowExecutionContinuedAsNew"
    second_run = continued["workflowExecutionContinuedAsNewEventAttributes"]["newExecutionRunId"]
    decide(swf, fail_decision("FaceRecognize failed for good"))

    code = run_cli(localswf, tmp_path, "retry", "media-continued")

    assert code == 0
    new_run = submit.open_run_id(swf, DOMAIN, "media-continued")
    assert new_run not in (None, first_run, second_run)
    started = history(swf, "media-continued", new_run)[0]["workflowExecutionStartedEventAttributes"]
    # The retry starts the pipeline from its first step with the original workflow input.
    assert json.loads(started["input"]) == original


@pytest.mark.parametrize("state", ["open", "completed", "terminated"])
def test_retry_rejects_other_states(
    state: str, swf: Any, localswf: LocalSwfProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start(swf, f"media-{state}", {})
    if state == "completed":
        decide(swf, {"decisionType": "CompleteWorkflowExecution", "completeWorkflowExecutionDecisionAttributes": {}})
    elif state == "terminated":
        swf.terminate_workflow_execution(domain=DOMAIN, workflowId=f"media-{state}", runId=run_id)

    code = run_cli(localswf, tmp_path, "retry", f"media-{state}")

    assert code == 2
    message = capsys.readouterr().err
    expected = "is still running" if state == "open" else f"closed {state.upper()}"
    assert expected in message
    executions = swf.list_open_workflow_executions(
        domain=DOMAIN, startTimeFilter={"oldestDate": submit._epoch()}, executionFilter={"workflowId": f"media-{state}"}
    )["executionInfos"]
    assert len(executions) == (1 if state == "open" else 0)


def test_retry_unknown_workflow(swf: Any, localswf: LocalSwfProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(localswf, tmp_path, "retry", "never-started")

    assert code == 2
    assert "no closed workflow with id 'never-started'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inject", "NoSuchActivity"], "activity type 'NoSuchActivity' is not configured"),
        (["inject", "FaceDetect"], 'steps = ["FaceDetect"]'),
        (["inject", "Noop", "--input", "[1, 2]"], "--input must be a JSON object, got list"),
        (["inject", "Noop", "--input", "{"], "--input is not valid JSON"),
    ],
)
def test_inject_rejects_bad_input(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # These fail before any SWF call, so the endpoint URL is never used.
    code = main([*argv, "--endpoint-url", "http://127.0.0.1:9", "--state-dir", str(tmp_path)])

    assert code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def running_manager(swf: Any, localswf: LocalSwfProcess, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real manager process, with its workers, on the test endpoint."""
    config_path = tmp_path / "manager.toml"
    config_path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[swf]\nendpoint_url = "{localswf.url}"\ndomain = "{DOMAIN}"\n'
        '[[task_lists]]\nname = "diagnostic-activities"\nkind = "activity"\nmin_processes = 1\nmax_processes = 1\n'
    )
    log_file = (tmp_path / "manager.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "manager", "--config", str(config_path)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log_file.close()


def test_inject_runs_activity_through_swf(
    running_manager: subprocess.Popen[bytes], localswf: LocalSwfProcess, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_cli(localswf, tmp_path, "inject", "Sleep", "--input", '{"seconds": 0.2}', "--timeout", "120")

    output = capsys.readouterr()
    assert code == 0, output.err[-2000:]
    result = json.loads(output.out)
    assert result["slept_seconds"] == 0.2
    # The worker that ran it is a child of the manager, not this test process.
    assert result["pid"] != os.getpid()
    assert "started workflow inject-Sleep-" in output.err

    code = run_cli(localswf, tmp_path, "inject", "Fail", "--input", '{"permanent": true, "message": "bad input"}',
                   "--timeout", "120")

    output = capsys.readouterr()
    assert code == 1
    assert "workflow failed" in output.err
    assert "bad input" in output.err
    assert output.out == ""
