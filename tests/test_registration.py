"""Registration of the domain and types against the real localswf endpoint over HTTP."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from manager.registration import RegistrationError, register_all, register_in_child
from workers.client import make_swf_client
from workers.config import Config
from workers.config_loader import default_config


def small_config() -> Config:
    """The built-in configuration with a domain of its own and a 3-day retention."""
    config = default_config()
    return dataclasses.replace(config, swf=dataclasses.replace(config.swf, domain="registration-test", retention_days=3))


def replace_activity(config: Config, name: str, **changes: object) -> Config:
    activity_types = tuple(
        dataclasses.replace(activity, **changes) if activity.name == name else activity
        for activity in config.activity_types
    )
    return dataclasses.replace(config, activity_types=activity_types)


def test_missing_registered_exactly(localswf) -> None:
    config = small_config()
    client = make_swf_client(config, localswf.url)
    report = register_all(client, config)

    assert "domain registration-test" in report.registered
    domain = client.describe_domain(name="registration-test")
    assert domain["configuration"]["workflowExecutionRetentionPeriodInDays"] == "3"
    assert domain["domainInfo"]["description"] == config.swf.domain_description

    for activity in config.activity_types:
        described = client.describe_activity_type(
            domain="registration-test", activityType={"name": activity.name, "version": activity.version}
        )
        registered = described["configuration"]
        assert registered["defaultTaskList"] == {"name": activity.task_list}
        assert registered["defaultTaskScheduleToStartTimeout"] == str(activity.schedule_to_start_timeout)
        assert registered["defaultTaskStartToCloseTimeout"] == str(activity.start_to_close_timeout)
        assert registered["defaultTaskScheduleToCloseTimeout"] == str(activity.schedule_to_close_timeout)
        assert registered["defaultTaskHeartbeatTimeout"] == str(activity.heartbeat_timeout)
        assert described["typeInfo"]["description"] == activity.description

    for workflow in config.workflow_types:
        described = client.describe_workflow_type(
            domain="registration-test", workflowType={"name": workflow.name, "version": workflow.version}
        )
        registered = described["configuration"]
        assert registered["defaultTaskList"] == {"name": workflow.task_list}
        assert registered["defaultExecutionStartToCloseTimeout"] == str(workflow.execution_start_to_close_timeout)
        assert registered["defaultTaskStartToCloseTimeout"] == str(workflow.task_start_to_close_timeout)
        assert registered["defaultChildPolicy"] == workflow.child_policy

    expected_types = len(config.activity_types) + len(config.workflow_types)
    assert len(report.registered) == 1 + expected_types
    assert report.differences == []


def test_second_run_registers_nothing(localswf) -> None:
    config = small_config()
    client = make_swf_client(config, localswf.url)
    register_all(client, config)
    report = register_all(client, config)
    assert report.registered == []
    assert report.differences == []


def test_different_values_warn_each_field(localswf, caplog: pytest.LogCaptureFixture) -> None:
    config = small_config()
    client = make_swf_client(config, localswf.url)
    register_all(client, config)

    changed = replace_activity(config, "FaceDetect", heartbeat_timeout=45, task_list="diagnostic-activities")
    changed = dataclasses.replace(changed, swf=dataclasses.replace(changed.swf, retention_days=5))
    with caplog.at_level(logging.WARNING, logger="manager.registration"):
        report = register_all(client, changed)

    fields = sorted((difference.name, difference.field) for difference in report.differences)
    assert fields == [
        ("FaceDetect", "defaultTaskHeartbeatTimeout"),
        ("FaceDetect", "defaultTaskList"),
        ("registration-test", "workflowExecutionRetentionPeriodInDays"),
    ]
    face_detect = [record.getMessage() for record in caplog.records if "FaceDetect" in record.getMessage()]
    assert len(face_detect) == 1
    assert "defaultTaskHeartbeatTimeout is registered as '60' but heartbeat_timeout is configured as '45'" in face_detect[0]
    assert "defaultTaskList is registered as 'video-activities' but task_list is configured as" in face_detect[0]
    assert "new version" in face_detect[0]
    domain_warnings = [record.getMessage() for record in caplog.records if "retention_days" in record.getMessage()]
    assert len(domain_warnings) == 1
    # A registered type never changes, so SWF still contains the first values.
    described = client.describe_activity_type(
        domain="registration-test", activityType={"name": "FaceDetect", "version": "1"}
    )
    assert described["configuration"]["defaultTaskHeartbeatTimeout"] == "60"


def test_new_version_registered(localswf) -> None:
    config = small_config()
    client = make_swf_client(config, localswf.url)
    register_all(client, config)
    changed = replace_activity(config, "FaceDetect", version="2", heartbeat_timeout=45)
    report = register_all(client, changed)
    assert report.registered == ["activity type FaceDetect 2"]
    assert report.differences == []


def test_deprecated_domain_rejected(localswf) -> None:
    config = small_config()
    client = make_swf_client(config, localswf.url)
    register_all(client, config)
    client.deprecate_domain(name="registration-test")
    with pytest.raises(RegistrationError, match="registration-test.*deprecated"):
        register_all(client, config)


def test_in_child_registers(localswf) -> None:
    config = small_config()
    register_in_child(config, localswf.url)
    client = make_swf_client(config, localswf.url)
    assert client.describe_domain(name="registration-test")["domainInfo"]["status"] == "REGISTERED"


def test_in_child_failure_raises(localswf) -> None:
    config = small_config()
    register_in_child(config, localswf.url)
    make_swf_client(config, localswf.url).deprecate_domain(name="registration-test")
    with pytest.raises(RegistrationError, match="child exit code 1"):
        register_in_child(config, localswf.url)
