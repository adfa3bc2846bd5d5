"""Window files of the file sink: their names, their contents, and the DoFns that write
them (whole after a GroupByKey in a replay; merged into, result by result, live)."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam

RESULT_SCHEMA = "window_result"
_COMPACT = r"\d{8}T\d{6}(?:\.\d{3})?Z"


# -- window files: naming and contents ----------------------------------------------------------

def _compact(instant: datetime) -> str:
    """``20261120T090000Z``; milliseconds only when not zero (``20261120T090000.250Z``)."""
    t = instant.astimezone(timezone.utc)
    ms = t.microsecond // 1000
    return (f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}"
            + (f".{ms:03d}" if ms else "") + "Z")


def window_file(path: Path, start: datetime, end: datetime) -> Path:
    """The file holding window ``[start, end)`` of the sink ``file:path``."""
    return path.with_name(f"{path.stem}-{_compact(start)}-{_compact(end)}{path.suffix}")


def window_file_glob(path: Path) -> str:
    """A glob (relative to ``path.parent``) for every window file of ``file:path``."""
    return f"{path.stem}-*{path.suffix}"


def window_files(path: Path) -> list[Path]:
    """The window files of ``file:path`` that exist, sorted (temp files never match)."""
    pattern = re.compile(f"{re.escape(path.stem)}-{_COMPACT}-{_COMPACT}{re.escape(path.suffix)}")
    return sorted(p for p in path.parent.glob(window_file_glob(path)) if pattern.fullmatch(p.name))


def _window_of_file(path: Path) -> tuple[datetime, datetime] | None:
    """The window a window file holds, from its name."""
    found = re.search(f"-({_COMPACT})-({_COMPACT})\\.[a-z]+$", path.name)
    if found is None:
        return None

    def instant(text: str) -> datetime:
        form = "%Y%m%dT%H%M%S.%fZ" if "." in text else "%Y%m%dT%H%M%SZ"
        return datetime.strptime(text, form).replace(tzinfo=timezone.utc)

    return instant(found.group(1)), instant(found.group(2))


def _result_codec(fmt: str):
    from kappa.schemas import make_codec

    return make_codec(fmt, RESULT_SCHEMA)


def _render_window_file(target: Path, results) -> bytes | None:
    """The bytes of one window file: results deduplicated by id, sorted by (key, pane_index);
    None when nothing is left to write.

    A (pipeline, key) whose session was merged away (a result ``merged_into`` another
    session) has no window here: its results are left out. Avro files get a sync
    marker derived from the file name, so equal results give byte-identical files."""
    unique = {r["id"]: r for r in results}
    superseded = {(r["pipeline"], r["key"]) for r in unique.values() if r.get("merged_into")}
    ordered = sorted((r for r in unique.values() if (r["pipeline"], r["key"]) not in superseded),
                     key=lambda r: (r["key"], r["pane_index"], r["pipeline"], r["id"]))
    if not ordered:
        return None
    if target.suffix == ".jsonl":
        codec = _result_codec("json")
        return b"".join(codec.encode(r) + b"\n" for r in ordered)
    import hashlib
    import io

    import fastavro

    out = io.BytesIO()
    marker = hashlib.sha256(target.name.encode()).digest()[:16]
    fastavro.writer(out, _result_codec("avro").schema, ordered, sync_marker=marker)
    return out.getvalue()


def read_window_file(path: Path) -> list[dict]:
    """The result records of one window file (``.jsonl`` or ``.avro``), as written."""
    if path.suffix == ".jsonl":
        codec = _result_codec("json")
        with path.open("rb") as lines:
            return [codec.decode(line) for line in lines if line.strip()]
    import fastavro

    with path.open("rb") as data:
        return list(fastavro.reader(data))


def _replace_file(target: Path, data: bytes | None) -> None:
    """Write ``data`` to ``target`` atomically: readers see the old file or the new one
    (None: remove ``target``)."""
    if data is None:
        target.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are 0600; this one gets the umask's mode like any other.
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temp.open("xb") as out:
            out.write(data)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# -- one line / one message per record ------------------------------------------------------------

def _dead_letter_line(dead) -> str:
    return json.dumps(dead.to_json())


def _result_line(result: dict) -> str:
    return _result_codec("json").encode(result).decode("utf-8")


# -- the file writers ----------------------------------------------------------------------

class _WriteWindowFileFn(beam.DoFn):
    """Bounded runs: ``(window file, results)`` -> that file, written once."""

    def __init__(self):
        self.counter = beam.metrics.Metrics.counter("kappa", "results_written")

    def process(self, element):
        target, results = element
        results = list(results)
        _replace_file(Path(target), _render_window_file(Path(target), results))
        self.counter.inc(len(results))


class _MergeIntoWindowFileFn(beam.DoFn):
    """Live runs: each result merged into its window file as the file stands on disk
    (deduplicated by id, atomically replaced), so the file always holds every pane so far.

    The file itself is the state: nothing is kept in the runner, so a restarted run adds
    to what an earlier run wrote instead of starting the file anew, and a runner that
    hands one key to two bundles at once (Beam's prism does) cannot make one bundle's
    write erase the other's. Writers to one sink directory take turns under a file lock
    (in the temp directory, named by the sink directory): the local runners' workers
    share the machine."""

    def __init__(self, sessions_of: Path | None = None):
        self.counter = beam.metrics.Metrics.counter("kappa", "results_written")
        self.sessions_of = sessions_of  #: the sink's path, for session windows

    def process(self, element):
        target, result = Path(element[0]), element[1]
        with _directory_lock(target.parent):
            so_far = read_window_file(target) if target.exists() else []
            _replace_file(target, _render_window_file(target, so_far + [result]))
            if self.sessions_of is not None and result["is_last"] and not result.get("merged_into"):
                self._drop_orphans_inside(result)
        self.counter.inc()

    def _drop_orphans_inside(self, final: dict) -> None:
        """A restarted run rebuilds a session from the log; if it grew past the kill, the
        panes the killed run fired for its smaller extent were never superseded (the new
        run did not know them). Those of the key's sessions strictly inside this final one
        that have no final pane of their own are removed, as a superseded pane would have."""
        start, end = final["window_start"], final["window_end"]
        for path in window_files(self.sessions_of):
            window = _window_of_file(path)
            if window is None or not (start <= window[0] and window[1] <= end) or window == (start, end):
                continue
            results = read_window_file(path)
            mine = [r for r in results if (r["pipeline"], r["key"]) == (final["pipeline"], final["key"])]
            if mine and not any(r["is_last"] for r in mine):
                _replace_file(path, _render_window_file(path, [r for r in results if r not in mine]))


class _directory_lock:
    """An exclusive lock over a sink directory's window files, across threads and processes."""

    def __init__(self, directory: Path):
        import hashlib

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


class _WriteLinesFileFn(beam.DoFn):
    """Bounded runs: all dead-letter lines -> one file, sorted, written once (even when empty,
    so a re-run does not leave the previous run's dead letters behind)."""

    def __init__(self, target: Path):
        self.target = target
        self.counter = beam.metrics.Metrics.counter("kappa", "dead_letters_written")

    def process(self, lines):
        _replace_file(self.target, "".join(line + "\n" for line in sorted(lines)).encode())
        self.counter.inc(len(lines))


class AppendLinesFn(beam.DoFn):
    """Append each line to ``stdout``, ``stderr`` or a file, flushed at once.

    One lock per process keeps lines whole; the file is opened in append mode."""

    _lock = threading.Lock()

    def __init__(self, target: str, counter: str):
        self.target = target
        self.counter = beam.metrics.Metrics.counter("kappa", counter)

    def setup(self):
        if self.target in ("stdout", "stderr"):
            self.stream = getattr(sys, self.target)
        else:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(self.target, "a", encoding="utf-8")

    def process(self, line: str):
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.counter.inc()

    def teardown(self):
        if self.stream not in (sys.stdout, sys.stderr):
            self.stream.close()
