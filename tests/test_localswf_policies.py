"""Pure policy functions of localswf, tested without a server: validation, defaults, reply-shape checks."""

from __future__ import annotations

import botocore.session
import pytest

from localswf import validate
from localswf.engine import resolve_workflow_config
from localswf.errors import ValidationException
from localswf.operations.decisions import resolve_activity
from localswf.testing import reply_shape_problems


@pytest.mark.parametrize(("value", "expected"), [("0", "0"), ("31536000", "31536000"), ("NONE", "NONE")])
def test_timeout_accepts(value: str, expected: str) -> None:
    assert validate.timeout(value, "t") == expected


@pytest.mark.parametrize("value", ["-1", "1.0", "ten", "31536001", "", " 5", 5])
def test_timeout_rejects(value: object) -> None:
    with pytest.raises(ValidationException) as error:
        validate.timeout(value, "startToCloseTimeout")
    assert "startToCloseTimeout" in error.value.message


def test_timeout_none_forbidden_where_swf_forbids() -> None:
    with pytest.raises(ValidationException):
        validate.timeout("NONE", "executionStartToCloseTimeout", allow_none=False)


def test_timeout_seconds() -> None:
    assert validate.timeout_seconds("NONE") is None
    assert validate.timeout_seconds(None) is None
    assert validate.timeout_seconds("7") == 7.0


@pytest.mark.parametrize("value", ["a:b", "a/b", "a|b", "arn", "x\u0085", "", "n" * 257])
def test_name_rejects(value: str) -> None:
    with pytest.raises(ValidationException):
        validate.name(value, "activityId")


def test_data_limit_is_32768() -> None:
    assert validate.data("x" * 32768, "input") == "x" * 32768
    with pytest.raises(ValidationException) as error:
        validate.data("x" * 32769, "input")
    assert "32768" in error.value.message


@pytest.mark.parametrize(("value", "valid"), [("0", True), ("90", True), ("91", False), ("-1", False), (7, False)])
def test_retention_days(value: object, valid: bool) -> None:
    if valid:
        assert validate.retention_days(value) == value
    else:
        with pytest.raises(ValidationException):
            validate.retention_days(value)


def test_workflow_config_request_overrides_defaults() -> None:
    defaults = {
        "defaultTaskList": {"name": "d"}, "defaultExecutionStartToCloseTimeout": "60",
        "defaultTaskStartToCloseTimeout": "10", "defaultChildPolicy": "TERMINATE", "defaultTaskPriority": "2",
    }
    config, missing = resolve_workflow_config(defaults, {"taskList": {"name": "mine"}, "childPolicy": "ABANDON"})
    assert missing is None
    assert config == {
        "taskList": {"name": "mine"}, "executionStartToCloseTimeout": "60", "taskStartToCloseTimeout": "10",
        "childPolicy": "ABANDON", "taskPriority": "2",
    }


def test_workflow_config_reports_first_missing_default() -> None:
    _config, missing = resolve_workflow_config({"defaultTaskList": {"name": "d"}}, {})
    assert missing == "DEFAULT_EXECUTION_START_TO_CLOSE_TIMEOUT_UNDEFINED"


def test_activity_defaults_and_missing_cause() -> None:
    defaults = {
        "defaultTaskList": {"name": "a"}, "defaultTaskScheduleToCloseTimeout": "30", "defaultTaskScheduleToStartTimeout": "10",
        "defaultTaskStartToCloseTimeout": "20", "defaultTaskHeartbeatTimeout": "NONE",
    }
    resolved, missing = resolve_activity({"startToCloseTimeout": "5", "taskList": "b"}, defaults)
    assert missing is None
    assert resolved["taskList"] == {"name": "b"}
    assert resolved["startToCloseTimeout"] == "5"
    assert resolved["heartbeatTimeout"] == "NONE"
    _resolved, missing = resolve_activity({}, {key: value for key, value in defaults.items() if key != "defaultTaskHeartbeatTimeout"})
    assert missing == "DEFAULT_HEARTBEAT_TIMEOUT_UNDEFINED"


def test_shape_checker_finds_problems() -> None:
    model = botocore.session.get_session().get_service_model("swf")
    shape = model.operation_model("DescribeDomain").output_shape
    good = {"domainInfo": {"name": "d", "status": "REGISTERED"}, "configuration": {"workflowExecutionRetentionPeriodInDays": "1"}}
    assert reply_shape_problems(shape, good) == []
    bad = {"domainInfo": {"name": "d", "status": "ALIVE", "color": "red"}}
    problems = reply_shape_problems(shape, bad)
    assert any("configuration" in problem and "missing" in problem for problem in problems)
    assert any("ALIVE" in problem for problem in problems)
    assert any("color" in problem for problem in problems)
