"""Ends a process when the process that started it is gone, so nothing is left running as an orphan.

Used twice: the ML service started by `photo-sorter sort` watches `sort` (its pid arrives in
PHOTO_SORTER_ML_PARENT_PID), and every pool worker watches the ML service. Polling `getppid()` is used rather than
Linux's PR_SET_PDEATHSIG, which fires when the parent *thread* that spawned the child exits — in a Swift or asyncio
parent that is any thread of a pool, not the process.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable

log = logging.getLogger("photo_sorter_ml.lifeline")

POLL_SECONDS = 0.5


def parent_pid_from_env() -> int | None:
    """PHOTO_SORTER_ML_PARENT_PID as a pid, None when unset. A value that is not a positive integer is an error."""
    raw = os.environ.get("PHOTO_SORTER_ML_PARENT_PID", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 1:
        raise ValueError(f"PHOTO_SORTER_ML_PARENT_PID must be the pid of the parent process, got {raw!r}")
    return int(raw)


def terminate_self() -> None:
    """SIGTERM to this process: the server shuts down as on Ctrl-C (pool stopped, sockets closed)."""
    os.kill(os.getpid(), signal.SIGTERM)


def watch_parent(parent_pid: int, on_parent_gone: Callable[[], None], what: str) -> threading.Thread:
    """Starts a daemon thread that calls `on_parent_gone` once this process is no longer `parent_pid`'s child
    (the parent exited or was killed, and the process was re-parented). Also fires at once when that already
    happened before the call."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        log.warning("%s: parent process %d is gone; exiting", what, parent_pid)
        on_parent_gone()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
