"""Too late is decided by the log: a record's fate depends only on its partition's
watermark when it was read (its cutoff), never on which key it has, on that key's
history, or on how far the runner's watermark has got elsewhere (item 1 of the
event-time issue). Pure engine properties here; the same rule through the real
reader, Beam and the CLI in tests/test_event_time_truth.py."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.beam_helpers import Sum
from kappa.transforms.engine import ON_TIME, KeyEngine
from kappa.transforms.triggers import TriggerPolicy
from kappa.transforms.windows import FixedWindows, SessionWindows, SlidingWindows

END = 10**9

windowings = st.one_of(
    st.builds(FixedWindows, st.integers(1, 50)),
    st.builds(lambda period, k: SlidingWindows(period * k, period), st.integers(1, 20), st.integers(1, 4)),
    st.builds(SessionWindows, st.integers(1, 40)),
)
partition_logs = st.lists(st.tuples(st.sampled_from("abcde"), st.integers(-100, 300), st.integers(1, 9)), max_size=60)


def _cutoffs(log, bound):
    """Each record's cutoff: the greatest event time before it in the partition, minus the bound."""
    newest, out = None, []
    for _, t, _ in log:
        out.append(None if newest is None else newest - bound)
        newest = t if newest is None else max(newest, t)
    return out


def _reference(log, spec, bound, lateness):
    if isinstance(spec, SessionWindows):
        return _session_reference(log, spec.gap_ms, bound, lateness)
    finals, late = defaultdict(int), set()
    for i, ((key, t, value), cutoff) in enumerate(zip(log, _cutoffs(log, bound))):
        for window in spec.assign(t):
            if cutoff is not None and cutoff >= window[1] + lateness:
                late.add((i, window))
            else:
                finals[(key, window)] += value
    return dict(finals), late


def _session_reference(log, gap, bound, lateness):
    """Sessions: a record is too late iff its cutoff >= its own time + allowed lateness; the
    others' proto-sessions [t, t + gap) merge per key, as a batch would merge them."""
    accepted, late = defaultdict(list), set()
    for i, ((key, t, value), cutoff) in enumerate(zip(log, _cutoffs(log, bound))):
        if cutoff is not None and cutoff >= t + lateness:
            late.add((i, (t, t + gap)))
        else:
            accepted[key].append((t, value))
    finals = {}
    for key, elements in accepted.items():
        start = end = total = None
        for t, value in sorted(elements):
            if end is not None and t < end:
                end, total = max(end, t + gap), total + value
                continue
            if end is not None:
                finals[(key, (start, end))] = total
            start, end, total = t, t + gap, value
        finals[(key, (start, end))] = total
    return finals, late


def _engine(key, spec, lateness, bounded, trigger=TriggerPolicy()):
    return KeyEngine(key, spec, trigger, Sum(), lateness, True, bounded)


def _run(log, spec, bound, lateness, bounded, runner_watermarks):
    """Feed the log to one engine per key; before record i, ``runner_watermarks[i]`` (if any)
    reaches the keys listed with it, as a runner's timers would."""
    engines, finals, late = {}, {}, set()
    for i, ((key, t, value), cutoff) in enumerate(zip(log, _cutoffs(log, bound))):
        for k, wm in runner_watermarks.get(i, ()):
            engine = engines.setdefault(k, _engine(k, spec, lateness, bounded))
            for pane in engine.advance_watermark(wm):
                if pane.is_last and pane.merged_into is None:
                    finals[(k, pane.window)] = pane.value
        engine = engines.setdefault(key, _engine(key, spec, lateness, bounded))
        panes, too_late = engine.add(i, value, t, now_ms=0, cutoff_ms=cutoff)
        assert not any(x.by_clock for x in too_late), "a runner never ahead of the log decided instead of the log"
        late |= {(x.element, x.window) for x in too_late}
        finals.update({(key, p.window): p.value for p in panes if p.is_last and p.merged_into is None})
    for k, engine in engines.items():
        finals.update({(k, p.window): p.value for p in engine.advance_watermark(END) if p.is_last})
    return finals, late


@settings(max_examples=300, deadline=None)
@given(log=partition_logs, spec=windowings, bound=st.integers(0, 40), lateness=st.integers(0, 30))
def test_in_a_bounded_replay_too_late_is_exactly_cutoff_at_or_past_window_close(log, spec, bound, lateness):
    """Invariant: with no runner watermark at all (a batch), a record is too late for window
    w iff its cutoff >= w.end + allowed lateness; every other record is in w's final value."""
    assert _run(log, spec, bound, lateness, True, {}) == _reference(log, spec, bound, lateness)


@settings(max_examples=300, deadline=None)
@given(log=partition_logs, spec=windowings, bound=st.integers(0, 40), lateness=st.integers(0, 30), data=st.data())
def test_a_records_fate_does_not_depend_on_its_key_or_on_a_runner_watermark_behind_the_log(
        log, spec, bound, lateness, data):
    """Invariant: whatever watermarks a runner hands to whichever keys (quiet keys, brand-new
    keys, keys with open windows), as long as none is ahead of the partition's cutoff at that
    point, live engines drop and keep exactly the records the log's rule says."""
    cutoffs = _cutoffs(log, bound)
    schedule, given_so_far = {}, {}
    for i, cutoff in enumerate(cutoffs):
        if cutoff is None or not data.draw(st.booleans()):
            continue
        keys = data.draw(st.lists(st.sampled_from("abcdef"), max_size=3, unique=True))
        steps = []
        for k in keys:
            wm = data.draw(st.integers(given_so_far.get(k, cutoff - 60), cutoff))
            given_so_far[k] = wm
            steps.append((k, wm))
        schedule[i] = steps
    assert _run(log, spec, bound, lateness, False, schedule) == _reference(log, spec, bound, lateness)


def test_the_three_cases_of_a_stale_per_key_watermark_are_all_too_late():
    """The transcript of the issue: 1-minute windows, no lateness, the partition at 10 minutes.
    An element at 5 min for a key with no open window, one at 1 s for a brand-new key, and one
    at 5 min for a key with an open window are all too late, 5 min (or 9:59) behind."""
    spec, minute = FixedWindows(60_000), 60_000
    quiet = _engine("quiet", spec, 0, False)
    quiet.add("q", 1, 10 * minute, 0, cutoff_ms=None)
    quiet.advance_watermark(6 * minute)  # the runner told this key something, long ago
    busy = _engine("busy", spec, 0, False)
    busy.add("b", 1, 8 * minute, 0, cutoff_ms=None)  # its window [8, 9) is still open
    fresh = _engine("fresh", spec, 0, False)
    cutoff = 10 * minute
    outcomes = [quiet.add("q5", 1, 5 * minute, 0, cutoff), fresh.add("f1", 1, 1000, 0, cutoff),
                busy.add("b5", 1, 5 * minute, 0, cutoff)]
    for panes, late in outcomes:
        assert panes == [] and len(late) == 1 and not late[0].by_clock
    assert [late[0].lateness_ms for _, late in outcomes] == [5 * minute, cutoff - 1000, 5 * minute]


def test_a_window_on_the_boundary_closes_when_the_cutoff_equals_its_end():
    """Half-open windows: the cutoff at exactly end (+ lateness) closes [start, end)."""
    engine = _engine("k", FixedWindows(10), 5, True)
    assert engine.add("x", 1, 9, 0, cutoff_ms=14)[1] == []
    assert [x.window for x in engine.add("y", 1, 9, 0, cutoff_ms=15)[1]] == [(0, 10)]


def test_the_clock_moving_a_runner_watermark_past_the_log_is_said_in_the_dead_letter():
    """Only an idle live partition (the clock) can put the runner ahead of the cutoff: the
    record is too late then, and the dead letter says the clock decided."""
    engine = _engine("k", FixedWindows(10), 0, False)
    engine.add("a", 1, 3, 0, cutoff_ms=None)
    [pane] = engine.advance_watermark(20)
    assert pane.is_last and pane.timing == ON_TIME
    _, [late] = engine.add("b", 1, 4, 0, cutoff_ms=3)
    assert late.by_clock and late.window == (0, 10)


def test_a_bounded_engine_fires_one_final_on_time_pane_per_window_whatever_the_trigger():
    """A bounded replay has no clock: early, count and processing-time panes do not fire;
    each window's one pane is ON_TIME and final, with the allowed lateness or without."""
    for trigger in (TriggerPolicy(early_every_ms=1), TriggerPolicy("count", count=1),
                    TriggerPolicy("processing_time", delay_ms=1)):
        engine = _engine("k", FixedWindows(10), 7, True, trigger)
        fired = []
        for now, t in enumerate([1, 2, 15, 3]):
            fired += engine.advance_processing_time(now * 100)
            fired += engine.add(t, 1, t, now * 100, cutoff_ms=None)[0]
        deadline = engine.next_watermark_deadline()
        assert deadline == 17  # the close of [0, 10), not its end
        while deadline is not None:
            fired += engine.advance_watermark(deadline)
            deadline = engine.next_watermark_deadline()
        assert [(p.window, p.timing, p.pane_index, p.is_last, p.value) for p in fired] == [
            ((0, 10), ON_TIME, 0, True, 3), ((10, 20), ON_TIME, 0, True, 1)]
