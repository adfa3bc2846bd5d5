"""A live run's combiner lifting: a bundle's records folded per (key, window) before the
per-key engine, so the engine's stateful step (its state read and written, its timer set)
runs once per key and window in a bundle instead of once per record.

``FoldPerWindow`` sits before :class:`transforms.windowing.WindowPerKey`'s stateful step,
fused with the reader (no shuffle between): ``(key, SourceRecord)`` in, and out either the
same pair or ``(key, Folded)``, one per (key, window) a bundle holds records of. Nothing is
decided here that the engine would decide differently:

* a record is folded only when it falls in exactly one window (fixed windows) and its own
  cutoffs do not close that window (:func:`transforms.engine.too_late_by_cutoffs`, a pure
  function of the record); every other record goes on alone, to be judged by the engine as
  before (so too-late dead letters are the engine's, one per record);
* the engine takes a fold at once (:meth:`transforms.engine.KeyEngine.add_folded`) only
  where adding its records one by one would neither fire a pane nor drop one (the window
  open before its end under a watermark trigger); otherwise it adds them one by one as
  before, from the fold's members: each record's value, event time, key, provenance and
  cutoffs, which is all the engine and a too-late dead letter use of a record. So a window
  the runner's watermark closed still drops each record with its own dead letter (and its
  mark in the run directory), and ON_TIME and LATE panes count records as before;
* a fold is stamped with the earliest of its records' timestamps and cutoffs: no later
  than any of them, so it holds the watermark downstream at least as they did (and the
  engine's dead letters, which take their input's timestamp, are written no later than
  the run's commits expect), and no later than the partition watermark they were read
  at. That matters on prism, which hands a key its elements and timers in timestamp
  order: records stamped at their event times would wait, key by key, behind the timer
  at the end of the window before theirs until the watermark reached it (the bound, 2 s
  and more, after they were read); the engine itself never reads element timestamps.

What changes is only when within a bundle the engine sees the records, which bundling
already leaves open: EARLY panes, processing-time panes by nature, may hold more or fewer
records. Sessions (whose records hold their offsets for the run's commits), count and
processing-time triggers and bounded replays are not folded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms.config import WindowingConfig
from kappa.transforms.engine import Aggregation, too_late_by_cutoffs
from kappa.transforms.windows import SessionWindows

__all__ = ["FoldPerWindow", "Folded", "folds"]


class Folded(NamedTuple):
    """Records of one key and window from one bundle: ``acc`` their values added in order
    from ``create()``; ``members`` per record ``(value, event_ms, key, source, stream,
    partition, position, broker_ms, cutoff_ms, clock_cutoff_ms)`` (flat: cheap to encode)."""

    window: tuple[int, int]
    acc: Any
    members: tuple

    def records(self):
        """``(record, value)`` per member: the record without its decoded value (the engine
        and a dead letter use only its time, key, provenance and cutoffs)."""
        for value, event_ms, key, source, stream, partition, position, broker_ms, cutoff, clock in self.members:
            yield SourceRecord(None, event_ms, key, Provenance(source, stream, partition, position, broker_ms),
                               cutoff, clock), value


def folds(config: WindowingConfig) -> bool:
    """Whether a run under ``config`` folds: live (not bounded), a watermark trigger, not sessions."""
    return not config.bounded and config.trigger.kind == "watermark" and not isinstance(config.window, SessionWindows)


class _FoldFn(beam.DoFn):
    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of):
        self.config, self.aggregation, self.value_of = config, aggregation, value_of

    def setup(self):
        self._assign = self.config.window.assign
        self._lateness = self.config.allowed_lateness_ms

    def start_bundle(self):
        self._folds: dict = {}  #: (key, window, beam window) -> [acc, members, earliest timestamp]

    def process(self, element, timestamp=beam.DoFn.TimestampParam, beam_window=beam.DoFn.WindowParam):
        key, record = element
        windows = self._assign(record.event_ms)
        if len(windows) != 1 or too_late_by_cutoffs(windows[0][1], record.cutoff_ms, record.clock_cutoff_ms,
                                                    self._lateness) is not None:
            yield element  # judged by the engine, alone
            return
        value = self.value_of(record)
        source, stream, partition, position, broker_ms = record.provenance
        member = (value, record.event_ms, record.key, source, stream, partition, position, broker_ms,
                  record.cutoff_ms, record.clock_cutoff_ms)
        if record.cutoff_ms is not None and record.cutoff_ms * 1000 < timestamp.micros:
            timestamp = Timestamp(micros=record.cutoff_ms * 1000)  # the watermark it was read at (see the module)
        slot = (key, windows[0], beam_window)
        fold = self._folds.get(slot)
        if fold is None:
            self._folds[slot] = [self.aggregation.add(self.aggregation.create(), value), [member], timestamp]
        else:
            fold[0] = self.aggregation.add(fold[0], value)
            fold[1].append(member)
            if timestamp < fold[2]:
                fold[2] = timestamp

    def finish_bundle(self):
        for (key, window, beam_window), (acc, members, earliest) in self._folds.items():
            yield WindowedValue((key, Folded(window, acc, tuple(members))), Timestamp.of(earliest), (beam_window,))
        self._folds = {}


class FoldPerWindow(beam.PTransform):
    """``(key, SourceRecord)`` -> the same, or ``(key, Folded)``: a bundle's records folded
    per key and window where the engine's decisions allow (see the module)."""

    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of, label: str = ""):
        super().__init__(label or None)
        if not folds(config):
            raise ValueError("FoldPerWindow is for live runs under a watermark trigger, without sessions")
        self.config, self.aggregation, self.value_of = config, aggregation, value_of

    def expand(self, keyed):
        return keyed | "Fold" >> beam.ParDo(_FoldFn(self.config, self.aggregation, self.value_of))
