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
  a window file is written whole, deduplicated by id and sorted by
  ``(key, pane_index)``, so a re-run leaves byte-identical files instead of duplicates
  (live: appended to, and compacted so when the window closes; ``live_files.py``).
* **A finished bundle means durable results.** Kafka is flushed and Pub/Sub publish
  futures are awaited in ``finish_bundle`` (a failed delivery fails the bundle); files
  are replaced atomically (temp file + ``os.replace``) or appended to in one write. Live
  runs commit source offsets only after that.
* **Dead letters go beside the results** (:meth:`Sink.dead_letter_default`) as plain
  JSON lines of ``DeadLetter.to_json()``, never per window.

Parsing checks only the text (:class:`UsageError`); :meth:`Sink.preflight` checks the
environment before any work (:class:`KappaError`). Both messages start with the flag.

The package: this module holds the grammar; ``kinds.py`` the sinks and their checks;
``files.py`` window files (naming, contents); ``writers.py`` the transforms that write
each sink (``WriteResults``, ``WriteDeadLetters``) and the bounded file writers;
``live_files.py`` the live writer; ``messages.py`` the Kafka and Pub/Sub writers. Only
``writers.py`` and the modules it imports need Beam.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kappa.runners.errors import UsageError
from kappa.runners.sinks.files import read_window_file, window_file, window_file_glob, window_files
from kappa.runners.sinks.kinds import RESULT_FORMATS, ConsoleSink, FileSink, KafkaSink, PubSubSink, Sink

__all__ = [
    "ConsoleSink",
    "FileSink",
    "KafkaSink",
    "PubSubSink",
    "Sink",
    "parse_dead_letter_sink",
    "parse_sink",
    "pubsub_path",
    "read_window_file",
    "window_file",
    "window_file_glob",
    "window_files",
]


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
