"""Static checks of deploy/ and supervisor/, and systemd-analyze verify where available."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.config import SupervisionConfig
from workers.config_loader import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "swf-manager.service"
SUPERVISOR_CONF = REPO_ROOT / "supervisor" / "swf-manager.conf"
SETUP_SCRIPT = DEPLOY / "ec2-setup.sh"
RSYSLOG_CONF = DEPLOY / "rsyslog-loggly.conf"
EXAMPLE_CONFIG = DEPLOY / "manager.toml.example"
INSTALLED_MANAGER = "/opt/swf-manager/venv/bin/manager"
INSTALLED_CONFIG = "/etc/swf-manager/manager.toml"

# The manager's own stop takes up to drain_timeout, then kill_grace before SIGKILL.
DEFAULT_STOP_SECONDS = SupervisionConfig().drain_timeout + SupervisionConfig().kill_grace


def read_unit(path: Path) -> dict[str, dict[str, str]]:
    """Parse a systemd unit into {section: {key: value}}; no key in our unit repeats."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert key not in current, f"{key} appears twice in [{line}]"
        current[key] = value
    return sections


def read_supervisor_program() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    parser.read(SUPERVISOR_CONF)
    return parser["program:manager"]


def test_unit_stop_timeout_covers_drain() -> None:
    service = read_unit(UNIT)["Service"]

    assert float(service["TimeoutStopSec"]) >= DEFAULT_STOP_SECONDS
    assert service["KillMode"] == "mixed"
    assert service["KillSignal"] == "SIGTERM"


def test_unit_service_settings() -> None:
    service = read_unit(UNIT)["Service"]

    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root")
    assert service["ExecStart"] == f"{INSTALLED_MANAGER} --config {INSTALLED_CONFIG}"
    assert service["SyslogIdentifier"] == "swf-manager"
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables", "RestrictSUIDSGID"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    manager = shutil.which("manager") or str(REPO_ROOT / ".venv" / "bin" / "manager")
    if not Path(manager).exists():
        pytest.skip("the manager console script is not installed, and verify checks that ExecStart exists")
    # verify checks that ExecStart exists, so point it at this checkout's manager.
    unit = tmp_path / "swf-manager.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_MANAGER, manager))

    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)

    # verify exits 0 on settings it ignores, and only prints them, so check the output too.
    about_unit = [line for line in (result.stdout + result.stderr).splitlines() if "swf-manager" in line]
    assert result.returncode == 0, result.stderr
    assert about_unit == []


def test_unit_analyze_catches_bad_setting(tmp_path: Path) -> None:
    """The check above would see a misspelt setting: verify prints it."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = tmp_path / "swf-manager.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_MANAGER, "/bin/true").replace("KillMode=mixed", "KillMode=mixd"))

    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)

    assert "KillMode" in result.stdout + result.stderr or "kill mode" in result.stdout + result.stderr


def test_supervisor_program_settings() -> None:
    program = read_supervisor_program()

    assert float(program["stopwaitsecs"]) >= DEFAULT_STOP_SECONDS
    assert program["stopsignal"] == "TERM"
    assert program["stopasgroup"] == "true"
    assert program["killasgroup"] == "true"
    assert program["autorestart"] == "true"
    assert program["command"] == f"{INSTALLED_MANAGER} --config {INSTALLED_CONFIG}"
    assert program["stderr_logfile"].startswith("/var/log/swf-manager/")
    assert program["stdout_logfile"].startswith("/var/log/swf-manager/")


def test_supervisor_folder_is_not_package() -> None:
    # An __init__.py would make `import supervisor` load this folder instead of supervisord.
    assert not (REPO_ROOT / "supervisor" / "__init__.py").exists()


def test_example_config_targets_real_swf() -> None:
    config = load_config(EXAMPLE_CONFIG)
    service = read_unit(UNIT)["Service"]
    program = read_supervisor_program()

    assert config.swf.endpoint_url is None
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", config.swf.region)
    stop_seconds = config.supervision.drain_timeout + config.supervision.kill_grace
    assert float(service["TimeoutStopSec"]) >= stop_seconds
    assert float(program["stopwaitsecs"]) >= stop_seconds
    assert config.metrics.mixpanel_token_env
    assert config.webhook.secret_env
    # The unit creates /run/swf-manager; the configuration must use it for the status socket.
    assert str(config.state_dir) == f"/run/{service['RuntimeDirectory']}"


def test_setup_script_syntax_and_files() -> None:
    bash = shutil.which("bash")
    assert bash is not None

    result = subprocess.run([bash, "-n", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr
    text = SETUP_SCRIPT.read_text()
    for name in (UNIT.name, EXAMPLE_CONFIG.name, RSYSLOG_CONF.name):
        assert f"$SCRIPT_DIR/{name}" in text, name
    assert "PREFIX=/opt/swf-manager" in text
    assert SETUP_SCRIPT.stat().st_mode & 0o111


def test_setup_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed on this machine")

    result = subprocess.run([shellcheck, str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout


def test_rsyslog_rule_matches_program_name() -> None:
    text = RSYSLOG_CONF.read_text()
    service = read_unit(UNIT)["Service"]

    assert f'$programname == "{service["SyslogIdentifier"]}"' in text
    assert 'StreamDriver="gtls"' in text
    assert 'StreamDriverMode="1"' in text
    assert 'port="6514"' in text
    assert "LOGGLY_TOKEN_PLACEHOLDER@41058" in text


def test_rsyslog_rule_passes_rsyslogd(tmp_path: Path) -> None:
    rsyslogd = shutil.which("rsyslogd")
    if rsyslogd is None:
        pytest.skip("rsyslogd is not installed on this machine")
    config = tmp_path / "rsyslog.conf"
    config.write_text(
        RSYSLOG_CONF.read_text()
        .replace("LOGGLY_TOKEN_PLACEHOLDER", "00000000-0000-0000-0000-000000000000")
        .replace("CA_BUNDLE_PLACEHOLDER", "/etc/ssl/certs/ca-certificates.crt")
    )

    result = subprocess.run([rsyslogd, "-N1", "-f", str(config)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr


def test_manager_speaks_notify_protocol(localswf: Any, tmp_path: Path) -> None:
    """The manager sends what Type=notify and WatchdogSec in the unit expect, over a real socket."""
    manager = REPO_ROOT / ".venv" / "bin" / "manager"
    if not manager.exists():
        pytest.skip("the manager console script is not installed in .venv")
    config_path = tmp_path / "manager.toml"
    config_path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[swf]\nendpoint_url = "{localswf.url}"\ndomain = "notify-test"\n'
    )
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        listener.settimeout(60)
        # A 2 s watchdog makes the manager ping every second; the unit's 60 s would take 30 s.
        environment = {**os.environ, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "2000000"}
        process = subprocess.Popen(
            [str(manager), "--config", str(config_path)],
            env=environment,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            messages = [listener.recv(4096).decode()]
            while not any("WATCHDOG=1" in message for message in messages):
                messages.append(listener.recv(4096).decode())
            process.send_signal(signal.SIGTERM)
            while not any("STOPPING=1" in message for message in messages):
                messages.append(listener.recv(4096).decode())
            code = process.wait(timeout=float(read_unit(UNIT)["Service"]["TimeoutStopSec"]))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    assert "READY=1" in messages[0].splitlines()
    assert f"MAINPID={process.pid}" in messages[0].splitlines()
    assert code == 0
