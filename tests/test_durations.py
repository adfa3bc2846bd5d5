"""Durations and instants as users type them."""

import pytest

from kappa.transforms.durations import format_duration_ms, parse_duration_ms, parse_instant_ms


@pytest.mark.parametrize("text, ms", [
    ("PT30S", 30_000), ("PT1H30M", 5_400_000), ("P1D", 86_400_000), ("PT0.25S", 250), ("P1DT1S", 86_401_000),
    ("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("500ms", 500), ("0s", 0),
])
def test_durations_parse_to_milliseconds(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "P", "PT", "P1Y", "P1M", "1M", "-5s", "5", "five minutes", "1.5h", "PT1H2"])
def test_non_durations_are_refused_with_an_example(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration_ms(text)


def test_instants_parse_as_iso_now_or_ago():
    now = 1_795_000_000_000
    assert parse_instant_ms("2026-11-20T09:00:00Z", now) == 1_795_165_200_000
    assert parse_instant_ms("2026-11-20T10:00:00+01:00", now) == 1_795_165_200_000
    assert parse_instant_ms("now", now) == now
    assert parse_instant_ms("-PT6H", now) == now - 6 * 3_600_000
    assert parse_instant_ms("-90s", now) == now - 90_000
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant_ms("2026-11-20T09:00:00", now)
    with pytest.raises(ValueError, match="not an instant"):
        parse_instant_ms("yesterday", now)


def test_format_duration_round_trips_through_parse():
    for ms in [0, 1, 999, 1000, 61_000, 5_400_000, 90_061_001]:
        assert parse_duration_ms(format_duration_ms(ms)) == ms
