"""A live run's combiner lifting (transforms/fold.py): folding a bundle's records per key
and window before the engine changes no pane and no dead letter."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.beam_helpers import Collect, Sum, collected, new_tag
from tests.test_engine_properties import END, engine_for, schedules, triggers, windowings
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms.config import windowing_config
from kappa.transforms.fold import Folded, folds
from kappa.transforms.windowing import WindowPerKey
from kappa.transforms.windows import SessionWindows


def _bundles(steps):
    """The schedule's steps, each run of elements with nothing but clock ticks between them
    made one bundle (its ticks first)."""
    out, run, ticks = [], [], []
    for step in steps + [("end",)]:
        if step[0] == "element":
            run.append(step)
        elif step[0] == "tick":
            ticks.append(step)
        else:
            out += ticks + ([("bundle", run)] if run else [])
            run, ticks = [], []
            if step[0] != "end":
                out.append(step)
    return out


def _feed(bundles, spec, trigger, lateness, accumulating, fold: bool):
    engines, panes, too_late, now = {}, [], [], 0
    watermark = None

    def engine(key):
        return engine_for(engines, key, spec, trigger, lateness, accumulating, watermark)

    def add_one(key, t, value):
        fired, late = engine(key).add((key, t, value), value, t, now)
        panes.extend(fired)
        too_late.extend(late)

    for step in bundles:
        if step[0] == "watermark":
            watermark = step[1]
            for e in engines.values():
                panes.extend(e.advance_watermark(step[1]))
        elif step[0] == "tick":
            now = step[1]
            for e in engines.values():
                panes.extend(e.advance_processing_time(now))
        elif not fold or isinstance(spec, SessionWindows):
            for _, key, t, value in step[1]:
                add_one(key, t, value)
        else:  # as _FoldFn and _process_folded: single-window records folded per (key, window)
            groups: dict = {}
            for _, key, t, value in step[1]:
                windows = spec.assign(t)
                if len(windows) != 1:
                    add_one(key, t, value)
                else:
                    groups.setdefault((key, windows[0]), []).append((t, value))
            for (key, window), members in groups.items():
                acc = Sum().create()
                for _, value in members:
                    acc = Sum().add(acc, value)
                if not engine(key).add_folded(window, acc, len(members), now):
                    for t, value in members:
                        add_one(key, t, value)
    for e in engines.values():
        panes.extend(e.advance_watermark(END))
    return Counter(panes), Counter(too_late)


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules())
def test_folding_a_bundles_records_per_key_and_window_changes_no_pane_and_no_dead_letter(
        windowing, trigger, lateness, accumulating, steps):
    """Elements delivered in bundles (runs with no watermark step between): the engine fed
    each bundle folded per (key, window) gives exactly the panes and too-late elements it
    gives fed the same bundles element by element, including where the watermark reached
    or closed a window (ON_TIME and LATE panes, elements the runner's watermark drops)."""
    _, spec, _ = windowing
    bundles = _bundles(steps)
    assert _feed(bundles, spec, trigger, lateness, accumulating, fold=True) == \
        _feed(bundles, spec, trigger, lateness, accumulating, fold=False)


def test_a_fold_gives_back_each_record_without_its_value():
    provenance = Provenance("kafka", "t", 2, 17, 1000)
    folded = Folded((0, 10), (1, Decimal("2.50")),
                    ((Decimal("2.50"), 5, b"k", *provenance, 3, None),))
    [(record, value)] = list(folded.records())
    assert record == SourceRecord(None, 5, b"k", provenance, 3, None) and value == Decimal("2.50")


def test_only_live_watermark_triggered_windows_other_than_sessions_fold():
    assert folds(windowing_config({"window": "fixed:10s", "early_firing": "1s"}))
    assert folds(windowing_config({"window": "sliding:10s/5s"}))
    assert not folds(windowing_config({"window": "session:10s"}))
    assert not folds(windowing_config({"window": "fixed:10s", "trigger": "count:3"}))


def _record(key: str, t: int, value: int, cutoff=None) -> tuple[str, SourceRecord]:
    return key, SourceRecord({"value": value}, t, key.encode(), Provenance("test", "s", 0, t, t), cutoff)


def test_a_window_the_watermark_closed_drops_each_folded_record_with_its_own_dead_letter():
    """In a streaming pipeline (TestStream, each add_elements a bundle): records folded
    before the engine, some of a window the runner's watermark closed before they came and
    one too late by its own cutoff: the panes, and one dead letter per late record."""
    config = windowing_config({"window": "fixed:10ms", "allowed_lateness": "0s"})
    assert folds(config)
    stream = (test_stream.TestStream()
              .add_elements([beam.window.TimestampedValue(_record(*e), e[1] / 1000)
                             for e in [("a", 1, 1), ("a", 2, 2), ("b", 3, 4), ("a", 12, 8)]])
              .advance_watermark_to(0.025)
              .add_elements([beam.window.TimestampedValue(_record(*e), e[1] / 1000)
                             for e in [("a", 5, 16), ("a", 6, 32), ("a", 31, 64), ("a", 32, 128, 40)]])
              .advance_watermark_to_infinity())
    tag, late_tag = new_tag(), new_tag()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        out = p | stream | WindowPerKey(config, Sum(), lambda r: r.value["value"])
        out["panes"] | "Keep panes" >> beam.ParDo(Collect(tag))
        out["too_late"] | "Keep late" >> beam.ParDo(Collect(late_tag))
    finals = {(p.key, p.window): p.value for p in collected(tag) if p.is_last}
    assert finals == {("a", (0, 10)): 3, ("b", (0, 10)): 4, ("a", (10, 20)): 8, ("a", (30, 40)): 64}
    late = sorted((d.key, d.event_ms, d.window, d.decided_by, d.provenance.position) for d in collected(late_tag))
    assert late == [(b"a", 5, (0, 10), "clock", 5), (b"a", 6, (0, 10), "clock", 6), (b"a", 32, (30, 40), "log", 32)]


def test_a_fold_is_stamped_no_later_than_its_records_timestamps_and_the_watermark_they_were_read_at():
    """Prism hands a key its elements and timers in timestamp order: a fold stamped at its
    records' event times would wait behind the timer at the previous window's end."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import Timestamp

    from kappa.transforms.fold import _FoldFn

    fn = _FoldFn(windowing_config({"window": "fixed:10ms"}), Sum(), lambda r: r.value["value"])
    fn.setup()
    fn.start_bundle()
    for key, t, cutoff in [("a", 12, 7), ("a", 15, 9), ("b", 13, None), ("b", 14, 19), ("c", 3, 11)]:
        passed = list(fn.process(_record(key, t, 1, cutoff), timestamp=Timestamp(micros=t * 1000),
                                 beam_window=GlobalWindow()))
        # c's record is too late by its cutoff (11 >= end 10): it goes on alone, as it came
        assert passed == ([_record(key, t, 1, cutoff)] if key == "c" else [])
    out = {wv.value[0]: (wv.timestamp.micros // 1000, wv.value[1].window, len(wv.value[1].members))
           for wv in fn.finish_bundle()}
    assert out == {"a": (7, (10, 20), 2), "b": (13, (10, 20), 2)}
