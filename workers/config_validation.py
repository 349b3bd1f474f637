"""Checks of a built ``Config`` against SWF's limits and the manager's own rules.

``validate_config`` calls ``report(key, value, message)`` once per invalid value. The
message states what is wrong and how to fix it.
"""

from __future__ import annotations

import logging.handlers
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from workers.activities import HANDLERS
from workers.config import ActivityTypeConfig, Config, TaskListConfig, WorkflowTypeConfig

Report = Callable[[str, Any, str], None]

# SWF limits, from the Amazon SWF API reference (RegisterActivityType, RegisterDomain,
# StartWorkflowExecution).
MAX_NAME_LENGTH = 256
MAX_VERSION_LENGTH = 64
MAX_RETENTION_DAYS = 90
MAX_EXECUTION_SECONDS = 31_536_000
MAX_HISTORY_EVENTS = 25_000
SWF_POLL_SECONDS = 60
MIN_READ_TIMEOUT = 70

_FORBIDDEN_NAME = re.compile(r"[:/|\x00-\x1f\x7f-\x9f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def swf_name_problem(name: str, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Return why ``name`` is not a valid SWF name, or None when it is valid."""
    if not name:
        return "must not be empty"
    if len(name) > max_length:
        return f"is {len(name)} characters long, over SWF's limit of {max_length}"
    if name != name.strip():
        return "must not start or end with whitespace"
    if _FORBIDDEN_NAME.search(name):
        return "must not contain ':', '/', '|' or control characters"
    if "arn" == name.lower():
        return 'must not be the literal "arn"'
    return None


def validate_config(config: Config, report: Report) -> None:
    _validate_swf(config, report)
    _validate_client(config, report)
    task_lists = _validate_task_lists(config.task_lists, report)
    activity_names = _validate_activity_types(config.activity_types, task_lists, report)
    _validate_workflow_types(config.workflow_types, task_lists, activity_names, report)
    _validate_scaling(config, report)
    _validate_supervision(config, report)
    _validate_outputs(config, report)


def _positive(report: Report, key: str, value: float, unit: str = "seconds") -> None:
    if value <= 0:
        report(key, value, f"must be greater than 0 {unit}. Set a positive value.")


def _not_negative(report: Report, key: str, value: float, unit: str = "seconds") -> None:
    if value < 0:
        report(key, value, f"must be 0 {unit} or more. Set 0 or a positive value.")


def _http_url_problem(url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "is not an http:// or https:// URL"
    return None


def _validate_swf(config: Config, report: Report) -> None:
    swf = config.swf
    if swf.endpoint_url is not None and swf.endpoint_url != "local":
        problem = _http_url_problem(swf.endpoint_url)
        if problem:
            report(
                "swf.endpoint_url",
                swf.endpoint_url,
                f'{problem}. Use "local" for the embedded endpoint, "aws" for real SWF, '
                'or a URL such as "http://127.0.0.1:8080".',
            )
    if not _REGION.match(swf.region):
        report("swf.region", swf.region, 'is not an AWS region name. Use a region such as "us-east-1".')
    problem = swf_name_problem(swf.domain)
    if problem:
        report("swf.domain", swf.domain, f"{problem}. Choose another domain name.")
    if len(swf.domain_description) > 1024:
        report("swf.domain_description", swf.domain_description[:40] + "...", "is over 1024 characters. Shorten it.")
    if not 0 <= swf.retention_days <= MAX_RETENTION_DAYS:
        report(
            "swf.retention_days",
            swf.retention_days,
            f"SWF keeps closed executions 0 to {MAX_RETENTION_DAYS} days. Set a value in that range.",
        )
    if not 0 <= swf.local_port <= 65535:
        report("swf.local_port", swf.local_port, "is not a TCP port. Use 1 to 65535, or 0 to pick a free port.")
    if not 1 <= swf.local_max_poll_seconds <= SWF_POLL_SECONDS:
        report(
            "swf.local_max_poll_seconds",
            swf.local_max_poll_seconds,
            f"must be between 1 and {SWF_POLL_SECONDS} seconds, the longest time real SWF holds a poll.",
        )


def _validate_client(config: Config, report: Report) -> None:
    client = config.client
    if client.read_timeout < MIN_READ_TIMEOUT:
        report(
            "client.read_timeout",
            client.read_timeout,
            f"is too short: SWF holds a poll open for up to {SWF_POLL_SECONDS} s, so a shorter read "
            f"timeout cuts every empty poll. Set it to {MIN_READ_TIMEOUT} or more.",
        )
    _positive(report, "client.connect_timeout", client.connect_timeout)
    if client.max_attempts < 1:
        report("client.max_attempts", client.max_attempts, "must be 1 or more (1 means no retries).")
    if client.max_pool_connections < 1:
        report("client.max_pool_connections", client.max_pool_connections, "must be 1 or more.")


def _validate_task_lists(task_lists: tuple[TaskListConfig, ...], report: Report) -> dict[str, TaskListConfig]:
    by_name: dict[str, TaskListConfig] = {}
    for task_list in task_lists:
        prefix = f'task_lists["{task_list.name}"]'
        problem = swf_name_problem(task_list.name)
        if problem:
            report(f"{prefix}.name", task_list.name, f"{problem}. Rename the task list.")
        if task_list.min_processes < 0:
            report(f"{prefix}.min_processes", task_list.min_processes, "must be 0 or more.")
        if task_list.max_processes < 1:
            report(f"{prefix}.max_processes", task_list.max_processes, "must be 1 or more.")
        elif task_list.min_processes > task_list.max_processes:
            report(
                f"{prefix}.min_processes",
                task_list.min_processes,
                f"is above max_processes ({task_list.max_processes}). Lower it or raise max_processes.",
            )
        _not_negative(report, f"{prefix}.max_tasks_per_process", task_list.max_tasks_per_process, "tasks")
        _not_negative(report, f"{prefix}.max_memory_mb", task_list.max_memory_mb, "MB")
        by_name[task_list.name] = task_list
    return by_name


def _check_task_list(
    report: Report, key: str, name: str, kind: str, task_lists: dict[str, TaskListConfig]
) -> None:
    task_list = task_lists.get(name)
    if task_list is None:
        known = ", ".join(f'"{known}"' for known, entry in task_lists.items() if entry.kind == kind) or "none"
        report(key, name, f"names no configured task list. Add a [[task_lists]] entry with kind = \"{kind}\", "
               f"or use one of: {known}.")
    elif task_list.kind != kind:
        article = "an" if task_list.kind == "activity" else "a"
        report(key, name, f'is {article} {task_list.kind} task list. Point it at a task list with kind = "{kind}".')


def _validate_activity_types(
    activity_types: tuple[ActivityTypeConfig, ...], task_lists: dict[str, TaskListConfig], report: Report
) -> set[str]:
    for activity in activity_types:
        prefix = f'activity_types["{activity.name}"]'
        problem = swf_name_problem(activity.name)
        if problem:
            report(f"{prefix}.name", activity.name, f"{problem}. Rename the activity type.")
        problem = swf_name_problem(activity.version, MAX_VERSION_LENGTH)
        if problem:
            report(f"{prefix}.version", activity.version, f'{problem}. Use a version such as "1".')
        _check_task_list(report, f"{prefix}.task_list", activity.task_list, "activity", task_lists)
        for field in ("schedule_to_start_timeout", "start_to_close_timeout", "schedule_to_close_timeout",
                      "heartbeat_timeout"):
            _positive(report, f"{prefix}.{field}", getattr(activity, field))
        retry = activity.retry
        if retry.max_failures < 0:
            report(f"{prefix}.retry.max_failures", retry.max_failures, "must be 0 (no retry) or more.")
        if not retry.timeouts:
            report(f"{prefix}.retry.timeouts", retry.timeouts, "needs at least one slot, such as [300, 900].")
        elif any(slot <= 0 for slot in retry.timeouts):
            report(f"{prefix}.retry.timeouts", retry.timeouts, "every slot must be greater than 0 seconds.")
        else:
            if activity.start_to_close_timeout != retry.timeouts[0]:
                report(
                    f"{prefix}.start_to_close_timeout",
                    activity.start_to_close_timeout,
                    f"differs from the first retry slot ({retry.timeouts[0]}), which the first attempt uses. "
                    "Make them equal, or leave start_to_close_timeout out.",
                )
            if activity.schedule_to_close_timeout < max(retry.timeouts):
                report(
                    f"{prefix}.schedule_to_close_timeout",
                    activity.schedule_to_close_timeout,
                    f"is shorter than the longest retry slot ({max(retry.timeouts)}), so that slot can never "
                    "be used. Raise it to at least schedule_to_start_timeout plus that slot.",
                )
            if activity.heartbeat_timeout > min(retry.timeouts):
                report(
                    f"{prefix}.heartbeat_timeout",
                    activity.heartbeat_timeout,
                    f"is longer than the shortest retry slot ({min(retry.timeouts)}). Lower it below that slot.",
                )
        _not_negative(report, f"{prefix}.retry.backoff_seconds", retry.backoff_seconds)
        if retry.max_backoff_seconds < retry.backoff_seconds:
            report(
                f"{prefix}.retry.max_backoff_seconds",
                retry.max_backoff_seconds,
                f"is below backoff_seconds ({retry.backoff_seconds}). Raise it to at least that.",
            )
        if len(activity.description) > 1024:
            report(f"{prefix}.description", activity.description[:40] + "...", "is over 1024 characters.")
    return {activity.name for activity in activity_types}


def _validate_workflow_types(
    workflow_types: tuple[WorkflowTypeConfig, ...],
    task_lists: dict[str, TaskListConfig],
    activity_names: set[str],
    report: Report,
) -> None:
    for workflow in workflow_types:
        prefix = f'workflow_types["{workflow.name}"]'
        problem = swf_name_problem(workflow.name)
        if problem:
            report(f"{prefix}.name", workflow.name, f"{problem}. Rename the workflow type.")
        problem = swf_name_problem(workflow.version, MAX_VERSION_LENGTH)
        if problem:
            report(f"{prefix}.version", workflow.version, f'{problem}. Use a version such as "1".')
        _check_task_list(report, f"{prefix}.task_list", workflow.task_list, "decision", task_lists)
        if not workflow.steps:
            report(f"{prefix}.steps", workflow.steps, "needs at least one activity type name.")
        for index, step in enumerate(workflow.steps):
            if step not in activity_names:
                known = ", ".join(f'"{name}"' for name in sorted(activity_names)) or "none"
                report(
                    f"{prefix}.steps[{index}]",
                    step,
                    f"names no configured activity type. Add an [[activity_types]] entry or use one of: {known}.",
                )
            elif step not in HANDLERS:
                # This manager runs every configured activity task list, so its workers need the handler.
                report(
                    f"{prefix}.steps[{index}]",
                    step,
                    "has no handler in workers.activities.HANDLERS, so every task would fail. Add a handler "
                    f"or use one of: {', '.join(sorted(HANDLERS))}.",
                )
        if not 1 <= workflow.execution_start_to_close_timeout <= MAX_EXECUTION_SECONDS:
            report(
                f"{prefix}.execution_start_to_close_timeout",
                workflow.execution_start_to_close_timeout,
                f"SWF accepts 1 to {MAX_EXECUTION_SECONDS} seconds (one year). Set a value in that range.",
            )
        _positive(report, f"{prefix}.task_start_to_close_timeout", workflow.task_start_to_close_timeout)
        if not 100 <= workflow.continue_as_new_after_events < MAX_HISTORY_EVENTS:
            report(
                f"{prefix}.continue_as_new_after_events",
                workflow.continue_as_new_after_events,
                f"must be from 100 to {MAX_HISTORY_EVENTS - 1}: SWF terminates an execution at "
                f"{MAX_HISTORY_EVENTS} events.",
            )


def _validate_scaling(config: Config, report: Report) -> None:
    scaling = config.scaling
    _positive(report, "scaling.sample_interval", scaling.sample_interval)
    if not 0 < scaling.cpu_target_percent <= 100:
        report("scaling.cpu_target_percent", scaling.cpu_target_percent, "must be above 0 and at most 100.")
    if not scaling.cpu_target_percent < scaling.cpu_high_percent <= 100:
        report(
            "scaling.cpu_high_percent",
            scaling.cpu_high_percent,
            f"must be above cpu_target_percent ({scaling.cpu_target_percent}) and at most 100.",
        )
    _not_negative(report, "scaling.memory_floor_mb", scaling.memory_floor_mb, "MB")
    _not_negative(report, "scaling.scale_down_delay", scaling.scale_down_delay)
    _not_negative(report, "scaling.cooldown", scaling.cooldown)


def _validate_supervision(config: Config, report: Report) -> None:
    supervision = config.supervision
    _positive(report, "supervision.drain_timeout", supervision.drain_timeout)
    _positive(report, "supervision.kill_grace", supervision.kill_grace)
    _not_negative(report, "supervision.crash_window", supervision.crash_window)
    _positive(report, "supervision.backoff_initial", supervision.backoff_initial)
    if supervision.backoff_max < supervision.backoff_initial:
        report(
            "supervision.backoff_max",
            supervision.backoff_max,
            f"is below backoff_initial ({supervision.backoff_initial}). Raise it to at least that.",
        )
    _not_negative(report, "supervision.idle_margin", supervision.idle_margin)
    _not_negative(report, "supervision.busy_grace", supervision.busy_grace)


def _check_env_name(report: Report, key: str, name: str | None) -> None:
    if name is not None and not _ENV_NAME.match(name):
        report(key, name, "is not an environment variable name. Use letters, digits and underscores, "
               'such as "MIXPANEL_TOKEN". Put the secret itself in that variable, never in this file.')


def _validate_outputs(config: Config, report: Report) -> None:
    root = config.storage.root
    if not root:
        report("storage.root", root, 'must not be empty. Use a folder or "s3://bucket/prefix".')
    elif root.startswith("s3://") and not urlparse(root).netloc:
        report("storage.root", root, 'names no bucket. Use "s3://bucket/prefix".')

    video = config.video
    _positive(report, "video.sample_fps", video.sample_fps, "frames per second")
    if video.max_frame_side < 64:
        report("video.max_frame_side", video.max_frame_side, "must be at least 64 pixels.")
    # MTCNN's smallest window is 12 pixels, so it cannot find smaller faces.
    if not 12 <= video.min_face_size < video.max_frame_side:
        report(
            "video.min_face_size",
            video.min_face_size,
            f"must be at least 12 pixels (the face detector's smallest window) and below max_frame_side ({video.max_frame_side}).",
        )
    _positive(report, "video.cluster_distance", video.cluster_distance, "")
    _positive(report, "video.gallery_match_distance", video.gallery_match_distance, "")

    logging_config = config.logging
    if logging_config.level.upper() not in _LOG_LEVELS:
        report("logging.level", logging_config.level, "is not a log level. Use one of: " + ", ".join(_LOG_LEVELS) + ".")
    if logging_config.syslog_facility not in logging.handlers.SysLogHandler.facility_names:
        report("logging.syslog_facility", logging_config.syslog_facility, 'is not a syslog facility, such as "local0".')
    if logging_config.output == "syslog" and logging_config.syslog_address.startswith("/"):
        if not os.path.exists(logging_config.syslog_address):
            report(
                "logging.syslog_address",
                logging_config.syslog_address,
                'not found: no syslog daemon listens there. Start rsyslog, or set output = "stderr".',
            )
    _check_env_name(report, "logging.loggly_token_env", logging_config.loggly_token_env)
    if "{token}" not in logging_config.loggly_url:
        report("logging.loggly_url", logging_config.loggly_url, 'must contain "{token}" where the token goes.')

    metrics = config.metrics
    _check_env_name(report, "metrics.mixpanel_token_env", metrics.mixpanel_token_env)
    if metrics.events_file is not None and not os.path.isdir(os.path.dirname(os.path.abspath(metrics.events_file))):
        report(
            "metrics.events_file",
            metrics.events_file,
            "is in a folder that does not exist. Create the folder or choose another file.",
        )
    if metrics.queue_size < 1:
        report("metrics.queue_size", metrics.queue_size, "must be 1 or more events.")

    webhook = config.webhook
    if webhook.url is not None:
        problem = _http_url_problem(webhook.url)
        if problem:
            report("webhook.url", webhook.url, f"{problem}. Use a URL such as \"https://app.example.com/hook\".")
    _check_env_name(report, "webhook.secret_env", webhook.secret_env)
    if webhook.attempts < 1:
        report("webhook.attempts", webhook.attempts, "must be 1 or more.")
    _positive(report, "webhook.timeout", webhook.timeout)
