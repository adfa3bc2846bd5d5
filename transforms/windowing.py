"""The Beam layer of the event-time engine: a stateful DoFn per key.

``WindowPerKey`` takes ``(key, SourceRecord)`` pairs and returns
``{"panes": Pane, "too_late": DeadLetter}``. All decisions are the pure
:class:`transforms.engine.KeyEngine`'s; this layer keeps one engine per key in
Beam state and turns Beam timers into its inputs:

* an event-time timer at the engine's next watermark deadline (a window end or a
  window close), set one millisecond before it (runners keep timers in whole
  milliseconds and fire one once the watermark is past it), so it fires exactly when
  the watermark reaches the deadline; the engine is then told "the watermark is at
  the deadline" (never more than the runner's watermark: decisions are conservative);
* whether an element is too late is decided by the log (its partition's watermark
  when it was read, ``SourceRecord.cutoff_ms``) or the clock's recorded watermark
  (``clock_cutoff_ms``), never by the key's own history; where the runner's watermark
  at the key drops an element past both (a runner does not wait for an element already
  behind its partition's watermark), a live run marks it in the run directory, as the
  reader marks the clock's, so the drained manifest's replay drops it too;
* processing time is read from the clock when an element arrives: early and
  processing-time panes fire on the first element after they are due. No
  processing-time timers are used: Prism and the DirectRunner's portable runner do
  not run them (Beam issue #32786), and a stream that goes quiet has nothing new
  to show early anyway; the watermark's panes still come from event-time timers.

A key's state is bounded: once its windows have closed (and, for sessions, the closed
ones it must remember have expired), the engine is stored as its watermark alone, and a
fresh engine told that watermark takes over when the key comes back (property-tested
to change no output). That watermark only guards the key's closed windows against a
record the runner's watermark, not the log, is past (the log's cutoffs decide every
other record), so it is kept for ``FORGET_AFTER_MS`` of event time: an event-time timer
then clears the key's state entirely, and a key that comes back later starts afresh,
as a key never seen before (``tests/test_bounded_state.py``).

Where a key's state lives. Where every bundle runs in kappa's own process (the SDK
worker of a local runner, LOOPBACK), the last finished bundle's engine of each key is kept
in that process, pickled (``_KEPT``), and the runner's state is neither read nor written:
the runner keeps nothing there that outlives kappa's process (local runs take no
checkpoints; a restart rebuilds open windows from the log), and a state read or write is a
blocking round trip to the runner per key and bundle, which was most of the windowing
stage's time on Flink and prism with many keys (bench/README.md, "Soak"). A worker in
another process (Dataflow, a Flink cluster, a replay's worker processes) keeps the engine
in Beam state, as before.

Lost updates are detected, not suffered: each write of a key's engine carries a fresh
token, and each bundle remembers the token it started from. When the bundle finishes,
that token must still be the one the last finished bundle left for the key; if not, two
bundles ran the key at once and one's updates are gone, so the bundle fails with
:class:`LostState` instead of emitting wrong totals (Beam's prism runner did; see README).
Only bundles that finished are kept, so a retried bundle starts from the last finished
state and is no false alarm.
"""

from __future__ import annotations

import itertools
import os
import pickle
import threading
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from kappa.replay.durable import CommitSpec, already_final, ledger
from kappa.schemas.records import DeadLetter
from kappa.transforms.config import WindowingConfig
from kappa.transforms.engine import Aggregation, KeyEngine, TooLate
from kappa.transforms.fold import FoldPerWindow, Folded, folds
from kappa.transforms.windows import SessionWindows

__all__ = ["TOO_LATE", "LostState", "WindowPerKey", "too_late_dead_letter"]

TOO_LATE = "too_late"

_TOKENS = itertools.count()
#: Where bundles run in kappa's process: (transform run id, key) -> (token, pickled stored
#: state) of the key's last finished bundle; a cleared key has no entry.
_KEPT: dict[tuple[str, object], tuple[str, bytes]] = {}
_KEPT_LOCK = threading.Lock()
#: How long an idle key's watermark is kept (event time past it) before its state is cleared.
FORGET_AFTER_MS = 10 * 60_000


class LostState(RuntimeError):
    """A key's engine state was overwritten by a bundle that ran the key at the same time."""


def _token() -> str:
    return f"{os.getpid()}.{next(_TOKENS)}"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Setup:
    config: WindowingConfig
    aggregation: Aggregation
    value_of: object  #: record -> the value the aggregation adds
    #: a live Kafka run committing when durable (replay/durable.py): what was final before
    #: it began is not emitted again, and open sessions hold their offsets
    durable: CommitSpec | None = None


def too_late_dead_letter(record, window: tuple[int, int], watermark_ms: int, by_clock: bool,
                         allowed_lateness_ms: int) -> DeadLetter:
    """The dead letter of ``record`` (a SourceRecord), too late for ``window`` at ``watermark_ms``; counted."""
    beam.metrics.Metrics.counter("kappa", "dead_letters_too_late").inc()
    whose = ("a watermark the clock moved past its partition's (a live partition idle at the head of the log)"
             if by_clock else "its partition's watermark")
    lateness_ms = watermark_ms - record.event_ms
    return DeadLetter(
        "too_late",
        f"arrived {lateness_ms} ms behind {whose}, after window [{window[0]}, {window[1]}) closed "
        f"(allowed lateness {allowed_lateness_ms} ms)",
        record.provenance, None, record.key, record.event_ms, lateness_ms, window, "clock" if by_clock else "log")


class _WindowPerKeyFn(beam.DoFn):
    ENGINE = ReadModifyWriteStateSpec("engine", PickleCoder())
    EVENT_TIMER = TimerSpec("event_time", TimeDomain.WATERMARK)

    def __init__(self, spec: _Setup, channel=None):
        super().__init__()
        self.spec = spec
        self.channel = channel  #: a live run's RunChannel: where the runner's decisions are marked
        self.run_id = os.urandom(8).hex()  # one per application: the DoFn is pickled once per pipeline
        self.launcher_pid = os.getpid()

    def setup(self):
        self._local = os.getpid() == self.launcher_pid  # every bundle runs in kappa's process
        durable = self.spec.durable
        self._holds_sessions = durable is not None and isinstance(self.spec.config.window, SessionWindows)
        self._final_through = None if durable is None else durable.final_through_ms

    def _hold(self, record):
        """Where a session's element was read, for the run's commits: (partition, offset, the
        log's greatest event time before it)."""
        where = record.provenance
        if not self._holds_sessions:
            return None
        if where.source != "kafka":  # Pub/Sub: the session's extent is what holds its messages
            return "pubsub", 0, None
        newest = None if record.cutoff_ms is None else record.cutoff_ms + self.spec.config.max_out_of_orderness_ms
        return where.partition, where.position, newest

    def start_bundle(self):
        self._bases: dict[object, str | None] = {}  #: key -> the token of the state this bundle started from
        self._live: dict[object, tuple | None] = {}  #: key -> its stored state as this bundle left it

    def finish_bundle(self):
        if not self._local:
            return
        changed = {key: None if stored is None else (stored[0], pickle.dumps(stored[1], pickle.HIGHEST_PROTOCOL))
                   for key, stored in self._live.items() if (stored and stored[0]) != self._bases[key]}
        with _KEPT_LOCK:
            for key, base in self._bases.items():
                kept = _KEPT.get((self.run_id, key))
                if (kept and kept[0]) != base:
                    raise LostState(
                        f"key {key!r}: this bundle started from engine state {base or 'none'} but a bundle that "
                        f"finished meanwhile left {kept and kept[0] or 'none'}: the runner ran the key in two bundles "
                        "at once, and results would be wrong (a known problem of Beam's prism runner on long runs; "
                        "use --runner flink or, for replays, direct)")
            for key, kept in changed.items():
                if kept is None:
                    _KEPT.pop((self.run_id, key), None)
                else:
                    _KEPT[(self.run_id, key)] = kept
        self._bases.clear()
        self._live.clear()

    def _read(self, key, state):
        """The key's stored state, ``(token, engine or idle watermark)`` or None."""
        if not self._local:
            return state.read()
        if key not in self._live:
            with _KEPT_LOCK:
                kept = _KEPT.get((self.run_id, key))
            self._bases[key] = kept and kept[0]
            self._live[key] = kept and (kept[0], pickle.loads(kept[1]))
        return self._live[key]

    def _write(self, key, state, stored) -> None:
        """Store ``(token, engine or idle watermark)``, or clear the key's state with None."""
        if not self._local:
            state.clear() if stored is None else state.write(stored)
        else:
            self._live[key] = stored

    def _engine(self, key, stored) -> KeyEngine:
        """The key's engine from its stored state (:meth:`_read`)."""
        engine = None if stored is None else stored[1]
        if isinstance(engine, KeyEngine):
            return engine
        c = self.spec.config  # none yet, or an idle key's watermark
        return KeyEngine(key, c.window, c.trigger, self.spec.aggregation, c.allowed_lateness_ms, c.accumulating,
                         c.bounded, watermark_ms=engine)

    def _save(self, key, engine: KeyEngine, state, event_timer) -> None:
        if engine.idle and engine.watermark_ms is None:  # it knows nothing a fresh engine does not
            self._write(key, state, None)
            deadline = None
        else:
            # An idle engine (every window closed, no closed session remembered) is stored as
            # its watermark alone, until the timer set here clears it (on_event_time).
            self._write(key, state, (_token(), engine.watermark_ms if engine.idle else engine))
            deadline = engine.watermark_ms + FORGET_AFTER_MS if engine.idle else engine.next_watermark_deadline()
        if self._holds_sessions:
            ledger(self.spec.durable).hold_sessions(key, engine.holds())
        if deadline is not None:
            event_timer.set(Timestamp(micros=(deadline - 1) * 1000))

    def _forget(self, key, stored, state) -> bool:
        """Clear the key's state if ``stored`` is an idle watermark: the only timer such a key
        has is the one ``_save`` set ``FORGET_AFTER_MS`` past it."""
        if stored is None or isinstance(stored[1], KeyEngine):
            return False
        self._write(key, state, None)
        beam.metrics.Metrics.counter("kappa", "idle_keys_cleared").inc()
        return True

    def process(self, element, state=beam.DoFn.StateParam(ENGINE), event_timer=beam.DoFn.TimerParam(EVENT_TIMER)):
        key, record = element
        if type(record) is Folded:
            yield from self._process_folded(key, record, state, event_timer)
            return
        engine = self._engine(key, self._read(key, state))
        now = _now_ms()
        due = engine.advance_processing_time(now)
        panes, too_late = engine.add(record, self.spec.value_of(record), record.event_ms, now, record.cutoff_ms,
                                      record.clock_cutoff_ms, self._hold(record))
        self._save(key, engine, state, event_timer)
        self._mark_runner_decisions(too_late)
        yield from self._outputs(due + panes, too_late)

    def _process_folded(self, key, folded: Folded, state, event_timer):
        """A bundle's records of one window (transforms/fold.py): at once where the engine
        allows, else one by one as :meth:`process` adds them."""
        engine = self._engine(key, self._read(key, state))
        now = _now_ms()
        panes, too_late = engine.advance_processing_time(now), []
        if not engine.add_folded(folded.window, folded.acc, len(folded.members), now):
            for record, value in folded.records():
                more, late = engine.add(record, value, record.event_ms, now, record.cutoff_ms, record.clock_cutoff_ms,
                                        self._hold(record))
                panes += more
                too_late += late
        self._save(key, engine, state, event_timer)
        self._mark_runner_decisions(too_late)
        yield from self._outputs(panes, too_late)

    @on_timer(EVENT_TIMER)
    def on_event_time(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam,
                      state=beam.DoFn.StateParam(ENGINE), event_timer=beam.DoFn.TimerParam(EVENT_TIMER)):
        stored = self._read(key, state)
        if self._forget(key, stored, state):
            return
        engine = self._engine(key, stored)
        panes = engine.advance_processing_time(_now_ms()) + engine.advance_watermark(fired.micros // 1000 + 1)
        self._save(key, engine, state, event_timer)
        yield from self._outputs(panes, [])

    def _mark_runner_decisions(self, too_late: list[TooLate]) -> None:
        """Where the runner's watermark at this key dropped a Kafka record past its cutoffs
        (the runner had moved on without waiting for it), mark it as the reader marks the
        clock's records, so the replay of the drained manifest drops it too."""
        if self.channel is None:
            return
        for late in too_late:
            where = late.element.provenance
            if late.by_runner and where.source == "kafka":
                self.channel.record_clock_marks(f"{where.stream}-{where.partition}",
                                                [(where.position, late.watermark_ms)])

    def _outputs(self, panes, too_late: list[TooLate]):
        if self._final_through is not None:
            panes, too_late = self._not_final_before(panes, too_late)
        for pane in panes:
            # A pane belongs at its window's last instant (as Beam's GroupByKey output).
            yield beam.window.TimestampedValue(pane, Timestamp(micros=pane.window[1] * 1000 - 1))
        for late in too_late:
            yield beam.pvalue.TaggedOutput(TOO_LATE, too_late_dead_letter(
                late.element, late.window, late.watermark_ms, late.by_clock, self.spec.config.allowed_lateness_ms))


    def _not_final_before(self, panes, too_late):
        """A restarted run re-reads records of windows written before it began (they lie
        past the commit point, beside records of open windows): nothing of those windows is
        emitted again, so no partial value goes out under a final id."""
        durable, final = self.spec.durable, self._final_through
        lateness = self.spec.config.allowed_lateness_ms
        kept = [p for p in panes if not already_final(p.window[1] + lateness, final)]
        late = [t for t in too_late if not already_final(durable.close_ms(t.event_ms), final)]
        skipped = len(panes) - len(kept) + len(too_late) - len(late)
        if skipped:
            beam.metrics.Metrics.counter("kappa", "already_final_skipped").inc(skipped)
        return kept, late


class WindowPerKey(beam.PTransform):
    """``(key, SourceRecord)`` -> ``{"panes": Pane, "too_late": DeadLetter}`` under a
    windowing configuration and a pure aggregation of ``value_of(record)``."""

    def __init__(self, config: WindowingConfig, aggregation: Aggregation, value_of, label: str = "", channel=None,
                 durable: CommitSpec | None = None):
        super().__init__(label or None)
        self.spec = _Setup(config, aggregation, value_of, durable)
        self.channel = channel

    def expand(self, keyed):
        fn = _WindowPerKeyFn(self.spec, self.channel)
        if folds(self.spec.config):  # combiner lifting before the stateful step (transforms/fold.py)
            keyed = keyed | "Fold" >> FoldPerWindow(self.spec.config, self.spec.aggregation, self.spec.value_of)
        outputs = keyed | "Engine" >> beam.ParDo(fn).with_outputs(TOO_LATE, main="panes")
        return {"panes": outputs.panes, "too_late": outputs[TOO_LATE]}
