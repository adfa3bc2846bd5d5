"""Live commits that mean durable: what a live Kafka run commits, and why a restart from
it loses nothing and repeats nothing.

A record is *done* once everything it leads to is durably written: the final pane of
every window it belongs to, or its dead letter. A live run commits, per partition, the
lowest offset of a record that is not done yet (or the reader's position, when all
are). A restart from that commit rebuilds every open window from the log.

How "done" is known, without a shuffle of offsets:

* **The durable watermark F.** A probe downstream of both sinks (:func:`probe_durable`)
  learns, from an event-time timer, how far the watermark after the sinks has come: every
  element with a timestamp below F has been written and its bundle committed. A
  window's last pane fires when the watermark reaches its *close* (end + allowed
  lateness) and is stamped at its end, so once F >= close it is written.
* **A record's close** (:meth:`CommitSpec.close_ms`): the greatest close of the windows
  its event time falls in (fixed and sliding windows); for sessions, its proto-session's
  close, and the windowing stage keeps a hold for every session still open or not yet
  written (a session's close is known only there). The reader keeps, per partition, the
  records whose close is a new maximum (a record behind one of them is done no later
  than it), so finding the lowest record not done is a pop from the front.
* **What was final before.** A restart re-reads records of windows that were already
  written (they sit after the commit point, beside records of open windows). Each
  commit carries F in its metadata, the same for every partition (they are committed
  together); a restarted run emits nothing for a window whose close is at or below it
  (:func:`already_final`): no partial value under a final id. The metadata also carries
  the log's greatest event time before the commit, so the restarted reader's cutoffs
  (and so every too-late decision) are those of a replay of the whole log.

Pub/Sub has no offsets: a live Pub/Sub run holds each message unacked (extending its ack
deadline) until it is done, under the same rule, and while it may belong to a session
not yet written (its event time is at or after the earliest start of any such session).
F goes to a file beside kappa's state (``final_file``) before the acks that depend on it,
and a restart reads it back as a Kafka restart reads its commit's metadata.

The ledger is kept in the launcher's process: the local runners (prism, the embedded
Flink) run their workers there. A remote runner's workers cannot reach it; such a run
commits when it drains.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from kappa.transforms.windows import SessionWindows, WindowSpec

__all__ = ["HELD_DEADLINE_S", "CommitSpec", "StartPoint", "already_final", "ledger", "probe_durable",
           "read_commit_metadata", "read_final_file", "start_pubsub_run"]

_LOG = logging.getLogger(__name__)
METADATA_VERSION = 1


@dataclass(frozen=True)
class StartPoint:
    """Where a group's last commit left a partition: the offset, and the log's greatest
    event time before it (None: not known, as after a commit by another tool)."""

    offset: int
    newest_ms: int | None = None


@dataclass(frozen=True)
class CommitSpec:
    """How a live Kafka run commits: its ledger (``run``), its group, its windows."""

    run: str
    bootstrap: str
    group: str
    topic: str
    window: WindowSpec
    allowed_lateness_ms: int
    final_through_ms: int | None = None  #: F of the group's last commit: windows closing by then are written
    starts: dict = field(default_factory=dict)  #: partition -> StartPoint where this run began
    every_s: float = 1.0
    #: a live Pub/Sub run: its subscription (acked instead of commits), the emulator, and
    #: the file that keeps F across restarts
    subscription: str | None = None
    emulator_host: str | None = None
    final_file: str | None = None

    def close_ms(self, event_ms: int) -> int:
        """The watermark at which every window an element at ``event_ms`` joins has closed
        (for sessions: its proto-session)."""
        if isinstance(self.window, SessionWindows):
            end = event_ms + self.window.gap_ms
        else:
            end = max(e for _, e in self.window.assign(event_ms))
        return end + self.allowed_lateness_ms


def already_final(close_ms: int, final_through_ms: int | None) -> bool:
    """Whether a window closing at ``close_ms`` was written before this run began."""
    return final_through_ms is not None and close_ms <= final_through_ms


class _Partition:
    def __init__(self, start: StartPoint):
        self.position = start.offset  #: the next offset to read
        self.newest_ms = start.newest_ms  #: the log's greatest event time before ``position``
        self.watermark_ms: int | None = None  #: the reader's watermark
        #: (offset, close, newest before it): records not done, each closing later than all before it
        self.pending: deque[tuple[int, int, int | None]] = deque()

    def read(self, records, position: int, newest_ms: int | None, watermark_ms: int | None) -> None:
        pending = self.pending
        for offset, close, newest_before in records:
            if not pending or close > pending[-1][1]:
                pending.append((offset, close, newest_before))
        self.position, self.newest_ms, self.watermark_ms = position, newest_ms, watermark_ms

    def lowest_needed(self, durable_ms: int | None) -> StartPoint:
        pending = self.pending
        while pending and durable_ms is not None and pending[0][1] <= durable_ms:
            pending.popleft()
        if pending:
            return StartPoint(pending[0][0], pending[0][2])
        return StartPoint(self.position, self.newest_ms)


class _Ledger:
    def __init__(self, spec: CommitSpec):
        self.spec = spec
        self.lock = threading.Lock()
        self.partitions = {p: _Partition(s) for p, s in spec.starts.items()}
        self.durable_ms: int | None = None
        #: key -> {window: (close, {partition: (offset, newest before)})}: open sessions' holds
        self.open_holds: dict = {}
        #: sessions closed, their last pane not yet known written: (close, holds, start)
        self.closing: list[tuple[int, dict, int]] = []
        self.unacked: list[tuple[int, int, str]] = []  #: Pub/Sub: (close, event time, ack id) not yet done
        self.last_extended = time.monotonic()
        self.last_commit = 0.0
        self.committed: dict[int, StartPoint] = {}
        self._client = None
        self._committing = threading.Lock()

    # -- what the stages report ----------------------------------------------------------
    def read(self, partition: int, records, position: int, newest_ms: int | None, watermark_ms: int | None) -> None:
        with self.lock:
            self.partitions[partition].read(records, position, newest_ms, watermark_ms)

    def durable(self, durable_ms: int) -> None:
        with self.lock:
            if self.durable_ms is None or durable_ms > self.durable_ms:
                self.durable_ms = durable_ms

    def hold_sessions(self, key, holds: dict) -> None:
        """A key's open sessions now: window -> (close, {partition: (offset, newest before)})."""
        with self.lock:
            before = self.open_holds.pop(key, {})
            for window, (close, offsets) in before.items():
                if window not in holds:  # closed (or merged away): held until its close is written
                    self.closing.append((close, offsets, window[0]))
            if holds:
                self.open_holds[key] = holds

    def pulled(self, messages) -> None:
        """Pub/Sub messages emitted: (close, event time, ack id) each."""
        with self.lock:
            self.unacked.extend(messages)

    def reader_watermark_ms(self) -> int | None:
        with self.lock:
            marks = [p.watermark_ms for p in self.partitions.values()]
        return None if not marks or None in marks else min(marks)

    # -- committing ------------------------------------------------------------------------
    def effective_durable_ms(self) -> int | None:
        """F: windows closing by then are written (by this run, or before it began)."""
        marks = [m for m in (self.durable_ms, self.spec.final_through_ms) if m is not None]
        return max(marks) if marks else None

    def commit_points(self) -> tuple[dict[int, StartPoint], int | None]:
        """Per partition the lowest offset not done, under one F for all."""
        with self.lock:
            durable = self.effective_durable_ms()
            points = {p: part.lowest_needed(durable) for p, part in self.partitions.items()}
            if durable is not None:
                self.closing = [h for h in self.closing if h[0] > durable]
            holds = [h for key_holds in self.open_holds.values() for h in key_holds.values()] + self.closing
            for close, offsets, *_ in holds:
                for partition, (offset, newest) in offsets.items():
                    if partition in points and offset < points[partition].offset:
                        points[partition] = StartPoint(offset, newest)
        return points, durable

    def maybe_commit(self) -> None:
        """Commit every partition's point, at most once per ``every_s``, from one thread at a time."""
        if time.monotonic() - self.last_commit < self.spec.every_s or not self._committing.acquire(blocking=False):
            return
        try:
            self.last_commit = time.monotonic()
            if self.spec.subscription is not None:
                self._ack_done()
                return
            points, durable = self.commit_points()
            if points == self.committed:
                return
            self._commit(points, durable)
            self.committed = points
            _LOG.info("kappa committed %s to group %s (durable through %s)",
                      {p: s.offset for p, s in sorted(points.items())}, self.spec.group, durable)
        except Exception as err:  # a transient broker problem: the next commit tries again
            _LOG.warning("committing to group %s failed (will retry): %s", self.spec.group, err)
        finally:
            self._committing.release()

    def done_acks(self) -> tuple[list[str], list[str], int | None]:
        """Pub/Sub: (ack ids now done, ack ids still held, F)."""
        with self.lock:
            durable = self.effective_durable_ms()
            if durable is not None:
                self.closing = [h for h in self.closing if h[0] > durable]
            starts = [w[0] for key_holds in self.open_holds.values() for w in key_holds] + [h[2] for h in self.closing]
            earliest = min(starts, default=None)
            done, held = [], []
            for message in self.unacked:
                close, event_ms, _ = message
                finished = durable is not None and close <= durable and (earliest is None or event_ms < earliest)
                (done if finished else held).append(message)
            self.unacked = held
        return [m[2] for m in done], [m[2] for m in held], durable

    def _ack_done(self) -> None:
        from kappa.replay.pubsub_source import acknowledge, pubsub_clients

        done, held, durable = self.done_acks()
        if self._client is None:
            self._client = pubsub_clients(self.spec.emulator_host)[1]
        subscriber, subscription = self._client, self.spec.subscription
        if done:
            if self.spec.final_file is not None:  # F first: a restart must know what these acks relied on
                _write_final(self.spec.final_file, durable)
            acknowledge(subscriber, subscription, done)
            _LOG.info("kappa acked %d messages of %s (durable through %s; %d held)", len(done), subscription,
                      durable, len(held))
        if held and time.monotonic() - self.last_extended >= _EXTEND_EVERY_S:
            self.last_extended = time.monotonic()
            for start in range(0, len(held), 1000):
                subscriber.modify_ack_deadline(request={"subscription": subscription,
                                                        "ack_ids": held[start:start + 1000],
                                                        "ack_deadline_seconds": HELD_DEADLINE_S})

    def drained(self) -> None:
        """Pub/Sub: the run drained, so every message pulled is done; none is marked final
        for the next run (a drain closes its windows early, as a Kafka drain's commit says)."""
        from kappa.replay.pubsub_source import acknowledge, pubsub_clients

        with self.lock:
            done, self.unacked = [m[2] for m in self.unacked], []
        if self.spec.final_file is not None:
            _write_final(self.spec.final_file, None, clean=True)
        acknowledge(pubsub_clients(self.spec.emulator_host)[1], self.spec.subscription, done)

    def _commit(self, points: dict[int, StartPoint], durable: int | None) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from kappa.replay.kafka_log import consumer_config

        if self._client is None:
            self._client = Consumer(consumer_config(self.spec.bootstrap, self.spec.group))
        offsets = [TopicPartition(self.spec.topic, p, s.offset, metadata=commit_metadata(s.newest_ms, durable))
                   for p, s in sorted(points.items())]
        self._client.commit(offsets=offsets, asynchronous=False)


def commit_metadata(newest_ms: int | None, final_through_ms: int | None) -> str:
    return json.dumps({"kappa": METADATA_VERSION, "newest_ms": newest_ms, "final_through_ms": final_through_ms},
                      separators=(",", ":"))


def read_commit_metadata(text: str | None) -> tuple[int | None, int | None]:
    """(newest_ms, final_through_ms) of a kappa commit's metadata; (None, None) for another's."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None, None
    if not isinstance(data, dict) or data.get("kappa") != METADATA_VERSION:
        return None, None
    return data.get("newest_ms"), data.get("final_through_ms")


_EXTEND_EVERY_S = 5.0  #: held Pub/Sub messages get their ack deadline extended this often ...
HELD_DEADLINE_S = 20  #: ... to this: what a restarted run waits for (PubSubReadSettings.hold_until)


def _write_final(path: str, final_through_ms: int | None, clean: bool = False) -> None:
    """Keep F (and whether the run ended by a drain, with nothing left held) for the next run."""
    import os

    temp = f"{path}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(temp, "w") as out:
        out.write(json.dumps({"kappa": METADATA_VERSION, "final_through_ms": final_through_ms, "clean": clean}))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


def read_final_file(path: str) -> tuple[int | None, bool]:
    """(F of a live Pub/Sub run's last acks, whether that run may have left messages held:
    it did not end by a drain); (None, False) when there was no earlier run."""
    try:
        with open(path) as data:
            text = data.read()
    except OSError:
        return None, False
    try:
        clean = bool(json.loads(text).get("clean", False))
    except (ValueError, AttributeError):
        clean = True
    return read_commit_metadata(text)[1], not clean


def start_pubsub_run(path: str) -> tuple[int | None, bool]:
    """A live Pub/Sub run begins: what the last one left (read_final_file), and this run is
    marked as not (yet) ended by a drain."""
    final, held = read_final_file(path)
    _write_final(path, final)
    return final, held


_LEDGERS: dict[str, _Ledger] = {}
_LEDGERS_LOCK = threading.Lock()


def ledger(spec: CommitSpec) -> _Ledger:
    """The run's ledger in this process (made on first use)."""
    with _LEDGERS_LOCK:
        found = _LEDGERS.get(spec.run)
        if found is None:
            found = _LEDGERS[spec.run] = _Ledger(spec)
        return found


# -- the probe -------------------------------------------------------------------------------------
class _DurableWatermarkFn(beam.DoFn):
    """One key; an event-time timer walks behind the watermark after the sinks. When it
    fires at T, every element stamped up to T has been written: F = T + 1. The next one is
    set at the readers' watermark (it gets there once what is in flight is written)."""

    TIMER = TimerSpec("durable", TimeDomain.WATERMARK)
    MIN_STEP_MS = 100

    def __init__(self, spec: CommitSpec):
        self.spec = spec

    def setup(self):
        from kappa.replay.progress import RunChannel

        self._channel = RunChannel(self.spec.run)

    def process(self, element, timer=beam.DoFn.TimerParam(TIMER)):
        timer.set(Timestamp(micros=self._next_ms(None) * 1000))

    @on_timer(TIMER)
    def on_fired(self, fired=beam.DoFn.TimestampParam, timer=beam.DoFn.TimerParam(TIMER)):
        durable_ms = fired.micros // 1000 + 1
        book = ledger(self.spec)
        book.durable(durable_ms)
        book.maybe_commit()
        if not self._channel.stop_requested():  # a drain ends with its own commit; the watermark goes to the end
            timer.set(Timestamp(micros=self._next_ms(durable_ms) * 1000))

    def _next_ms(self, durable_ms: int | None) -> int:
        readers = ledger(self.spec).reader_watermark_ms()
        floor = (durable_ms or 0) + self.MIN_STEP_MS
        return max(floor, readers - 1 if readers is not None else floor)


def probe_durable(pipeline, written: list, spec: CommitSpec) -> None:
    """Follow the watermark after the sinks (``written``: their outputs) into the run's ledger."""
    seed = pipeline | "DurableSeed" >> beam.Create([None])
    ((seed, *written) | "Written" >> beam.Flatten()
     | "OneKey" >> beam.Map(lambda _: ("durable", None))
     | "DurableWatermark" >> beam.ParDo(_DurableWatermarkFn(spec)))
