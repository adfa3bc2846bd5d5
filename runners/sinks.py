"""Result sinks, one grammar for every command (the mirror of ``replay/sources.py``):

* ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?format=json|avro]``: one message per
  result (default JSON), key = the result's ``id``, from an idempotent producer;
* ``pubsub://projects/PROJECT/topics/TOPIC`` (or ``pubsub://PROJECT/TOPIC``): one
  JSON message per result, attributes ``id``, ``pipeline``, ``window``, ``timing``;
* ``file:PATH.jsonl`` / ``file:PATH.avro``: one file per window,
  ``PATH-<start>-<end>.jsonl`` (compact UTC, e.g. ``totals-20261120T090000Z-20261120T090100Z.jsonl``);
* ``console`` (or ``-``): one JSON line per result on standard output.

Invariants every sink keeps:

* **Idempotent by result id.** Ids are deterministic, so a re-run writes the same
  records: Kafka and Pub/Sub readers dedupe by id (the key / the ``id`` attribute);
  a window file is rewritten whole, deduplicated by id and sorted by
  ``(key, pane_index)``, so a re-run leaves byte-identical files instead of duplicates.
* **A finished bundle means durable results.** Kafka is flushed and Pub/Sub publish
  futures are awaited in ``finish_bundle`` (a failed delivery fails the bundle); files
  are replaced atomically (temp file + ``os.replace``). Live runs commit source offsets
  only after that.
* **Dead letters go beside the results** (:meth:`Sink.dead_letter_default`) as plain
  JSON lines of ``DeadLetter.to_json()``, never per window.

Parsing checks only the text (:class:`UsageError`); :meth:`Sink.preflight` checks the
environment before any work (:class:`KappaError`). Both messages start with the flag.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam

from kappa.replay.kafka_client import client_config
from kappa.runners.errors import KappaError, UsageError
from kappa.schemas.jsonform import format_instant

__all__ = [
    "ConsoleSink",
    "FileSink",
    "KafkaSink",
    "PubSubSink",
    "Sink",
    "WriteDeadLetters",
    "AppendLinesFn",
    "WriteResults",
    "parse_dead_letter_sink",
    "parse_sink",
    "pubsub_path",
    "read_window_file",
    "window_file",
    "window_file_glob",
    "window_files",
]

RESULT_SCHEMA = "window_result"
RESULT_FORMATS = ("json", "avro")
_COMPACT = r"\d{8}T\d{6}(?:\.\d{3})?Z"
_DELIVERY_TIMEOUT_S = 60.0  #: how long finish_bundle waits for the broker before failing the bundle
_RESULT_PARTITIONS = 1  #: partitions of a result topic the sink creates (order within a window kept)


# -- the grammar --------------------------------------------------------------------------------

def parse_sink(text: str, flag: str = "--sink") -> Sink:
    """The sink a ``--sink`` value names; raises :class:`UsageError` naming ``flag``."""
    if text in ("console", "-"):
        return ConsoleSink("stdout", flag)
    if text.startswith("kafka://"):
        return _parse_kafka(text, flag)
    if text.startswith("pubsub://"):
        project, topic = pubsub_path(text, flag, "topics")
        return PubSubSink(project, topic, flag)
    if text.startswith("file:"):
        path = Path(text[len("file:"):])
        if path.suffix not in (".jsonl", ".avro") or not path.stem:
            raise UsageError(f"{flag} {text}: write file:PATH.jsonl or file:PATH.avro")
        return FileSink(path, flag)
    scheme = text.split(":", 1)[0] if ":" in text else text
    raise UsageError(f"{flag} {text}: unknown sink scheme {scheme!r} (use kafka://, pubsub://, file: or console)")


def parse_dead_letter_sink(text: str, flag: str = "--dead-letter") -> Sink:
    """An explicit dead-letter sink: the same schemes, always plain JSON lines (``console``
    means standard error), never one file per window."""
    sink = parse_sink(text, flag)
    if isinstance(sink, KafkaSink) and sink.format != "json":
        raise UsageError(f"{flag} {text}: dead letters are written as JSON (drop ?format=)")
    if isinstance(sink, FileSink) and sink.path.suffix != ".jsonl":
        raise UsageError(f"{flag} {text}: dead letters are JSON lines: write file:PATH.jsonl")
    if isinstance(sink, ConsoleSink):
        sink = replace(sink, stream="stderr")
    return replace(sink, dead_letters=True)


def _parse_kafka(text: str, flag: str) -> KafkaSink:
    from kappa.replay.errors import ReplayError
    from kappa.replay.sources import parse_source

    address, _, query = text.partition("?")
    try:
        source = parse_source(address)  # the one grammar of Kafka addresses, as for --source
    except ReplayError as err:
        raise UsageError(f"{flag} {text}: {str(err).removeprefix(f'--source {address}: ')}") from None
    fmt = "json"
    for setting in filter(None, query.split("&")):
        name, _, value = setting.partition("=")
        if name != "format":
            raise UsageError(f"{flag} {text}: unknown setting {name!r} (only ?format=json|avro)")
        if value not in RESULT_FORMATS:
            raise UsageError(f"{flag} {text}: unknown format {value!r} (use json or avro)")
        fmt = value
    return KafkaSink(source.bootstrap, source.topic, fmt, flag)


def pubsub_path(text: str, flag: str, collection: str) -> tuple[str, str]:
    """(project, name) of ``pubsub://projects/P/<collection>/N`` or ``pubsub://P/N``."""
    parts = text[len("pubsub://"):].split("/")
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == collection and parts[1] and parts[3]:
        return parts[1], parts[3]
    if len(parts) == 2 and all(parts) and parts[0] != "projects":
        return parts[0], parts[1]
    raise UsageError(f"{flag} {text}: write pubsub://projects/PROJECT/{collection}/NAME or pubsub://PROJECT/NAME")


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


def _result_attributes(result: dict) -> dict[str, str]:
    """What a message carries beside its body: enough to route or dedupe without decoding."""
    window = f"{format_instant(result['window_start'])}/{format_instant(result['window_end'])}"
    return {"id": result["id"], "pipeline": result["pipeline"], "window": window, "timing": result["timing"]}


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
    #: inside it (see _MergeIntoWindowFileFn)
    sessions: bool = False

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
            return by_file | "Merge" >> beam.ParDo(_MergeIntoWindowFileFn(target if self.sessions else None))
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
    """Result records -> ``sink``. ``live``: a streaming run (each result is merged into
    its window file as it comes, instead of each file written once after a GroupByKey)."""

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


# -- the writers ------------------------------------------------------------------------------------

class _DeliverFn(beam.DoFn):
    """Base of the message writers: the sink, and the counter of what it confirmed written."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.counter = beam.metrics.Metrics.counter("kappa", sink.counter_name)


class _KafkaWriteFn(_DeliverFn):
    """Produce each record; ``finish_bundle`` flushes and fails the bundle on any failed delivery."""

    def setup(self):
        from confluent_kafka import Producer

        self.sink.preflight()
        self.codec = _result_codec(self.sink.format)
        self.producer = Producer(client_config({
            "bootstrap.servers": self.sink.bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": int(_DELIVERY_TIMEOUT_S * 1000), "log_level": 0}))

    def start_bundle(self):
        self.sent, self.failures = 0, []

    def process(self, element):
        if self.sink.dead_letters:
            key, value = element.key, _dead_letter_line(element).encode()
            headers = [("kappa-reason", element.reason.encode())]
        else:
            key, value = element["id"].encode(), self.codec.encode(element)
            headers = [(f"kappa-{name}", text.encode()) for name, text in _result_attributes(element).items()]
        while True:
            try:
                self.producer.produce(self.sink.topic, value=value, key=key, headers=headers,
                                      on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(1)
        self.sent += 1
        self.producer.poll(0)

    def _delivered(self, err, _message):
        if err is not None:
            self.failures.append(err.str())

    def finish_bundle(self):
        left = self.producer.flush(_DELIVERY_TIMEOUT_S)
        if left or self.failures:
            raise KappaError(f"{self.sink.flag} {self.sink}: {left + len(self.failures)} of {self.sent} records "
                             f"not delivered ({(self.failures or ['flush timed out'])[0]})")
        self.counter.inc(self.sent)

    def teardown(self):
        producer = getattr(self, "producer", None)
        if producer is not None:
            producer.flush(_DELIVERY_TIMEOUT_S)


def _ensure_pubsub_topic(sink: PubSubSink, timeout_s: float):
    """The publisher for ``sink``, after creating its topic if it was missing."""
    from google.api_core import exceptions
    from google.auth.exceptions import DefaultCredentialsError

    from kappa.replay.pubsub_source import pubsub_clients

    try:
        publisher, _ = pubsub_clients(sink.emulator_host)
        publisher.create_topic(name=sink.path, timeout=timeout_s, retry=None)
    except exceptions.AlreadyExists:
        pass
    except (exceptions.GoogleAPICallError, DefaultCredentialsError) as err:
        where = f"the emulator at {sink.emulator_host}" if sink.emulator_host else "Google Cloud Pub/Sub"
        message = getattr(err, "message", None) or str(err)
        raise KappaError(f"{sink.flag} {sink}: cannot reach {where} within {timeout_s:.0f}s: "
                         f"{message.splitlines()[0] if message else type(err).__name__}") from None
    return publisher


class _PubSubWriteFn(_DeliverFn):
    """Publish each record as JSON; ``finish_bundle`` waits for every publish."""

    def setup(self):
        self.publisher = _ensure_pubsub_topic(self.sink, 10.0)

    def start_bundle(self):
        self.futures = []

    def process(self, element):
        if self.sink.dead_letters:
            data, attributes = _dead_letter_line(element).encode(), {"reason": element.reason}
        else:
            data, attributes = _result_line(element).encode(), _result_attributes(element)
        self.futures.append(self.publisher.publish(self.sink.path, data, **attributes))

    def finish_bundle(self):
        from concurrent.futures import TimeoutError as FutureTimeout

        from google.api_core import exceptions

        failures = []
        for future in self.futures:
            try:
                future.result(timeout=_DELIVERY_TIMEOUT_S)
            except (exceptions.GoogleAPICallError, FutureTimeout) as err:
                failures.append(str(err) or type(err).__name__)
        if failures:
            raise KappaError(f"{self.sink.flag} {self.sink}: {len(failures)} of {len(self.futures)} records "
                             f"not published ({failures[0]})")
        self.counter.inc(len(self.futures))


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
