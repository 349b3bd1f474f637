"""Register the domain, workflow types and activity types that the configuration names.

A missing domain or type is registered with exactly the configured values. A registered
type can never change, so when one exists with other values this logs a warning naming
each difference, and the fix is a new version in the configuration.

The manager must not hold a boto3 client while it forks workers, so it calls
``register_in_child``, which builds the client and registers in a forked child.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from workers.client import call_with_backoff, error_code, make_swf_client
from workers.config import ActivityTypeConfig, Config, WorkflowTypeConfig

log = logging.getLogger(__name__)


class RegistrationError(Exception):
    """The domain or a type could not be registered or cannot be used."""


@dataclass(frozen=True)
class Difference:
    """One default of a registered type that differs from the configuration."""

    kind: str  # "domain", "workflow type" or "activity type"
    name: str
    version: str
    field: str  # SWF's name, such as defaultTaskHeartbeatTimeout
    config_key: str  # the configuration key, such as heartbeat_timeout
    registered: str | None
    configured: str


@dataclass
class RegistrationReport:
    registered: list[str]
    differences: list[Difference]
    deprecated: list[str]


def activity_type_defaults(activity: ActivityTypeConfig) -> dict[str, Any]:
    """Return the RegisterActivityType defaults for ``activity``, keyed by SWF field name."""
    return {
        "defaultTaskList": {"name": activity.task_list},
        "defaultTaskScheduleToStartTimeout": str(activity.schedule_to_start_timeout),
        "defaultTaskStartToCloseTimeout": str(activity.start_to_close_timeout),
        "defaultTaskScheduleToCloseTimeout": str(activity.schedule_to_close_timeout),
        "defaultTaskHeartbeatTimeout": str(activity.heartbeat_timeout),
    }


def workflow_type_defaults(workflow: WorkflowTypeConfig) -> dict[str, Any]:
    """Return the RegisterWorkflowType defaults for ``workflow``, keyed by SWF field name."""
    return {
        "defaultTaskList": {"name": workflow.task_list},
        "defaultExecutionStartToCloseTimeout": str(workflow.execution_start_to_close_timeout),
        "defaultTaskStartToCloseTimeout": str(workflow.task_start_to_close_timeout),
        "defaultChildPolicy": workflow.child_policy,
    }


_CONFIG_KEYS = {
    "defaultTaskList": "task_list",
    "defaultTaskScheduleToStartTimeout": "schedule_to_start_timeout",
    "defaultTaskStartToCloseTimeout": "start_to_close_timeout",
    "defaultTaskScheduleToCloseTimeout": "schedule_to_close_timeout",
    "defaultTaskHeartbeatTimeout": "heartbeat_timeout",
    "defaultExecutionStartToCloseTimeout": "execution_start_to_close_timeout",
    "defaultChildPolicy": "child_policy",
    "description": "description",
}


def register_all(client: Any, config: Config) -> RegistrationReport:
    """Register what is missing and compare what exists. Raises ``RegistrationError``."""
    report = RegistrationReport(registered=[], differences=[], deprecated=[])
    domain = config.swf.domain
    _ensure_domain(client, config, report)
    for workflow in config.workflow_types:
        _ensure_type(client, domain, "workflow type", workflow.name, workflow.version,
                     workflow.description, workflow_type_defaults(workflow), report)
    for activity in config.activity_types:
        _ensure_type(client, domain, "activity type", activity.name, activity.version,
                     activity.description, activity_type_defaults(activity), report)
    if report.differences:
        log.warning(
            "%d registered default(s) differ from the configuration; SWF uses the registered ones "
            "only where a request leaves a value out",
            len(report.differences),
            extra={"domain": domain},
        )
    return report


def _ensure_domain(client: Any, config: Config, report: RegistrationReport) -> None:
    domain = config.swf.domain
    retention = str(config.swf.retention_days)
    try:
        described = call_with_backoff(client, "describe_domain", name=domain)
    except ClientError as error:
        if error_code(error) != "UnknownResourceFault":
            raise RegistrationError(f"DescribeDomain failed for domain {domain!r}: {error}") from error
        described = None

    if described is None:
        params: dict[str, Any] = {"name": domain, "workflowExecutionRetentionPeriodInDays": retention}
        if config.swf.domain_description:
            params["description"] = config.swf.domain_description
        try:
            call_with_backoff(client, "register_domain", **params)
            report.registered.append(f"domain {domain}")
            log.info("registered domain", extra={"domain": domain, "retention_days": retention})
            return
        except ClientError as error:
            if error_code(error) != "DomainAlreadyExistsFault":
                raise RegistrationError(f"RegisterDomain failed for domain {domain!r}: {error}") from error
            # Another manager registered it between the two calls.
            described = call_with_backoff(client, "describe_domain", name=domain)

    info = described["domainInfo"]
    if info.get("status") == "DEPRECATED":
        raise RegistrationError(
            f"domain {domain!r} is deprecated, so SWF rejects new workflows in it. "
            "Undeprecate it (aws swf undeprecate-domain) or set swf.domain to another name."
        )
    differences = []
    registered_retention = described.get("configuration", {}).get("workflowExecutionRetentionPeriodInDays")
    if registered_retention != retention:
        differences.append(Difference("domain", domain, "", "workflowExecutionRetentionPeriodInDays",
                                      "swf.retention_days", registered_retention, retention))
    registered_description = info.get("description", "")
    if registered_description != config.swf.domain_description:
        differences.append(Difference("domain", domain, "", "description", "swf.domain_description",
                                      registered_description, config.swf.domain_description))
    _warn(differences, "domain", domain, "", "a registered domain cannot change; use another swf.domain to change it")
    report.differences.extend(differences)


def _ensure_type(
    client: Any,
    domain: str,
    kind: str,
    name: str,
    version: str,
    description: str,
    defaults: dict[str, Any],
    report: RegistrationReport,
) -> None:
    operation = kind.replace(" ", "_")  # "workflow_type" or "activity_type"
    type_key = "workflowType" if kind == "workflow type" else "activityType"
    type_id = {"name": name, "version": version}
    ids = {"domain": domain, "type_name": name, "type_version": version}
    try:
        described = call_with_backoff(client, f"describe_{operation}", domain=domain, **{type_key: type_id})
    except ClientError as error:
        if error_code(error) != "UnknownResourceFault":
            raise RegistrationError(f"Describe of {kind} {name} version {version} failed: {error}") from error
        described = None

    if described is None:
        params: dict[str, Any] = {"domain": domain, "name": name, "version": version, **defaults}
        if description:
            params["description"] = description
        try:
            call_with_backoff(client, f"register_{operation}", **params)
            report.registered.append(f"{kind} {name} {version}")
            log.info("registered %s", kind, extra={**ids, **_flatten(defaults)})
            return
        except ClientError as error:
            if error_code(error) != "TypeAlreadyExistsFault":
                raise RegistrationError(f"Register of {kind} {name} version {version} failed: {error}") from error
            described = call_with_backoff(client, f"describe_{operation}", domain=domain, **{type_key: type_id})

    info = described["typeInfo"]
    if info.get("status") == "DEPRECATED":
        report.deprecated.append(f"{kind} {name} {version}")
        log.error(
            "%s %s version %s is deprecated: SWF rejects new work for it. Configure a new version.",
            kind, name, version, extra=ids,
        )
    registered = described.get("configuration", {})
    differences = []
    for field, configured in defaults.items():
        actual = registered.get(field)
        if isinstance(configured, dict):
            configured_text, actual_text = configured.get("name"), (actual or {}).get("name")
        else:
            configured_text, actual_text = configured, actual
        if actual_text != configured_text:
            differences.append(Difference(kind, name, version, field, _CONFIG_KEYS[field], actual_text,
                                          str(configured_text)))
    registered_description = info.get("description", "")
    if registered_description != description:
        differences.append(Difference(kind, name, version, "description", "description",
                                      registered_description, description))
    _warn(differences, kind, name, version, "a registered type cannot change; give it a new version to change it")
    report.differences.extend(differences)


def _warn(differences: list[Difference], kind: str, name: str, version: str, fix: str) -> None:
    if not differences:
        return
    listed = "; ".join(
        f"{difference.field} is registered as {difference.registered!r} but {difference.config_key} "
        f"is configured as {difference.configured!r}"
        for difference in differences
    )
    label = f"{kind} {name}" + (f" version {version}" if version else "")
    log.warning("%s differs from the configuration: %s. Fix: %s.", label, listed, fix,
                extra={"type_name": name, "type_version": version})


def _flatten(defaults: dict[str, Any]) -> dict[str, Any]:
    return {key: value["name"] if isinstance(value, dict) else value for key, value in defaults.items()}


def register_in_child(config: Config, endpoint_url: str | None) -> None:
    """Fork a child that builds its own client and registers; wait for it.

    Raises ``RegistrationError`` when the child fails; the child has logged why.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            client = make_swf_client(config, endpoint_url)
            register_all(client, config)
            code = 0
        except RegistrationError as error:
            log.error("registration failed: %s", error, extra={"domain": config.swf.domain})
        except (ClientError, BotoCoreError) as error:
            log.error("registration failed: %s", error, extra={"domain": config.swf.domain,
                                                               "endpoint_url": endpoint_url})
        except BaseException:
            log.exception("registration failed", extra={"domain": config.swf.domain})
        finally:
            logging.shutdown()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RegistrationError(
            f"registration in domain {config.swf.domain!r} at {endpoint_url or 'real SWF'} failed "
            f"(child exit code {code}); the log above says why"
        )
