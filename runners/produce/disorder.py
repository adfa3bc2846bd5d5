"""The arrival plan of demo events: when each event happened and in which order it
is produced, with an exact, seeded amount of disorder.

Disorder is measured the way a watermark sees it. Call *max seen* the greatest
event time among the events produced before this one. An event is

* **in order** when its event time is at or after max seen;
* **out of order by d** when it is ``d`` ms before max seen, ``0 < d <= max_disorder_ms``;
* **late** when it is more than ``late_by_ms`` before max seen.

The plan has exactly ``round(count * fraction)`` events of each disordered kind
(never the first event, which has nothing before it). In-order events follow a
Poisson clock of ``rate`` events per second from ``start_ms``; a disordered
event is produced right after the in-order event that set max seen, so arrival
times never go backwards.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = ["Arrival", "Kind", "plan_arrivals", "DisorderSpec"]


class Kind(enum.Enum):
    IN_ORDER = "in_order"
    OUT_OF_ORDER = "out_of_order"
    LATE = "late"


@dataclass(frozen=True)
class Arrival:
    event_ms: int  #: event time
    arrival_ms: int  #: when it is produced (wall clock, if the producer paces itself)
    kind: Kind


@dataclass(frozen=True)
class DisorderSpec:
    disorder_fraction: float = 0.0
    max_disorder_ms: int = 0
    late_fraction: float = 0.0
    late_by_ms: int = 0

    def __post_init__(self):
        for name in ("disorder_fraction", "late_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.disorder_fraction + self.late_fraction >= 1.0 and (self.disorder_fraction or self.late_fraction):
            raise ValueError("disorder_fraction + late_fraction must be below 1: some events must be in order")
        if self.disorder_fraction > 0 and self.max_disorder_ms < 1:
            raise ValueError("max_disorder_ms must be at least 1 ms when disorder_fraction > 0")


def plan_arrivals(count: int, seed: int, start_ms: int, rate: float, spec: DisorderSpec) -> list[Arrival]:
    """``count`` arrivals in production order (deterministic for the arguments)."""
    if count < 0:
        raise ValueError("count must not be negative")
    if rate <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(f"arrivals:{seed}")
    n_disorder = round(count * spec.disorder_fraction)
    n_late = round(count * spec.late_fraction)
    if count and n_disorder + n_late > count - 1:
        raise ValueError(f"{n_disorder + n_late} disordered events leave no in-order event to start from")
    picked = rng.sample(range(1, count), n_disorder + n_late) if count > 1 else []
    kinds = {i: Kind.OUT_OF_ORDER for i in picked[:n_disorder]}
    kinds.update({i: Kind.LATE for i in picked[n_disorder:]})
    late_span_ms = max(spec.late_by_ms, spec.max_disorder_ms, 1000)

    mean_gap_ms = 1000.0 / rate
    exact_ms = float(start_ms)  # the Poisson clock, unrounded: rounding each gap would bias
    clock_ms = start_ms         # the rate by up to half a millisecond per event
    max_seen = None
    plan: list[Arrival] = []
    for i in range(count):
        kind = kinds.get(i, Kind.IN_ORDER)
        if kind is Kind.IN_ORDER:
            if max_seen is not None:
                exact_ms += rng.expovariate(1.0 / mean_gap_ms)
                clock_ms = start_ms + round(exact_ms - start_ms)
            max_seen = clock_ms
            plan.append(Arrival(clock_ms, clock_ms, kind))
        elif kind is Kind.OUT_OF_ORDER:
            plan.append(Arrival(max_seen - rng.randint(1, spec.max_disorder_ms), max_seen, kind))
        else:
            lag = rng.randint(spec.late_by_ms + 1, spec.late_by_ms + late_span_ms)
            plan.append(Arrival(max_seen - lag, max_seen, kind))
    return plan
