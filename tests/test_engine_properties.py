"""The event-time engine against the reference model, over generated event sets,
arrival orders and watermark schedules."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.beam_helpers import Sum
from tests.reference_model import ReferenceModel
from kappa.transforms.engine import EARLY, LATE, ON_TIME, KeyEngine
from kappa.transforms.triggers import TriggerPolicy
from kappa.transforms.windows import FixedWindows, SessionWindows, SlidingWindows

END = 10**9  # a final watermark past every window


windowings = st.one_of(
    st.builds(lambda size: ("fixed", FixedWindows(size), dict(size=size)), st.integers(1, 50)),
    st.builds(lambda period, k: ("sliding", SlidingWindows(period * k, period), dict(size=period * k, period=period)),
              st.integers(1, 20), st.integers(1, 4)),
    st.builds(lambda gap: ("session", SessionWindows(gap), dict(gap=gap)), st.integers(1, 30)),
)
triggers = st.one_of(
    st.builds(lambda e, l: TriggerPolicy("watermark", early_every_ms=e, late_every=l),
              st.none() | st.integers(1, 20), st.integers(1, 3)),
    st.builds(lambda n: TriggerPolicy("count", count=n), st.integers(1, 4)),
    st.builds(lambda d: TriggerPolicy("processing_time", delay_ms=d), st.integers(1, 20)),
)
events = st.lists(st.tuples(st.sampled_from("abc"), st.integers(-100, 200), st.integers(1, 9)), max_size=40)


@st.composite
def schedules(draw, allow_late=True):
    """Arrival steps: the events in some order, watermark advances and clock ticks between."""
    evs = draw(st.permutations(draw(events)))
    steps, watermark, now = [], -200, 0
    for key, t, value in evs:
        if draw(st.booleans()):
            watermark += draw(st.integers(0, 60))
            if not allow_late:
                watermark = min(watermark, -200)
            steps.append(("watermark", watermark))
        now += draw(st.integers(0, 10))
        steps.append(("tick", now))
        steps.append(("element", key, t, value))
    return steps


def engine_for(engines: dict, key, spec, trigger, lateness, accumulating, watermark) -> KeyEngine:
    """The key's engine in ``engines``; a new key's starts at the current ``watermark``."""
    if key not in engines:
        engines[key] = KeyEngine(key, spec, trigger, Sum(), lateness, accumulating)
        if watermark is not None:
            engines[key].advance_watermark(watermark)
    return engines[key]


def run_engine(steps, spec, trigger, lateness, accumulating, final=END, after_step=None, engines=None):
    """Feed ``steps`` to one engine per key; ``after_step(engines)`` runs after each step."""
    engines = {} if engines is None else engines
    panes, too_late, now = [], [], 0

    def engine(key):
        return engine_for(engines, key, spec, trigger, lateness, accumulating, watermark)

    watermark = None
    for step in steps:
        if step[0] == "watermark":
            watermark = step[1]
            for e in engines.values():
                panes += e.advance_watermark(step[1])
        elif step[0] == "tick":
            now = step[1]
            for e in engines.values():
                panes += e.advance_processing_time(now)
        else:
            _, key, t, value = step
            fired, late = engine(key).add((key, t, value), value, t, now)
            panes += fired
            too_late += late
        if after_step is not None:
            after_step(engines)
    if final is not None:
        for e in engines.values():
            panes += e.advance_watermark(final)
    return panes, too_late


def final_values(panes, accumulating=True, kind="fixed"):
    """What a consumer takes as final, in either mode: (key, window) -> the value of the
    window's last pane. A session merged away (its last pane ``merged_into`` another)
    has no final value."""
    return {(p.key, p.window): p.value for p in panes if p.is_last and p.merged_into is None}


def model_final(model, accumulating, kind):
    return model.final_values()


def model_for(kind, params, lateness):
    return ReferenceModel(kind, lateness=lateness, **params)


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules())
def test_final_pane_values_equal_the_reference_model(windowing, trigger, lateness, accumulating, steps):
    """For fixed, sliding and session windows and any trigger: every window's final
    value equals the reference model's, and elements the model finds too late are
    exactly the engine's too-late (element, window) pairs."""
    kind, spec, params = windowing
    panes, too_late = run_engine(steps, spec, trigger, lateness, accumulating)
    model = model_for(kind, params, lateness).run([s for s in steps if s[0] != "tick"])
    assert final_values(panes, accumulating, kind) == model_final(model, accumulating, kind)
    assert sorted((t.key, t.event_ms, t.element[2], t.window) for t in too_late) == sorted(model.too_late)


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules())
def test_every_window_has_consecutive_panes_and_exactly_one_last_pane(windowing, trigger, lateness, accumulating, steps):
    """Pane indices run 0..n-1 per window and only the highest is_last, for sessions too
    (a session merged away ends with its superseded last pane; the merged session is a
    new window, from index 0); timings go EARLY* then at most one ON_TIME then LATE*
    (a discarding window's closing delta and its last pane share one timing)."""
    _, spec, _ = windowing
    panes, _ = run_engine(steps, spec, trigger, lateness, accumulating)
    by_window = defaultdict(list)
    for p in panes:
        by_window[(p.key, p.window)].append(p)
    order = {EARLY: 0, ON_TIME: 1, LATE: 2}
    for ps in by_window.values():
        assert [p.pane_index for p in ps] == list(range(len(ps)))
        assert [p.is_last for p in ps] == [False] * (len(ps) - 1) + [True]
        assert all(p.merged_into is None for p in ps[:-1])
        timings = [order[p.timing] for p in ps]
        assert timings == sorted(timings)
        # A discarding window's closing delta and its last pane are one firing: one timing.
        closing_pair = not accumulating and len(ps) > 1 and ps[-1].merged_into is None
        assert (timings[:-1] if closing_pair else timings).count(1) <= 1


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), schedules())
def test_discarding_deltas_add_up_to_the_final_value_which_equals_the_accumulating_one(windowing, trigger, lateness,
                                                                                      steps):
    """Discarding mode: a window's non-final panes carry what is new since the pane
    before, and whenever it has any, they add up to its last pane's value; that last
    pane carries the whole value, equal to an accumulating run's, and the same windows
    are superseded (merged away) in both modes."""
    _, spec, _ = windowing
    discarding, late_d = run_engine(steps, spec, trigger, lateness, False)
    accumulating, late_a = run_engine(steps, spec, trigger, lateness, True)
    assert final_values(discarding) == final_values(accumulating)
    assert late_d == late_a
    superseded = lambda panes: {(p.key, p.window, p.merged_into) for p in panes if p.merged_into}  # noqa: E731
    assert superseded(discarding) == superseded(accumulating)
    by_window = defaultdict(list)
    for p in discarding:
        by_window[(p.key, p.window)].append(p)
    for ps in by_window.values():
        last, deltas = ps[-1], ps[:-1]
        if deltas and last.merged_into is None:
            assert sum(p.value for p in deltas) == last.value
        assert all(p.value > 0 for p in deltas), "a discarding pane with nothing new is not fired"


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 30), triggers, st.integers(0, 40), st.booleans(), schedules())
def test_a_session_that_fired_and_merged_away_is_superseded_by_a_session_that_covers_it(gap, trigger, lateness,
                                                                                        accumulating, steps):
    """Every superseded session names a session it merged into that covers it, and each
    element ends up in exactly one final session: superseded sessions hold no value."""
    panes, too_late = run_engine(steps, SessionWindows(gap), trigger, lateness, accumulating)
    for p in panes:
        if p.merged_into is not None:
            assert p.is_last and p.value is None
            assert p.merged_into[0] <= p.window[0] and p.window[1] <= p.merged_into[1]
            assert p.merged_into != p.window
    accepted = sum(s[3] for s in steps if s[0] == "element") - sum(t.element[2] for t in too_late)
    assert sum(final_values(panes).values()) == accepted


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules(allow_late=False), st.randoms())
def test_without_late_data_final_values_do_not_depend_on_arrival_order(windowing, trigger, lateness, accumulating,
                                                                        steps, rnd):
    """When no element is later than the allowed lateness, final values are the same
    for any arrival order and any processing-time schedule."""
    kind, spec, _ = windowing
    elements = [s for s in steps if s[0] == "element"]
    shuffled = list(elements)
    rnd.shuffle(shuffled)
    first, late1 = run_engine(steps, spec, trigger, lateness, accumulating)
    second, late2 = run_engine(shuffled, spec, trigger, lateness, accumulating)
    assert late1 == [] and late2 == []
    assert final_values(first, accumulating, kind) == final_values(second, accumulating, kind)


@settings(max_examples=400, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules())
def test_bounded_replay_equals_streaming_for_windows_without_too_late_data(windowing, trigger, lateness, accumulating,
                                                                           steps):
    """A bounded replay (all elements, then the final watermark) gives, for every window
    with no too-late element in the streaming run, the streaming run's final value."""
    kind, spec, _ = windowing
    streaming, too_late = run_engine(steps, spec, trigger, lateness, accumulating)
    replay, replay_late = run_engine([s for s in steps if s[0] == "element"], spec, trigger, lateness, accumulating)
    assert replay_late == []
    tainted = {(t.key, t.window) for t in too_late}
    if kind == "session":
        # A too-late element could have bridged two sessions; only keys without any
        # too-late element are comparable window by window.
        tainted_keys = {t.key for t in too_late}
        live_final = {kw: v for kw, v in final_values(streaming, True, kind).items() if kw[0] not in tainted_keys}
        replay_final = final_values(replay, True, kind)
        if accumulating:
            assert all(replay_final.get(kw) == v for kw, v in live_final.items())
        return
    live_final = final_values(streaming, accumulating)
    replay_final = final_values(replay, accumulating)
    for kw, value in live_final.items():
        if kw not in tainted:
            assert replay_final.get(kw) == value
    # Each replay window is a single ON_TIME, last pane.
    assert all(p.timing == ON_TIME and p.is_last for p in replay if p.pane_index == 0 and p.is_last)


@settings(max_examples=400, deadline=None)
@given(windowings, st.integers(0, 40), schedules())
def test_late_panes_accumulate_every_element_accepted_so_far(windowing, lateness, steps):
    """In accumulating mode each pane's value is the sum of everything accepted into
    its window up to that pane, so LATE panes carry on-time and late data alike."""
    _, spec, _ = windowing
    panes, _ = run_engine(steps, spec, TriggerPolicy("watermark"), lateness, True)
    by_window = defaultdict(list)
    for p in panes:
        if p.merged_into is None:  # a superseded session's last pane holds no value
            by_window[(p.key, p.window)].append(p.value)
    for values in by_window.values():
        assert values == sorted(values)  # values are positive: panes only grow


def test_an_element_behind_the_watermark_is_too_late_for_sessions_so_it_never_meets_a_closed_one():
    """Session [0, 6) closes at W = 6; an element at t = 5 arriving at W = 10 would have
    joined it. It is too late by its own time (W >= t + L), whatever its proto-session
    [5, 11): a live run cannot add to the closed session, and a replay must not either."""
    steps = [("element", "a", 0, 1), ("watermark", 10), ("element", "a", 5, 1)]
    live, too_late = run_engine(steps, SessionWindows(6), TriggerPolicy(), 0, True)
    assert final_values(live, True, "session") == {("a", (0, 6)): 1}
    assert [(t.event_ms, t.window, t.lateness_ms) for t in too_late] == [(5, (5, 11), 5)]


@settings(max_examples=300, deadline=None)
@given(windowings, triggers, st.integers(0, 40), st.booleans(), schedules())
def test_an_idle_engine_replaced_by_a_fresh_one_told_its_watermark_changes_no_later_output(
        windowing, trigger, lateness, accumulating, steps):
    """Invariant behind bounded per-key state (the windowing DoFn stores an idle key as its
    watermark alone): wherever an engine is idle, a fresh engine that knows only its
    watermark gives the same panes and too-late elements from there on; and every engine
    is idle once the final watermark has passed (nothing is kept for ever)."""
    _, spec, _ = windowing
    kept, kept_late = run_engine(steps, spec, trigger, lateness, accumulating)

    def renew_idle(engines):
        for key, e in list(engines.items()):
            if e.idle:
                engines[key] = KeyEngine(key, spec, trigger, Sum(), lateness, accumulating, watermark_ms=e.watermark_ms)

    engines: dict[str, KeyEngine] = {}
    panes, too_late = run_engine(steps, spec, trigger, lateness, accumulating, after_step=renew_idle, engines=engines)
    assert panes == kept and too_late == kept_late
    assert all(e.idle for e in engines.values())
