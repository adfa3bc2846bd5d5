"""Window files of the file sink: their names and contents, read and written without Beam
(``writers.py`` writes them from a pipeline; live runs append to them: ``live_files.py``)."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

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


def _sync_marker(target: Path) -> bytes:
    """The Avro sync marker of a window file, derived from its name: equal results give
    byte-identical files, and a live writer can append blocks without reading the header."""
    import hashlib

    return hashlib.sha256(target.name.encode()).digest()[:16]


def _encode(target: Path, ordered: list[dict], header: bool) -> bytes:
    """``ordered`` as the bytes of ``target``'s format: JSON lines, or Avro data blocks,
    after the container's header when ``header`` (without it: what an append adds)."""
    if target.suffix == ".jsonl":
        codec = _result_codec("json")
        return b"".join(codec.encode(r) + b"\n" for r in ordered)
    import io

    import fastavro

    def avro(records) -> bytes:
        out = io.BytesIO()
        fastavro.writer(out, _result_codec("avro").schema, records, sync_marker=_sync_marker(target))
        return out.getvalue()

    whole = avro(ordered)
    return whole if header else whole[len(avro([])):]


def _render_window_file(target: Path, results) -> bytes | None:
    """The bytes of one window file: results deduplicated by id, sorted by (key, pane_index);
    None when nothing is left to write.

    A (pipeline, key) whose session was merged away (a result ``merged_into`` another
    session) has no window here: its results are left out."""
    unique = {r["id"]: r for r in results}
    superseded = {(r["pipeline"], r["key"]) for r in unique.values() if r.get("merged_into")}
    ordered = sorted((r for r in unique.values() if (r["pipeline"], r["key"]) not in superseded),
                     key=lambda r: (r["key"], r["pane_index"], r["pipeline"], r["id"]))
    return _encode(target, ordered, header=True) if ordered else None


def _complete_length(path: Path) -> int:
    """How many leading bytes of a window file are whole records: all of it, unless a live
    writer was killed in the middle of an append (then the torn tail is not a result).
    Every append ends with a newline (JSON lines) or the file's sync marker (Avro), so a
    whole file costs reading its last few bytes."""
    size = path.stat().st_size
    end = b"\n" if path.suffix == ".jsonl" else _sync_marker(path)
    with path.open("rb") as data:
        data.seek(max(0, size - len(end)))
        if data.read() == end:
            return size
        position = size
        while position > 0:  # torn: search backwards, a chunk at a time
            start = max(0, position - 65536)
            data.seek(start)
            chunk = data.read(min(size, position + len(end)) - start)  # overlap: an end across chunks
            found = chunk.rfind(end)
            if found >= 0:
                return start + found + len(end)
            position = start
    return 0


def read_window_file(path: Path) -> list[dict]:
    """The result records of one window file (``.jsonl`` or ``.avro``), as written (a torn
    last append of a killed live writer left out)."""
    with path.open("rb") as data:
        whole = data.read(_complete_length(path))
    if path.suffix == ".jsonl":
        codec = _result_codec("json")
        return [codec.decode(line) for line in whole.splitlines() if line.strip()]
    import io

    import fastavro

    return list(fastavro.reader(io.BytesIO(whole))) if whole else []


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
