"""A bounded replay without per-key state: the engine's batch rules as one fold and a combine.

In a bounded replay (``WindowingConfig.bounded``) the engine fires each window once,
when it closes, with its whole value, and whether a record is too late follows from
the record alone (its cutoffs: no runner watermark reaches a batch). So the windowing
needs no per-key engine, state or timers. One DoFn keys each record, assigns its
windows, judges it by :func:`transforms.engine.too_late_by_cutoffs` and adds what is
on time to a bundle-local accumulator per (key, window): pre-aggregation before the
shuffle, as Beam's combiner lifting does, fused with the keying so a record costs
one step. The partial accumulators are then merged per (key, window) by
``CombinePerKey``. Session windows fold per key, the accumulator the key's sessions,
merged as the engine merges them.

The outputs are the engine's, pane for pane and dead letter for dead letter (tested
against it: ``tests/test_batch_windowing.py``): one ``ON_TIME``, ``is_last`` pane with
index 0 per window, and the same ``too_late`` dead letters. It relies on what
combiner lifting always relies on: an aggregation's ``merge`` of partial accumulators
gives what adding the values one by one gives.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Callable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from kappa.schemas.records import DeadLetter, RecordBatch, SourceRecord
from kappa.transforms.config import WindowingConfig
from kappa.transforms.engine import ON_TIME, Aggregation, Pane, too_late_by_cutoffs
from kappa.transforms.windowing import too_late_dead_letter
from kappa.transforms.windows import SessionWindows

__all__ = ["WindowInBatch"]

_DEAD = "dead_letters"
#: Partial accumulators a bundle keeps before it hands them on (bounds a bundle's memory).
_MAX_PARTIALS = 50_000


class _Sessions:
    """A key's sessions as ``[[start, end, acc], ...]``, sorted, never overlapping.

    Sessions merge when one starts strictly before the other ends (as Beam's)."""

    def __init__(self, aggregation: Aggregation, gap_ms: int):
        self.aggregation, self.gap_ms = aggregation, gap_ms

    def add(self, sessions: list, t: int, value) -> list:
        start, end = t, t + self.gap_ms
        lo = bisect_right(sessions, t, key=lambda s: s[1])  # the first ending after t
        hi = bisect_left(sessions, end, key=lambda s: s[0])  # the first starting at or after end
        acc = self.aggregation.add(self.aggregation.create(), value)
        if lo < hi:
            merged = sessions[lo:hi]
            start, end = min(start, merged[0][0]), max(end, merged[-1][1])
            acc = self.aggregation.merge([s[2] for s in merged] + [acc])
        sessions[lo:hi] = [[start, end, acc]]
        return sessions

    def merge(self, many: list[list]) -> list:
        out: list = []
        for start, end, acc in sorted((s for sessions in many for s in sessions), key=lambda s: s[0]):
            if out and start < out[-1][1]:
                out[-1] = [out[-1][0], max(out[-1][1], end), self.aggregation.merge([out[-1][2], acc])]
            else:
                out.append([start, end, acc])
        return out


class _FoldFn(beam.DoFn):
    """Records -> partial accumulators ``(slot, acc)`` per bundle, where a slot is
    ``(key, window)`` (sessions: the key, its acc the key's sessions); dead letters for
    records without a usable key and for each window a record is too late for."""

    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of, keying):
        self.config, self.aggregation, self.value_of, self.keying = config, aggregation, value_of, keying

    def setup(self):
        window = self.config.window
        self._sessions = _Sessions(self.aggregation, window.gap_ms) if isinstance(window, SessionWindows) else None
        self._assign = window.assign
        self._lateness = self.config.allowed_lateness_ms

    def start_bundle(self):
        self._partials: dict = {}

    def process(self, element: SourceRecord | RecordBatch):
        if type(element) is RecordBatch:
            for record in element:
                yield from self._fold(record)
        else:
            yield from self._fold(element)

    def _fold(self, record: SourceRecord):
        key = self.keying(record)
        if isinstance(key, DeadLetter):
            yield beam.pvalue.TaggedOutput(_DEAD, key)
            return
        t, cutoff, clock, partials = record.event_ms, record.cutoff_ms, record.clock_cutoff_ms, self._partials
        if self._sessions is not None:
            late = too_late_by_cutoffs(t, cutoff, clock, self._lateness)  # judged at its own time
            if late is not None:
                window = (t, t + self._sessions.gap_ms)
                yield beam.pvalue.TaggedOutput(_DEAD, too_late_dead_letter(record, window, *late, self._lateness))
                return
            partials[key] = self._sessions.add(partials.get(key, []), t, self.value_of(record))
        else:
            value, add = None, self.aggregation.add
            for window in self._assign(t):
                late = too_late_by_cutoffs(window[1], cutoff, clock, self._lateness)
                if late is not None:
                    yield beam.pvalue.TaggedOutput(_DEAD, too_late_dead_letter(record, window, *late, self._lateness))
                    continue
                if value is None:
                    value = self.value_of(record)
                slot = (key, window)
                acc = partials.get(slot)
                partials[slot] = add(self.aggregation.create() if acc is None else acc, value)
        if len(partials) >= _MAX_PARTIALS:
            yield from self._partials.items()
            self._partials = {}

    def finish_bundle(self):
        for slot_acc in self._partials.items():
            yield WindowedValue(slot_acc, MIN_TIMESTAMP, (GlobalWindow(),))
        self._partials = {}


class _MergePartialsFn(beam.CombineFn):
    """Partial accumulators of one slot merged into one (itself liftable: merging is cheap)."""

    def __init__(self, merge: Callable[[list], object], empty):
        self.merge, self.empty = merge, empty

    def create_accumulator(self):
        return self.empty()

    def add_input(self, acc, partial):
        return self.merge([acc, partial])

    def merge_accumulators(self, accs):
        return self.merge(list(accs))

    def extract_output(self, acc):
        return acc


class WindowInBatch(beam.PTransform):
    """Records (or RecordBatches of them) -> ``{"panes": Pane, "dead_letters": DeadLetter}`` for a bounded replay: the
    panes and too_late dead letters of :class:`transforms.windowing.WindowPerKey` under
    ``config`` (which must be bounded), without per-key state. ``keying(record)`` gives
    the record's key, or the DeadLetter of a record without a usable one."""

    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of,
                 keying: Callable[[SourceRecord], object], label: str = ""):
        super().__init__(label or None)
        if not config.bounded:
            raise ValueError("WindowInBatch is for bounded replays (a batch); live runs window per key")
        self.config, self.aggregation, self.value_of, self.keying = config, aggregation, value_of, keying

    def expand(self, records):
        aggregation = self.aggregation
        folded = records | "Fold" >> beam.ParDo(
            _FoldFn(self.config, aggregation, self.value_of, self.keying)).with_outputs(_DEAD, main="partials")
        window = self.config.window
        if isinstance(window, SessionWindows):
            sessions = _Sessions(aggregation, window.gap_ms)
            panes = (folded.partials
                     | "Merge" >> beam.CombinePerKey(_MergePartialsFn(sessions.merge, list))
                     | "Panes" >> beam.FlatMap(lambda kv: [_final_pane(kv[0], (s, e), acc, aggregation)
                                                           for s, e, acc in kv[1]]))
        else:
            panes = (folded.partials
                     | "Merge" >> beam.CombinePerKey(_MergePartialsFn(aggregation.merge, aggregation.create))
                     | "Panes" >> beam.Map(lambda kv: _final_pane(kv[0][0], kv[0][1], kv[1], aggregation)))
        return {"panes": panes, "dead_letters": folded[_DEAD]}


def _final_pane(key, window, acc, aggregation: Aggregation) -> Pane:
    return Pane(key, window, ON_TIME, 0, True, aggregation.extract(acc))
