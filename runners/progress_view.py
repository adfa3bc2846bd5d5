"""What a running job shows: a replay's progress bar (offsets done of the manifest's
total, events per second, ETA), a live run's lag per partition and watermark, and
the summary at the end from Beam's metrics (``kappa`` namespace).

On a terminal the display redraws one line in place; otherwise (CI, a log file) it
prints a plain line every ``log_every_s``.
"""

from __future__ import annotations

import sys
import threading
import time

from kappa.replay.decoding import METRICS_NAMESPACE
from kappa.replay.manifest import Manifest
from kappa.replay.progress import RunChannel
from kappa.schemas.jsonform import format_instant

__all__ = ["ProgressView", "metric_counts", "summary_lines"]


class ProgressView:
    def __init__(self, channel: RunChannel, manifest: Manifest | None, live: bool, stream=None,
                 interval_s: float = 1.0, log_every_s: float = 10.0):
        self.channel, self.manifest, self.live = channel, manifest, live
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval_s = interval_s if self.tty else log_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kappa-progress", daemon=True)
        self._started = time.monotonic()
        self._samples: list[tuple[float, int]] = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            line = self.line()
            if line:
                self.stream.write(f"\r\033[K{line}" if self.tty else line + "\n")
                self.stream.flush()

    def line(self) -> str | None:
        positions = self.channel.positions()
        if self.live:
            return live_line(positions) if positions else None
        return self._replay_line(positions)

    def _replay_line(self, positions: dict) -> str | None:
        if self.manifest is None:  # Pub/Sub or archive: no known total
            return None
        done = replay_done(self.manifest, positions)
        total = self.manifest.total or 0
        now = time.monotonic()
        self._samples = [s for s in self._samples if now - s[0] <= 10] + [(now, done)]
        first_t, first_done = self._samples[0]
        rate = (done - first_done) / (now - first_t) if now > first_t else 0.0
        eta = f"ETA {(total - done) / rate:.0f}s" if rate > 0 and done < total else ""
        return f"{progress_bar(done, total)} {done:,}/{total:,} offsets  {rate:,.0f} ev/s  {eta}".rstrip()


def replay_done(manifest: Manifest, positions: dict) -> int:
    """Offsets read so far: each partition's reported position past its range start."""
    done = 0
    for r in manifest.ranges:
        report = positions.get(f"{r.topic}-{r.partition}")
        if report is not None and r.stop is not None:
            done += max(0, min(report["position"], r.stop) - r.start)
    return done


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total <= 0 else min(width, done * width // total)
    percent = 100.0 if total <= 0 else 100.0 * done / total
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}%"


def live_line(positions: dict) -> str:
    """``watermark <instant>  lag p0=12 p1=0 ...`` (lag: the high watermark minus the position)."""
    parts, marks = [], []
    for name in sorted(positions, key=lambda n: (len(n), n)):
        report = positions[name]
        if report.get("high") is not None and report.get("position") is not None:
            parts.append(f"p{report['partition']}={max(0, report['high'] - report['position'])}")
        if report.get("watermark_ms") is not None:
            marks.append(report["watermark_ms"])
    watermark = format_instant(min(marks)) if marks else "none yet"
    return f"watermark {watermark}  lag {' '.join(parts) or 'n/a'}"


def metric_counts(result) -> dict[str, int]:
    """Beam counters of the ``kappa`` namespace, by name (committed values where the runner has them)."""
    counts: dict[str, int] = {}
    try:
        counters = result.metrics().query()["counters"]
    except (AttributeError, NotImplementedError, KeyError):
        return counts
    for metric in counters:
        if metric.key.metric.namespace != METRICS_NAMESPACE:
            continue
        value = metric.committed if metric.committed is not None else metric.attempted
        counts[metric.key.metric.name] = counts.get(metric.key.metric.name, 0) + int(value or 0)
    return counts


def summary_lines(counts: dict[str, int], wall_s: float) -> list[str]:
    dead = {name.removeprefix("dead_letters_"): n for name, n in sorted(counts.items())
            if name.startswith("dead_letters_") and name != "dead_letters_written" and n}
    dead_text = ", ".join(f"{reason} {n:,}" for reason, n in dead.items()) or "none"
    return [
        f"records read      {counts.get('records_read', 0):,}",
        f"results written   {counts.get('results_written', 0):,}",
        f"dead letters      {sum(dead.values()):,} ({dead_text})",
        f"wall time         {wall_s:.1f}s",
    ]
