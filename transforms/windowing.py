"""The Beam layer of the event-time engine: a stateful DoFn per key.

``WindowPerKey`` takes ``(key, SourceRecord)`` pairs and returns
``{"panes": Pane, "too_late": DeadLetter}``. All decisions are the pure
:class:`transforms.engine.KeyEngine`'s; this layer keeps one engine per key in
Beam state and turns Beam timers into its inputs:

* an event-time timer at the engine's next watermark deadline (a window end or a
  window close), set one millisecond before it (runners keep timers in whole
  milliseconds and fire one once the watermark is past it), so it fires exactly when
  the watermark reaches the deadline; the engine is then told "the watermark is at
  the deadline" (never more than the runner's watermark: decisions are conservative);
* processing time is read from the clock when an element arrives: early and
  processing-time panes fire on the first element after they are due. No
  processing-time timers are used: Prism and the DirectRunner's portable runner do
  not run them (Beam issue #32786), and a stream that goes quiet has nothing new
  to show early anyway; the watermark's panes still come from event-time timers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from schemas.records import DeadLetter
from transforms.config import WindowingConfig
from transforms.engine import Aggregation, KeyEngine, TooLate

__all__ = ["TOO_LATE", "WindowPerKey"]

TOO_LATE = "too_late"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Setup:
    config: WindowingConfig
    aggregation: Aggregation
    value_of: object  #: record -> the value the aggregation adds


class _WindowPerKeyFn(beam.DoFn):
    ENGINE = ReadModifyWriteStateSpec("engine", PickleCoder())
    EVENT_TIMER = TimerSpec("event_time", TimeDomain.WATERMARK)

    def __init__(self, spec: _Setup):
        super().__init__()
        self.spec = spec

    def _engine(self, key, state) -> KeyEngine:
        engine = state.read()
        if engine is None:
            c = self.spec.config
            engine = KeyEngine(key, c.window, c.trigger, self.spec.aggregation, c.allowed_lateness_ms, c.accumulating)
        return engine

    def _save(self, engine: KeyEngine, state, event_timer) -> None:
        state.write(engine)
        deadline = engine.next_watermark_deadline()
        if deadline is not None:
            event_timer.set(Timestamp(micros=(deadline - 1) * 1000))

    def process(self, element, state=beam.DoFn.StateParam(ENGINE), event_timer=beam.DoFn.TimerParam(EVENT_TIMER)):
        key, record = element
        engine = self._engine(key, state)
        now = _now_ms()
        due = engine.advance_processing_time(now)
        panes, too_late = engine.add(record, self.spec.value_of(record), record.event_ms, now)
        self._save(engine, state, event_timer)
        yield from self._outputs(due + panes, too_late)

    @on_timer(EVENT_TIMER)
    def on_event_time(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam,
                      state=beam.DoFn.StateParam(ENGINE), event_timer=beam.DoFn.TimerParam(EVENT_TIMER)):
        engine = self._engine(key, state)
        panes = engine.advance_processing_time(_now_ms()) + engine.advance_watermark(fired.micros // 1000 + 1)
        self._save(engine, state, event_timer)
        yield from self._outputs(panes, [])

    def _outputs(self, panes, too_late: list[TooLate]):
        for pane in panes:
            # A pane belongs at its window's last instant (as Beam's GroupByKey output).
            yield beam.window.TimestampedValue(pane, Timestamp(micros=pane.window[1] * 1000 - 1))
        for late in too_late:
            beam.metrics.Metrics.counter("kappa", "dead_letters_too_late").inc()
            record = late.element
            yield beam.pvalue.TaggedOutput(TOO_LATE, DeadLetter(
                "too_late",
                f"arrived {late.lateness_ms} ms behind the watermark, after window "
                f"[{late.window[0]}, {late.window[1]}) closed (allowed lateness "
                f"{self.spec.config.allowed_lateness_ms} ms)",
                record.provenance, None, record.key, late.event_ms, late.lateness_ms, late.window))


class WindowPerKey(beam.PTransform):
    """``(key, SourceRecord)`` -> ``{"panes": Pane, "too_late": DeadLetter}`` under a
    windowing configuration and a pure aggregation of ``value_of(record)``."""

    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of, label: str = ""):
        super().__init__(label or None)
        self.spec = _Setup(config, aggregation, value_of)

    def expand(self, keyed):
        outputs = keyed | "Engine" >> beam.ParDo(_WindowPerKeyFn(self.spec)).with_outputs(TOO_LATE, main="panes")
        return {"panes": outputs.panes, "too_late": outputs[TOO_LATE]}
