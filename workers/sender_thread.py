"""A bounded queue drained by one background thread per process, for senders that must never block."""

from __future__ import annotations

import os
import queue
import threading
from typing import Any


class SenderThread:
    """Base of the metrics and webhook senders: a bounded queue and its daemon thread.

    The thread starts on first use in each process. After a fork the child gets a new
    queue and thread, because the parent's queue lock may be held by a thread that does
    not exist in the child. Subclasses implement ``_run``.
    """

    thread_name = "sender"

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._pid = -1
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(maxsize=self.queue_size)
            self._reset_after_fork()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def _thread_running_here(self) -> bool:
        """Return True when this process started the thread, so close() has something to stop."""
        return self._pid == os.getpid() and self._thread is not None

    def _reset_after_fork(self) -> None:
        """Recreate per-process state besides the queue; called before the thread starts."""

    def _run(self) -> None:
        raise NotImplementedError
