"""Window, trigger and configuration spellings; bad settings are named."""

import pytest
from apache_beam.transforms.window import WindowFn
from apache_beam.utils.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from kappa.transforms.config import ConfigError, windowing_config
from kappa.transforms.triggers import TriggerPolicy, parse_trigger
from kappa.transforms.windows import FixedWindows, SessionWindows, SlidingWindows, parse_window


@pytest.mark.parametrize("text, spec", [
    ("1m", FixedWindows(60_000)), ("fixed:4h", FixedWindows(14_400_000)),
    ("sliding:10m/1m", SlidingWindows(600_000, 60_000)), ("session:30m", SessionWindows(1_800_000)),
])
def test_windows_parse(text, spec):
    assert parse_window(text) == spec


@pytest.mark.parametrize("text, message", [
    ("0s", "longer than 0"), ("sliding:1m/10m", "must not exceed its size"), ("sliding:10m", "sliding:<size>/<period>"),
    ("tumbling:1m", "is not a window"), ("session:-5m", "is not a duration"),
])
def test_bad_windows_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([FixedWindows(60_000), FixedWindows(7), SlidingWindows(600_000, 60_000), SlidingWindows(10, 3),
                        SessionWindows(1_800_000)]), st.integers(-10**12, 10**12))
def test_window_assignment_matches_beam_window_fns(spec, t_ms):
    """Our pure assignment gives exactly the windows of the equivalent Beam WindowFn."""
    beam = spec.to_beam().assign(WindowFn.AssignContext(Timestamp(micros=t_ms * 1000)))
    assert sorted(spec.assign(t_ms)) == sorted((w.start.micros // 1000, w.end.micros // 1000) for w in beam)


def test_triggers_parse():
    assert parse_trigger("watermark", "10s", "count:5") == TriggerPolicy("watermark", early_every_ms=10_000, late_every=5)
    assert parse_trigger("count:100") == TriggerPolicy("count", count=100)
    assert parse_trigger("processing-time:30s") == TriggerPolicy("processing_time", delay_ms=30_000)
    with pytest.raises(ValueError, match="not a trigger"):
        parse_trigger("sometimes")


def test_config_merges_defaults_and_flags():
    config = windowing_config({"window": "1m", "allowed_lateness": "5m"}, {"early_firing": "10s", "window": None})
    assert config.window == FixedWindows(60_000) and config.allowed_lateness_ms == 300_000
    assert config.trigger.early_every_ms == 10_000 and config.accumulating
    assert "window fixed:1m" in config.describe()


@pytest.mark.parametrize("overrides, message", [
    ({"window": "-1m"}, "--window -1m:"),
    ({"window": "0m"}, "--window 0m: a fixed window must be longer than 0"),
    ({"allowed_lateness": "soon"}, "--allowed-lateness soon: 'soon' is not a duration"),
    ({"accumulation": "both"}, "--accumulation both: choose accumulating or discarding"),
    ({"late_firing": "sometimes"}, "--late-firing sometimes: 'sometimes' is not a late firing"),
    ({"trigger": "count:x"}, "--trigger count:x: 'count:x' is not a trigger"),
    ({"trigger": "count:5", "early_firing": "10s"}, "--early-firing: goes with --trigger watermark"),
    ({"windw": "1m"}, "--windw: not a windowing setting"),
])
def test_bad_settings_name_their_flag(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        windowing_config({"window": "1m"}, overrides)
