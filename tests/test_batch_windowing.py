"""The batch windowing of bounded replays (``transforms/batch.py``) against the per-key
engine it replaces there, both run through Beam on the in-process runner: the same
panes and the same too_late dead letters, for every window kind, many keys, cutoffs
and clock cutoffs on window boundaries, any allowed lateness, either accumulation."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import apache_beam as beam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kappa.schemas.records import Provenance, SourceRecord
from tests.beam_helpers import Collect, Sum, collected, new_tag
from kappa.transforms.batch import WindowInBatch
from kappa.transforms.config import WindowingConfig
from kappa.transforms.windowing import WindowPerKey
from kappa.transforms.windows import FixedWindows, SessionWindows, SlidingWindows

windows = st.one_of(st.builds(FixedWindows, st.integers(1, 50)),
                    st.builds(lambda p, k: SlidingWindows(p * k, p), st.integers(1, 20), st.integers(1, 4)),
                    st.builds(SessionWindows, st.integers(1, 40)))
times = st.integers(-100, 300)
records = st.lists(st.tuples(st.sampled_from("abcdefgh"), times, st.integers(1, 9), st.none() | times,
                             st.none() | times), max_size=60)


def _keyed(rows) -> list[tuple[str, SourceRecord]]:
    return [(key, SourceRecord({"v": value}, t, key.encode(), Provenance("test", "p", 0, i, None), cutoff,
                               None if clock is None or cutoff is None or clock <= cutoff else clock))
            for i, (key, t, value, cutoff, clock) in enumerate(rows)]


def _run(batch: bool, config: WindowingConfig, keyed) -> tuple[Counter, Counter]:
    panes, late = new_tag(), new_tag()
    value_of = lambda r: r.value["v"]  # noqa: E731
    with beam.Pipeline() as p:
        if batch:
            records = p | beam.Create([record for _, record in keyed])
            out = records | WindowInBatch(config, Sum(), value_of, lambda r: r.key.decode())
            dead = out["dead_letters"]
        else:
            out = (p | beam.Create(keyed)) | WindowPerKey(config, Sum(), value_of)
            dead = out["too_late"]
        out["panes"] | "Panes" >> beam.ParDo(Collect(panes))
        dead | "Late" >> beam.ParDo(Collect(late))
    return Counter(collected(panes)), Counter(collected(late))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows, st.integers(0, 40), st.booleans(), records)
def test_batch_windowing_gives_the_engines_panes_and_dead_letters_exactly(window, lateness, accumulating, rows):
    """Invariant: for a bounded replay, WindowInBatch and the per-key engine (WindowPerKey)
    emit the same multiset of panes (key, window, timing, index, is_last, value) and of
    too_late dead letters (provenance, window, lateness, decided_by, text)."""
    config = replace(WindowingConfig(window, lateness, accumulating=accumulating), bounded=True)
    keyed = _keyed(rows)
    assert _run(True, config, keyed) == _run(False, config, keyed)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows, st.integers(0, 40), records)
def test_partials_handed_on_mid_bundle_merge_to_the_same_panes(window, lateness, rows):
    """Invariant: a fold that hands its partial accumulators on every few slots (as a
    bundle with many keys does) ends with the same panes and dead letters."""
    from unittest import mock

    from kappa.transforms import batch

    config = replace(WindowingConfig(window, lateness), bounded=True)
    keyed = _keyed(rows)
    with mock.patch.object(batch, "_MAX_PARTIALS", 2):
        handed_on = _run(True, config, keyed)
    assert handed_on == _run(False, config, keyed)


def test_the_batch_windowing_refuses_a_live_configuration():
    import pytest

    with pytest.raises(ValueError, match="bounded replays"):
        WindowInBatch(WindowingConfig(FixedWindows(10)), Sum(), lambda r: r, lambda r: r.key)
