"""Reading Kafka partitions in Beam: a splittable DoFn over confluent-kafka.

One element per topic-partition (a :class:`PartitionRange` of the manifest), one
restriction per element: the offset range ``[start, stop)``, or ``[start, ∞)`` for a
live read. The reader assigns its partition explicitly (it never joins a consumer
group), fetches in batches, decodes each value with the manifest's codec, stamps
it with its event time, and sends what cannot be decoded or has no usable event
time to the ``dead_letter`` output with its provenance. It never stops on a bad
record.

Exactly the planned records, whatever the runner splits: a batch is claimed by
its last offset; if that claim fails (the range ended, or the runner split it),
only records below the restriction's current stop are emitted. Split points are
always past the last claim attempt, so no record is read twice or skipped. Gaps
in offsets (transaction markers, compaction) are fine: the read is done when the
consumer's position reaches the stop.

Watermark: per partition, max event time seen minus the max out-of-orderness
(:class:`transforms.watermark.OutOfOrdernessWatermark`). A bounded restriction that
is done no longer holds the watermark. In live mode a partition counts as idle,
and lets its watermark follow the clock, only once it has caught up with its high
watermark. A live read of a pipeline run commits, to the run's consumer group, the
lowest offset not yet durably done (:mod:`replay.durable`); a raw live read (``kappa
read``) commits ``last offset + 1`` when the runner finalizes the bundle; replays never
commit. A live bundle ends after each batch it emits, and the batch moves the watermark
from the next bundle on (:meth:`SourceWatermark.observe_event_ms_next_bundle`), so the
watermark a bundle reports is never past the records it emitted.

Too late is decided by the log (each record's ``cutoff_ms``), and where the clock
moved a caught-up partition's watermark W past it, by the clock, the same in a live
run and its replay (:func:`replay.decoding.clock_decides`):

* live: each batch is emitted with W as it stands then; a record with
  ``cutoff < W`` and ``event_ms < W`` gets ``clock_cutoff_ms = W`` and a clock mark
  ``(offset, W)`` in the run directory (``RunChannel.record_clock_marks``), which the
  drained manifest keeps (``PartitionRange.clock_marks``). The clock moves W only
  before a bundle's first record: a bundle that has emitted records ends at the
  partition's end instead, so the watermark it hands the runner is never past the
  clock's W its records were stamped with (else the runner could close their windows
  at the keys, unrecorded, before they arrive there);
* the windowing stage marks too, where the runner's watermark at a key decided a
  record's fate past its cutoffs (a record the runner did not wait for);
* replay: the record at offset o takes w of its own mark, if any, and gets
  ``clock_cutoff_ms = w`` on the same condition (a range without marks: one
  ``is None`` check per record).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.iobase import RestrictionTracker
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from kappa.replay.decoding import (DEAD_LETTER, FAILURES, LIVE_STOP, METRICS_NAMESPACE, RECORDS_READ, RecordDecoder,
                             SourceWatermark, at_event_time, batch_at_event_time, clock_decides, count_dead_letter,
                             expand_read, offset_tracker)
from kappa.replay.durable import CommitSpec, ledger
from kappa.replay.errors import ReplayError
from kappa.replay.manifest import CarriedDecoding, DecodingSpec, Manifest, PartitionRange
from kappa.replay.progress import RunChannel
from kappa.schemas.records import Provenance, RecordBatch, SourceRecord
from kappa.transforms.event_time import BROKER_TIMESTAMP_TYPES, DEFAULT_MAX_AHEAD_MS, EventTimeSpec

__all__ = ["DEAD_LETTER", "METRICS_NAMESPACE", "ReadFromKafkaReplay", "ReadSettings"]


@dataclass(frozen=True)
class ReadSettings:
    bootstrap: str
    decoding: DecodingSpec | CarriedDecoding
    event_time: str = "field:timestamp"
    max_out_of_orderness_ms: int = 0
    isolation_level: str = "read_committed"
    max_event_time_ahead_ms: int = DEFAULT_MAX_AHEAD_MS  #: further ahead of the broker time: future_event_time
    commit_group: str | None = None  #: live reads commit here; None for replays
    batch_size: int = 5000
    #: bounded reads: emit each fetched batch's records as one RecordBatch element (for a
    #: pipeline that takes batches); dead letters still go one by one
    batched: bool = False
    #: split each partition's range into chunks of this many offsets (reader tests and raw
    #: reads only: a chunk starts without its partition's watermark, so cutoffs would change)
    split_size: int | None = None
    poll_timeout_s: float = 0.2
    #: live: the least time between two batches of a partition while records keep coming
    #: (a record read waits at most this long for the rest of its batch)
    live_batch_interval_s: float = 0.1
    checkpoint_every_s: float = 1.0  #: live: hand control back to the runner this often
    stall_timeout_s: float = 120.0  #: bounded: give up when no progress is made for this long
    channel: RunChannel | None = None  #: progress reports, and stop requests for live reads
    #: live pipeline runs: commit the lowest offset not yet durably done (replay/durable.py)
    #: instead of each bundle's end
    durable: CommitSpec | None = None

    @classmethod
    def from_manifest(cls, manifest: Manifest, **overrides) -> "ReadSettings":
        return cls(
            bootstrap=manifest.bootstrap,
            decoding=manifest.decoding.carried(),  # contents, not the launcher's paths
            event_time=manifest.event_time,
            max_out_of_orderness_ms=manifest.max_out_of_orderness_ms,
            isolation_level=manifest.isolation_level,
            **overrides,
        )


class _ReadPartitionFn(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Bounded read of one partition's offset range (the DoFn is its own restriction
    and watermark-estimator provider, so settings reach both)."""

    def __init__(self, settings: ReadSettings):
        super().__init__()
        self.settings = settings

    # -- restriction provider ------------------------------------------------------
    def initial_restriction(self, element: PartitionRange) -> OffsetRange:
        return OffsetRange(element.start, LIVE_STOP if element.stop is None else element.stop)

    def create_tracker(self, restriction: OffsetRange) -> RestrictionTracker:
        return offset_tracker(restriction)

    def split(self, element, restriction: OffsetRange):
        size = self.settings.split_size
        if size and restriction.stop != LIVE_STOP:
            yield from restriction.split(size, 1)
        else:
            yield restriction

    def restriction_size(self, element, restriction: OffsetRange) -> int:
        return 0 if restriction.stop == LIVE_STOP else restriction.size()

    # -- watermark estimator provider -----------------------------------------------
    def initial_estimator_state(self, element: PartitionRange, restriction):
        # A range that continues a committed run starts from the log's watermark there, so
        # its records' cutoffs are those of a read from the partition's beginning.
        if element.start_newest_ms is not None and restriction.start == element.start:
            return element.start_newest_ms, element.start_newest_ms - self.settings.max_out_of_orderness_ms
        return None

    def create_watermark_estimator(self, estimator_state) -> SourceWatermark:
        return SourceWatermark(self.settings.max_out_of_orderness_ms, estimator_state)

    # -- lifecycle --------------------------------------------------------------------
    def setup(self):
        if not isinstance(self, _ReadPartitionLiveFn):
            # A bounded read allocates a few objects per record, nearly all freed by reference
            # counting; at Python's default (a young-generation collection every 700 net
            # allocations, each older one scanning Beam's large heap now and then) the cyclic
            # collector took a third of a replay's time. A replay's worker is its own process.
            gc.set_threshold(100_000, 10, 10)
        self._decoder = RecordDecoder(self.settings.decoding.make_codec(), EventTimeSpec.parse(self.settings.event_time),
                                      self.settings.max_event_time_ahead_ms)
        self._consumer = None
        self._batch_due: dict[str, float | None] = {}  #: live: partition -> when its next batch is due

    def teardown(self):
        if getattr(self, "_consumer", None) is not None:
            self._consumer.close()
            self._consumer = None

    def process(self, element: PartitionRange,
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._read(element, tracker, watermark, live=False)

    # -- reading ----------------------------------------------------------------------
    def _consumer_for(self):
        if self._consumer is None:
            from confluent_kafka import Consumer

            from kappa.replay.kafka_log import consumer_config

            group = self.settings.commit_group or "kappa-replay"  # replays never commit
            self._consumer = Consumer(consumer_config(
                self.settings.bootstrap, group, self.settings.isolation_level,
                # The prefetch is capped at 8 MB (a few seconds of decoding), fetched 4 MB at a
                # time: with 64 MB a long replay's workers held 100 MB more each than a short one's,
                # for no speed (bench/README.md, "Memory").
                **{"enable.partition.eof": True, "fetch.max.bytes": 8388608,
                   "max.partition.fetch.bytes": 4194304,
                   "fetch.wait.max.ms": 50,  # a fetch parked at a partition end must not delay the next partition
                   "queued.max.messages.kbytes": 8192}))
        return self._consumer

    def _read(self, part: PartitionRange, tracker, watermark, live: bool, finalizer=None):
        from confluent_kafka import KafkaError, TopicPartition

        restriction = tracker.current_restriction()
        if restriction.start >= restriction.stop:
            tracker.try_claim(restriction.start)  # empty range: nothing to claim
            return
        consumer = self._consumer_for()
        consumer.assign([TopicPartition(part.topic, part.partition, restriction.start)])
        settings = self.settings
        started = last_progress = time.monotonic()
        committed_to = None
        next_offset = restriction.start
        channel = settings.channel
        name = f"{part.topic}-{part.partition}"
        recorded = _RecordedClock(part.clock_marks) if part.clock_marks else None
        try:
            while True:
                if live and channel is not None and channel.stop_requested():
                    tracker.try_claim(restriction.stop)  # a drain: the live range ends here
                    channel.report(name, final=True, partition=part.partition, position=next_offset, drained=True,
                                   watermark_ms=_ms(watermark.current_watermark()))
                    return
                # Ask for no more than the range still holds: consume() waits for a full
                # batch, and at the end of a bounded range it would wait for nothing.
                wanted = settings.batch_size if live else max(1, min(settings.batch_size, restriction.stop - next_offset))
                messages = self._fetch(consumer, wanted, name, live)
                end_of_partition = None
                records = []
                for msg in messages:
                    error = msg.error()
                    if error is None:
                        records.append(msg)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        end_of_partition = msg.offset()
                    else:
                        raise ReplayError(f"reading {part.topic}[{part.partition}] from {settings.bootstrap}: {error.str()}")
                if live:  # records came: the partition's next batch is due one interval on
                    self._batch_due[name] = time.monotonic() + settings.live_batch_interval_s if records else None
                if records:
                    last_progress = time.monotonic()
                    last = records[-1].offset()
                    if tracker.try_claim(last):
                        yield from self._emit_batch(records, part, watermark, live, recorded, name)
                        committed_to = next_offset = last + 1
                        if channel is not None:
                            self._report(channel, name, part, next_offset, watermark, live)
                        if live:  # the next bundle's watermark includes this batch (SourceWatermark)
                            tracker.defer_remainder(Duration(seconds=0.0))
                            return
                    else:  # the range ends (or was split) inside this batch
                        stop = tracker.current_restriction().stop
                        yield from self._emit_batch([m for m in records if m.offset() < stop], part, watermark, live,
                                                    recorded, name)
                        if channel is not None:
                            channel.report(name, final=True, partition=part.partition, position=stop)
                        return
                if end_of_partition is not None:
                    if not live and end_of_partition >= restriction.stop:
                        tracker.try_claim(restriction.stop)  # fails by design: marks the range done
                        if channel is not None:
                            channel.report(name, final=True, partition=part.partition, position=restriction.stop)
                        return
                    if live and committed_to is not None:
                        # Records went out in this bundle, stamped with the watermark then: the
                        # clock moves it on only in the next bundle, so the runner cannot see it
                        # past their stamp before it has them (see _LiveClock).
                        tracker.defer_remainder(Duration(seconds=0.0))
                        return
                    if live:
                        watermark.caught_up(int(time.time() * 1000))
                        if channel is not None:
                            self._report(channel, name, part, end_of_partition, watermark, live)
                        if settings.durable is not None:  # caught up: the position and the clock's watermark
                            self._to_ledger(part, (), end_of_partition, watermark)
                if live and time.monotonic() - started >= settings.checkpoint_every_s:
                    tracker.defer_remainder(Duration(seconds=0.0 if records else settings.poll_timeout_s))
                    return
                if not live and time.monotonic() - last_progress > settings.stall_timeout_s:
                    raise ReplayError(
                        f"no records from {part.topic}[{part.partition}] at {settings.bootstrap} for "
                        f"{settings.stall_timeout_s:.0f}s while offsets up to {restriction.stop} were planned")
        finally:
            # Registered even with nothing to commit: prism finalizes every bundle of a
            # stage that asks for finalization, and fails those that registered nothing.
            if finalizer is not None:
                finalizer.register(_Commit(self, part, committed_to))

    def _fetch(self, consumer, wanted: int, name: str, live: bool) -> list:
        """The next batch (records and end-of-partition events). A bounded read waits up to
        ``poll_timeout_s`` for a full one. A live read, after a batch with records, takes what
        has come by the time the partition's next batch is due (``live_batch_interval_s``
        after the last): a record waits at most that long for the rest of its batch, and a
        bundle reading partitions one after another waits once, not once per partition.
        After a fetch that brought no records, it waits up to ``poll_timeout_s`` for the
        first record only."""
        timeout = self.settings.poll_timeout_s
        if not live:
            return consumer.consume(wanted, timeout=timeout)
        due = self._batch_due.get(name)
        if due is not None:
            return consumer.consume(wanted, timeout=max(0.0, due - time.monotonic()))
        first = consumer.poll(timeout)
        if first is None:
            return []
        return [first, *consumer.consume(wanted - 1, timeout=0)] if wanted > 1 else [first]

    def _report(self, channel: RunChannel, name: str, part: PartitionRange, position: int, watermark, live: bool):
        high = None
        if live:
            from confluent_kafka import TopicPartition

            _, high = self._consumer.get_watermark_offsets(TopicPartition(part.topic, part.partition), cached=True)
        channel.report(name, partition=part.partition, position=position, high=high if high and high >= 0 else None,
                       watermark_ms=_ms(watermark.current_watermark()))

    def _emit_batch(self, messages, part: PartitionRange, watermark, live: bool, recorded, name: str):
        """Emit ``messages`` with their clock cutoffs: live, by the watermark now (recording
        the marks, given a channel); replay, by the recorded marks (None: no clock)."""
        if not live:
            yield from self._emit(messages, part, watermark, recorded, self.settings.batched)
            return
        if not messages:  # a split left none of the batch in this range
            return
        clock = _LiveClock(watermark.watermark_ms())
        durable = self.settings.durable
        read = [] if durable is not None else None
        yield from self._emit(messages, part, watermark, clock, read=read)
        if clock.marks and self.settings.channel is not None:
            self.settings.channel.record_clock_marks(name, clock.marks)
        if durable is not None:
            self._to_ledger(part, read, messages[-1].offset() + 1, watermark)

    def _to_ledger(self, part: PartitionRange, read, position: int, watermark) -> None:
        """Tell the run's commit ledger what was read up to ``position``, and let it commit."""
        book = ledger(self.settings.durable)
        book.read(part.partition, read, position, watermark.log_state()[0], watermark.watermark_ms())
        book.maybe_commit()

    def _emit(self, messages, part: PartitionRange, watermark, clock, batched: bool = False, read=None):
        # The per-record hot path: locals only, no helper calls but the decoder's (and the
        # clock's, where there is one). ``read`` (live, committing when durable) gathers
        # (offset, close, newest before) of each record for the ledger.
        batch = RecordBatch() if batched else None
        close_ms = self.settings.durable.close_ms if read is not None else None
        parse = self._decoder.parse
        broker_types = BROKER_TIMESTAMP_TYPES
        topic, partition = part.topic, part.partition
        newest, bound = watermark.log_state()
        RECORDS_READ.inc(len(messages))
        for msg in messages:
            ts_type, broker_ms = msg.timestamp()
            payload = msg.value()
            provenance = Provenance("kafka", topic, partition, msg.offset(), broker_ms)
            try:
                value, event_ms = parse(payload, broker_ms, broker_types.get(ts_type))
            except FAILURES as err:
                dead = self._decoder.dead_letter(err, payload, msg.key(), provenance)
                count_dead_letter(dead.reason)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, beam.window.TimestampedValue(
                    dead, Timestamp(micros=max(broker_ms, 0) * 1000)))
                if read is not None:  # done once its dead letter (stamped broker_ms) is written
                    read.append((provenance.position, max(broker_ms, 0) + 1, newest))
                continue
            # The record's cutoff is its partition's log watermark before it (see SourceRecord).
            cutoff = None if newest is None else newest - bound
            record = SourceRecord(value, event_ms, msg.key(), provenance, cutoff,
                                  None if clock is None else clock(provenance.position, event_ms, cutoff))
            if batch is None:
                yield at_event_time(record)
            else:
                batch.append(record)
            if read is not None:
                read.append((provenance.position, close_ms(event_ms), newest))
            if newest is None or event_ms > newest:
                newest = event_ms
        if batch:
            yield batch_at_event_time(batch)
        if newest is not None:
            if clock is None or isinstance(clock, _RecordedClock):
                watermark.observe_event_ms(newest)
            else:  # live: the bundle ends after this batch (see SourceWatermark)
                watermark.observe_event_ms_next_bundle(newest)


class _ReadPartitionLiveFn(_ReadPartitionFn):
    """Unbounded read: follows the partition for ever, checkpointing every second."""

    @beam.DoFn.unbounded_per_element()
    def process(self, element: PartitionRange,
                finalizer=beam.DoFn.BundleFinalizerParam,  # before the SDF params: Beam passes it by position
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._read(element, tracker, watermark, live=True, finalizer=finalizer)

    def truncate(self, element, restriction):
        """A runner's drain (Dataflow's) ends the live range where the reader stands: the rest
        is not read (Beam's default would read an offset range to its end, which never comes)."""
        return None if restriction.stop == LIVE_STOP else restriction


class _ReadPartitionDurableFn(_ReadPartitionLiveFn):
    """Unbounded read of a live pipeline run, whose commits follow its durable results
    (replay/durable.py), not its bundles: it asks for no bundle finalization. Flink finalizes
    bundles only on checkpoints, which live runs do not take, and the SDK keeps every bundle
    that awaits finalization, with its whole bundle processor: a live Flink run grew by about
    3 GB in 90 s at 2,000 records/s (bench/README.md, "Soak")."""

    @beam.DoFn.unbounded_per_element()
    def process(self, element: PartitionRange,
                tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam()):
        yield from self._read(element, tracker, watermark, live=True, finalizer=None)


class _LiveClock:
    """A live batch's clock: the partition's watermark W as the batch is emitted. A record W
    may decide (:func:`clock_decides`) gets W as its clock cutoff and a mark ``(offset, W)``."""

    def __init__(self, watermark_ms: int | None):
        self.watermark_ms = watermark_ms
        self.marks: list[tuple[int, int]] = []

    def __call__(self, offset: int, event_ms: int, cutoff_ms: int | None) -> int | None:
        if not clock_decides(self.watermark_ms, event_ms, cutoff_ms):
            return None
        self.marks.append((offset, self.watermark_ms))
        return self.watermark_ms


class _RecordedClock:
    """A replay's clock: a live run's marks. The record at offset o gets the watermark w of
    the mark at o, if there is one, as its clock cutoff when w may decide it
    (:func:`clock_decides`): the live run marked every record whose fate the clock could
    decide (its reader, and its windowing stage where the runner's watermark decided), so
    an unmarked record had no clock cutoff there either."""

    def __init__(self, marks: tuple[tuple[int, int], ...]):
        self._marks = dict(marks)

    def __call__(self, offset: int, event_ms: int, cutoff_ms: int | None) -> int | None:
        watermark_ms = self._marks.get(offset)
        return watermark_ms if clock_decides(watermark_ms, event_ms, cutoff_ms) else None


def _ms(timestamp) -> int | None:
    return None if timestamp is None else int(timestamp.micros // 1000)


class _Commit:
    """Bundle-finalization callback: commit ``offset`` for the partition to the run's group."""

    def __init__(self, fn: _ReadPartitionFn, part: PartitionRange, offset: int | None):
        self.fn, self.part, self.offset = fn, part, offset

    def __call__(self):
        from confluent_kafka import TopicPartition

        if self.offset is None:
            return
        self.fn._consumer_for().commit(
            offsets=[TopicPartition(self.part.topic, self.part.partition, self.offset)], asynchronous=False)


class ReadFromKafkaReplay(beam.PTransform):
    """Read a manifest's partition ranges: ``{"records": ..., "dead_letters": ...}``.

    ``records`` are :class:`SourceRecord` timestamped with their event time (with
    ``batched``, a bounded read's are :class:`RecordBatch` elements of them, one per fetch);
    ``dead_letters`` are :class:`DeadLetter` (``decode_error``, ``invalid_record``).
    A manifest with a live range reads unboundedly and, given ``commit_group``,
    commits its progress there; otherwise the read is bounded and never commits.
    """

    def __init__(self, manifest: Manifest, **settings):
        super().__init__()
        self.manifest = manifest
        self.settings = ReadSettings.from_manifest(manifest, **settings)
        if not manifest.live and self.settings.commit_group:
            raise ValueError("a bounded replay never commits offsets: commit_group is for live reads")

    def expand(self, pbegin):
        if not self.manifest.live:
            fn = _ReadPartitionFn(self.settings)
        else:
            fn = (_ReadPartitionDurableFn if self.settings.durable else _ReadPartitionLiveFn)(self.settings)
        return expand_read(pbegin, "Partitions", list(self.manifest.ranges), fn, self.settings.batched)
