"""How each sink is written from a pipeline: the Beam side of the sinks (``kinds.py``
says what a sink is and checks it; ``files.py`` is the window files' format)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import apache_beam as beam

from kappa.runners.sinks.files import _dead_letter_line, _render_window_file, _replace_file, _result_line, window_file
from kappa.runners.sinks.kinds import ConsoleSink, FileSink, KafkaSink, PubSubSink, Sink
from kappa.runners.sinks.live_files import AppendToWindowFileFn
from kappa.runners.sinks.messages import _KafkaWriteFn, _PubSubWriteFn

__all__ = ["AppendLinesFn", "WriteDeadLetters", "WriteResults"]


class WriteResults(beam.PTransform):
    """Result records -> ``sink``. ``live``: a streaming run (each result is appended to
    its window file as it comes, the file compacted when its window closes, instead of
    each file written once after a GroupByKey)."""

    def __init__(self, sink: Sink, live: bool):
        super().__init__()
        if sink.dead_letters:
            raise ValueError(f"{sink} is a dead-letter sink")
        self.sink, self.live = sink, live

    def expand(self, results):
        return _write(self.sink, results, self.live)


class WriteDeadLetters(beam.PTransform):
    """DeadLetter records -> ``sink`` as JSON lines. Given a result sink, they go to the
    place beside it (:meth:`Sink.dead_letter_default`), never into the results."""

    def __init__(self, sink: Sink, live: bool):
        super().__init__()
        self.sink = sink if sink.dead_letters else sink.dead_letter_default()
        self.live = live

    def expand(self, dead_letters):
        return _write(self.sink, dead_letters, self.live)


def _write(sink: Sink, pcoll, live: bool):
    """The writer's output: nothing, but its watermark is past what has been written."""
    if isinstance(sink, KafkaSink):
        return pcoll | "Produce" >> beam.ParDo(_KafkaWriteFn(sink))
    if isinstance(sink, PubSubSink):
        return pcoll | "Publish" >> beam.ParDo(_PubSubWriteFn(sink))
    if isinstance(sink, ConsoleSink):
        to_line = _dead_letter_line if sink.dead_letters else _result_line
        return pcoll | "ToLines" >> beam.Map(to_line) | "Print" >> beam.ParDo(
            AppendLinesFn(sink.stream, sink.counter_name))
    if isinstance(sink, FileSink):
        return _write_files(sink, pcoll, live)
    raise TypeError(f"no writer for {type(sink).__name__}")


def _write_files(sink: FileSink, pcoll, live: bool):
    target = sink.path.absolute()  # workers may not share the launcher's working directory
    if sink.dead_letters:
        lines = pcoll | "ToLines" >> beam.Map(_dead_letter_line)
        if live:
            return lines | "Append" >> beam.ParDo(AppendLinesFn(str(target), sink.counter_name))
        return (lines
                | "Gather" >> beam.combiners.ToList()
                | "Write" >> beam.ParDo(_WriteLinesFileFn(target)))
    by_file = pcoll | "ByWindowFile" >> beam.Map(
        lambda r: (str(window_file(target, r["window_start"], r["window_end"])), r))
    if live:
        return by_file | "Append" >> beam.ParDo(
            AppendToWindowFileFn(sink.allowed_lateness_ms, target if sink.sessions else None))
    return by_file | "GroupByFile" >> beam.GroupByKey() | "Write" >> beam.ParDo(_WriteWindowFileFn())


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
