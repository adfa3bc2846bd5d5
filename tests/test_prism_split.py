"""The prism kappa runs keeps one bundle per key at a time when it splits a slow bundle of
a stateful stage, timers included (``runners/local/prism.patch``).

Beam's prism v2.77.0 as published frees the key a split bundle is still running, so a
second bundle runs it on stale state and one's updates are lost (3 of 4 runs of this
pipeline on the published binary; ``bench/prism_state_repro.py --compare``). The test
runs the reproduction's counter, whose bundles are made slow on purpose, on the prism
``kappa local install`` builds: every key must count all of its elements, twice over.
The second test runs the reproduction's live case, where the slow bundles carry timers
(every run of it lost updates on the prism patched for the first case only, 4 of 4)."""

from __future__ import annotations

from bench.prism_state_repro import count_per_key, count_per_key_with_timers, expected_counts
from kappa.runners.local.tools import install_prism

EVENTS = 6_000


def test_a_split_stateful_bundle_never_loses_a_keys_state_updates_on_kappas_prism():
    """Invariant: a stateful counter's largest count per key equals the key's number of
    elements, however prism splits the stage's slow bundles."""
    prism = str(install_prism(quiet=True))
    for _ in range(2):
        assert count_per_key(prism, EVENTS) == expected_counts(EVENTS)


def test_a_slow_bundle_with_timers_never_loses_a_keys_state_updates_on_kappas_prism():
    """Invariant: on a live stream whose keys keep event-time timers, with slow timer
    callbacks, a stateful counter's largest count per key equals the key's number of
    elements (prism cut a bundle carrying timers at the wrong element)."""
    prism = str(install_prism(quiet=True))
    counted, expected = count_per_key_with_timers(prism, seconds=20)
    assert counted == expected
