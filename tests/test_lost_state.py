"""The windowing DoFn refuses to emit results built on lost state: two bundles that ran
one key at once (each from the same stored engine), or a key whose state came back
empty, fail with LostState; sequential bundles and a retried bundle do not.

The runner is played by hand here: each bundle gets its own copy of the stored state,
as a runner hands a bundle the state committed when the bundle started."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest

from kappa.pipelines import MerchantTotals
from tests.beam_helpers import HandState
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms.windowing import LostState, _Setup, _WindowPerKeyFn

T0 = 1_795_165_200_000


class _Timer:
    def set(self, timestamp):
        pass


def _record(n: int) -> SourceRecord:
    return SourceRecord({"amount": Decimal("1.00")}, T0 + n, None, Provenance("kafka", "t", 0, n, T0 + n))


def _fn() -> _WindowPerKeyFn:
    pipeline = MerchantTotals()
    return _WindowPerKeyFn(_Setup(pipeline.config, pipeline.aggregation(), pipeline.value_of))


class _Runner:
    """Committed state per key, and bundles that each start from a copy of it."""

    def __init__(self):
        self.fn = _fn()
        self.committed = HandState()

    def bundle(self, *numbers, finish: bool = True):
        worker = pickle.loads(pickle.dumps(self.fn))  # a bundle processor's own copy of the DoFn
        worker.setup()
        worker.start_bundle()
        state = HandState(copy.deepcopy(self.committed.value))
        for n in numbers:
            list(worker.process(("Acme", _record(n)), state=state, event_timer=_Timer()))
        return worker, state

    def finish(self, worker, state):
        worker.finish_bundle()
        self.committed = state


def test_sequential_bundles_of_a_key_pass():
    runner = _Runner()
    for numbers in ((1, 2), (3,), (4, 5)):
        runner.finish(*runner.bundle(*numbers))
    assert runner.committed.value[1].key == "Acme"


def test_two_bundles_running_one_key_at_once_fail_with_lost_state():
    runner = _Runner()
    runner.finish(*runner.bundle(1))
    first, second = runner.bundle(2), runner.bundle(3)  # both start from the state after bundle 1
    runner.finish(*first)
    with pytest.raises(LostState, match="two bundles at once"):
        runner.finish(*second)


def test_a_key_whose_state_comes_back_empty_fails_with_lost_state():
    runner = _Runner()
    runner.finish(*runner.bundle(1))
    runner.committed = HandState()  # the runner lost it
    with pytest.raises(LostState):
        runner.bundle(2)


def test_a_bundle_retried_after_a_failure_is_no_false_alarm():
    runner = _Runner()
    runner.finish(*runner.bundle(1))
    runner.bundle(2)  # fails before finishing: its state is never committed
    runner.finish(*runner.bundle(2))  # the retry starts from the committed state
    assert runner.committed.value is not None


def test_workers_in_other_processes_are_not_checked():
    runner = _Runner()
    runner.fn.launcher_pid = -1  # as if this DoFn had been built in another process
    runner.finish(*runner.bundle(1))
    first, second = runner.bundle(2), runner.bundle(3)
    runner.finish(*first)
    runner.finish(*second)  # unchecked: one process's record says nothing of keys others ran


def test_a_job_the_runner_ended_failed_names_the_lost_state_its_worker_logged(tmp_path):
    """A runner that only reports the state FAILED (prism, when a bundle fails) leaves the
    cause in the run's log; kappa's one line names it, not a later error of the teardown."""
    from kappa.runners.commands.run import _cause

    log = tmp_path / "beam.log"
    log.write_text("ERROR apache_beam.runners.common: key 'U1': its engine state came back empty\n"
                   "kappa.transforms.windowing.LostState: key 'U1': its engine state came back empty after 3 was "
                   "written [while running 'Pipeline/Window/Engine/ParDo(_WindowPerKeyFn)']\n"
                   "RuntimeError: Consumer closed\n")
    assert _cause("", log).startswith("key 'U1': its engine state came back empty after 3 was written")
    log.write_text("INFO starting\nRuntimeError: Consumer closed\n")
    assert _cause("", log) == "RuntimeError: Consumer closed"
    assert _cause("", tmp_path / "missing.log") is None
