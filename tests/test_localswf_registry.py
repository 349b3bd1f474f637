"""Domains, types and tags on a real localswf process, with SWF's faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localswf.testing import LocalSwfProcess, swf_client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSwfProcess]:
    path = tmp_path_factory.mktemp("registry") / "db.sqlite3"
    with LocalSwfProcess(path, max_poll_seconds=1, extra_args=["--enable-reset"]) as process:
        yield process


@pytest.fixture
def client(server: LocalSwfProcess) -> Any:
    server.reset()
    return swf_client(server.url)


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


def test_domain_register_describe_list(client: Any) -> None:
    client.register_domain(name="alpha", description="first", workflowExecutionRetentionPeriodInDays="7")
    client.register_domain(name="beta", workflowExecutionRetentionPeriodInDays="0")
    detail = client.describe_domain(name="alpha")
    assert detail["domainInfo"]["name"] == "alpha"
    assert detail["domainInfo"]["description"] == "first"
    assert detail["domainInfo"]["arn"].endswith(":/domain/alpha")
    assert detail["configuration"]["workflowExecutionRetentionPeriodInDays"] == "7"
    names = [info["name"] for info in client.list_domains(registrationStatus="REGISTERED")["domainInfos"]]
    assert names == ["alpha", "beta"]


def test_domain_paging_and_reverse(client: Any) -> None:
    for index in range(5):
        client.register_domain(name=f"d{index}", workflowExecutionRetentionPeriodInDays="1")
    first = client.list_domains(registrationStatus="REGISTERED", maximumPageSize=2)
    assert [info["name"] for info in first["domainInfos"]] == ["d0", "d1"]
    second = client.list_domains(registrationStatus="REGISTERED", maximumPageSize=2, nextPageToken=first["nextPageToken"])
    assert [info["name"] for info in second["domainInfos"]] == ["d2", "d3"]
    third = client.list_domains(registrationStatus="REGISTERED", maximumPageSize=2, nextPageToken=second["nextPageToken"])
    assert [info["name"] for info in third["domainInfos"]] == ["d4"]
    assert "nextPageToken" not in third
    reverse = client.list_domains(registrationStatus="REGISTERED", reverseOrder=True)
    assert [info["name"] for info in reverse["domainInfos"]] == ["d4", "d3", "d2", "d1", "d0"]


def test_domain_already_exists(client: Any) -> None:
    client.register_domain(name="dup", workflowExecutionRetentionPeriodInDays="1")
    with pytest.raises(ClientError) as error:
        client.register_domain(name="dup", workflowExecutionRetentionPeriodInDays="1")
    assert error_code(error) == "DomainAlreadyExistsFault"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_domain_deprecate_undeprecate(client: Any) -> None:
    client.register_domain(name="old", workflowExecutionRetentionPeriodInDays="1")
    client.deprecate_domain(name="old")
    assert client.describe_domain(name="old")["domainInfo"]["status"] == "DEPRECATED"
    assert client.list_domains(registrationStatus="REGISTERED")["domainInfos"] == []
    with pytest.raises(ClientError) as error:
        client.deprecate_domain(name="old")
    assert error_code(error) == "DomainDeprecatedFault"
    with pytest.raises(ClientError) as error:
        client.register_workflow_type(domain="old", name="W", version="1")
    assert error_code(error) == "UnknownResourceFault"
    assert "deprecated" in error.value.response["Error"]["Message"]
    client.undeprecate_domain(name="old")
    with pytest.raises(ClientError) as error:
        client.undeprecate_domain(name="old")
    assert error_code(error) == "DomainAlreadyExistsFault"


def test_domain_limit_exceeded(client: Any) -> None:
    for index in range(100):
        client.register_domain(name=f"d{index:03}", workflowExecutionRetentionPeriodInDays="1")
    with pytest.raises(ClientError) as error:
        client.register_domain(name="one-too-many", workflowExecutionRetentionPeriodInDays="1")
    assert error_code(error) == "LimitExceededFault"


@pytest.mark.parametrize("retention", ["91", "-1", "seven", "1.5"])
def test_retention_out_of_range(client: Any, retention: str) -> None:
    with pytest.raises(ClientError) as error:
        client.register_domain(name="r", workflowExecutionRetentionPeriodInDays=retention)
    assert error_code(error) == "ValidationException"
    assert repr(retention) in error.value.response["Error"]["Message"]


@pytest.mark.parametrize("name", ["a:b", "a/b", "a|b", "arn", "tab\there", "x" * 257])
def test_bad_domain_names(client: Any, name: str) -> None:
    with pytest.raises(ClientError) as error:
        client.register_domain(name=name, workflowExecutionRetentionPeriodInDays="1")
    assert error_code(error) == "ValidationException"


def test_unknown_domain(client: Any) -> None:
    with pytest.raises(ClientError) as error:
        client.describe_domain(name="missing")
    assert error_code(error) == "UnknownResourceFault"
    assert "missing" in error.value.response["Error"]["Message"]


def test_workflow_type_lifecycle(client: Any) -> None:
    client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
    client.register_workflow_type(
        domain="d", name="W", version="1", description="wf", defaultTaskList={"name": "tl"},
        defaultTaskStartToCloseTimeout="30", defaultExecutionStartToCloseTimeout="3600", defaultChildPolicy="ABANDON",
        defaultTaskPriority="5",
    )
    detail = client.describe_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    assert detail["typeInfo"]["status"] == "REGISTERED"
    assert detail["typeInfo"]["description"] == "wf"
    assert detail["configuration"] == {
        "defaultTaskStartToCloseTimeout": "30", "defaultExecutionStartToCloseTimeout": "3600",
        "defaultTaskList": {"name": "tl"}, "defaultTaskPriority": "5", "defaultChildPolicy": "ABANDON",
    }
    with pytest.raises(ClientError) as error:
        client.register_workflow_type(domain="d", name="W", version="1")
    assert error_code(error) == "TypeAlreadyExistsFault"
    with pytest.raises(ClientError) as error:
        client.delete_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    assert error_code(error) == "TypeNotDeprecatedFault"
    client.deprecate_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    deprecated = client.describe_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})["typeInfo"]
    assert deprecated["status"] == "DEPRECATED"
    assert "deprecationDate" in deprecated
    with pytest.raises(ClientError) as error:
        client.deprecate_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    assert error_code(error) == "TypeDeprecatedFault"
    with pytest.raises(ClientError) as error:
        client.start_workflow_execution(domain="d", workflowId="x", workflowType={"name": "W", "version": "1"})
    assert error_code(error) == "TypeDeprecatedFault"
    client.undeprecate_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    with pytest.raises(ClientError) as error:
        client.undeprecate_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    assert error_code(error) == "TypeAlreadyExistsFault"
    client.deprecate_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    client.delete_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    with pytest.raises(ClientError) as error:
        client.describe_workflow_type(domain="d", workflowType={"name": "W", "version": "1"})
    assert error_code(error) == "UnknownResourceFault"


def test_activity_types_list_filter_paging(client: Any) -> None:
    client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
    for name, version in [("B", "1"), ("A", "2"), ("A", "1"), ("C", "1")]:
        client.register_activity_type(domain="d", name=name, version=version, defaultTaskHeartbeatTimeout="NONE")
    client.deprecate_activity_type(domain="d", activityType={"name": "C", "version": "1"})
    first = client.list_activity_types(domain="d", registrationStatus="REGISTERED", maximumPageSize=2)
    assert [(t["activityType"]["name"], t["activityType"]["version"]) for t in first["typeInfos"]] == [("A", "1"), ("A", "2")]
    rest = client.list_activity_types(domain="d", registrationStatus="REGISTERED", maximumPageSize=2, nextPageToken=first["nextPageToken"])
    assert [t["activityType"]["name"] for t in rest["typeInfos"]] == ["B"]
    only_a = client.list_activity_types(domain="d", registrationStatus="REGISTERED", name="A", reverseOrder=True)
    assert [t["activityType"]["version"] for t in only_a["typeInfos"]] == ["2", "1"]
    deprecated = client.list_activity_types(domain="d", registrationStatus="DEPRECATED")
    assert [t["activityType"]["name"] for t in deprecated["typeInfos"]] == ["C"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("defaultTaskStartToCloseTimeout", "ten"),
        ("defaultTaskStartToCloseTimeout", "-5"),
        ("defaultExecutionStartToCloseTimeout", "NONE"),
        ("defaultChildPolicy", "KILL"),
        ("defaultTaskPriority", "high"),
    ],
)
def test_bad_workflow_type_defaults(client: Any, field: str, value: str) -> None:
    client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1")
    with pytest.raises(ClientError) as error:
        client.register_workflow_type(domain="d", name="W", version="1", **{field: value})
    assert error_code(error) == "ValidationException"
    assert field in error.value.response["Error"]["Message"]


def test_domain_tags(client: Any) -> None:
    client.register_domain(name="d", workflowExecutionRetentionPeriodInDays="1", tags=[{"key": "team", "value": "video"}])
    arn = client.describe_domain(name="d")["domainInfo"]["arn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "video"}]
    client.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "test"}])
    client.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "test"}]
    with pytest.raises(ClientError) as error:
        client.tag_resource(resourceArn=arn, tags=[{"key": f"k{index}"} for index in range(50)])
    assert error_code(error) == "TooManyTagsFault"
    with pytest.raises(ClientError) as error:
        client.list_tags_for_resource(resourceArn=arn + "-missing")
    assert error_code(error) == "UnknownResourceFault"
