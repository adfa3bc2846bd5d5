"""The event-time engine for one key: windows, panes, lateness. Pure, clock injected.

Beam has no output for data that arrives too late (its GroupByKey drops it), so
kappa runs windowing itself, in one place that decides both where an element goes
and whether it is too late; the Beam layer only feeds it elements, watermark
advances and processing-time ticks (from its timers) and emits what it returns.
Every (element, window) pair ends up in exactly one place: that window's panes,
or the too-late list.

Rules (times in ms, windows half-open ``[start, end)``, W the watermark, L the
allowed lateness):

* Too late is decided by the log, not by the key: every element carries its
  partition's watermark when it was read (``cutoff``: the greatest event time read
  before it in its partition, minus the bound; the same in a live run and a replay).
  An element is too late for a window when ``cutoff >= end + L``, reported with
  ``lateness_ms = cutoff - t``. For sessions an element is too late when
  ``cutoff >= t + L``: judged at its own time, not at its proto-session's end
  ``t + gap`` as Beam does. A session the element would join may already have closed
  in a live run (the runner closed it at ``W >= end + L > t + L``), and a live run
  cannot add to a closed session while a replay would merge the element into it; by
  this rule such an element is too late in every run. (Beam's acceptance is this rule
  with ``--allowed-lateness`` raised by the gap.)
  The runner's watermark at the key (W) can only be ahead of that when the clock
  moved it (a live partition idle at the head of the log): an element for a window
  W has already closed is too late too, and its dead letter says the clock decided.
  Otherwise it joins the window's pane.
* A bounded replay (``bounded``) is a batch: no clock, no early or count panes;
  each window fires exactly one pane, when it closes (ON_TIME, ``is_last``).
* Pane timing: EARLY if fired while ``W < end``; ON_TIME for the first pane fired at
  or after ``W >= end``; LATE after that.
* ``watermark`` trigger: ON_TIME when W reaches end; EARLY every ``early_every_ms`` of
  processing time while new data arrives before that; LATE for every ``late_every``
  late elements. ``count``: a pane per N new elements. ``processing_time``: a pane
  ``delay_ms`` after a pane's first element.
* When a window closes it fires its last pane (``is_last``), even with no new data, so
  each window ends with exactly one final pane. If W passes end and end + L at once
  (a bounded replay's final watermark), that is a single ON_TIME pane.
* Accumulating panes carry everything so far. Discarding panes carry only what is
  new since the window's previous pane, and a pane with nothing new is not fired (its
  ON_TIME moment passes silently). In both modes the last pane (``is_last``) carries
  the window's whole value, its final value: the same in every run and mode. So that
  a discarding window's deltas still add up to its final value, a window that fired
  deltas before it closes fires the rest as one more delta just before its last pane
  (both with the same timing).
* Sessions merge when they overlap. The merged session is a new window: its panes
  start at index 0 and it owes its ON_TIME pane again. A session that had fired panes
  and is merged away ends with a last pane of its own, ``merged_into`` the new
  session and without a value: it is superseded, not final, and sinks and ``verify``
  drop it (a window file is deleted). An element whose proto-session overlaps a
  session that has already closed is too late for that session (it would have joined
  it, had it come in time): otherwise a live run would split what a replay merges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from kappa.transforms.triggers import TriggerPolicy
from kappa.transforms.windows import SessionWindows, WindowSpec, merge_sessions

__all__ = ["Aggregation", "KeyEngine", "Pane", "TooLate", "EARLY", "ON_TIME", "LATE", "too_late_by_cutoffs"]

EARLY, ON_TIME, LATE = "EARLY", "ON_TIME", "LATE"


def too_late_by_cutoffs(end_ms: int, cutoff_ms: int | None, clock_cutoff_ms: int | None,
                        allowed_lateness_ms: int) -> tuple[int, bool] | None:
    """Whether a window ending at ``end_ms`` is closed to a record with these cutoffs:
    ``(the watermark that closed it, whether the clock's did)``, or None when it is open.
    The log's cutoff is asked first, so a record both close is too late by the log."""
    if cutoff_ms is not None and cutoff_ms >= end_ms + allowed_lateness_ms:
        return cutoff_ms, False
    if clock_cutoff_ms is not None and clock_cutoff_ms >= end_ms + allowed_lateness_ms:
        return clock_cutoff_ms, True
    return None


class Aggregation(Protocol):
    """A pure CombineFn: accumulators must be copyable values (they are stored)."""

    def create(self) -> Any: ...

    def add(self, acc, value) -> Any: ...

    def merge(self, accs: list) -> Any: ...

    def extract(self, acc) -> Any: ...


@dataclass(frozen=True)
class Pane:
    key: Any
    window: tuple[int, int]
    timing: str
    pane_index: int
    is_last: bool
    value: Any  #: the aggregate's extract (None on a superseded pane)
    merged_into: tuple[int, int] | None = None  #: a superseded session: the session it merged into


@dataclass(frozen=True)
class TooLate:
    key: Any
    element: Any
    event_ms: int
    window: tuple[int, int]
    watermark_ms: int
    lateness_ms: int  #: how far behind the watermark the element was: W - t
    by_clock: bool = False  #: the clock decided (a clock cutoff, or the runner's watermark), not the log
    by_runner: bool = False  #: the runner's watermark at the key decided, past the element's cutoffs


@dataclass
class _Window:
    acc: Any  #: everything the window holds
    delta: Any = None  #: discarding mode: what arrived since the last pane
    pane_index: int = 0  #: index of the next pane
    on_time_fired: bool = False
    pending: int = 0  #: elements since the last pane
    count: int = 0  #: elements in the window
    due_ms: int | None = None  #: processing time of the next EARLY / processing-time pane
    #: where its elements came from, when the caller says (live commits): partition ->
    #: (lowest offset, what came with it), merged as sessions merge
    holds: dict | None = None


@dataclass
class KeyEngine:
    key: Any
    window_spec: WindowSpec
    trigger: TriggerPolicy
    aggregation: Aggregation
    allowed_lateness_ms: int = 0
    accumulating: bool = True
    bounded: bool = False  #: a bounded replay: one pane per window, when it closes; no clock
    watermark_ms: int | None = None  #: None: nothing is known yet (minus infinity)
    windows: dict[tuple[int, int], _Window] = field(default_factory=dict)
    #: Sessions closed recently: kept until no element could overlap one without being
    #: too late by its own proto-session anyway (W >= end + gap + L).
    closed_sessions: list[tuple[int, int]] = field(default_factory=list)

    # -- inputs -----------------------------------------------------------------
    def add(self, element: Any, value: Any, event_ms: int, now_ms: int,
            cutoff_ms: int | None = None, clock_cutoff_ms: int | None = None,
            hold: tuple | None = None) -> tuple[list[Pane], list[TooLate]]:
        """One element; ``value`` is what the aggregation adds, ``cutoff_ms`` its
        partition's log watermark when it was read (None: nothing read before it),
        ``clock_cutoff_ms`` the higher watermark the clock had given it (recorded, so a
        replay repeats it; None: the clock did not matter), ``hold`` (partition, offset,
        extra) where it was read, for :meth:`holds`. Returns panes fired now and the
        windows it came too late for."""
        too_late: list[TooLate] = []
        if isinstance(self.window_spec, SessionWindows):
            proto = (event_ms, event_ms + self.window_spec.gap_ms)
            # Decided at the element's own time, not its proto-session's end (see the rules).
            late = self._late(element, event_ms, proto, cutoff_ms, clock_cutoff_ms, decide_at=event_ms)
            if late is not None:
                return [], [late]
            for closed in self.closed_sessions:
                if closed[0] < proto[1] and proto[0] < closed[1]:
                    by_clock = not self._closed_at(cutoff_ms, closed)
                    return [], [self._too_late(element, event_ms, closed, self.watermark_ms, by_clock)]
            panes, window = self._merge_into_session(proto)
            targets = [window]
        else:
            panes, targets = [], []
            for window in self.window_spec.assign(event_ms):
                late = self._late(element, event_ms, window, cutoff_ms, clock_cutoff_ms)
                if late is not None:
                    too_late.append(late)
                else:
                    targets.append(window)
        add = self.aggregation.add
        for window in targets:
            state = self.windows.get(window)
            if state is None:
                create = self.aggregation.create
                state = self.windows[window] = _Window(create(), None if self.accumulating else create())
            state.acc = add(state.acc, value)
            if not self.accumulating:
                state.delta = add(state.delta, value)
            state.pending += 1
            state.count += 1
            if hold is not None:
                state.holds = _merge_holds(state.holds, {hold[0]: hold[1:]})
            panes.extend(self._after_element(window, state, now_ms))
        return panes, too_late

    def add_folded(self, window: tuple[int, int], acc: Any, count: int, now_ms: int) -> bool:
        """``count`` elements of ``window`` at once, their values folded into ``acc`` (from
        ``create()``, in order), none of them too late by its cutoffs: exactly what adding
        them one by one with :meth:`add` gives, when that neither fires a pane nor drops
        one. It does not while the window is open before its end (``W < end``) under a
        watermark trigger in a live run: each element then only adds to the window and
        schedules its EARLY pane. Otherwise (the runner's watermark reached the window:
        ON_TIME and LATE panes count elements, or it closed the window to them; sessions;
        other triggers; a bounded replay) nothing changes and it returns False: the caller
        adds them one by one. Relies on ``merge`` of partial accumulators giving what adding
        the values one by one gives, as combiner lifting does."""
        if (self.bounded or self.trigger.kind != "watermark" or isinstance(self.window_spec, SessionWindows)
                or (self.watermark_ms is not None and self.watermark_ms >= window[1])):
            return False
        aggregation = self.aggregation
        state = self.windows.get(window)
        if state is None:
            state = self.windows[window] = _Window(acc, None if self.accumulating else aggregation.merge(
                [aggregation.create(), acc]))
        else:
            state.acc = aggregation.merge([state.acc, acc])
            if not self.accumulating:
                state.delta = aggregation.merge([state.delta, acc])
        state.pending += count
        state.count += count
        if self.trigger.early_every_ms is not None and state.due_ms is None:
            state.due_ms = now_ms + self.trigger.early_every_ms
        return True

    def advance_watermark(self, watermark_ms: int) -> list[Pane]:
        """The watermark reached ``watermark_ms`` (it never goes back)."""
        if self.watermark_ms is not None and watermark_ms <= self.watermark_ms:
            return []
        self.watermark_ms = watermark_ms
        horizon = self.window_spec.gap_ms + self.allowed_lateness_ms if isinstance(self.window_spec, SessionWindows) else 0
        if self.closed_sessions:
            self.closed_sessions = [w for w in self.closed_sessions if watermark_ms < w[1] + horizon]
        panes = []
        for window in sorted(self.windows, key=lambda w: (w[1], w[0])):
            state = self.windows[window]
            if self._closed(window):
                panes.extend(self._close(window, state))
                del self.windows[window]
                if isinstance(self.window_spec, SessionWindows) and watermark_ms < window[1] + horizon:
                    self.closed_sessions.append(window)  # (one the watermark is past already is forgotten)
            elif (watermark_ms >= window[1] and not state.on_time_fired and self.trigger.kind == "watermark"
                  and not self.bounded):
                if self.accumulating or state.pending:
                    panes.append(self._fire(window, state, is_last=False))
                else:
                    state.on_time_fired = True  # discarding, nothing new: the ON_TIME moment passes silently
        return panes

    def advance_processing_time(self, now_ms: int) -> list[Pane]:
        if self.bounded:
            return []
        # Called per element: find what is due in one pass, sort only that (by end, start).
        due = [w for w, state in self.windows.items() if state.due_ms is not None and state.due_ms <= now_ms]
        panes = []
        for window in sorted(due, key=lambda w: (w[1], w[0])):
            state = self.windows[window]
            state.due_ms = None
            if state.pending:
                panes.append(self._fire(window, state, is_last=False))
        return panes

    # -- what the Beam layer schedules ---------------------------------------------
    def holds(self) -> dict:
        """Each open window's close (end + allowed lateness) and the holds of its elements."""
        lateness = self.allowed_lateness_ms
        return {w: (w[1] + lateness, s.holds) for w, s in self.windows.items() if s.holds}

    @property
    def idle(self) -> bool:
        """Nothing open and nothing remembered: all the engine holds is its watermark, so a
        fresh engine told that watermark behaves exactly as this one from here on."""
        return not self.windows and not self.closed_sessions

    def next_watermark_deadline(self) -> int | None:
        """The smallest watermark at which something fires (an end, or a close) or a closed
        session is forgotten; always later than the current watermark."""
        deadlines = []
        if self.closed_sessions:
            horizon = self.window_spec.gap_ms + self.allowed_lateness_ms
            deadlines.append(min(end for _, end in self.closed_sessions) + horizon)
        if self.windows:
            lateness = self.allowed_lateness_ms
            if self.bounded or self.trigger.kind != "watermark":
                deadlines.append(min(end for _, end in self.windows) + lateness)
            else:
                deadlines.append(min(end if not state.on_time_fired else end + lateness
                                     for (_, end), state in self.windows.items()))
        return min(deadlines, default=None)

    # -- internals ----------------------------------------------------------------
    def _closed(self, window: tuple[int, int]) -> bool:
        return self._closed_at(self.watermark_ms, window)

    def _closed_at(self, watermark_ms: int | None, window: tuple[int, int]) -> bool:
        """Whether ``window`` is closed once the watermark is ``watermark_ms`` (None: minus infinity)."""
        return watermark_ms is not None and watermark_ms >= window[1] + self.allowed_lateness_ms

    def _late(self, element, event_ms: int, window: tuple[int, int], cutoff_ms: int | None,
              clock_cutoff_ms: int | None = None, decide_at: int | None = None) -> TooLate | None:
        """The element's dead letter if ``window`` is closed to it (judged as if it ended at
        ``decide_at``, when given): by the log (its cutoff), else by the clock: the reader's
        recorded clock watermark, or the runner's watermark at this key (which only the
        clock moves past the cutoff)."""
        judged = window if decide_at is None else (window[0], decide_at)
        by_cutoffs = too_late_by_cutoffs(judged[1], cutoff_ms, clock_cutoff_ms, self.allowed_lateness_ms)
        if by_cutoffs is not None:
            return self._too_late(element, event_ms, window, *by_cutoffs)
        if self._closed(judged):
            return TooLate(self.key, element, event_ms, window, self.watermark_ms, self.watermark_ms - event_ms,
                           True, True)
        return None

    def _too_late(self, element, event_ms: int, window: tuple[int, int], watermark_ms: int, by_clock: bool) -> TooLate:
        return TooLate(self.key, element, event_ms, window, watermark_ms, watermark_ms - event_ms, by_clock)

    def _after_element(self, window, state: _Window, now_ms: int) -> list[Pane]:
        trigger = self.trigger
        if self.bounded:
            return []  # a batch: the window's one pane fires when it closes
        on_time_passed = self.watermark_ms is not None and self.watermark_ms >= window[1]
        if trigger.kind == "count":
            return [self._fire(window, state, is_last=False)] if state.pending >= trigger.count else []
        if trigger.kind == "processing_time":
            if state.due_ms is None:
                state.due_ms = now_ms + trigger.delay_ms
            return []
        if on_time_passed:  # watermark trigger, within the allowed lateness
            # The first data of a window the watermark has already passed is its ON_TIME
            # pane, at once; after that, LATE panes every ``late_every`` elements.
            if not state.on_time_fired or state.pending >= trigger.late_every:
                return [self._fire(window, state, is_last=False)]
            return []
        if trigger.early_every_ms is not None and state.due_ms is None:
            state.due_ms = now_ms + trigger.early_every_ms
        return []

    def _timing(self, window, state: _Window) -> str:
        """The timing of the window's next pane."""
        if self.watermark_ms is None or self.watermark_ms < window[1]:
            return EARLY
        return LATE if state.on_time_fired else ON_TIME

    def _fire(self, window, state: _Window, is_last: bool, timing: str | None = None) -> Pane:
        """The window's next pane: its delta (discarding, not last) or its whole value."""
        timing = timing or self._timing(window, state)
        if timing == ON_TIME:
            state.on_time_fired = True
        delta = not self.accumulating and not is_last
        pane = Pane(self.key, window, timing, state.pane_index, is_last,
                    self.aggregation.extract(state.delta if delta else state.acc))
        state.pane_index += 1
        state.pending = 0
        state.due_ms = None
        if delta:
            state.delta = self.aggregation.create()
        return pane

    def _close(self, window, state: _Window) -> list[Pane]:
        """The window's last pane; in discarding mode after the undelivered rest, if it fired deltas."""
        timing = self._timing(window, state)
        rest = [self._fire(window, state, False, timing)] if not self.accumulating and state.pane_index and state.pending else []
        return rest + [self._fire(window, state, True, timing)]

    def _merge_into_session(self, proto: tuple[int, int]) -> tuple[list[Pane], tuple[int, int]]:
        """The session the proto-session joins, and a superseded pane for each session
        merged away after it had fired panes."""
        overlapping = [w for w in self.windows if w[0] < proto[1] and proto[0] < w[1]]
        if not overlapping:
            return [], proto
        [(_, merged)] = merge_sessions(overlapping + [proto])
        if merged in self.windows:
            return [], merged  # the element falls inside one session: nothing merges
        states = {w: self.windows.pop(w) for w in overlapping}
        superseded = [Pane(self.key, w, self._timing(w, s), s.pane_index, True, None, merged)
                      for w, s in sorted(states.items()) if s.pane_index]
        # A new window: nothing of it was shown yet, so all it holds is its first delta.
        accs = [s.acc for s in states.values()]
        window = _Window(self.aggregation.merge(accs), None if self.accumulating else self.aggregation.merge(accs))
        window.pending = window.count = sum(s.count for s in states.values())
        window.due_ms = min((s.due_ms for s in states.values() if s.due_ms is not None), default=None)
        for s in states.values():
            window.holds = _merge_holds(window.holds, s.holds)
        self.windows[merged] = window
        return superseded, merged


def _merge_holds(into: dict | None, more: dict | None) -> dict | None:
    """Per partition, the hold with the lower offset."""
    if not more:
        return into
    merged = dict(into or {})
    for partition, hold in more.items():
        if partition not in merged or hold[0] < merged[partition][0]:
            merged[partition] = hold
    return merged
