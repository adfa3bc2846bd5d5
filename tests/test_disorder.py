"""The demo producer's arrival plan: disorder is exactly as asked, and seeded."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kappa.runners.produce import DOMAINS, DisorderSpec, Kind, plan_arrivals

specs = st.builds(
    DisorderSpec,
    disorder_fraction=st.floats(0, 0.6),
    max_disorder_ms=st.integers(1, 120_000),
    late_fraction=st.floats(0, 0.3),
    late_by_ms=st.integers(0, 600_000),
)
plans = st.tuples(st.integers(0, 3000), st.integers(0, 2**32), st.integers(-(10**12), 10**13),
                  st.floats(0.01, 10_000), specs)


def _feasible(args) -> bool:
    count, _, _, _, spec = args
    return count == 0 or round(count * spec.disorder_fraction) + round(count * spec.late_fraction) <= count - 1


def _lags(plan):
    """For each arrival: max event time seen before it minus its event time (None for the first)."""
    max_seen, out = None, []
    for a in plan:
        out.append(None if max_seen is None else max_seen - a.event_ms)
        max_seen = a.event_ms if max_seen is None else max(max_seen, a.event_ms)
    return out


@settings(max_examples=200, deadline=None)
@given(plans)
def test_disorder_and_late_fractions_are_exactly_as_asked(args):
    """Exactly round(count * fraction) events of each kind, measured the way a watermark
    sees them: out of order by 0 < lag <= max_disorder, late by lag > late_by."""
    assume(_feasible(args))
    count, seed, start, rate, spec = args
    plan = plan_arrivals(count, seed, start, rate, spec)
    lags = _lags(plan)
    assert len(plan) == count
    out_of_order = [lag for a, lag in zip(plan, lags) if a.kind is Kind.OUT_OF_ORDER]
    late = [lag for a, lag in zip(plan, lags) if a.kind is Kind.LATE]
    in_order = [lag for a, lag in zip(plan, lags) if a.kind is Kind.IN_ORDER]
    assert len(out_of_order) == round(count * spec.disorder_fraction)
    assert len(late) == round(count * spec.late_fraction)
    assert all(0 < lag <= spec.max_disorder_ms for lag in out_of_order)
    assert all(lag > spec.late_by_ms for lag in late)
    assert all(lag is None or lag <= 0 for lag in in_order)


@settings(max_examples=100, deadline=None)
@given(plans)
def test_arrival_times_never_go_backwards_and_never_precede_the_event(args):
    """Arrivals are produced in non-decreasing arrival time, each at or after its event time."""
    assume(_feasible(args))
    plan = plan_arrivals(*args)
    assert all(a.arrival_ms >= a.event_ms for a in plan)
    assert all(x.arrival_ms <= y.arrival_ms for x, y in zip(plan, plan[1:]))
    if plan:
        assert plan[0].kind is Kind.IN_ORDER and plan[0].event_ms == args[2]


@settings(max_examples=50, deadline=None)
@given(plans)
def test_same_arguments_give_the_same_plan(args):
    assume(_feasible(args))
    assert plan_arrivals(*args) == plan_arrivals(*args)


@settings(max_examples=100, deadline=None)
@given(plans)
def test_a_plan_is_refused_exactly_when_it_would_leave_no_in_order_first_event(args):
    if _feasible(args):
        plan_arrivals(*args)
    else:
        with pytest.raises(ValueError, match="no in-order event"):
            plan_arrivals(*args)


@pytest.mark.parametrize("rate", [50.0, 2_000.0, 5_000.0, 20_000.0])
def test_mean_event_spacing_follows_the_rate_even_far_above_one_per_millisecond(rate):
    """Gaps shorter than a millisecond do not round the rate away (each event time is the
    rounded exact Poisson clock, not a sum of rounded gaps)."""
    plan = plan_arrivals(20_000, 1, 0, rate, DisorderSpec())
    span_s = (plan[-1].event_ms - plan[0].event_ms) / 1000
    assert 20_000 / span_s == pytest.approx(rate, rel=0.05)


def test_disorder_that_leaves_no_in_order_event_is_refused():
    with pytest.raises(ValueError, match="below 1"):
        DisorderSpec(disorder_fraction=0.7, max_disorder_ms=10, late_fraction=0.3, late_by_ms=10)
    with pytest.raises(ValueError, match="max_disorder_ms"):
        DisorderSpec(disorder_fraction=0.1, max_disorder_ms=0)


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_domain_events_are_seeded(name):
    domain = DOMAINS[name]
    a, b, c = domain.generator(3), domain.generator(3), domain.generator(4)
    first = [a.next(1_000 * i) for i in range(200)]
    assert first == [b.next(1_000 * i) for i in range(200)]
    assert first != [c.next(1_000 * i) for i in range(200)]
    assert all(record[domain.key_field] == key for key, record in first)
