"""The sinks (Kafka, Pub/Sub, files, the console) and the transforms that apply them."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import apache_beam as beam

from kappa.runners.errors import KappaError
from kappa.runners.sinks.files import (AppendLinesFn, _dead_letter_line, _result_line, _WriteLinesFileFn,
                                       _WriteWindowFileFn, window_file)
from kappa.runners.sinks.live_files import AppendToWindowFileFn
from kappa.runners.sinks.messages import _ensure_pubsub_topic, _KafkaWriteFn, _PubSubWriteFn

RESULT_FORMATS = ("json", "avro")
_RESULT_PARTITIONS = 1  #: partitions of a result topic the sink creates (order within a window kept)


# -- the sinks ------------------------------------------------------------------------------------

class Sink:
    """Where results (or dead letters, when ``dead_letters`` is set) go.

    ``describe`` is one line for humans; ``preflight`` raises :class:`KappaError` before
    any work when the target cannot be written; the ``write_*`` methods apply
    :class:`WriteResults` / :class:`WriteDeadLetters` with their default labels."""

    flag: str
    dead_letters: bool

    def describe(self) -> str:
        raise NotImplementedError

    def preflight(self, timeout_s: float = 10.0) -> None:
        """Nothing to check by default."""

    def dead_letter_default(self) -> Sink:
        raise NotImplementedError

    def write_results(self, pcoll, live: bool):
        """The writer's output: nothing, but its watermark is past what has been written."""
        return pcoll | "WriteResults" >> WriteResults(self, live)

    def write_dead_letters(self, pcoll, live: bool):
        return pcoll | "WriteDeadLetters" >> WriteDeadLetters(self, live)

    @property
    def counter_name(self) -> str:
        """The ``kappa`` metrics counter of what this sink has written."""
        return "dead_letters_written" if self.dead_letters else "results_written"

    def _expand(self, pcoll, live: bool):
        raise NotImplementedError


@dataclass(frozen=True)
class KafkaSink(Sink):
    bootstrap: str
    topic: str
    format: str = "json"
    flag: str = "--sink"
    dead_letters: bool = False

    def __str__(self):
        query = "" if self.format == "json" else f"?format={self.format}"
        return f"kafka://{self.bootstrap}/{self.topic}{query}"

    def describe(self) -> str:
        what = "dead letters as JSON" if self.dead_letters else f"{self.format}, keyed by result id"
        return f"Kafka topic {self.topic} on {self.bootstrap} ({what})"

    def preflight(self, timeout_s: float = 10.0) -> None:
        from kappa.runners.kafka_util import admin_client, ensure_topic

        try:
            ensure_topic(admin_client(self.bootstrap, timeout_s), self.topic, _RESULT_PARTITIONS)
        except KappaError as err:
            raise KappaError(f"{self.flag} {self}: {err}") from None

    def dead_letter_default(self) -> Sink:
        return KafkaSink(self.bootstrap, f"{self.topic}.dead-letters", "json", self.flag, True)

    def _expand(self, pcoll, live: bool):
        return pcoll | "Produce" >> beam.ParDo(_KafkaWriteFn(self))


@dataclass(frozen=True)
class PubSubSink(Sink):
    project: str
    topic: str
    flag: str = "--sink"
    dead_letters: bool = False
    #: host:port of the emulator, from ``$PUBSUB_EMULATOR_HOST`` when the sink is parsed.
    emulator_host: str | None = field(default_factory=lambda: os.environ.get("PUBSUB_EMULATOR_HOST"))

    @property
    def path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    def __str__(self):
        return f"pubsub://{self.path}"

    def describe(self) -> str:
        what = "dead letters as JSON" if self.dead_letters else "JSON, attribute id = result id"
        where = f" on the emulator at {self.emulator_host}" if self.emulator_host else ""
        return f"Pub/Sub topic {self.path}{where} ({what})"

    def preflight(self, timeout_s: float = 10.0) -> None:
        _ensure_pubsub_topic(self, timeout_s)

    def dead_letter_default(self) -> Sink:
        return replace(self, topic=f"{self.topic}-dead-letters", dead_letters=True)

    def _expand(self, pcoll, live: bool):
        return pcoll | "Publish" >> beam.ParDo(_PubSubWriteFn(self))


@dataclass(frozen=True)
class FileSink(Sink):
    """Results: one file per window beside ``path``; dead letters: ``path`` itself, JSON lines."""

    path: Path
    flag: str = "--sink"
    dead_letters: bool = False
    #: session windows, live: a final session removes the key's orphan panes of sessions
    #: inside it (see live_files.py)
    sessions: bool = False
    #: live: a window's file is compacted once the watermark passes its end plus this
    allowed_lateness_ms: int = 0

    def __str__(self):
        return f"file:{self.path}"

    def describe(self) -> str:
        if self.dead_letters:
            return f"file {self.path} (dead letters as JSON lines)"
        return f"files {self.path.with_name(self.path.stem + '-<window>' + self.path.suffix)} (one per window)"

    def preflight(self, timeout_s: float = 10.0) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".kappa-probe-", dir=directory)
            os.close(fd)
            os.remove(probe)
        except OSError as err:
            raise KappaError(f"{self.flag} {self}: cannot write to directory {directory}: {err.strerror}") from None

    def dead_letter_default(self) -> Sink:
        return FileSink(self.path.with_name(f"{self.path.stem}.dead.jsonl"), self.flag, True)

    def _expand(self, pcoll, live: bool):
        target = self.path.absolute()  # workers may not share the launcher's working directory
        if self.dead_letters:
            lines = pcoll | "ToLines" >> beam.Map(_dead_letter_line)
            if live:
                return lines | "Append" >> beam.ParDo(AppendLinesFn(str(target), self.counter_name))
            return (lines
                    | "Gather" >> beam.combiners.ToList()
                    | "Write" >> beam.ParDo(_WriteLinesFileFn(target)))
        by_file = pcoll | "ByWindowFile" >> beam.Map(
            lambda r: (str(window_file(target, r["window_start"], r["window_end"])), r))
        if live:
            return by_file | "Append" >> beam.ParDo(
                AppendToWindowFileFn(self.allowed_lateness_ms, target if self.sessions else None))
        return by_file | "GroupByFile" >> beam.GroupByKey() | "Write" >> beam.ParDo(_WriteWindowFileFn())


@dataclass(frozen=True)
class ConsoleSink(Sink):
    stream: str = "stdout"  #: ``stdout`` or ``stderr``
    flag: str = "--sink"
    dead_letters: bool = False

    def __str__(self):
        return "console"

    def describe(self) -> str:
        return f"standard {'output' if self.stream == 'stdout' else 'error'} " \
               f"({'dead letters' if self.dead_letters else 'results'} as JSON lines)"

    def dead_letter_default(self) -> Sink:
        return ConsoleSink("stderr", self.flag, True)

    def _expand(self, pcoll, live: bool):
        to_line = _dead_letter_line if self.dead_letters else _result_line
        return pcoll | "ToLines" >> beam.Map(to_line) | "Print" >> beam.ParDo(
            AppendLinesFn(self.stream, self.counter_name))


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
        return self.sink._expand(results, self.live)


class WriteDeadLetters(beam.PTransform):
    """DeadLetter records -> ``sink`` as JSON lines. Given a result sink, they go to the
    place beside it (:meth:`Sink.dead_letter_default`), never into the results."""

    def __init__(self, sink: Sink, live: bool):
        super().__init__()
        self.sink = sink if sink.dead_letters else sink.dead_letter_default()
        self.live = live

    def expand(self, dead_letters):
        return self.sink._expand(dead_letters, self.live)
