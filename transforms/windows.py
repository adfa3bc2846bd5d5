"""Window specifications: small validated value objects, times in integer ms.

Every window is half-open, ``[start, end)``. Assignment follows Beam's WindowFns
exactly (so a pipeline can use either): fixed windows start at
``t - (t - offset) mod size``; sliding windows are every window of ``size`` whose
start is ``offset`` plus a multiple of ``period`` and that contains ``t``; a
session starts as ``[t, t + gap)`` and sessions of one key merge when they overlap
(touching is not overlapping).

Spellings (``--window``): ``1m`` or ``fixed:1m``; ``sliding:10m/1m`` (size/period);
``session:30m`` (gap). Any duration of :mod:`transforms.durations`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kappa.transforms.durations import format_duration_ms, parse_duration_ms

__all__ = ["FixedWindows", "SessionWindows", "SlidingWindows", "WindowSpec", "merge_sessions", "parse_window"]


@dataclass(frozen=True)
class FixedWindows:
    size_ms: int
    offset_ms: int = 0

    def __post_init__(self):
        if self.size_ms <= 0:
            raise ValueError(f"a fixed window must be longer than 0 (got {self.size_ms} ms)")

    def assign(self, t_ms: int) -> list[tuple[int, int]]:
        start = t_ms - (t_ms - self.offset_ms) % self.size_ms
        return [(start, start + self.size_ms)]

    def to_beam(self):
        from apache_beam.transforms import window

        return window.FixedWindows(self.size_ms / 1000, self.offset_ms / 1000)

    def __str__(self):
        return f"fixed:{format_duration_ms(self.size_ms)}"


@dataclass(frozen=True)
class SlidingWindows:
    size_ms: int
    period_ms: int
    offset_ms: int = 0

    def __post_init__(self):
        if self.size_ms <= 0 or self.period_ms <= 0:
            raise ValueError("a sliding window's size and period must be longer than 0")
        if self.period_ms > self.size_ms:
            raise ValueError(f"a sliding window's period ({format_duration_ms(self.period_ms)}) must not exceed "
                             f"its size ({format_duration_ms(self.size_ms)}): events would fall between windows")

    def assign(self, t_ms: int) -> list[tuple[int, int]]:
        last_start = t_ms - (t_ms - self.offset_ms) % self.period_ms
        return [(s, s + self.size_ms) for s in range(last_start, t_ms - self.size_ms, -self.period_ms)]

    def to_beam(self):
        from apache_beam.transforms import window

        return window.SlidingWindows(self.size_ms / 1000, self.period_ms / 1000, self.offset_ms / 1000)

    def __str__(self):
        return f"sliding:{format_duration_ms(self.size_ms)}/{format_duration_ms(self.period_ms)}"


@dataclass(frozen=True)
class SessionWindows:
    gap_ms: int

    def __post_init__(self):
        if self.gap_ms <= 0:
            raise ValueError(f"a session gap must be longer than 0 (got {self.gap_ms} ms)")

    def assign(self, t_ms: int) -> list[tuple[int, int]]:
        """The proto-session of one event; :func:`merge_sessions` joins overlapping ones."""
        return [(t_ms, t_ms + self.gap_ms)]

    def to_beam(self):
        from apache_beam.transforms import window

        return window.Sessions(self.gap_ms / 1000)

    def __str__(self):
        return f"session:{format_duration_ms(self.gap_ms)}"


WindowSpec = FixedWindows | SlidingWindows | SessionWindows


def merge_sessions(windows: list[tuple[int, int]]) -> list[tuple[list[tuple[int, int]], tuple[int, int]]]:
    """Group overlapping windows: ``[(members, merged window), ...]`` sorted by start.

    Windows merge when one starts strictly before the other ends (as Beam's Sessions).
    """
    groups: list[tuple[list[tuple[int, int]], tuple[int, int]]] = []
    for w in sorted(windows):
        if groups and w[0] < groups[-1][1][1]:
            members, (start, end) = groups[-1]
            members.append(w)
            groups[-1] = (members, (start, max(end, w[1])))
        else:
            groups.append(([w], w))
    return groups


def parse_window(text: str) -> WindowSpec:
    """A window from its spelling; ValueError saying what is wrong."""
    value = text.strip()
    kind, _, rest = value.partition(":") if ":" in value else ("fixed", "", value)
    if kind == "fixed":
        return FixedWindows(parse_duration_ms(rest))
    if kind == "sliding":
        size, sep, period = rest.partition("/")
        if not sep:
            raise ValueError("a sliding window is sliding:<size>/<period>, e.g. sliding:10m/1m")
        return SlidingWindows(parse_duration_ms(size), parse_duration_ms(period))
    if kind == "session":
        return SessionWindows(parse_duration_ms(rest))
    raise ValueError(f"{text!r} is not a window (write 1m, fixed:1m, sliding:10m/1m or session:30m)")
