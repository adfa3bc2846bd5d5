"""A background server process with a pid file: start detached, wait, stop.

Shared by the Kafka broker and the Pub/Sub emulator. A pid file is trusted only
while ``/proc/<pid>/cmdline`` still holds the marker the server was started with,
so a recycled pid is never signalled.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from kappa.runners.errors import KappaError

__all__ = ["ServerProcess", "find_java", "free_port", "maven_jars", "port_in_use"]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick; racy only against other pickers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise KappaError("Java not found: install a JDK 17 or newer and put java on PATH (or set JAVA_HOME)")
    return java


def maven_jars(pom: Path, lib: Path, what: str, quiet: bool = False) -> Path:
    """Copy the runtime jars ``pom`` names from Maven Central into ``lib`` (once: a finished copy
    is marked ``.complete``, a partial one is redone); return ``lib``."""
    done = lib / ".complete"
    if done.exists():
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise KappaError(f"Maven (mvn) not found: it is needed once, to fetch the {what} jars from Maven Central")
    if not quiet:
        print(f"kappa: fetching {what} jars from Maven Central (once) ...", file=sys.stderr)
    if lib.exists():
        shutil.rmtree(lib)  # a partial earlier attempt
    lib.mkdir(parents=True)
    result = subprocess.run([mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
                             f"-DoutputDirectory={lib}", "-DincludeScope=runtime"], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise KappaError(f"Maven could not fetch {what}: {' | '.join(tail)}")
    done.write_text(what)
    return lib


class ServerProcess:
    """One server, identified by ``marker`` (a string unique to its command line)."""

    def __init__(self, name: str, state_dir: Path, marker: str):
        self.name = name
        self.state_dir = state_dir
        self.marker = marker
        self.pid_file = state_dir / f"{name}.pid"
        self.log_file = state_dir / f"{name}.log"
        self._child: subprocess.Popen | None = None

    def pid(self) -> int | None:
        """The pid of our running server, or None."""
        if self._child is not None and self._child.poll() is None:
            return self._child.pid
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        if self.marker.encode() not in cmdline or _is_zombie(pid):
            return None
        return pid

    def start(self, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            self._child = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the shell that ran `kappa local up`
                env={**os.environ, **(env or {})},
            )
        self.pid_file.write_text(str(self._child.pid))

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``probe`` until it answers True; fail fast if the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive():
                raise KappaError(f"{what} exited while starting: {self.last_error()} (log: {self.log_file})")
            if probe():
                return
            time.sleep(0.25)
        self.stop()
        raise KappaError(f"{what} did not answer within {timeout_s:.0f}s (log: {self.log_file})")

    def stop(self, timeout_s: float = 30) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``. True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
            while self.pid() is not None:
                self._reap()
                time.sleep(0.1)
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return True

    def last_error(self) -> str:
        """The most telling line of the log: the last ERROR/Exception line, else the last line."""
        try:
            lines = [l.strip() for l in self.log_file.read_text(errors="replace").splitlines() if l.strip()]
        except FileNotFoundError:
            return "no log written"
        for line in reversed(lines):
            if "ERROR" in line or "Exception" in line or "error:" in line.lower():
                return line[:300]
        return lines[-1][:300] if lines else "no output"

    def _alive(self) -> bool:
        # Our own child is asked directly (also in pid()): its /proc cmdline can read
        # empty while a launcher script execs java, which would look like an exit.
        if self._child is not None:
            return self._child.poll() is None
        return self.pid() is not None

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
