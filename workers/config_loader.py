"""Load, merge and validate the manager's TOML configuration.

The file mirrors ``workers.config.Config``: one table per section (``[swf]``,
``[client]``, ``[scaling]``, ...), a top-level ``state_dir``, and the arrays of tables
``[[task_lists]]``, ``[[activity_types]]`` and ``[[workflow_types]]``. Entries of those
arrays are merged by ``name`` with the built-in pipeline, so a file can change one field
of a built-in entry or add new entries. ``builtin_pipeline = false`` drops the built-in
entries, and then the file must define every task list and type it uses.

In a file, a missing ``swf.endpoint_url`` means real SWF in ``swf.region``. Only the
built-in defaults, used when there is no file, start the embedded endpoint.

Every problem is collected, and ``ConfigError`` lists them all. Each line names the key,
the value and the fix. ``examples/manager.toml`` documents every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.config import (
    ActivityTypeConfig,
    ClientConfig,
    Config,
    LoggingConfig,
    MetricsConfig,
    ScalingConfig,
    StorageConfig,
    SupervisionConfig,
    SwfConfig,
    TaskListConfig,
    VideoConfig,
    WebhookConfig,
    WorkflowTypeConfig,
)
from workers.config_defaults import builtin_pipeline
from workers.config_validation import validate_config

DEFAULT_CONFIG_PATH = Path("/etc/swf-manager/manager.toml")

# Value of swf.endpoint_url (in a file or --endpoint-url) that selects real SWF.
REAL_SWF = "aws"

SECTIONS: dict[str, type] = {
    "swf": SwfConfig,
    "client": ClientConfig,
    "scaling": ScalingConfig,
    "supervision": SupervisionConfig,
    "storage": StorageConfig,
    "video": VideoConfig,
    "logging": LoggingConfig,
    "metrics": MetricsConfig,
    "webhook": WebhookConfig,
}
ENTRY_ARRAYS: dict[str, type] = {
    "task_lists": TaskListConfig,
    "activity_types": ActivityTypeConfig,
    "workflow_types": WorkflowTypeConfig,
}
TOP_LEVEL_KEYS = {*SECTIONS, *ENTRY_ARRAYS, "state_dir", "builtin_pipeline"}

# Override key that sets max_processes of every activity task list (``--workers N``).
WORKERS_OVERRIDE = "workers"


class ConfigError(Exception):
    """Invalid configuration. ``problems`` contains one line per invalid key."""

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid {source}:\n{lines}")


class _Problems:
    """Collects problems and marks the keys that came from the command line."""

    def __init__(self, overridden: set[str]) -> None:
        self.items: list[str] = []
        self.overridden = overridden

    def add(self, key: str, value: Any, message: str) -> None:
        origin = " (from the command line)" if key in self.overridden else ""
        self.items.append(f"{key} = {_show(value)}{origin}: {message}")

    def missing(self, key: str, fix: str) -> None:
        self.items.append(f"{key} is missing: {fix}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Path):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def default_config() -> Config:
    """Return the built-in configuration: the embedded endpoint and the built-in pipeline."""
    task_lists, activity_types, workflow_types = builtin_pipeline()
    return Config(task_lists=task_lists, activity_types=activity_types, workflow_types=workflow_types)


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read ``path`` (or the default file, or the built-in defaults), apply ``overrides``, validate.

    ``overrides`` maps dotted keys such as ``"supervision.drain_timeout"`` to values, plus
    ``"workers"``, which sets max_processes of every activity task list. They win over
    the file. Raises ``ConfigError`` listing every invalid key: type errors and unknown keys
    first, and range and cross-key checks only once those pass.
    """
    overrides = dict(overrides or {})
    raw: dict[str, Any]
    from_file = False
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is None:
        raw = {}
        source = "built-in configuration"
    else:
        raw = _read_toml(path)
        from_file = True
        source = f"configuration file {path}"
    if overrides:
        source += " with command-line flags"

    workers = overrides.pop(WORKERS_OVERRIDE, None)
    overridden = set(overrides)
    if workers is not None:
        overridden.add("--workers")
    problems = _Problems(overridden)
    _apply_overrides(raw, overrides, problems)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        problems.add("--workers", workers, "must be a whole number of at least 1. Pass --workers 1 or more.")
        workers = None
    config = _build_config(raw, from_file, problems)
    if config is not None and workers is not None:
        config = _apply_workers(config, workers)
    if config is not None:
        validate_config(config, problems.add)
    if problems.items:
        raise ConfigError(problems.items, source)
    assert config is not None
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError([f'--config "{path}": file not found. Pass an existing file, or omit --config.']) from None
    except IsADirectoryError:
        raise ConfigError([f'--config "{path}": is a directory. Pass the path of a TOML file.']) from None
    except PermissionError:
        raise ConfigError([f'--config "{path}": permission denied. Make the file readable by this user.']) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: invalid TOML: {error}. Fix the syntax at that line."]) from None


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], problems: _Problems) -> None:
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in SECTIONS):
            problems.add(key, value, "cannot be set from the command line. Set it in the configuration file.")
            continue
        table = raw
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                break
        else:
            table[parts[-1]] = value


def _apply_workers(config: Config, workers: int) -> Config:
    task_lists = tuple(
        dataclasses.replace(task_list, max_processes=workers, min_processes=min(task_list.min_processes, workers))
        if task_list.kind == "activity"
        else task_list
        for task_list in config.task_lists
    )
    return dataclasses.replace(config, task_lists=task_lists)


def _build_config(raw: dict[str, Any], from_file: bool, problems: _Problems) -> Config | None:
    _check_unknown(raw, TOP_LEVEL_KEYS, "", problems)
    fields: dict[str, Any] = {}

    for section, cls in SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            problems.add(section, table, f"must be a table. Write it as [{section}] followed by its keys.")
            table = {}
        base = cls()
        if section == "swf" and from_file:
            # A file that names no endpoint talks to real SWF.
            base = dataclasses.replace(base, endpoint_url=None)
        fields[section] = _build_dataclass(cls, table, section, problems, base)

    swf = fields["swf"]
    if swf is not _INVALID and swf.endpoint_url == REAL_SWF:
        fields["swf"] = dataclasses.replace(swf, endpoint_url=None)
    logging_config = fields["logging"]
    if logging_config is not _INVALID:
        fields["logging"] = dataclasses.replace(logging_config, level=logging_config.level.upper())

    use_builtin = raw.get("builtin_pipeline", True)
    if not isinstance(use_builtin, bool):
        problems.add("builtin_pipeline", use_builtin, "must be true or false.")
        use_builtin = True
    builtin = builtin_pipeline() if use_builtin else ((), (), ())
    for (array, cls), builtin_entries in zip(ENTRY_ARRAYS.items(), builtin, strict=True):
        fields[array] = _build_entries(cls, raw.get(array, []), array, builtin_entries, problems)

    state_dir = raw.get("state_dir")
    if state_dir is not None:
        state_dir = _convert(state_dir, Path | None, "state_dir", problems)
    fields["state_dir"] = state_dir

    if any(value is _INVALID for value in fields.values()):
        return None
    return Config(**fields)


_INVALID = object()


def _check_unknown(table: Mapping[str, Any], known: set[str] | list[str], prefix: str, problems: _Problems) -> None:
    for key in table:
        if key in known:
            continue
        full_key = f"{prefix}{key}"
        suggestion = difflib.get_close_matches(key, list(known), n=1)
        if suggestion:
            fix = f'did you mean "{prefix}{suggestion[0]}"?'
        else:
            fix = "remove it. Known keys here: " + ", ".join(sorted(known)) + "."
        problems.add(full_key, table[key], f"unknown key: {fix}")


def _build_dataclass(cls: type, table: Mapping[str, Any], prefix: str, problems: _Problems, base: Any) -> Any:
    """Return ``base`` with the keys of ``table`` converted and set, or _INVALID."""
    hints = typing.get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    _check_unknown(table, names, f"{prefix}.", problems)
    changes: dict[str, Any] = {}
    valid = True
    for name in names:
        if name not in table:
            continue
        key = f"{prefix}.{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = table[name]
            if not isinstance(value, dict):
                problems.add(key, value, f"must be a table. Write it as [{prefix}.{name}] followed by its keys.")
                valid = False
                continue
            converted = _build_dataclass(hint, value, key, problems, getattr(base, name))
        else:
            converted = _convert(table[name], hint, key, problems)
        if converted is _INVALID:
            valid = False
        else:
            changes[name] = converted
    if not valid:
        return _INVALID
    return dataclasses.replace(base, **changes)


def _build_entries(cls: type, entries: Any, array: str, builtin: tuple[Any, ...], problems: _Problems) -> Any:
    if not isinstance(entries, list):
        problems.add(array, entries, f"must be an array of tables. Write each entry as [[{array}]].")
        return _INVALID
    merged: dict[str, Any] = {entry.name: entry for entry in builtin}
    required = [
        field.name
        for field in dataclasses.fields(cls)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]
    valid = True
    seen: set[str] = set()
    for index, table in enumerate(entries):
        name = table.get("name") if isinstance(table, dict) else None
        label = f'{array}["{name}"]' if isinstance(name, str) and name else f"{array}[{index}]"
        if not isinstance(table, dict):
            problems.add(label, table, f"must be a table. Write each entry as [[{array}]].")
            valid = False
            continue
        if not isinstance(name, str) or not name:
            problems.missing(f"{label}.name", f'add name = "..." to entry {index} of [[{array}]].')
            valid = False
            continue
        if name in seen:
            problems.add(f"{label}.name", name, f"is defined twice in [[{array}]]. Merge the two entries.")
            valid = False
            continue
        seen.add(name)
        base = merged.get(name)
        if base is None:
            absent = [key for key in required if key not in table]
            for key in absent:
                problems.missing(f"{label}.{key}", f"add {key} = ... to this entry; every new entry needs it.")
            if absent:
                valid = False
                continue
            base = _placeholder(cls, required)
        entry = _build_dataclass(cls, table, label, problems, base)
        if cls is ActivityTypeConfig and entry is not _INVALID:
            entry = _default_start_to_close(entry, table)
        if entry is _INVALID:
            valid = False
        else:
            merged[name] = entry
    if not valid:
        return _INVALID
    return tuple(merged.values())


def _placeholder(cls: type, required: list[str]) -> Any:
    """Build an instance of ``cls`` with empty required fields, which the entry's keys then replace."""
    hints = typing.get_type_hints(cls)
    placeholders = {name: ("" if hints[name] is str else ()) for name in required}
    return cls(**placeholders)


def _default_start_to_close(entry: ActivityTypeConfig, table: Mapping[str, Any]) -> ActivityTypeConfig:
    """Make a new entry's registered START_TO_CLOSE default its first retry slot unless set."""
    if "start_to_close_timeout" in table or "retry" not in table or not entry.retry.timeouts:
        return entry
    return dataclasses.replace(entry, start_to_close_timeout=entry.retry.timeouts[0])


def _convert(value: Any, hint: Any, key: str, problems: _Problems) -> Any:
    """Convert a TOML value to ``hint`` or record a problem and return _INVALID."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        if value is None or value == "":
            if type(None) in args:
                return None
        return _convert(value, inner[0], key, problems)

    if origin is typing.Literal:
        if isinstance(value, str) and value in args:
            return value
        choices = ", ".join(f'"{arg}"' for arg in args)
        close = difflib.get_close_matches(value, list(args), n=1) if isinstance(value, str) else []
        hint = f' Did you mean "{close[0]}"?' if close else ""
        problems.add(key, value, f"is not one of {choices}.{hint}")
        return _INVALID

    if origin is tuple:
        item_type = args[0]
        if not isinstance(value, list):
            plural = {int: "whole numbers", float: "numbers", str: "strings"}.get(item_type, "values")
            problems.add(key, value, f"must be an array of {plural}, such as [{_example(item_type)}].")
            return _INVALID
        items = [_convert(item, item_type, f"{key}[{index}]", problems) for index, item in enumerate(value)]
        if any(item is _INVALID for item in items):
            return _INVALID
        return tuple(items)

    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(os.path.expanduser(str(value)))
    else:
        raise TypeError(f"no TOML conversion for {hint!r} at {key}")

    problems.add(key, value, f"must be {_type_name(hint)}, such as {_example(hint)}.")
    return _INVALID


def _type_name(hint: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path"}.get(
        hint, str(hint)
    )


def _example(hint: Any) -> str:
    return {bool: "true", int: "10", float: "2.5", str: '"text"', Path: '"/var/lib/swf-manager"'}.get(hint, "...")
