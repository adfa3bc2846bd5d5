"""The live file sink's cost per pane: bytes written and read for one window of n results.

Runs the live writer (``FileSink.write_results(live=True)``) on the in-process
DirectRunner over n merchant_totals results of one window (n/2 keys, an early and a
final pane each) and reads the kernel's counts of this process's I/O (``/proc/self/io``
``wchar``/``rchar``) around it. Linear: written ≈ 2 × the file (each pane appended once,
the file compacted once when the window closes). A writer that rewrites the file per
result shows written ≈ n/2 × the file.

    .venv/bin/python bench/file_sink.py 1000 4000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kappa.runners.sinks import FileSink, window_files  # noqa: E402
from tests.test_sinks import results_over, write_results  # noqa: E402


def _io() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["rchar"])


def measure(n: int) -> dict:
    keys = tuple(f"merchant-{k:05d}" for k in range(n // 2))
    results = results_over(windows=1, keys=keys, panes=2)
    with tempfile.TemporaryDirectory() as folder:
        sink = FileSink(Path(folder) / "totals.jsonl")
        (wrote0, read0), started = _io(), time.monotonic()
        write_results(sink, results, live=True)
        (wrote1, read1), seconds = _io(), time.monotonic() - started
        size = sum(p.stat().st_size for p in window_files(sink.path))
    return {"results": len(results), "file_bytes": size, "written": wrote1 - wrote0, "read": read1 - read0,
            "written_per_file_byte": round((wrote1 - wrote0) / size, 2), "seconds": round(seconds, 2)}


def main(argv: list[str]) -> None:
    for n in [int(a) for a in argv] or [1000, 4000]:
        print(measure(n), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
