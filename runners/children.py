"""The runner processes a job leaves behind (Beam's prism binary, the Flink job server's
JVM) end with kappa: after the job, and when a signal stops it. Only children in kappa's
own session are ended; the local broker and emulator run in sessions of their own and
outlive the command that started them, as they should."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["end_children", "processes"]


def processes():
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp,
    session, ...) of every process there is."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue


def _children() -> list[int]:
    me, session = os.getpid(), os.getsid(0)
    return [pid for pid, fields in processes()
            if int(fields[1]) == me and int(fields[3]) == session and fields[0] != "Z"]


def end_children(grace_s: float = 5.0) -> list[int]:
    """SIGTERM every child process in this session, SIGKILL those still there after
    ``grace_s``; returns the pids ended."""
    if not Path("/proc").is_dir():
        return []
    pids = _children()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and set(pids) & set(_children()):
        time.sleep(0.1)
    for pid in set(pids) & set(_children()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
