"""Commands for testing the pipeline by hand: inject, signal, terminate, retry.

``manager inject ACTIVITY --input JSON`` runs one activity task through SWF: it starts the
one-step workflow type whose only step is ACTIVITY, waits for it to close and prints the
activity's result. The running manager's workers do the work, exactly as for a real
workflow. ``signal``, ``terminate`` and ``retry`` act on one workflow execution.

Each command finds its endpoint and domain the way ``manager submit`` does: --endpoint-url
and --domain, else the running local manager's state file, else the configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from botocore.exceptions import ClientError

from workers import exitcodes
from workers.client import call_with_backoff, error_code
from workers.config import Config, WorkflowTypeConfig

# SWF's limits on these fields, in characters.
MAX_INPUT_CHARS = 32768
MAX_REASON_CHARS = 256
MAX_ID_CHARS = 256
# Close statuses that `retry` starts again.
RETRYABLE_CLOSE_STATUSES = frozenset({"FAILED", "TIMED_OUT"})


class ManualCommandError(Exception):
    """Invalid input, or a workflow state that the command cannot act on. The message names the fix."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the inject, signal, terminate and retry commands to the ``manager`` parser."""
    from manager.cli import _add_common_options

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        _add_common_options(parser, suppress=True)
        return parser

    inject = add("inject", "run one activity task through SWF and print its result")
    inject.add_argument("activity", metavar="ACTIVITY", help="activity type name, such as Noop or Sleep. A configured workflow type must run it as its only step")
    inject.add_argument("--input", default="{}", metavar="JSON",
                        help='workflow input as a JSON object; the activity receives it as "workflow" (default {})')
    inject.add_argument("--workflow-id", metavar="ID", help="workflow id (default: inject-ACTIVITY-<random uuid>)")
    inject.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="stop waiting after this many seconds; the workflow keeps running (default: no limit)")
    inject.add_argument("--no-wait", action="store_true", help="start the workflow and return at once")
    inject.set_defaults(handler=run_inject)

    signal = add("signal", "send a signal to an open workflow execution")
    signal.add_argument("workflow_id", metavar="WORKFLOW_ID")
    signal.add_argument("name", metavar="NAME", help="signal name")
    signal.add_argument("--input", metavar="JSON", help="signal input as JSON")
    signal.add_argument("--run-id", help="run to signal (default: the open run)")
    signal.set_defaults(handler=run_signal)

    terminate = add("terminate", "terminate an open workflow execution at once")
    terminate.add_argument("workflow_id", metavar="WORKFLOW_ID")
    terminate.add_argument("--reason", default="terminated by hand with manager terminate",
                           help=f"reason recorded in the history, at most {MAX_REASON_CHARS} characters")
    terminate.add_argument("--run-id", help="run to terminate (default: the open run)")
    terminate.set_defaults(handler=run_terminate)

    retry = add("retry", "start a failed or timed-out workflow again with the same input and type")
    retry.add_argument("workflow_id", metavar="WORKFLOW_ID")
    retry.add_argument("--wait", action="store_true", help="follow the new run until it closes")
    retry.set_defaults(handler=run_retry)


def parse_json(text: str, option: str) -> Any:
    """Parse a JSON option value; the error names the option and shows where the text is invalid."""
    if len(text) > MAX_INPUT_CHARS:
        raise ManualCommandError(f"{option} has {len(text)} characters; SWF accepts at most {MAX_INPUT_CHARS}.")
    try:
        return json.loads(text)
    except ValueError as error:
        raise ManualCommandError(f"{option} is not valid JSON ({error}): {text[:80]!r}. Quote it for the shell, "
                                 """for example --input '{"seconds": 1}'.""") from None


def one_step_workflow(config: Config, activity: str) -> WorkflowTypeConfig:
    """Return the workflow type whose only step is ``activity``, preferring one of the same name.

    Raises ManualCommandError naming the configuration to add when there is none.
    """
    try:
        config.activity_type(activity)
    except KeyError:
        known = ", ".join(sorted(activity_type.name for activity_type in config.activity_types))
        raise ManualCommandError(f"activity type {activity!r} is not configured. Use one of: {known}.") from None
    candidates = [workflow for workflow in config.workflow_types if workflow.steps == (activity,)]
    if not candidates:
        decision_lists = [task_list.name for task_list in config.task_lists if task_list.kind == "decision"]
        example_list = decision_lists[0] if decision_lists else "DECISION_TASK_LIST"
        raise ManualCommandError(
            f"no workflow type runs {activity!r} as its only step, so it cannot be injected. Add one to the "
            "configuration:\n"
            "[[workflow_types]]\n"
            f'name = "Inject{activity}"\n'
            'version = "1"\n'
            f'task_list = "{example_list}"\n'
            f'steps = ["{activity}"]'
        )
    candidates.sort(key=lambda workflow: workflow.name != activity)
    return candidates[0]


def activity_result(closing_attributes: dict[str, Any]) -> Any:
    """Return the result of the single step from a completed one-step workflow's summary."""
    summary = json.loads(closing_attributes.get("result") or "null")
    steps = summary.get("steps") if isinstance(summary, dict) else None
    if not steps:
        return summary
    step = steps[-1]
    if "omitted_chars" in step:
        return {"omitted_chars": step["omitted_chars"], "note": "the result did not fit in the workflow summary"}
    return step.get("result")


def _check_id(value: str, label: str) -> str:
    if not value or len(value) > MAX_ID_CHARS:
        raise ManualCommandError(f"{label} {value!r} must have 1 to {MAX_ID_CHARS} characters.")
    return value


def _connect(args: argparse.Namespace, config: Config) -> tuple[Any, str, Config]:
    """Return an SWF client, the domain, and the configuration with that domain."""
    import dataclasses

    from manager.cli import _client_for

    client, domain = _client_for(args, config)
    if domain != config.swf.domain:
        config = dataclasses.replace(config, swf=dataclasses.replace(config.swf, domain=domain))
    return client, domain, config


def _report(command: str, error: Exception) -> int:
    print(f"manager {command}: {error}", file=sys.stderr)
    return exitcodes.CONFIG_ERROR if isinstance(error, ManualCommandError) else 1


def run_inject(args: argparse.Namespace, config: Config) -> int:
    from manager import submit
    from manager.cli import ConnectionLookupError

    try:
        workflow_input = parse_json(args.input, "--input")
        if not isinstance(workflow_input, dict):
            raise ManualCommandError(f"--input must be a JSON object, got {type(workflow_input).__name__}.")
        workflow = one_step_workflow(config, args.activity)
        workflow_id = _check_id(args.workflow_id or f"inject-{args.activity}-{uuid.uuid4()}", "--workflow-id")
        client, domain, config = _connect(args, config)
        run_id = submit.start_workflow(client, config, workflow.name, workflow_id, workflow_input)
    except submit.AlreadyRunning as error:
        return _report("inject", error)
    except (ManualCommandError, submit.SubmitError, ConnectionLookupError) as error:
        return _report("inject", ManualCommandError(str(error)))

    print(f"started workflow {workflow_id} run {run_id} ({workflow.name}, activity {args.activity})",
          file=sys.stderr, flush=True)
    if args.no_wait:
        return exitcodes.OK
    try:
        closing = submit.follow(client, domain, workflow_id, run_id, sys.stderr, timeout=args.timeout)
    except submit.SubmitError as error:
        return _report("inject", error)
    attributes = next(value for key, value in closing.items() if key.endswith("EventAttributes"))
    if closing["eventType"] == "WorkflowExecutionCompleted":
        print(json.dumps(activity_result(attributes), indent=2, sort_keys=True))
        return exitcodes.OK
    _, text = submit.describe_close(closing)
    print(f"manager inject: {text}", file=sys.stderr)
    return 1


def run_signal(args: argparse.Namespace, config: Config) -> int:
    from manager.cli import ConnectionLookupError

    try:
        params: dict[str, Any] = {"workflowId": _check_id(args.workflow_id, "WORKFLOW_ID"),
                                  "signalName": _check_id(args.name, "NAME")}
        if args.input is not None:
            parse_json(args.input, "--input")
            params["input"] = args.input
        if args.run_id:
            params["runId"] = args.run_id
        client, domain, _ = _connect(args, config)
        call_with_backoff(client, "signal_workflow_execution", domain=domain, **params)
    except (ManualCommandError, ConnectionLookupError) as error:
        return _report("signal", ManualCommandError(str(error)))
    except ClientError as error:
        return _report("signal", _explain_unknown(error, args.workflow_id, domain))
    print(f"signal {args.name} sent to workflow {args.workflow_id}")
    return exitcodes.OK


def run_terminate(args: argparse.Namespace, config: Config) -> int:
    from manager.cli import ConnectionLookupError

    try:
        if len(args.reason) > MAX_REASON_CHARS:
            raise ManualCommandError(f"--reason has {len(args.reason)} characters; SWF accepts at most "
                                     f"{MAX_REASON_CHARS}.")
        params: dict[str, Any] = {"workflowId": _check_id(args.workflow_id, "WORKFLOW_ID"), "reason": args.reason}
        if args.run_id:
            params["runId"] = args.run_id
        client, domain, _ = _connect(args, config)
        call_with_backoff(client, "terminate_workflow_execution", domain=domain, **params)
    except (ManualCommandError, ConnectionLookupError) as error:
        return _report("terminate", ManualCommandError(str(error)))
    except ClientError as error:
        return _report("terminate", _explain_unknown(error, args.workflow_id, domain))
    print(f"workflow {args.workflow_id} terminated: {args.reason}")
    return exitcodes.OK


def _explain_unknown(error: ClientError, workflow_id: str, domain: str) -> Exception:
    if error_code(error) == "UnknownResourceFault":
        return ManualCommandError(
            f"no open execution of workflow {workflow_id!r} in domain {domain!r}: it has closed or never existed. "
            f"See `manager history {workflow_id}`."
        )
    return error


def run_retry(args: argparse.Namespace, config: Config) -> int:
    from manager import submit
    from manager.cli import ConnectionLookupError

    try:
        workflow_id = _check_id(args.workflow_id, "WORKFLOW_ID")
        client, domain, config = _connect(args, config)
        old_run_id, new_run_id, close_status = retry_workflow(client, domain, workflow_id)
    except (ManualCommandError, submit.SubmitError, ConnectionLookupError) as error:
        return _report("retry", ManualCommandError(str(error)))
    print(f"started workflow {workflow_id} run {new_run_id}, retrying run {old_run_id} that closed {close_status}",
          flush=True)
    if not args.wait:
        return exitcodes.OK
    closing = submit.follow(client, domain, workflow_id, new_run_id, sys.stdout)
    completed, text = submit.describe_close(closing)
    print(text, flush=True)
    return exitcodes.OK if completed else 1


def retry_workflow(client: Any, domain: str, workflow_id: str) -> tuple[str, str, str]:
    """Start the latest closed run of ``workflow_id`` again; return (old run, new run, old close status).

    The new run has the same workflow type and version, task list, timeouts, child policy
    and input as the old one. When the old run was continued from an earlier one, the
    state it carried is dropped, so the pipeline starts again from its first step.
    Raises ManualCommandError when the workflow is open, unknown, or closed otherwise than
    failed or timed out.
    """
    from manager import submit
    from workers.replay import CARRIED_KEY

    open_run = submit.open_run_id(client, domain, workflow_id)
    if open_run is not None:
        raise ManualCommandError(f"workflow {workflow_id} is still running (run id {open_run}); "
                                 f"`manager terminate {workflow_id}` first if it is stuck.")
    latest = _latest_closed_execution(client, domain, workflow_id)
    old_run_id = latest["execution"]["runId"]
    close_status = latest.get("closeStatus", "")
    if close_status not in RETRYABLE_CLOSE_STATUSES:
        raise ManualCommandError(f"workflow {workflow_id} run {old_run_id} closed {close_status}; retry starts only "
                                 "failed or timed-out workflows again. Use `manager submit` to start a new one.")

    started = next(iter(submit.iter_history(client, domain, workflow_id, old_run_id, page_size=1)), None)
    if started is None or started.get("eventType") != "WorkflowExecutionStarted":
        raise ManualCommandError(f"the history of workflow {workflow_id} run {old_run_id} does not begin with "
                                 "WorkflowExecutionStarted; it cannot be retried.")
    attributes = started["workflowExecutionStartedEventAttributes"]
    workflow_input = attributes.get("input")
    if workflow_input:
        try:
            document = json.loads(workflow_input)
        except ValueError:
            document = None
        if isinstance(document, dict) and CARRIED_KEY in document:
            workflow_input = json.dumps(document.get("workflow"))

    params: dict[str, Any] = {
        "domain": domain,
        "workflowId": workflow_id,
        "workflowType": attributes["workflowType"],
        "taskList": attributes["taskList"],
        "executionStartToCloseTimeout": attributes["executionStartToCloseTimeout"],
        "taskStartToCloseTimeout": attributes["taskStartToCloseTimeout"],
        "childPolicy": attributes["childPolicy"],
    }
    if workflow_input is not None:
        params["input"] = workflow_input
    if attributes.get("tagList"):
        params["tagList"] = attributes["tagList"]
    if attributes.get("taskPriority"):
        params["taskPriority"] = attributes["taskPriority"]
    try:
        response = call_with_backoff(client, "start_workflow_execution", **params)
    except ClientError as error:
        if error_code(error) == "WorkflowExecutionAlreadyStartedFault":
            raise ManualCommandError(f"workflow {workflow_id} was started again by someone else meanwhile.") from None
        if error_code(error) == "TypeDeprecatedFault":
            workflow_type = attributes["workflowType"]
            raise ManualCommandError(
                f"workflow type {workflow_type['name']} version {workflow_type['version']} is deprecated; "
                f"submit the input again under the current version with `manager submit`."
            ) from None
        raise
    return old_run_id, response["runId"], close_status


def _latest_closed_execution(client: Any, domain: str, workflow_id: str) -> dict[str, Any]:
    from manager.submit import _epoch

    executions: list[dict[str, Any]] = []
    params: dict[str, Any] = {
        "domain": domain,
        "startTimeFilter": {"oldestDate": _epoch()},
        "executionFilter": {"workflowId": workflow_id},
    }
    while True:
        page = call_with_backoff(client, "list_closed_workflow_executions", **params)
        executions.extend(page.get("executionInfos", []))
        token = page.get("nextPageToken")
        if not token:
            break
        params["nextPageToken"] = token
    if not executions:
        raise ManualCommandError(f"no closed workflow with id {workflow_id!r} in domain {domain!r}. "
                                 "Check the id, --domain and --endpoint-url.")
    return max(executions, key=lambda info: info["startTimestamp"])
