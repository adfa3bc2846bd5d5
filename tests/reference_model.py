"""A deliberately plain reference model of event-time windowing, for the tests only.

It keeps the elements themselves (no accumulators, no panes, no triggers) and
recomputes every value from them, so it shares no code or structure with
``transforms.engine``. What it models: which windows each element belongs to,
which elements are too late when they arrive, and each window's final value.
"""

from __future__ import annotations

from collections import defaultdict


def fixed_windows(t: int, size: int) -> list[tuple[int, int]]:
    start = (t // size) * size  # floor division: right for negative times too
    return [(start, start + size)]


def sliding_windows(t: int, size: int, period: int) -> list[tuple[int, int]]:
    out = []
    k = t // period
    while k * period > t - size:
        out.append((k * period, k * period + size))
        k -= 1
    return out


class ReferenceModel:
    """steps: ("element", key, t, value) | ("watermark", w). Sum of values per window."""

    def __init__(self, kind: str, size: int = 0, period: int = 0, gap: int = 0, lateness: int = 0):
        self.kind, self.size, self.period, self.gap, self.lateness = kind, size, period, gap, lateness
        self.watermark = None
        self.members: dict[tuple, list[int]] = defaultdict(list)  # (key, window) -> accepted values
        self.too_late: list[tuple] = []  # (key, t, value, window)
        self.open_sessions: dict = defaultdict(list)  # key -> [[start, end, [values]]]
        self.closed_sessions: list[tuple] = []

    def closed(self, end: int) -> bool:
        return self.watermark is not None and self.watermark >= end + self.lateness

    def run(self, steps) -> "ReferenceModel":
        for step in steps:
            if step[0] == "watermark":
                self.watermark = step[1] if self.watermark is None else max(self.watermark, step[1])
                self._close_sessions()
            else:
                _, key, t, value = step
                self._element(key, t, value)
        return self

    def _element(self, key, t, value):
        if self.kind == "session":
            if self.closed(t):  # judged at the element's own time (see transforms/engine.py)
                self.too_late.append((key, t, value, (t, t + self.gap)))
                return
            for closed_key, window, _ in self.closed_sessions:
                if closed_key == key and window[0] < t + self.gap and t < window[1]:
                    self.too_late.append((key, t, value, window))  # it would have joined a closed session
                    return
            sessions = self.open_sessions[key]
            start, end, values = t, t + self.gap, [value]
            for s in [s for s in sessions if s[0] < end and start < s[1]]:
                sessions.remove(s)
                start, end, values = min(start, s[0]), max(end, s[1]), values + s[2]
            # A merged session can reach further sessions: repeat until nothing overlaps.
            merged = True
            while merged:
                merged = False
                for s in list(sessions):
                    if s[0] < end and start < s[1]:
                        sessions.remove(s)
                        start, end, values = min(start, s[0]), max(end, s[1]), values + s[2]
                        merged = True
            sessions.append([start, end, values])
            return
        windows = fixed_windows(t, self.size) if self.kind == "fixed" else sliding_windows(t, self.size, self.period)
        for window in windows:
            if self.closed(window[1]):
                self.too_late.append((key, t, value, window))
            else:
                self.members[(key, window)].append(value)

    def _close_sessions(self):
        for key, sessions in self.open_sessions.items():
            for s in list(sessions):
                if self.closed(s[1]):
                    sessions.remove(s)
                    self.closed_sessions.append((key, (s[0], s[1]), list(s[2])))

    def final_values(self) -> dict[tuple, int]:
        """(key, window) -> sum of the values that made it in (all windows, closed or not)."""
        if self.kind == "session":
            out = {(k, w): sum(v) for k, w, v in self.closed_sessions}
            for key, sessions in self.open_sessions.items():
                for s in sessions:
                    out[(key, (s[0], s[1]))] = sum(s[2])
            return out
        return {kw: sum(v) for kw, v in self.members.items()}
