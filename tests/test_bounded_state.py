"""A key's state is bounded, through the windowing DoFn itself: once its windows close
it is stored as its watermark alone, and once the runner's watermark is FORGET_AFTER_MS
past that, a timer clears it entirely. A key that returns in between still finds its
closed windows closed. Each test runs with the worker in kappa's process (the engine kept
in the process) and in another (the engine in the runner's state).

The runner is played by hand, as in test_lost_state.py: each bundle gets a copy of the
committed state; timers are fired in order once the watermark passes them."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest

from kappa.pipelines import MerchantTotals
from tests.beam_helpers import HandState
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms import windowing
from kappa.transforms.windowing import FORGET_AFTER_MS, KeyEngine, _Setup, _WindowPerKeyFn

MINUTE = 60_000
T0 = 1_795_165_200_000 // MINUTE * MINUTE  # a window start


class _Timer:
    def __init__(self):
        self.at = None

    def set(self, timestamp):
        self.at = timestamp


class _Runner:
    """One DoFn, committed state and a timer per key, and the runner's watermark."""

    def __init__(self, in_kappas_process: bool):
        pipeline = MerchantTotals()  # 1-minute windows, no allowed lateness
        self.fn = _WindowPerKeyFn(_Setup(pipeline.config, pipeline.aggregation(), pipeline.value_of))
        if not in_kappas_process:
            self.fn.launcher_pid = -1  # as if this DoFn had been built in another process
        self.state: dict[str, HandState] = {}
        self.timers: dict[str, _Timer] = {}
        self.outputs: list = []

    def _worker(self):
        worker = pickle.loads(pickle.dumps(self.fn))  # a bundle processor's own copy of the DoFn
        worker.setup()
        worker.start_bundle()
        return worker

    def _state(self, key):
        return HandState(copy.deepcopy(self.state.get(key, HandState()).value))

    def element(self, key: str, event_ms: int, cutoff_ms: int | None = None, offset: int = 0):
        worker, state, timer = self._worker(), self._state(key), self.timers.setdefault(key, _Timer())
        record = SourceRecord({"amount": Decimal("1.00")}, event_ms, None,
                              Provenance("kafka", "t", 0, offset, event_ms), cutoff_ms)
        self.outputs += worker.process((key, record), state=state, event_timer=timer)
        worker.finish_bundle()
        self.state[key] = state

    def watermark(self, watermark_ms: int):
        """The runner's watermark reaches ``watermark_ms``: every timer before it fires."""
        for key, timer in sorted(self.timers.items()):
            while timer.at is not None and timer.at.micros // 1000 < watermark_ms:
                fired, timer.at = timer.at, None
                worker, state = self._worker(), self._state(key)
                self.outputs += worker.on_event_time(key=key, fired=fired, state=state, event_timer=timer)
                worker.finish_bundle()
                self.state[key] = state

    def stored(self, key: str):
        """What is stored for ``key``, wherever the worker keeps it: (token, engine or watermark) or None."""
        kept = windowing._KEPT.get((self.fn.run_id, key))
        if self.fn.launcher_pid == -1:
            assert kept is None
            return self.state[key].value
        return kept and (kept[0], pickle.loads(kept[1]))

    def panes(self):
        return [o.value for o in self.outputs if hasattr(o, "value") and hasattr(o.value, "is_last")]

    def too_late(self):
        return [o.value for o in self.outputs if getattr(o, "tag", None) == windowing.TOO_LATE]


@pytest.fixture(params=[True, False], ids=["in kappa's process", "in another process"])
def runner(request):
    return _Runner(request.param)


def test_a_key_whose_windows_closed_keeps_its_watermark_then_nothing(runner):
    keys = [f"merchant-{i}" for i in range(50)]
    for n, key in enumerate(keys):
        runner.element(key, T0 + n)
    assert all(isinstance(runner.stored(k)[1], KeyEngine) for k in keys)
    runner.watermark(T0 + MINUTE)  # every window [T0, T0 + 1 min) closes
    assert [runner.stored(k)[1] for k in keys] == [T0 + MINUTE] * 50  # the watermark alone
    assert sorted((p.key, p.is_last, p.value[0]) for p in runner.panes()) == sorted((k, True, 1) for k in keys)
    runner.watermark(T0 + MINUTE + FORGET_AFTER_MS)
    assert [runner.stored(k) for k in keys] == [None] * 50
    assert not [slot for slot in windowing._KEPT if slot[0] == runner.fn.run_id]
    assert len(runner.panes()) == 50  # clearing emits nothing


def test_a_key_back_before_it_is_forgotten_finds_its_closed_window_closed(runner):
    """The record's cutoff says its window is open (the log alone would accept it), but the
    runner's watermark closed the window and the key's final pane went out: the key's stored
    watermark sends the record to the dead letters; no second final pane appears."""
    runner.element("Acme", T0 + 5)
    runner.watermark(T0 + MINUTE)
    runner.element("Acme", T0 + 7, cutoff_ms=T0)  # its window [T0, T0 + 1 min) is closed
    runner.watermark(T0 + 3 * MINUTE)
    finals = [p for p in runner.panes() if p.key == "Acme" and p.is_last]
    assert [(p.window, p.value[0]) for p in finals] == [((T0, T0 + MINUTE), 1)]
    [late] = runner.too_late()
    assert late.window == (T0, T0 + MINUTE) and late.reason == "too_late"


def test_a_forgotten_key_that_comes_back_starts_afresh(runner):
    runner.element("Acme", T0 + 5)
    runner.watermark(T0 + MINUTE + FORGET_AFTER_MS)
    assert runner.stored("Acme") is None
    later = T0 + FORGET_AFTER_MS + 2 * MINUTE
    runner.element("Acme", later, cutoff_ms=later - 30_000)
    assert isinstance(runner.stored("Acme")[1], KeyEngine)
    runner.watermark(later + MINUTE)
    finals = sorted((p.window[0], p.value[0]) for p in runner.panes() if p.is_last)
    assert finals == [(T0, 1), (later // MINUTE * MINUTE, 1)] and not runner.too_late()
    runner.watermark(later + MINUTE + FORGET_AFTER_MS)
    assert runner.stored("Acme") is None
