"""The per-partition watermark rules and event-time extraction (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappa.transforms.event_time import EventTimeSpec, InvalidEventTime
from kappa.transforms.watermark import OutOfOrdernessWatermark

steps = st.lists(st.one_of(st.tuples(st.just("event"), st.integers(-(10**12), 10**12)),
                           st.tuples(st.just("idle"), st.integers(-(10**12), 10**12))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**7), steps)
def test_watermark_is_monotone_and_equals_max_event_minus_bound_or_the_idle_clock(bound, ops):
    """After any sequence: watermark = max(max event - bound, latest idle clock - bound),
    never lower than before, and None until something was seen."""
    wm = OutOfOrdernessWatermark(bound)
    previous = None
    candidates = []
    for kind, value in ops:
        if kind == "event":
            wm.observe(value)
        else:
            wm.caught_up(value)
        candidates.append(value - bound)
        current = wm.current_ms()
        assert current == max(candidates)
        assert previous is None or current >= previous
        previous = current
    if not ops:
        assert wm.current_ms() is None


def test_watermark_state_restores_the_estimator():
    wm = OutOfOrdernessWatermark(1000)
    wm.observe(50_000)
    restored = OutOfOrdernessWatermark(1000, wm.state())
    restored.observe(40_000)
    assert restored.current_ms() == 49_000


def test_negative_bound_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        OutOfOrdernessWatermark(-1)


@pytest.mark.parametrize("raw, ms", [
    (datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc), 1_795_165_200_000),
    (1_795_165_200_123, 1_795_165_200_123),
    ("2026-11-20T10:00:00+01:00", 1_795_165_200_000),
    (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc), -1),
])
def test_event_time_from_a_payload_field(raw, ms):
    assert EventTimeSpec.parse("field:meta.at").extract({"meta": {"at": raw}}, None, None) == ms


@pytest.mark.parametrize("value, message", [
    ({}, "'meta.at' is missing"),
    ({"meta": {"at": None}}, "is missing"),
    ({"meta": {"at": "soon"}}, "not an ISO-8601 instant"),
    ({"meta": {"at": True}}, "holds a bool"),
    ({"meta": "flat"}, "is missing"),
])
def test_unusable_event_time_fields_are_invalid_records(value, message):
    with pytest.raises(InvalidEventTime, match=message) as caught:
        EventTimeSpec.parse("field:meta.at").extract(value, None, None)
    assert caught.value.reason == "invalid_record"


def test_broker_time_must_be_of_the_asked_type():
    spec = EventTimeSpec.parse("create_time")
    assert spec.extract({}, 1234, "create_time") == 1234
    with pytest.raises(InvalidEventTime, match="log_append_time"):
        spec.extract({}, 1234, "log_append_time")
    with pytest.raises(InvalidEventTime, match="no broker timestamp"):
        spec.extract({}, -1, "create_time")


@pytest.mark.parametrize("text", ["timestamp", "field:", "field:a..b", "ingest_time"])
def test_bad_event_time_sources_are_refused(text):
    with pytest.raises(ValueError, match="not an event-time source"):
        EventTimeSpec.parse(text)
