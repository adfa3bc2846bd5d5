"""The sinks (Kafka, Pub/Sub, files, the console): what each is, and its checks. Writing
them from a pipeline is ``writers.py``'s; this module imports no Beam, so that commands
that only read results (``kappa verify``) start without it."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from kappa.runners.errors import KappaError

RESULT_FORMATS = ("json", "avro")
_RESULT_PARTITIONS = 1  #: partitions of a result topic the sink creates (order within a window kept)


# -- the sinks ------------------------------------------------------------------------------------

class Sink:
    """Where results (or dead letters, when ``dead_letters`` is set) go.

    ``describe`` is one line for humans; ``preflight`` raises :class:`KappaError` before
    any work when the target cannot be written; the ``write_*`` methods apply
    ``writers.WriteResults`` / ``writers.WriteDeadLetters`` with their default labels."""

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
        from kappa.runners.sinks.writers import WriteResults

        return pcoll | "WriteResults" >> WriteResults(self, live)

    def write_dead_letters(self, pcoll, live: bool):
        from kappa.runners.sinks.writers import WriteDeadLetters

        return pcoll | "WriteDeadLetters" >> WriteDeadLetters(self, live)

    @property
    def counter_name(self) -> str:
        """The ``kappa`` metrics counter of what this sink has written."""
        return "dead_letters_written" if self.dead_letters else "results_written"


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
        from kappa.runners.sinks.messages import _ensure_pubsub_topic

        _ensure_pubsub_topic(self, timeout_s)

    def dead_letter_default(self) -> Sink:
        return replace(self, topic=f"{self.topic}-dead-letters", dead_letters=True)



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
