"""The run directory: how a running pipeline's readers and the ``kappa`` process that
launched it talk, through small files (the runners kappa starts locally run the
SDK harness in kappa's own process or beside it, on the same disk).

* ``progress/<source>-<partition>.json``: each reader's position, written at most
  every ``interval_s`` and once at the end (atomically: a reader of the file never
  sees half of it), with the id of the worker process that read it. The CLI turns them into the progress bar (replays) and the lag
  and watermark lines (live runs).
* ``stop``: present once a stop was requested. Live readers then finish at their
  current position (a drain): the restriction ends there, every window closes as
  in a bounded replay, and each reader's final position is its last report, so the
  offsets a live run consumed can be replayed exactly.
* ``clock-marks/<source>-<partition>.jsonl``: a live reader's clock marks, one
  ``{"offset": o, "watermark_ms": w}`` line per record whose fate its partition's
  clock-moved watermark may decide (see ``PartitionRange.clock_marks``), appended and
  flushed as the records are emitted. A retried bundle may repeat an offset; the
  launcher keeps the greatest watermark of each when it saves the drained manifest.

Beam metrics count the same things (``kappa`` namespace) for the final summary; they
are not readable while a local job runs, hence these files.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["RunChannel"]


class RunChannel:
    """One run's directory; picklable (it travels with the DoFn)."""

    def __init__(self, run_dir: str | os.PathLike, interval_s: float = 0.5):
        self.run_dir = str(run_dir)
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def __getstate__(self):
        return {"run_dir": self.run_dir, "interval_s": self.interval_s}

    def __setstate__(self, state):
        self.__init__(state["run_dir"], state["interval_s"])

    @property
    def _progress_dir(self) -> Path:
        return Path(self.run_dir) / "progress"

    @property
    def _marks_dir(self) -> Path:
        return Path(self.run_dir) / "clock-marks"

    # -- the launcher's side -------------------------------------------------------
    def request_stop(self) -> None:
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.run_dir) / "stop").touch()

    def positions(self) -> dict[str, dict]:
        """The latest report of every reader, by its name."""
        out = {}
        if self._progress_dir.is_dir():
            for path in self._progress_dir.glob("*.json"):
                try:
                    out[path.stem] = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # replaced while read: the next look sees it
        return out

    def clock_marks(self) -> dict[str, list[tuple[int, int]]]:
        """Every reader's clock marks ``(offset, watermark_ms)`` as recorded (repeats included), by its name."""
        out = {}
        if self._marks_dir.is_dir():
            for path in self._marks_dir.glob("*.jsonl"):
                out[path.stem] = [mark for line in path.read_text().splitlines() if (mark := _mark(line))]
        return out

    # -- the readers' side ---------------------------------------------------------
    def stop_requested(self) -> bool:
        return os.path.exists(os.path.join(self.run_dir, "stop"))

    def report(self, name: str, final: bool = False, **fields) -> None:
        """Write ``fields`` as reader ``name``'s position (throttled unless ``final``)."""
        now = time.monotonic()
        if not final and now - self._last.get(name, -1e9) < self.interval_s:
            return
        self._last[name] = now
        self._progress_dir.mkdir(parents=True, exist_ok=True)
        path = self._progress_dir / f"{name}.json"
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({**fields, "final": final, "at": time.time(), "pid": os.getpid()}))
        os.replace(partial, path)

    def record_clock_marks(self, name: str, marks: list[tuple[int, int]]) -> None:
        """Append reader ``name``'s clock marks ``(offset, watermark_ms)``, flushed when this returns."""
        self._marks_dir.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"offset": offset, "watermark_ms": ms}) + "\n" for offset, ms in marks)
        with open(self._marks_dir / f"{name}.jsonl", "a") as out:
            out.write(lines)


def _mark(line: str) -> tuple[int, int] | None:
    """One clock-mark line; None for a line a crash cut short."""
    try:
        mark = json.loads(line)
        return int(mark["offset"]), int(mark["watermark_ms"])
    except (ValueError, KeyError, TypeError):
        return None
