#!/usr/bin/env bash
# Install swf-manager on an EC2 instance as a systemd service.
#
# Run as root from a checkout (`sudo deploy/ec2-setup.sh`), or pass it as cloud-init user
# data after cloning the repository. It is safe to run again: it upgrades the package and
# never overwrites an existing configuration or environment file.
#
# It creates the swf-manager system user, a venv in /opt/swf-manager/venv with the
# project installed, /etc/swf-manager/manager.toml (from deploy/manager.toml.example,
# with the instance's region), /etc/swf-manager/environment for secrets, and enables the
# swf-manager unit. With LOGGLY_TOKEN set it also installs the rsyslog rule that forwards
# the manager's logs to Loggly over TLS.
#
# Environment:
#   SWF_MANAGER_SOURCE  what pip installs (default: the checkout this script is in)
#   PYTHON              interpreter for the venv, 3.11 or newer (default: python3.11, else python3)
#   SWF_REGION          SWF region (default: the instance's region from the metadata service)
#   LOGGLY_TOKEN        Loggly customer token; set it to install the rsyslog forwarding rule
#   START=1             start the service at the end

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=${SWF_MANAGER_SOURCE:-$(dirname "$SCRIPT_DIR")}
PREFIX=/opt/swf-manager
CONFIG_DIR=/etc/swf-manager
SERVICE_USER=swf-manager
UNIT_PATH=/etc/systemd/system/swf-manager.service
RSYSLOG_PATH=/etc/rsyslog.d/22-swf-manager-loggly.conf

log() { printf 'ec2-setup: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "run as root, for example: sudo $0"
[[ -f $SCRIPT_DIR/swf-manager.service ]] || fail "swf-manager.service not found next to $0; run it from a checkout"

install_packages() {
    if command -v dnf >/dev/null; then
        dnf install -y "$@"
    elif command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
    else
        fail "no dnf or apt-get found; install $* by hand and run again"
    fi
}

pick_python() {
    if [[ -n ${PYTHON:-} ]]; then
        echo "$PYTHON"
    elif command -v python3.11 >/dev/null; then
        echo python3.11
    else
        echo python3
    fi
}

PYTHON_BIN=$(pick_python)
if ! command -v "$PYTHON_BIN" >/dev/null; then
    log "installing Python 3.11"
    if command -v dnf >/dev/null; then install_packages python3.11; else install_packages python3 python3-venv; fi
    PYTHON_BIN=$(pick_python)
fi
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "$PYTHON_BIN is older than 3.11; set PYTHON to a Python 3.11 or newer interpreter"
"$PYTHON_BIN" -c 'import venv, ensurepip' 2>/dev/null || install_packages python3-venv

log "creating system user $SERVICE_USER"
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/swf-manager --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi

log "installing $SOURCE into $PREFIX/venv"
install -d -m 0755 "$PREFIX"
[[ -x $PREFIX/venv/bin/python ]] || "$PYTHON_BIN" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade "$SOURCE"
"$PREFIX/venv/bin/manager" --help >/dev/null || fail "the manager command does not run; see the pip output above"

region=${SWF_REGION:-}
if [[ -z $region ]]; then
    # IMDSv2: a session token first, then the region.
    imds_token=$(curl -fsS -m 5 -X PUT http://169.254.169.254/latest/api/token \
        -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' || true)
    if [[ -n $imds_token ]]; then
        region=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $imds_token" \
            http://169.254.169.254/latest/meta-data/placement/region || true)
    fi
fi

install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
if [[ ! -e $CONFIG_DIR/manager.toml ]]; then
    log "writing $CONFIG_DIR/manager.toml; review it, then restart the service"
    install -m 0640 -o root -g "$SERVICE_USER" "$SCRIPT_DIR/manager.toml.example" "$CONFIG_DIR/manager.toml"
    if [[ -n $region ]]; then
        sed -i "s/^region = \".*\"/region = \"$region\"/" "$CONFIG_DIR/manager.toml"
    else
        log "warning: region unknown (no SWF_REGION, no metadata service); edit swf.region in $CONFIG_DIR/manager.toml"
    fi
else
    log "keeping the existing $CONFIG_DIR/manager.toml"
fi
if [[ ! -e $CONFIG_DIR/environment ]]; then
    # KEY=value lines that the unit passes to the manager. Only root and the service read it.
    install -m 0640 -o root -g "$SERVICE_USER" /dev/null "$CONFIG_DIR/environment"
    cat >"$CONFIG_DIR/environment" <<'ENVIRONMENT'
# Secrets for swf-manager, as KEY=value lines. manager.toml names these variables.
# MIXPANEL_TOKEN=
# SWF_MANAGER_WEBHOOK_KEY=
# LOGGLY_TOKEN=
ENVIRONMENT
fi

log "validating the configuration"
# load_config raises ConfigError with one line per invalid key.
runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/python" -c \
    'import sys, pathlib; from workers.config_loader import load_config; load_config(pathlib.Path(sys.argv[1]))' \
    "$CONFIG_DIR/manager.toml" \
    || log "warning: $CONFIG_DIR/manager.toml is invalid; fix it before starting the service"

if [[ -n ${LOGGLY_TOKEN:-} ]]; then
    log "installing the rsyslog rule that forwards to Loggly"
    install_packages rsyslog rsyslog-gnutls
    ca_bundle=/etc/ssl/certs/ca-certificates.crt
    [[ -f $ca_bundle ]] || ca_bundle=/etc/pki/tls/certs/ca-bundle.crt
    [[ -f $ca_bundle ]] || fail "no system CA bundle found for the TLS connection to Loggly"
    umask 027
    sed -e "s|LOGGLY_TOKEN_PLACEHOLDER|$LOGGLY_TOKEN|" -e "s|CA_BUNDLE_PLACEHOLDER|$ca_bundle|" \
        "$SCRIPT_DIR/rsyslog-loggly.conf" >"$RSYSLOG_PATH"
    umask 022
    rsyslogd -N1 >/dev/null || fail "rsyslog rejects $RSYSLOG_PATH; see the messages above"
    systemctl restart rsyslog
fi

log "installing and enabling the systemd unit"
install -m 0644 "$SCRIPT_DIR/swf-manager.service" "$UNIT_PATH"
systemctl daemon-reload
systemctl enable swf-manager.service
if [[ ${START:-0} == 1 ]]; then
    systemctl restart swf-manager.service
    log "started; follow the logs with: journalctl -u swf-manager -f"
else
    log "done; start it with: systemctl start swf-manager"
fi
