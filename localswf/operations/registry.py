"""Domains, workflow types, activity types and resource tags."""

from __future__ import annotations

import json
from typing import Any

from localswf import validate as v
from localswf.engine import Context
from localswf.errors import (
    DomainAlreadyExistsFault,
    DomainDeprecatedFault,
    LimitExceededFault,
    TooManyTagsFault,
    TypeAlreadyExistsFault,
    TypeDeprecatedFault,
    TypeNotDeprecatedFault,
    UnknownResourceFault,
    ValidationException,
)
from localswf.model import domain_arn
from localswf.operations.paging import next_token, page, read_token

MAX_DOMAINS = 100  # SWF's limit of registered domains per account and region
MAX_RESOURCE_TAGS = 50

WORKFLOW_DEFAULTS = (
    "defaultTaskStartToCloseTimeout", "defaultExecutionStartToCloseTimeout", "defaultTaskList",
    "defaultTaskPriority", "defaultChildPolicy", "defaultLambdaRole",
)
ACTIVITY_DEFAULTS = (
    "defaultTaskStartToCloseTimeout", "defaultTaskHeartbeatTimeout", "defaultTaskList", "defaultTaskPriority",
    "defaultTaskScheduleToStartTimeout", "defaultTaskScheduleToCloseTimeout",
)


def domain_row(ctx: Context, name: str) -> Any:
    row = ctx.one("SELECT * FROM domains WHERE name = ?", (name,))
    if row is None:
        raise UnknownResourceFault(f"Unknown domain: {name}; register it with RegisterDomain first")
    return row


def registered_domain(ctx: Context, name: str) -> Any:
    row = domain_row(ctx, name)
    if row["status"] != "REGISTERED":
        # SWF models no DomainDeprecatedFault for RegisterWorkflowType, StartWorkflowExecution and the like.
        raise UnknownResourceFault(f"Domain {name} is deprecated; undeprecate it with UndeprecateDomain to use it")
    return row


def domain_info(row: Any) -> dict[str, Any]:
    info = {"name": row["name"], "status": row["status"], "arn": domain_arn(row["name"])}
    if row["description"]:
        info["description"] = row["description"]
    return info


# --- domains ------------------------------------------------------------------------------------

def check_resource_tags(tags: Any) -> list[tuple[str, str | None]]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise ValidationException("Invalid tags: use a list of {\"key\": ..., \"value\": ...}")
    checked = []
    for tag in tags:
        if not isinstance(tag, dict):
            raise ValidationException(f"Invalid tag {tag!r}: use {{\"key\": ..., \"value\": ...}}")
        key = v.text(tag.get("key"), "tags.key", 128, min_len=1, optional=False)
        value = v.text(tag.get("value"), "tags.value", 256)
        checked.append((key, value))
    return checked


def register_domain(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    name = v.name(params.get("name"), "name")
    description = v.text(params.get("description"), "description", v.MAX_DESCRIPTION)
    retention = v.retention_days(v.require(params, "workflowExecutionRetentionPeriodInDays"))
    tags = check_resource_tags(params.get("tags"))
    if len(tags) > MAX_RESOURCE_TAGS:
        raise TooManyTagsFault(f"{len(tags)} tags given; a domain takes at most {MAX_RESOURCE_TAGS}")

    def action(ctx: Context) -> dict[str, Any]:
        if ctx.one("SELECT 1 FROM domains WHERE name = ?", (name,)):
            raise DomainAlreadyExistsFault(f"Domain {name} already exists")
        count = ctx.one("SELECT COUNT(*) AS n FROM domains WHERE status = 'REGISTERED'")["n"]
        if count >= MAX_DOMAINS:
            raise LimitExceededFault(f"{count} domains are registered, the limit is {MAX_DOMAINS}; deprecate one first")
        ctx.execute(
            "INSERT INTO domains (name, description, retention_days, status, created) VALUES (?, ?, ?, 'REGISTERED', ?)",
            (name, description, retention, ctx.now),
        )
        for key, value in tags:
            ctx.execute("INSERT OR REPLACE INTO resource_tags (arn, key, value) VALUES (?, ?, ?)", (domain_arn(name), key, value))
        return {}

    return service.write(action)


def describe_domain(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    name = v.name(params.get("name"), "name")

    def action(ctx: Context) -> dict[str, Any]:
        row = domain_row(ctx, name)
        return {"domainInfo": domain_info(row), "configuration": {"workflowExecutionRetentionPeriodInDays": row["retention_days"]}}

    return service.read(action)


def list_domains(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    status = v.registration_status(params.get("registrationStatus"))
    size = v.page_size(params.get("maximumPageSize"))
    after = read_token(params.get("nextPageToken"), "domains")
    reverse = bool(params.get("reverseOrder"))

    def action(ctx: Context) -> dict[str, Any]:
        comparison, order = ("<", "DESC") if reverse else (">", "ASC")
        sql = "SELECT * FROM domains WHERE status = ?"
        args: list[Any] = [status]
        if after is not None:
            sql += f" AND name {comparison} ?"
            args.append(after)
        rows = ctx.execute(sql + f" ORDER BY name {order} LIMIT ?", (*args, size + 1)).fetchall()
        rows, more = page(rows, size)
        reply: dict[str, Any] = {"domainInfos": [domain_info(row) for row in rows]}
        if more:
            reply["nextPageToken"] = next_token("domains", rows[-1]["name"])
        return reply

    return service.read(action)


def set_domain_status(deprecate: bool) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        name = v.name(params.get("name"), "name")

        def action(ctx: Context) -> dict[str, Any]:
            row = domain_row(ctx, name)
            if deprecate and row["status"] == "DEPRECATED":
                raise DomainDeprecatedFault(f"Domain {name} is already deprecated")
            if not deprecate and row["status"] == "REGISTERED":
                raise DomainAlreadyExistsFault(f"Domain {name} is not deprecated")
            ctx.execute("UPDATE domains SET status = ? WHERE name = ?", ("DEPRECATED" if deprecate else "REGISTERED", name))
            return {}

        return service.write(action)

    return handler


# --- tags ---------------------------------------------------------------------------------------

def domain_for_arn(ctx: Context, arn: Any) -> str:
    prefix = domain_arn("")
    if not isinstance(arn, str) or not arn.startswith(prefix):
        raise UnknownResourceFault(f"Unknown resource {arn!r}: only domain ARNs ({prefix}<name>) take tags")
    name = arn[len(prefix):]
    domain_row(ctx, name)
    return name


def list_tags_for_resource(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    arn = v.require(params, "resourceArn")

    def action(ctx: Context) -> dict[str, Any]:
        domain_for_arn(ctx, arn)
        rows = ctx.execute("SELECT key, value FROM resource_tags WHERE arn = ? ORDER BY key", (arn,)).fetchall()
        tags = []
        for row in rows:
            tag = {"key": row["key"]}
            if row["value"] is not None:
                tag["value"] = row["value"]
            tags.append(tag)
        return {"tags": tags}

    return service.read(action)


def tag_resource(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    arn = v.require(params, "resourceArn")
    tags = check_resource_tags(v.require(params, "tags"))

    def action(ctx: Context) -> dict[str, Any]:
        domain_for_arn(ctx, arn)
        existing = {row["key"] for row in ctx.execute("SELECT key FROM resource_tags WHERE arn = ?", (arn,))}
        if len(existing | {key for key, _ in tags}) > MAX_RESOURCE_TAGS:
            raise TooManyTagsFault(f"a domain takes at most {MAX_RESOURCE_TAGS} tags; remove some with UntagResource")
        for key, value in tags:
            ctx.execute("INSERT OR REPLACE INTO resource_tags (arn, key, value) VALUES (?, ?, ?)", (arn, key, value))
        return {}

    return service.write(action)


def untag_resource(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    arn = v.require(params, "resourceArn")
    keys = v.require(params, "tagKeys")
    if not isinstance(keys, list):
        raise ValidationException("Invalid tagKeys: use a list of tag keys")

    def action(ctx: Context) -> dict[str, Any]:
        domain_for_arn(ctx, arn)
        for key in keys:
            ctx.execute("DELETE FROM resource_tags WHERE arn = ? AND key = ?", (arn, key))
        return {}

    return service.write(action)


# --- types --------------------------------------------------------------------------------------

KIND_KEYS = {"workflow": ("workflowType", WORKFLOW_DEFAULTS), "activity": ("activityType", ACTIVITY_DEFAULTS)}
KIND_LABELS = {"workflow": "workflow type", "activity": "activity type"}


def check_type_defaults(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key in KIND_KEYS[kind][1]:
        value = params.get(key)
        if value is None:
            continue
        if key == "defaultTaskList":
            value = {"name": v.task_list(value, key)}
        elif key == "defaultTaskPriority":
            value = v.priority(value, key)
        elif key == "defaultChildPolicy":
            value = v.child_policy(value, key)
        elif key == "defaultLambdaRole":
            value = v.text(value, key, 1600)
        elif key == "defaultExecutionStartToCloseTimeout":
            value = v.timeout(value, key, allow_none=False)
        else:
            value = v.timeout(value, key)
        config[key] = value
    return config


def type_row(ctx: Context, kind: str, domain: str, type_name: str, type_version: str) -> Any:
    row = ctx.one(
        "SELECT * FROM types WHERE kind = ? AND domain = ? AND name = ? AND version = ?", (kind, domain, type_name, type_version)
    )
    if row is None:
        raise UnknownResourceFault(f"Unknown {KIND_LABELS[kind]}: name={type_name} version={type_version} in domain {domain}")
    return row


def type_info(kind: str, row: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        KIND_KEYS[kind][0]: {"name": row["name"], "version": row["version"]},
        "status": row["status"],
        "creationDate": row["created"],
    }
    if row["description"]:
        info["description"] = row["description"]
    if row["deprecated"] is not None:
        info["deprecationDate"] = row["deprecated"]
    return info


def register_type(kind: str) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        domain = v.name(params.get("domain"), "domain")
        type_name = v.name(params.get("name"), "name")
        type_version = v.version(params.get("version"), "version")
        description = v.text(params.get("description"), "description", v.MAX_DESCRIPTION)
        config = check_type_defaults(kind, params)

        def action(ctx: Context) -> dict[str, Any]:
            registered_domain(ctx, domain)
            if ctx.one(
                "SELECT 1 FROM types WHERE kind = ? AND domain = ? AND name = ? AND version = ?", (kind, domain, type_name, type_version)
            ):
                raise TypeAlreadyExistsFault(
                    f"{KIND_LABELS[kind].capitalize()} name={type_name} version={type_version} already exists in domain {domain}"
                )
            ctx.execute(
                "INSERT INTO types (kind, domain, name, version, status, description, created, config) "
                "VALUES (?, ?, ?, ?, 'REGISTERED', ?, ?, ?)",
                (kind, domain, type_name, type_version, description, ctx.now, json.dumps(config)),
            )
            return {}

        return service.write(action)

    return handler


def type_params(kind: str, params: dict[str, Any]) -> tuple[str, str, str]:
    domain = v.name(params.get("domain"), "domain")
    type_name, type_version = v.type_ref(params.get(KIND_KEYS[kind][0]), KIND_KEYS[kind][0])
    return domain, type_name, type_version  # type: ignore[return-value]


def describe_type(kind: str) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        domain, type_name, type_version = type_params(kind, params)

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, domain)
            row = type_row(ctx, kind, domain, type_name, type_version)
            return {"typeInfo": type_info(kind, row), "configuration": json.loads(row["config"])}

        return service.read(action)

    return handler


def list_types(kind: str) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        domain = v.name(params.get("domain"), "domain")
        name_filter = v.name(params.get("name"), "name", optional=True)
        status = v.registration_status(params.get("registrationStatus"))
        size = v.page_size(params.get("maximumPageSize"))
        after = read_token(params.get("nextPageToken"), kind + "_types")
        reverse = bool(params.get("reverseOrder"))

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, domain)
            comparison, order = ("<", "DESC") if reverse else (">", "ASC")
            sql = "SELECT * FROM types WHERE kind = ? AND domain = ? AND status = ?"
            args: list[Any] = [kind, domain, status]
            if name_filter is not None:
                sql += " AND name = ?"
                args.append(name_filter)
            if after is not None:
                sql += f" AND (name, version) {comparison} (?, ?)"
                args.extend(after)
            rows = ctx.execute(sql + f" ORDER BY name {order}, version {order} LIMIT ?", (*args, size + 1)).fetchall()
            rows, more = page(rows, size)
            reply: dict[str, Any] = {"typeInfos": [type_info(kind, row) for row in rows]}
            if more:
                reply["nextPageToken"] = next_token(kind + "_types", [rows[-1]["name"], rows[-1]["version"]])
            return reply

        return service.read(action)

    return handler


def set_type_status(kind: str, deprecate: bool) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        domain, type_name, type_version = type_params(kind, params)
        label = f"{KIND_LABELS[kind].capitalize()} name={type_name} version={type_version}"

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, domain)
            row = type_row(ctx, kind, domain, type_name, type_version)
            if deprecate and row["status"] == "DEPRECATED":
                raise TypeDeprecatedFault(f"{label} is already deprecated")
            if not deprecate and row["status"] == "REGISTERED":
                raise TypeAlreadyExistsFault(f"{label} is not deprecated")
            ctx.execute(
                "UPDATE types SET status = ?, deprecated = ? WHERE kind = ? AND domain = ? AND name = ? AND version = ?",
                ("DEPRECATED" if deprecate else "REGISTERED", ctx.now if deprecate else None, kind, domain, type_name, type_version),
            )
            return {}

        return service.write(action)

    return handler


def delete_type(kind: str) -> Any:
    def handler(service: Any, params: dict[str, Any]) -> dict[str, Any]:
        domain, type_name, type_version = type_params(kind, params)

        def action(ctx: Context) -> dict[str, Any]:
            domain_row(ctx, domain)
            row = type_row(ctx, kind, domain, type_name, type_version)
            if row["status"] != "DEPRECATED":
                raise TypeNotDeprecatedFault(
                    f"{KIND_LABELS[kind].capitalize()} name={type_name} version={type_version} is not deprecated; deprecate it before deleting it"
                )
            ctx.execute(
                "DELETE FROM types WHERE kind = ? AND domain = ? AND name = ? AND version = ?", (kind, domain, type_name, type_version)
            )
            return {}

        return service.write(action)

    return handler


OPERATIONS = {
    "RegisterDomain": register_domain,
    "DescribeDomain": describe_domain,
    "ListDomains": list_domains,
    "DeprecateDomain": set_domain_status(True),
    "UndeprecateDomain": set_domain_status(False),
    "ListTagsForResource": list_tags_for_resource,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "RegisterWorkflowType": register_type("workflow"),
    "RegisterActivityType": register_type("activity"),
    "DescribeWorkflowType": describe_type("workflow"),
    "DescribeActivityType": describe_type("activity"),
    "ListWorkflowTypes": list_types("workflow"),
    "ListActivityTypes": list_types("activity"),
    "DeprecateWorkflowType": set_type_status("workflow", True),
    "DeprecateActivityType": set_type_status("activity", True),
    "UndeprecateWorkflowType": set_type_status("workflow", False),
    "UndeprecateActivityType": set_type_status("activity", False),
    "DeleteWorkflowType": delete_type("workflow"),
    "DeleteActivityType": delete_type("activity"),
}
