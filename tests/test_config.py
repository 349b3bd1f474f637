"""Loading, merging and overriding the TOML configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers import config_loader
from workers.config_loader import ConfigError, default_config, load_config


@pytest.fixture(autouse=True)
def _no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a real /etc/swf-manager/manager.toml out of these tests."""
    monkeypatch.setattr(config_loader, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "manager.toml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manager.toml"
    path.write_text(text)
    return path


def test_defaults_video_pipeline() -> None:
    config = default_config()
    video = config.workflow_type("VideoProcessing")
    assert video.steps == ("FaceDetect", "FaceRecognize")
    assert video.task_list == "video-decisions"
    assert config.task_list("video-decisions").kind == "decision"
    for step in video.steps:
        assert config.activity_type(step).task_list == "video-activities"
    assert config.task_list("video-activities").kind == "activity"
    assert config.swf.domain == "swf-manager"
    assert config.swf.endpoint_url == "local"


def test_defaults_diagnostic_types() -> None:
    config = default_config()
    for name in ("Noop", "Sleep", "BurnCpu", "Fail", "SpawnChild"):
        workflow = config.workflow_type(name)
        assert workflow.steps == (name,)
        assert workflow.task_list == "diagnostic-decisions"
        assert config.activity_type(name).task_list == "diagnostic-activities"
    assert config.task_list("diagnostic-activities").kind == "activity"


def test_defaults_long_slots_for_recognition() -> None:
    config = default_config()
    recognize = config.activity_type("FaceRecognize").retry.timeouts
    noop = config.activity_type("Noop").retry.timeouts
    assert max(recognize) >= 4 * 3600
    assert max(recognize) > max(noop)
    for activity in config.activity_types:
        assert activity.start_to_close_timeout == activity.retry.timeouts[0]
        assert activity.schedule_to_close_timeout >= max(activity.retry.timeouts)


def test_defaults_pass_validation() -> None:
    assert load_config(None) == default_config()


def test_file_merges_entries_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[swf]
endpoint_url = "local"

[[task_lists]]
name = "video-activities"
kind = "activity"
max_processes = 7

[[activity_types]]
name = "FaceRecognize"
version = "2"
[activity_types.retry]
timeouts = [600, 7200]
max_failures = 1
""",
    )
    config = load_config(path)
    assert config.task_list("video-activities").max_processes == 7
    assert config.task_list("video-activities").min_processes == default_config().task_list("video-activities").min_processes
    recognize = config.activity_type("FaceRecognize")
    assert recognize.version == "2"
    assert recognize.retry.timeouts == (600, 7200)
    assert recognize.retry.max_failures == 1
    # The built-in entries the file does not name are kept.
    assert config.activity_type("FaceDetect") == default_config().activity_type("FaceDetect")


def test_file_new_entry_start_to_close_from_first_slot(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[activity_types]]
name = "Transcode"
version = "1"
task_list = "video-activities"
schedule_to_close_timeout = 5000
[activity_types.retry]
timeouts = [120, 1200]
""",
    )
    assert load_config(path).activity_type("Transcode").start_to_close_timeout == 120


def test_file_without_builtin_pipeline(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
builtin_pipeline = false

[[task_lists]]
name = "d"
kind = "decision"

[[task_lists]]
name = "a"
kind = "activity"

[[activity_types]]
name = "Noop"
version = "1"
task_list = "a"

[[workflow_types]]
name = "Flow"
version = "1"
task_list = "d"
steps = ["Noop"]
""",
    )
    config = load_config(path)
    assert [workflow.name for workflow in config.workflow_types] == ["Flow"]
    assert [task_list.name for task_list in config.task_lists] == ["d", "a"]


def test_file_without_endpoint_means_real_swf(tmp_path: Path) -> None:
    path = write(tmp_path, '[swf]\nregion = "eu-west-1"\n')
    config = load_config(path)
    assert config.swf.endpoint_url is None
    assert config.swf.region == "eu-west-1"


def test_endpoint_aws_means_real_swf() -> None:
    assert load_config(None, {"swf.endpoint_url": "aws"}).swf.endpoint_url is None


def test_flags_override_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[swf]
endpoint_url = "http://127.0.0.1:9000"
domain = "from-file"

[supervision]
drain_timeout = 50

[logging]
level = "WARNING"
""",
    )
    config = load_config(
        path,
        {
            "swf.domain": "from-flag",
            "supervision.drain_timeout": 12.5,
            "logging.level": "debug",
            "swf.endpoint_url": "http://127.0.0.1:9001",
            "swf.region": "eu-central-1",
            "state_dir": str(tmp_path / "state"),
        },
    )
    assert config.swf.domain == "from-flag"
    assert config.supervision.drain_timeout == 12.5
    assert config.logging.level == "DEBUG"
    assert config.swf.endpoint_url == "http://127.0.0.1:9001"
    assert config.swf.region == "eu-central-1"
    assert config.state_dir == tmp_path / "state"


def test_workers_sets_activity_max_only() -> None:
    config = load_config(None, {"workers": 3})
    defaults = default_config()
    for task_list in config.task_lists:
        if task_list.kind == "activity":
            assert task_list.max_processes == 3
        else:
            assert task_list.max_processes == defaults.task_list(task_list.name).max_processes


def test_workers_lowers_min_to_max(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[task_lists]]
name = "video-activities"
kind = "activity"
min_processes = 4
max_processes = 8
""",
    )
    task_list = load_config(path, {"workers": 2}).task_list("video-activities")
    assert task_list.max_processes == 2
    assert task_list.min_processes == 2


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert str(path) in message
    assert "not found" in message


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[swf\ndomain = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(path) in str(raised.value)
    assert "invalid TOML" in str(raised.value)


def test_system_file_used_when_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    system_file = write(tmp_path, '[swf]\nendpoint_url = "local"\ndomain = "from-etc"\n')
    monkeypatch.setattr(config_loader, "DEFAULT_CONFIG_PATH", system_file)
    assert load_config(None).swf.domain == "from-etc"


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "manager.toml"


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.swf.endpoint_url == "local"
    assert config.task_list("video-activities").max_processes == 4
    defaults = default_config()
    for name in ("FaceDetect", "FaceRecognize"):
        assert config.activity_type(name) == defaults.activity_type(name)
    assert config.workflow_type("VideoProcessing") == defaults.workflow_type("VideoProcessing")
    assert config.scaling == defaults.scaling
    assert config.supervision == defaults.supervision
    assert config.video == defaults.video
    assert config.logging == defaults.logging
    assert config.metrics == defaults.metrics
    assert config.webhook == defaults.webhook


def test_example_documents_every_key() -> None:
    import dataclasses
    import tomllib

    text = EXAMPLE.read_text()
    document = tomllib.loads(text)
    for section, cls in config_loader.SECTIONS.items():
        for field in dataclasses.fields(cls):
            # Optional keys are shown commented out, because TOML has no null.
            assert field.name in document[section] or f"# {field.name} = " in text, f"{section}.{field.name}"
    for array, cls in config_loader.ENTRY_ARRAYS.items():
        written = set().union(*(entry.keys() for entry in document[array]))
        expected = {field.name for field in dataclasses.fields(cls)}
        assert written == expected, f"{array}: missing {expected - written}"


def test_step_without_handler_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[activity_types]]
name = "Transcode"
version = "1"
task_list = "video-activities"

[[workflow_types]]
name = "Flow"
version = "1"
task_list = "video-decisions"
steps = ["Transcode"]
""",
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert 'workflow_types["Flow"].steps[0]' in str(raised.value)
    assert "no handler" in str(raised.value)

