"""The HTTP connection of the request a server thread is handling, for long polls to check.

A poller killed while its poll is held leaves a closed socket behind. A task handed to
that poll would wait for its timeout, so a long poll checks its client before it claims
a task.
"""

from __future__ import annotations

import select
import socket
import threading

_current = threading.local()


def set_current(connection: socket.socket | None) -> None:
    _current.connection = connection


def client_alive() -> bool:
    """Return False when the current request's client has closed its connection.

    True when there is no connection to check, or when the socket has data or nothing to
    read: only an orderly close (a read of zero bytes) or a reset counts as gone.
    """
    connection = getattr(_current, "connection", None)
    if connection is None:
        return True
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return True
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except (OSError, ValueError):
        return False
