"""``kappa verify A B``: do two result sets hold the same final window values?

A and B are addresses in the sink grammar (``runners/sinks/``): ``file:PATH.jsonl``
or ``.avro`` (every window file of that sink), ``kafka://HOST:PORT/TOPIC[?format=avro]``
(every partition from its start to the high watermark seen when the read starts), or
``pubsub://projects/P/subscriptions/S`` (pulled and acked until quiet for --timeout).

Rules (the Kappa promise of shared/DESIGN.md, checked):

* A window is ``(pipeline, key, [window_start, window_end))``. Copies of one result id
  are the same record (a re-delivery), so counting them twice changes nothing.
* Its final pane is the one with ``is_last`` set; a window without one is "not final".
  A session whose last pane is ``merged_into`` another was merged away: it is no
  window at all (its earlier panes were superseded), on either side.
* Final panes carry the whole window in either accumulation mode, so a discarding
  run compares with an accumulating one, and with a replay, window by window.
* Values are compared in their JSON form (the codec's), so ``Decimal("12.50")`` read
  from Avro equals ``"12.50"`` read from JSON: exact, never through floats.
* Whether a record is too late follows from the log (its partition's watermark), so a
  live run and a replay drop the same records. The one exception is a live partition
  idle at the head of the log, whose watermark follows the clock: its dead letters say
  ``decided_by: clock``. With ``--exclude-too-late``, every window that shares time
  with a window named by such a dead letter is left out, for every pipeline and key
  (dead letters name the window, not the pipeline's key); ``decided_by: log`` ones
  exclude nothing, since both runs dropped those records.
* Exit 0 only when nothing differs, is missing, extra or not final; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from kappa.runners import cliargs
from kappa.runners.errors import KappaError, UsageError
from kappa.runners.sinks import FileSink, KafkaSink, parse_sink, pubsub_path, read_window_file, window_file_glob, window_files
from kappa.schemas.jsonform import format_instant, parse_instant

__all__ = ["Comparison", "ResultSet", "WindowId", "add_parsers", "compare", "final_panes", "read_result_set",
           "run_verify", "too_late_windows"]

EXAMPLES = """\
examples:
  kappa verify file:out/live/totals.jsonl file:out/replay/totals.jsonl
  kappa verify kafka://127.0.0.1:9092/merchant-totals file:out/replay/totals.avro --pipeline merchant_totals
  kappa verify file:out/live/totals.jsonl file:out/replay/totals.jsonl --exclude-too-late out/live/totals.dead.jsonl
  kappa verify pubsub://projects/kappa-local/subscriptions/totals-check file:out/replay/totals.jsonl --show 100
"""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ENVELOPE = ("id", "pane_id", "pipeline", "key", "window_start", "window_end", "timing", "pane_index", "is_last",
             "merged_into")


# -- the comparison (pure) --------------------------------------------------------------------------

def _ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


def _instant(ms: int) -> str:
    """``2026-11-20T09:00:00Z``; milliseconds only when not zero."""
    return format_instant(ms).replace(".000Z", "Z")


@dataclass(frozen=True, order=True)
class WindowId:
    pipeline: str
    key: str
    start_ms: int
    end_ms: int  #: exclusive

    def __str__(self):
        return f"{self.pipeline} key={self.key} [{_instant(self.start_ms)}, {_instant(self.end_ms)})"


@dataclass
class ResultSet:
    """Final values by window (``finals``), and the windows seen without a final pane."""

    finals: dict[WindowId, dict] = field(default_factory=dict)
    not_final: set[WindowId] = field(default_factory=set)

    @property
    def windows(self) -> set[WindowId]:
        return set(self.finals) | self.not_final


def final_panes(records: Iterable[dict], pipeline: str | None = None) -> ResultSet:
    """The final pane's values (JSON form) of every window in ``records``; only
    ``pipeline``'s when given. Records with the same id count once."""
    from kappa.schemas import make_codec

    codec = make_codec("json", "window_result")
    unique = {r["id"]: r for r in records if pipeline is None or r["pipeline"] == pipeline}
    out = ResultSet()
    last_pane: dict[WindowId, int] = {}
    superseded: set[WindowId] = set()
    for record in unique.values():
        window = WindowId(record["pipeline"], record["key"], _ms(record["window_start"]), _ms(record["window_end"]))
        if record.get("merged_into"):
            superseded.add(window)
        elif not record["is_last"]:
            out.not_final.add(window)
        elif record["pane_index"] >= last_pane.get(window, -1):
            last_pane[window] = record["pane_index"]
            as_json = json.loads(codec.encode(record))
            out.finals[window] = {k: v for k, v in as_json.items() if k not in _ENVELOPE}
    out.not_final -= set(out.finals)
    for window in superseded:  # a session merged away is no window at all
        out.finals.pop(window, None)
        out.not_final.discard(window)
    return out


def _show(values: dict | None) -> str:
    if values is None:
        return "(not final)"
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(values.items()))


@dataclass
class Comparison:
    """What ``compare`` found; ``problems`` are (window, readable line), sorted by window."""

    windows_a: int
    windows_b: int
    agree: int = 0
    excluded: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("values differ", "missing in B", "extra in B", "not final"), 0))
    problems: list[tuple[WindowId, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self, label_a: str, label_b: str, show: int) -> list[str]:
        found = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        lines = [f"A {label_a}: {self.windows_a} windows",
                 f"B {label_b}: {self.windows_b} windows",
                 f"{self.agree} agree, {found}, {self.excluded} excluded (too late by the clock in a live run)"]
        lines += [line for _, line in sorted(self.problems)[:show]]
        if len(self.problems) > show:
            lines.append(f"... and {len(self.problems) - show} more (--show {len(self.problems)} lists them all)")
        lines.append("A and B agree" if self.ok else "A and B differ")
        return lines

    def _problem(self, kind: str, window: WindowId, detail: str) -> None:
        self.counts[kind] += 1
        self.problems.append((window, f"{window}: {kind}: {detail}"))


def _overlaps(window: WindowId, spans: list[tuple[int, int]]) -> bool:
    return any(start < window.end_ms and window.start_ms < end for start, end in spans)


def compare(a: ResultSet, b: ResultSet, too_late: Iterable[tuple[int, int]] = ()) -> Comparison:
    """Compare every window of A and B, leaving out those sharing time with ``too_late`` spans."""
    spans = list(too_late)
    out = Comparison(len(a.windows), len(b.windows))
    for window in sorted(a.windows | b.windows):
        va, vb = a.finals.get(window), b.finals.get(window)
        if _overlaps(window, spans):
            out.excluded += 1
        elif window not in b.windows:
            out._problem("missing in B", window, f"A {_show(va)}")
        elif window not in a.windows:
            out._problem("extra in B", window, f"B {_show(vb)}")
        elif va is None or vb is None:
            side = "A and B" if va is None and vb is None else ("A" if va is None else "B")
            out._problem("not final", window, f"no is_last pane in {side}: A {_show(va)} | B {_show(vb)}")
        elif va != vb:
            out._problem("values differ", window, f"A {_show(va)} | B {_show(vb)}")
        else:
            out.agree += 1
    return out


# -- reading result sets and dead letters --------------------------------------------------------------

def read_result_set(text: str, flag: str, timeout_s: float = 10.0) -> list[dict]:
    """Every result record at address ``text`` (messages name ``flag``)."""
    if text.startswith("pubsub://"):
        project, subscription = pubsub_path(text, flag, "subscriptions")
        return _read_pubsub(f"projects/{project}/subscriptions/{subscription}", f"{flag} {text}", timeout_s)
    if not text.startswith(("kafka://", "file:")):
        scheme = text.split(":", 1)[0] if ":" in text else text
        raise UsageError(f"{flag} {text}: unknown result-set scheme {scheme!r} (use file:, kafka:// or pubsub://)")
    sink = parse_sink(text, flag)
    if isinstance(sink, KafkaSink):
        return _read_kafka(sink, f"{flag} {text}", timeout_s)
    assert isinstance(sink, FileSink)
    files = window_files(sink.path)
    if not files:
        raise UsageError(f"{flag} {text}: no window files match {sink.path.parent / window_file_glob(sink.path)}")
    records = []
    for path in files:
        try:
            records += read_window_file(path)
        except OSError as err:
            raise KappaError(f"{flag} {text}: cannot read {path}: {err.strerror}") from None
        except (ValueError, EOFError) as err:
            raise KappaError(f"{flag} {text}: {path} is not a result file: {err}") from None
    return records


def _read_kafka(sink: KafkaSink, where: str, timeout_s: float) -> list[dict]:
    """Every partition from its log start to the high watermark snapshotted first."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from kappa.replay.kafka_log import consumer_config
    from kappa.runners.kafka_util import admin_client
    from kappa.schemas import DecodeError, make_codec

    try:
        topics = admin_client(sink.bootstrap, timeout_s).list_topics(timeout=timeout_s).topics
    except KappaError as err:
        raise KappaError(f"{where}: {err}") from None
    if sink.topic not in topics:
        raise UsageError(f"{where}: no topic {sink.topic!r} on {sink.bootstrap}")
    codec = make_codec(sink.format, "window_result")
    consumer = Consumer(consumer_config(sink.bootstrap, f"kappa-verify-{uuid.uuid4().hex}"))
    try:
        ends, starts = {}, []
        for partition in topics[sink.topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(sink.topic, partition), timeout=timeout_s)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(sink.topic, partition, low))
        consumer.assign(starts)
        records, quiet_since = [], time.monotonic()
        while any(tp.offset < ends[tp.partition] for tp in consumer.position(starts)):
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                if time.monotonic() - quiet_since > timeout_s:
                    raise KappaError(f"{where}: no progress for {timeout_s:.0f}s before the high watermarks {ends}")
                continue
            quiet_since = time.monotonic()
            if message.offset() >= ends[message.partition()]:
                continue  # written after the snapshot: not part of this result set
            try:
                records.append(codec.decode(message.value()))
            except DecodeError as err:
                raise KappaError(f"{where}: partition {message.partition()} offset {message.offset()}: {err}") from None
        return records
    except KafkaException as err:
        raise KappaError(f"{where}: {err.args[0].str()}") from None
    finally:
        consumer.close()


def _read_pubsub(subscription: str, where: str, timeout_s: float) -> list[dict]:
    """Pull (and ack) until no message came for ``timeout_s``."""
    from google.api_core import exceptions

    from kappa.replay.pubsub_clients import pubsub_clients
    from kappa.schemas import DecodeError, make_codec

    codec = make_codec("json", "window_result")
    _, subscriber = pubsub_clients(os.environ.get("PUBSUB_EMULATOR_HOST"))
    try:
        subscriber.get_subscription(subscription=subscription, timeout=timeout_s, retry=None)
    except exceptions.NotFound:
        raise UsageError(f"{where}: no such subscription") from None
    except exceptions.GoogleAPICallError as err:
        raise KappaError(f"{where}: cannot reach Pub/Sub within {timeout_s:.0f}s: {err.message}") from None
    records, quiet_until = [], time.monotonic() + timeout_s
    while (left := quiet_until - time.monotonic()) > 0:
        try:
            response = subscriber.pull(subscription=subscription, max_messages=500, timeout=left, retry=None)
        except exceptions.DeadlineExceeded:
            break
        except exceptions.GoogleAPICallError as err:
            raise KappaError(f"{where}: {err.message}") from None
        received = response.received_messages
        if not received:
            time.sleep(0.2)
            continue
        try:
            records += [codec.decode(m.message.data) for m in received]
        except DecodeError as err:
            raise KappaError(f"{where}: {err}") from None
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received])
        quiet_until = time.monotonic() + timeout_s
    return records


def too_late_windows(path: Path) -> list[tuple[int, int]]:
    """The ``[start, end)`` windows (epoch ms) named by ``too_late`` dead letters in a JSON-lines file
    that the clock decided (older files without ``decided_by`` count as such)."""
    where = f"--exclude-too-late {path}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UsageError(f"{where}: cannot read it: {err.strerror}") from None
    windows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            dead = json.loads(line)
            if dead.get("reason") == "too_late" and "window_start" in dead and dead.get("decided_by") != "log":
                windows.append((_ms(parse_instant(dead["window_start"])), _ms(parse_instant(dead["window_end"]))))
        except (ValueError, KeyError, AttributeError) as err:
            raise UsageError(f"{where}: line {number} is not a dead letter: {err}") from None
    return windows


# -- the command ------------------------------------------------------------------------------------

def add_parsers(subparsers) -> None:
    verify = subparsers.add_parser(
        "verify", help="compare the final window values of two result sets (live vs replay)",
        description="Read two result sets and compare, per (pipeline, key, window), the values of the final pane "
                    "(is_last). Re-delivered copies of a result (same id) count once; decimals compare exactly. "
                    "Reports windows missing in B, extra in B, not final, and with different values; exits 0 "
                    "only when A and B agree, 1 when they differ.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("a", metavar="A", help="result set: file:PATH.jsonl|.avro (its window files), "
                        "kafka://HOST:PORT/TOPIC[?format=avro] or pubsub://projects/P/subscriptions/S")
    verify.add_argument("b", metavar="B", help="the result set to compare with A (same forms)")
    verify.add_argument("--pipeline", metavar="NAME", help="compare only this pipeline's results (default: all)")
    verify.add_argument("--exclude-too-late", action="append", type=Path, default=[], metavar="DEADLETTERS",
                        help="a live run's dead letters (JSON lines): leave out windows sharing time with one "
                             "named by a too_late record the clock decided (decided_by: clock; all pipelines and "
                             "keys; repeatable)")
    cliargs.add_kafka_flags(verify)
    verify.add_argument("--show", type=cliargs.non_negative_int, default=20, metavar="N",
                        help="list at most N differing windows (default 20)")
    verify.add_argument("--timeout", type=cliargs.positive_float, default=10.0, metavar="SECONDS",
                        help="how long to wait for Kafka or Pub/Sub (and, for Pub/Sub, the quiet time that ends "
                             "the read) (default 10)")
    verify.set_defaults(run=run_verify)


def run_verify(args) -> int:
    excluded = [w for path in args.exclude_too_late for w in too_late_windows(path)]
    a = final_panes(read_result_set(args.a, "A", args.timeout), args.pipeline)
    b = final_panes(read_result_set(args.b, "B", args.timeout), args.pipeline)
    if args.pipeline and not (a.windows or b.windows):
        raise UsageError(f"--pipeline {args.pipeline}: no results of that pipeline in A or B")
    comparison = compare(a, b, excluded)
    print("\n".join(comparison.report(args.a, args.b, args.show)))
    return 0 if comparison.ok else 1
