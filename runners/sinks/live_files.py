"""The live file sink: each result appended to its window's file, the file compacted once
when its window closes.

Invariants:

* **Appending a pane costs the pane.** A result is one JSON line (or one Avro block) added
  at the end of its window file; nothing already there is read or rewritten. (Before,
  each result rewrote the whole file: O(n²) bytes for a window of n results.)
* **A window's file becomes what a replay writes.** An event-time timer per window file,
  at the window's close (its end plus the allowed lateness, when its last pane has been
  emitted), rewrites the file once: deduplicated by result id, sorted by
  ``(key, pane_index)``, atomically replaced; byte-identical to a bounded run's. Until
  then the file holds every pane so far in arrival order, and a pane a restart re-emitted
  may be there twice, under the same id (readers dedupe by id, as ``kappa verify`` does).
  The runner keeps one timer per open window file and nothing else: none after it closes.
* **Nothing earlier is erased.** A restarted run appends to the files it finds; the
  compaction keeps every id ever appended. A writer killed in the middle of an append
  leaves a torn tail, which is not a result (its bundle did not finish, so it is
  re-emitted) and is cut off before the next append.
* **Superseded sessions go.** A session's ``merged_into`` marker compacts its file at once
  (dropping that key's panes, removing the file when nothing is left); a final session
  removes the key's orphan panes that a killed earlier run left in sessions inside it.

Writers to one sink directory take turns under a file lock (in the temp directory, named
by the sink directory): the local runners' workers share the machine.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from kappa.runners.sinks.files import (_complete_length, _encode, _render_window_file, _replace_file, _window_of_file,
                                       read_window_file, window_files)

__all__ = ["AppendToWindowFileFn", "append_result", "compact_window_file"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def append_result(target: Path, result: dict) -> int:
    """Add ``result`` at the end of ``target`` (cutting a torn tail first); the bytes written."""
    exists = target.exists()
    if exists:
        whole = _complete_length(target)
        if whole < target.stat().st_size:
            os.truncate(target, whole)
        exists = whole > 0  # an Avro file torn inside its header starts again
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    data = _encode(target, [result], header=not exists)
    with target.open("ab" if exists else "wb") as out:
        out.write(data)  # one write: a kill leaves at most a torn tail, never a torn middle
    return len(data)


def compact_window_file(target: Path) -> int:
    """Rewrite ``target`` as a bounded run writes it (deduplicated, sorted, superseded
    sessions left out; removed when nothing is left); the bytes written."""
    if not target.exists():
        return 0
    data = _render_window_file(target, read_window_file(target))
    _replace_file(target, data)
    return len(data or b"")


def _ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


class AppendToWindowFileFn(beam.DoFn):
    """Live runs: ``(window file, result)`` -> the result appended to the file; the file
    compacted when the watermark passes the window's close (see the module's invariants)."""

    CLOSE = TimerSpec("close", TimeDomain.WATERMARK)

    def __init__(self, allowed_lateness_ms: int = 0, sessions_of: Path | None = None):
        self.counter = beam.metrics.Metrics.counter("kappa", "results_written")
        self.bytes = beam.metrics.Metrics.counter("kappa", "file_sink_bytes_written")
        self.allowed_lateness_ms = allowed_lateness_ms
        self.sessions_of = sessions_of  #: the sink's path, for session windows

    def setup(self):
        self._orphans = None if self.sessions_of is None else _EarlierSessionFiles(self.sessions_of)

    def process(self, element, close=beam.DoFn.TimerParam(CLOSE)):
        target, result = Path(element[0]), element[1]
        with _directory_lock(target.parent):
            written = append_result(target, result)
            if result.get("merged_into"):  # superseded: its panes leave the file now
                written += compact_window_file(target)
            elif self._orphans is not None and result["is_last"]:
                written += self._orphans.drop_inside(result)
        self.bytes.inc(written)
        self.counter.inc()
        # Every pane of a window is emitted by its close; setting the same timer again is a no-op.
        close.set(Timestamp(micros=(_ms(result["window_end"]) + self.allowed_lateness_ms) * 1000))

    @on_timer(CLOSE)
    def on_close(self, key=beam.DoFn.KeyParam):
        target = Path(key)
        with _directory_lock(target.parent):
            self.bytes.inc(compact_window_file(target))


class _EarlierSessionFiles:
    """The session window files that existed when this writer started, by window.

    A restarted run rebuilds a session from the log; if it grew past the kill, the panes
    the killed run fired for its smaller extent were never superseded (the new run did not
    know them). Only files of an earlier run can hold such orphans (a run supersedes its
    own sessions), so they are listed once, and a final session looks up the ones inside
    it instead of listing the directory per pane."""

    def __init__(self, sink_path: Path):
        found = ((_window_of_file(p), p) for p in window_files(sink_path))
        self._files = sorted((window, p) for window, p in found if window is not None)
        self._starts = [window[0] for window, _ in self._files]

    def drop_inside(self, final: dict) -> int:
        """Remove the key's panes from the sessions strictly inside ``final`` that have no
        final pane of their own; the bytes written."""
        start, end = final["window_start"], final["window_end"]
        written = 0
        for (w_start, w_end), path in self._files[bisect.bisect_left(self._starts, start):]:
            if w_start >= end:
                break
            if w_end > end or (w_start, w_end) == (start, end) or not path.exists():
                continue
            results = read_window_file(path)
            mine = [r for r in results if (r["pipeline"], r["key"]) == (final["pipeline"], final["key"])]
            if mine and not any(r["is_last"] for r in mine):
                data = _render_window_file(path, [r for r in results if r not in mine])
                _replace_file(path, data)
                written += len(data or b"")
        return written


class _directory_lock:
    """An exclusive lock over a sink directory's window files, across threads and processes."""

    def __init__(self, directory: Path):
        name = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:24]
        self.path = Path(tempfile.gettempdir()) / "kappa-sink-locks" / f"{name}.lock"

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()  # releases the lock
        return False
