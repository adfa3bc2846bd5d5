"""What every source shares: a record's way from bytes to a :class:`SourceRecord` or
a dead letter, its event-time stamp, the watermark estimator, the output split.

Every source decodes through :class:`RecordDecoder`, so Kafka, Pub/Sub and archive
records fail the same way:
``decode_error`` when the codec rejects the bytes, ``invalid_record`` when the
decoded record has no usable event time. ``parse`` is the hot path (sources that
read in batches call it directly and build records themselves); ``__call__`` is
the whole step for one record.

A record's clock cutoff (``SourceRecord.clock_cutoff_ms``) follows one rule in every
reader, :func:`clock_decides`: the partition's watermark W (clock advances included)
may decide a record's fate only if the clock raised W past the log's watermark before
the record (its cutoff) and past the record's event time t (``cutoff < W`` and
``t < W``). A window holding t ends after t, so a watermark at or below t closes none
of the record's windows: records the clock cannot decide carry no clock cutoff.
"""

from __future__ import annotations

import sys

import apache_beam as beam
from apache_beam.io.iobase import WatermarkEstimator
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from kappa.schemas import DecodeError
from kappa.schemas.records import DeadLetter, Provenance, RecordBatch, SourceRecord
from kappa.schemas.jsonform import format_instant
from kappa.transforms.event_time import DEFAULT_MAX_AHEAD_MS, EventTimeSpec, FutureEventTime, InvalidEventTime
from kappa.transforms.watermark import OutOfOrdernessWatermark

__all__ = ["DEAD_LETTER", "FAILURES", "LIVE_STOP", "METRICS_NAMESPACE", "RECORDS_READ", "RecordBatchCoder",
           "RecordDecoder", "SourceWatermark", "at_event_time", "batch_at_event_time", "clock_decides",
           "count_dead_letter", "expand_read", "offset_tracker"]

#: Beam metrics of every kappa transform live in this namespace.
METRICS_NAMESPACE = "kappa"
#: Records (offsets, messages, lines) a source has read, good or bad.
RECORDS_READ = Metrics.counter(METRICS_NAMESPACE, "records_read")


def count_dead_letter(reason: str) -> None:
    Metrics.counter(METRICS_NAMESPACE, f"dead_letters_{reason}").inc()


#: The tag of every source's dead-letter output.
DEAD_LETTER = "dead_letter"
_GLOBAL_WINDOWS = (GlobalWindow(),)

_MAX_INSTANT_MS = 253_402_300_800_000  #: 10000-01-01: past it an instant has no ISO-8601 form

#: The open end of a live (unbounded) offset restriction.
LIVE_STOP = sys.maxsize

#: What ``parse`` raises for a record that belongs in the dead letters.
FAILURES = (DecodeError, InvalidEventTime)


class RecordDecoder:
    """``max_ahead_ms``: an event time more than this ahead of the record's broker timestamp
    is a ``future_event_time`` dead letter (records without one, archive lines, are not checked)."""

    def __init__(self, codec, event_time: EventTimeSpec, max_ahead_ms: int = DEFAULT_MAX_AHEAD_MS):
        self._decode = codec.decode if codec is not None else None
        self._extract = event_time.extract
        self.uses_broker_type = event_time.uses_broker_time
        self.max_ahead_ms = max_ahead_ms

    def parse(self, payload: bytes | None, broker_ms: int | None = None, broker_type: str | None = None,
              decoded: dict | None = None, attributes: dict | None = None) -> tuple[dict, int]:
        """(value, event_ms), or one of FAILURES. ``decoded`` skips the codec (Avro files)."""
        if decoded is None:
            if payload is None:
                raise DecodeError("the record has no value (a tombstone)")
            decoded = self._decode(payload)
        event_ms = self._extract(decoded, broker_ms, broker_type if self.uses_broker_type else None, attributes)
        if broker_ms is not None and event_ms - broker_ms > self.max_ahead_ms:
            raise FutureEventTime(
                f"event time {format_instant(event_ms) if event_ms < _MAX_INSTANT_MS else event_ms} is "
                f"{event_ms - broker_ms} ms ahead of the broker's timestamp {format_instant(broker_ms)} "
                f"(at most {self.max_ahead_ms} ms allowed: --max-event-time-ahead)")
        return decoded, event_ms

    @staticmethod
    def dead_letter(err: Exception, payload: bytes | None, key: bytes | None, provenance: Provenance) -> DeadLetter:
        return DeadLetter(err.reason, str(err), provenance, payload, key)

    def __call__(self, payload: bytes | None, key: bytes | None, provenance: Provenance,
                 broker_type: str | None = None, decoded: dict | None = None,
                 attributes: dict | None = None) -> SourceRecord | DeadLetter:
        try:
            value, event_ms = self.parse(payload, provenance.broker_ms, broker_type, decoded, attributes)
        except FAILURES as err:
            return self.dead_letter(err, payload, key, provenance)
        return SourceRecord(value, event_ms, key, provenance)


def at_event_time(record: SourceRecord) -> WindowedValue:
    """The record as a source emits it: at its event time, in the global window.

    A WindowedValue rather than a TimestampedValue, so Beam does not re-assign
    windows for every record (a measurable share of a reader's cost)."""
    return WindowedValue(record, Timestamp(micros=record.event_ms * 1000), _GLOBAL_WINDOWS)


def batch_at_event_time(batch) -> WindowedValue:
    """A RecordBatch as a bounded source emits it: at its first record's event time, in the
    global window (its consumers take each record's own ``event_ms``)."""
    return WindowedValue(batch, Timestamp(micros=batch[0].event_ms * 1000), _GLOBAL_WINDOWS)


class RecordBatchCoder(beam.coders.Coder):
    """RecordBatches pickled, their size estimated from their length: Beam estimates the size
    of the elements it passes on (for its metrics), and pickling a few thousand records just
    to measure them cost a bounded read a fifth of its time."""

    def _create_impl(self):
        import pickle

        from apache_beam.coders import coder_impl

        return coder_impl.CallbackCoderImpl(lambda batch: pickle.dumps(batch, pickle.HIGHEST_PROTOCOL), pickle.loads,
                                            lambda batch: 256 * len(batch))

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return RecordBatch


beam.coders.registry.register_coder(RecordBatch, RecordBatchCoder)


def expand_read(pbegin, label: str, elements: list, fn: beam.DoFn, batched: bool = False) -> dict:
    """Every source's expand(): its work items through its DoFn, split into records (RecordBatches
    when ``batched``) and dead letters."""
    read = beam.ParDo(fn)
    if batched:
        read = read.with_output_types(RecordBatch)
    outputs = (
        pbegin
        | label >> beam.Create(elements)
        | f"Read{label}" >> read.with_outputs(DEAD_LETTER, main="records")
    )
    return {"records": outputs.records, "dead_letters": outputs[DEAD_LETTER]}


class SourceWatermark(WatermarkEstimator):
    """Beam's view of :class:`OutOfOrdernessWatermark`; the DoFn feeds it event times
    (not output timestamps: a dead letter must not move the watermark)."""

    def __init__(self, bound_ms: int, state):
        *log, pending = state if state is not None and len(state) == 3 else (*(state or (None, None)), None)
        self._wm = OutOfOrdernessWatermark(bound_ms, tuple(log))
        self._pending: int | None = None
        if pending is not None:  # a new bundle: what the last one read now moves the watermark
            self._wm.observe(pending)

    def observe_timestamp(self, timestamp) -> None:
        pass

    def observe_event_ms(self, event_ms: int) -> None:
        self._wm.observe(event_ms)

    def observe_event_ms_next_bundle(self, event_ms: int) -> None:
        """Observe ``event_ms`` for the log's cutoffs now, for the watermark from the next
        bundle on. A live bundle ends after each batch: the watermark it reports stays below
        the records it emitted, since prism moves a stage's watermark to the one a bundle
        reports without waiting for the elements that bundle emitted (after a restart, a
        backlog read in one batch would otherwise be too late at the keys)."""
        if self._pending is None or event_ms > self._pending:
            self._pending = event_ms

    # Methods, not properties: Beam hands the DoFn a thread-safe wrapper that forwards calls only.
    def log_state(self) -> tuple[int | None, int]:
        """(the greatest event time observed so far, the bound): the log's part of the watermark."""
        newest = self._wm.max_event_ms
        if self._pending is not None and (newest is None or self._pending > newest):
            newest = self._pending
        return newest, self._wm.bound_ms

    def caught_up(self, now_ms: int) -> None:
        self._wm.caught_up(now_ms)

    def watermark_ms(self) -> int | None:
        """The watermark now, clock advances included (None before any): ms, no Timestamp built."""
        return self._wm.current_ms()

    def current_watermark(self):
        ms = self._wm.current_ms()
        return None if ms is None else Timestamp(micros=ms * 1000)

    def get_estimator_state(self):
        return (*self._wm.state(), self._pending)


def clock_decides(watermark_ms: int | None, event_ms: int, cutoff_ms: int | None) -> bool:
    """Whether the partition watermark ``watermark_ms`` may decide the fate of a record at
    ``event_ms`` whose log cutoff is ``cutoff_ms`` (None: minus infinity): the clock raised it
    past the log's (``cutoff_ms < watermark_ms``) and past the event time (``event_ms < watermark_ms``)."""
    return watermark_ms is not None and event_ms < watermark_ms and (cutoff_ms is None or cutoff_ms < watermark_ms)


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """A source range splits only at the current position (a checkpoint), never by a fraction.

    Records carry their partition's watermark as read so far (``SourceRecord.cutoff_ms``);
    a residual starting exactly where the reader stands inherits that watermark exactly,
    while one split off ahead of the reader would start without the records in between
    (and a record's fate would depend on the runner's splitting). An open range
    ``[start, LIVE_STOP)`` split by a fraction, as prism does to balance work, would also
    start near 2**62, an offset no partition will reach."""

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


def offset_tracker(restriction: OffsetRange) -> OffsetRestrictionTracker:
    """The tracker of a source restriction: it splits only at checkpoints (see above)."""
    return _CheckpointOnlyTracker(restriction)
