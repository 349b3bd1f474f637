"""sd_notify over $NOTIFY_SOCKET, without libsystemd: READY, STOPPING, STATUS and WATCHDOG.

The protocol (sd_notify(3)) is one datagram of newline-separated KEY=VALUE lines to the
UNIX socket named in $NOTIFY_SOCKET. A name starting with "@" is in the abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications when systemd asked for them; does nothing otherwise."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = self._parse_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = self._parse_watchdog(env)
        self._failed_once = False

    @staticmethod
    def _parse_address(name: str) -> str | None:
        if not name:
            return None
        if name.startswith("@"):
            return "\0" + name[1:]
        if name.startswith("/"):
            return name
        log.warning("ignoring NOTIFY_SOCKET that is neither a path nor an abstract name", extra={"value": name})
        return None

    @staticmethod
    def _parse_watchdog(env: dict[str, str]) -> float | None:
        """Return how often to send WATCHDOG=1: half of WATCHDOG_USEC, or None when unset."""
        usec = env.get("WATCHDOG_USEC")
        if not usec:
            return None
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return None
        try:
            value = int(usec)
        except ValueError:
            log.warning("ignoring invalid WATCHDOG_USEC: expected microseconds", extra={"value": usec})
            return None
        if value <= 0:
            return None
        return value / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram with ``lines``. Returns False when disabled or when sending failed."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sender:
            try:
                sender.sendto(payload, self._address)
            except OSError as error:
                if not self._failed_once:
                    log.error("sd_notify failed", extra={"notify_socket": self._address, "error": str(error)})
                    self._failed_once = True
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")
