"""Each invalid configuration value gives an error that names the key, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers import config_loader
from workers.config_loader import ConfigError, load_config


@pytest.fixture(autouse=True)
def _no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config_loader, "DEFAULT_CONFIG_PATH", tmp_path / "absent" / "manager.toml")


def problems_for(tmp_path: Path, text: str, overrides: dict | None = None) -> list[str]:
    path = tmp_path / "manager.toml"
    path.write_text(text if "[swf]" in text else text + '\n[swf]\nendpoint_url = "local"\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path, overrides)
    assert str(path) in str(raised.value)
    return raised.value.problems


# (TOML text, key named in the message, value as shown, a word of the fix)
CASES = [
    ('[swf]\nretention_days = 120\n', "swf.retention_days", "120", "0 to 90"),
    ('[swf]\nregion = "mars"\n', "swf.region", '"mars"', "us-east-1"),
    ('[swf]\nendpoint_url = "ftp://x"\n', "swf.endpoint_url", '"ftp://x"', '"local"'),
    ('[swf]\ndomain = "a/b"\n', "swf.domain", '"a/b"', "Choose another"),
    ('[swf]\nlocal_port = 70000\n', "swf.local_port", "70000", "0 to pick"),
    ('[swf]\nendpoint_url = "local"\nlocal_max_poll_seconds = 0\n', "swf.local_max_poll_seconds", "0.0", "between 1 and 60"),
    ("[client]\nread_timeout = 30\n", "client.read_timeout", "30.0", "70 or more"),
    ('[client]\nretry_mode = "legacy"\n', "client.retry_mode", '"legacy"', '"standard"'),
    ("[client]\nmax_attempts = 0\n", "client.max_attempts", "0", "1 or more"),
    ("[scaling]\ncpu_target_percent = 0\n", "scaling.cpu_target_percent", "0.0", "above 0"),
    ("[scaling]\ncpu_high_percent = 50\n", "scaling.cpu_high_percent", "50.0", "above cpu_target_percent"),
    ("[scaling]\nsample_interval = -1\n", "scaling.sample_interval", "-1.0", "positive"),
    ("[supervision]\ndrain_timeout = 0\n", "supervision.drain_timeout", "0.0", "positive"),
    ("[supervision]\nbackoff_max = 0.5\n", "supervision.backoff_max", "0.5", "at least"),
    ('[supervision]\ndrain_timeout = "long"\n', "supervision.drain_timeout", '"long"', "a number"),
    ('[storage]\nroot = "s3://"\n', "storage.root", '"s3://"', "s3://bucket/prefix"),
    ("[video]\nsample_fps = 0\n", "video.sample_fps", "0.0", "positive"),
    ("[video]\nmin_face_size = 5000\n", "video.min_face_size", "5000", "below max_frame_side"),
    ('[video]\nrecognizer = "opencv"\n', "video.recognizer", '"opencv"', '"dlib"'),
    ('[logging]\nlevel = "LOUD"\n', "logging.level", '"LOUD"', "DEBUG"),
    ('[logging]\noutput = "file"\n', "logging.output", '"file"', '"syslog"'),
    ('[logging]\nsyslog_facility = "local9"\n', "logging.syslog_facility", '"local9"', "local0"),
    ('[logging]\nloggly_token_env = "my-token"\n', "logging.loggly_token_env", '"my-token"', "environment variable"),
    ('[webhook]\nurl = "app.example.com"\n', "webhook.url", '"app.example.com"', "https://"),
    ("[webhook]\nattempts = 0\n", "webhook.attempts", "0", "1 or more"),
    ("[metrics]\nqueue_size = 0\n", "metrics.queue_size", "0", "1 or more"),
    ('[metrics]\nevents_file = "/nonexistent/x/events.jsonl"\n', "metrics.events_file", '"/nonexistent/x/events.jsonl"',
     "Create the folder"),
    ('[logging]\noutput = "syslog"\nsyslog_address = "/nonexistent/log"\n', "logging.syslog_address",
     '"/nonexistent/log"', 'output = "stderr"'),
    (
        '[[workflow_types]]\nname = "VideoProcessing"\nsteps = "FaceDetect"\n',
        'workflow_types["VideoProcessing"].steps',
        '"FaceDetect"',
        'such as ["text"]',
    ),
    ('state_dir = 5\n', "state_dir", "5", "a path"),
    ("builtin_pipeline = 1\n", "builtin_pipeline", "1", "true or false"),
    (
        '[[task_lists]]\nname = "video-activities"\nkind = "activty"\n',
        'task_lists["video-activities"].kind',
        '"activty"',
        'Did you mean "activity"',
    ),
    (
        '[[task_lists]]\nname = "video-activities"\nkind = "activity"\nmin_processes = 5\nmax_processes = 2\n',
        'task_lists["video-activities"].min_processes',
        "5",
        "raise max_processes",
    ),
    (
        '[[task_lists]]\nname = "x"\nkind = "activity"\nmax_processes = 0\n',
        'task_lists["x"].max_processes',
        "0",
        "1 or more",
    ),
    (
        '[[activity_types]]\nname = "FaceDetect"\ntask_list = "nowhere"\n',
        'activity_types["FaceDetect"].task_list',
        '"nowhere"',
        "[[task_lists]]",
    ),
    (
        '[[activity_types]]\nname = "FaceDetect"\ntask_list = "video-decisions"\n',
        'activity_types["FaceDetect"].task_list',
        '"video-decisions"',
        'kind = "activity"',
    ),
    (
        '[[activity_types]]\nname = "FaceDetect"\nversion = ""\n',
        'activity_types["FaceDetect"].version',
        '""',
        'such as "1"',
    ),
    (
        '[[activity_types]]\nname = "Noop"\n[activity_types.retry]\ntimeouts = []\n',
        'activity_types["Noop"].retry.timeouts',
        "[]",
        "at least one slot",
    ),
    (
        '[[activity_types]]\nname = "Noop"\n[activity_types.retry]\ntimeouts = [60, 99999]\n',
        'activity_types["Noop"].schedule_to_close_timeout',
        "900",
        "Raise it",
    ),
    (
        '[[activity_types]]\nname = "Noop"\nstart_to_close_timeout = 10\n',
        'activity_types["Noop"].start_to_close_timeout',
        "10",
        "Make them equal",
    ),
    (
        '[[activity_types]]\nname = "Noop"\n[activity_types.retry]\nmax_failures = -1\n',
        'activity_types["Noop"].retry.max_failures',
        "-1",
        "0 (no retry) or more",
    ),
    (
        '[[activity_types]]\nname = "Noop"\n[activity_types.retry]\ntimeouts = [60, "long"]\n',
        'activity_types["Noop"].retry.timeouts[1]',
        '"long"',
        "a whole number",
    ),
    (
        '[[workflow_types]]\nname = "VideoProcessing"\nsteps = ["FaceDetect", "FaceRecognise"]\n',
        'workflow_types["VideoProcessing"].steps[1]',
        '"FaceRecognise"',
        '"FaceRecognize"',
    ),
    (
        '[[workflow_types]]\nname = "VideoProcessing"\ncontinue_as_new_after_events = 30000\n',
        'workflow_types["VideoProcessing"].continue_as_new_after_events',
        "30000",
        "25000",
    ),
    (
        '[[workflow_types]]\nname = "VideoProcessing"\nchild_policy = "KILL"\n',
        'workflow_types["VideoProcessing"].child_policy',
        '"KILL"',
        '"TERMINATE"',
    ),
    (
        '[[workflow_types]]\nname = "New"\nversion = "1"\ntask_list = "video-decisions"\n',
        'workflow_types["New"].steps',
        "is missing",
        "add steps",
    ),
]


@pytest.mark.parametrize(("text", "key", "value", "fix"), CASES, ids=[case[1] for case in CASES])
def test_invalid_value_named(tmp_path: Path, text: str, key: str, value: str, fix: str) -> None:
    problems = problems_for(tmp_path, text)
    matching = [problem for problem in problems if problem.startswith(key + " ")]
    assert matching, f"no problem names {key}: {problems}"
    assert value in matching[0]
    assert fix in matching[0]


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "[supervision]\ndrain_timout = 5\n")
    assert problems == ['supervision.drain_timout = 5: unknown key: did you mean "supervision.drain_timeout"?']


def test_unknown_section_did_you_mean(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "[scalling]\ncooldown = 5\n")
    assert len(problems) == 1
    assert problems[0].startswith("scalling = ")
    assert 'did you mean "scaling"?' in problems[0]


def test_unknown_key_without_match_lists_known(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "[webhook]\nzzz = 1\n")
    assert len(problems) == 1
    assert "webhook.zzz = 1: unknown key: remove it." in problems[0]
    assert "secret_env" in problems[0]


def test_unknown_key_in_entry(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, '[[task_lists]]\nname = "video-activities"\nkind = "activity"\nmax_proceses = 3\n')
    assert problems == [
        'task_lists["video-activities"].max_proceses = 3: unknown key: '
        'did you mean "task_lists["video-activities"].max_processes"?'
    ]


def test_entry_without_name(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, '[[task_lists]]\nkind = "activity"\n')
    assert problems == ['task_lists[0].name is missing: add name = "..." to entry 0 of [[task_lists]].']


def test_duplicate_entry(tmp_path: Path) -> None:
    text = '[[task_lists]]\nname = "x"\nkind = "activity"\n' * 2
    problems = problems_for(tmp_path, text)
    assert any('task_lists["x"].name = "x"' in problem and "defined twice" in problem for problem in problems)


def test_every_problem_listed(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, '[swf]\nretention_days = 100\nregion = "x"\n[client]\nread_timeout = 1\n')
    keys = sorted(problem.split(" ", 1)[0] for problem in problems)
    assert keys == ["client.read_timeout", "swf.region", "swf.retention_days"]


def test_builtin_off_needs_definitions(tmp_path: Path) -> None:
    problems = problems_for(
        tmp_path,
        'builtin_pipeline = false\n[[workflow_types]]\nname = "Flow"\nversion = "1"\n'
        'task_list = "d"\nsteps = ["Step"]\n',
    )
    assert any(problem.startswith('workflow_types["Flow"].task_list = "d"') for problem in problems)
    assert any(problem.startswith('workflow_types["Flow"].steps[0] = "Step"') for problem in problems)


def test_override_marked_command_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {"supervision.drain_timeout": -3.0})
    assert raised.value.problems == [
        "supervision.drain_timeout = -3.0 (from the command line): must be greater than 0 seconds. "
        "Set a positive value."
    ]


@pytest.mark.parametrize("workers", [0, -2, True])
def test_workers_invalid(workers: object) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {"workers": workers})
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith("--workers = ")
    assert "at least 1" in raised.value.problems[0]


def test_override_of_nested_key_rejected() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {"activity_types.retry": 3})
    assert "cannot be set from the command line" in raised.value.problems[0]
