"""Where the windowing DoFn keeps a key's engine, and how it refuses to emit results built
on lost state. In kappa's own process (a local runner's worker) each key's engine is the
one its last finished bundle left, kept in the process; two bundles that ran one key at
once fail with LostState, sequential bundles and a retried bundle do not. A worker in
another process keeps the engine in the runner's state.

The runner is played by hand here: each bundle gets its own copy of the runner's stored
state, as a runner hands a bundle the state committed when the bundle started."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest

from kappa.pipelines import MerchantTotals
from tests.beam_helpers import HandState
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms import windowing
from kappa.transforms.windowing import KeyEngine, LostState, _Setup, _WindowPerKeyFn

T0 = 1_795_165_200_000 // 60_000 * 60_000  # a window start


class _Timer:
    def set(self, timestamp):
        pass


def _record(n: int) -> SourceRecord:
    return SourceRecord({"amount": Decimal("1.00")}, T0 + n, None, Provenance("kafka", "t", 0, n, T0 + n))


def _fn() -> _WindowPerKeyFn:
    pipeline = MerchantTotals()
    return _WindowPerKeyFn(_Setup(pipeline.config, pipeline.aggregation(), pipeline.value_of))


class _Runner:
    """The runner's committed state of one key, and bundles that each start from a copy of it."""

    def __init__(self, in_kappas_process: bool = True):
        self.fn = _fn()
        if not in_kappas_process:
            self.fn.launcher_pid = -1  # as if this DoFn had been built in another process
        self.committed = HandState()

    def bundle(self, *numbers):
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

    def kept_engine(self) -> KeyEngine:
        """The key's engine as kappa's process keeps it."""
        return pickle.loads(windowing._KEPT[(self.fn.run_id, "Acme")][1])


def _count(engine: KeyEngine) -> int:
    """How many payments the engine's window holds (its final pane's count)."""
    [pane] = engine.advance_watermark(T0 + 60_000)
    return pane.value[0]


def test_sequential_bundles_of_a_key_pass_and_the_process_keeps_its_engine():
    runner = _Runner()
    for numbers in ((1, 2), (3,), (4, 5)):
        runner.finish(*runner.bundle(*numbers))
    assert _count(runner.kept_engine()) == 5
    assert runner.committed.value is None  # the runner's state is neither read nor written


def test_a_bundle_in_kappas_process_starts_from_the_last_finished_bundle_whatever_the_runner_hands_it():
    runner = _Runner()
    runner.finish(*runner.bundle(1, 2))
    runner.committed = HandState((None, "stale state the runner might hand over"))
    runner.finish(*runner.bundle(3))
    assert _count(runner.kept_engine()) == 3


def test_two_bundles_running_one_key_at_once_fail_with_lost_state():
    runner = _Runner()
    runner.finish(*runner.bundle(1))
    first, second = runner.bundle(2), runner.bundle(3)  # both start from the state after bundle 1
    runner.finish(*first)
    with pytest.raises(LostState, match="two bundles at once"):
        runner.finish(*second)
    assert _count(runner.kept_engine()) == 2  # the failed bundle left nothing


def test_a_bundle_retried_after_a_failure_is_no_false_alarm_and_counts_once():
    runner = _Runner()
    runner.finish(*runner.bundle(1))
    runner.bundle(2)  # fails before finishing: nothing of it is kept
    runner.finish(*runner.bundle(2))  # the retry starts from the last finished state
    assert _count(runner.kept_engine()) == 2


def test_workers_in_other_processes_keep_the_engine_in_the_runners_state_unchecked():
    runner = _Runner(in_kappas_process=False)
    runner.finish(*runner.bundle(1, 2))
    assert _count(copy.deepcopy(runner.committed.value[1])) == 2
    assert (runner.fn.run_id, "Acme") not in windowing._KEPT
    first, second = runner.bundle(3), runner.bundle(4)
    runner.finish(*first)
    runner.finish(*second)  # unchecked: one process's record says nothing of keys others ran


def test_a_job_the_runner_ended_failed_names_the_lost_state_its_worker_logged(tmp_path):
    """A runner that only reports the state FAILED (prism, when a bundle fails) leaves the
    cause in the run's log; kappa's one line names it, not a later error of the teardown."""
    from kappa.runners.commands.run import RunLog, _cause

    log = tmp_path / "beam.log"
    log.write_text("ERROR apache_beam.runners.common: key 'U1': this bundle started from engine state 7.3\n"
                   "kappa.transforms.windowing.LostState: key 'U1': this bundle started from engine state 7.3 but a "
                   "bundle that finished meanwhile left 7.5 [while running 'Pipeline/Window/Engine/ParDo(_WindowPerKeyFn)']\n"
                   "RuntimeError: Consumer closed\n")
    assert _cause("", RunLog(log)).startswith("key 'U1': this bundle started from engine state 7.3 but a bundle")
    log.write_text("INFO starting\nRuntimeError: Consumer closed\n")
    assert _cause("", RunLog(log)) == "RuntimeError: Consumer closed"
    assert _cause("", RunLog(tmp_path / "missing.log")) is None


def test_a_failure_is_named_from_this_runs_lines_of_a_run_directorys_log(tmp_path):
    """A run directory used again keeps the earlier runs' log: a LostState logged by one of
    them must not be given as the cause of this run's failure."""
    import logging

    from kappa.runners.commands.run import _beam_log_to, _cause

    path = tmp_path / "beam.log"
    path.write_text("kappa.transforms.windowing.LostState: key 'U1': an earlier run's failure\n")
    log = _beam_log_to(path)
    try:
        try:
            raise RuntimeError("this run's failure")
        except RuntimeError:
            logging.getLogger("apache_beam").exception("a worker failed")  # its traceback, as a worker's
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        _beam_log_to(tmp_path / "other.log")  # detaches the handler of beam.log
    assert _cause("", log) == "RuntimeError: this run's failure"
    assert "an earlier run's failure" in path.read_text()  # kept, not truncated
