"""Per-partition watermark: the greatest event time seen minus the pipeline's
maximum out-of-orderness, never going backwards.

The estimator is pure (the clock is passed in) so its rules are tested without a
runner; the sources wrap it in Beam's WatermarkEstimator. Rules:

* before any event, the watermark is None (the partition holds everything back);
* ``observe(event_ms)`` raises the candidate to ``event_ms - bound_ms``;
* ``caught_up(now_ms)``: a live partition that has read everything up to its high
  watermark is idle; it may then advance to ``now_ms - bound_ms`` so a quiet
  partition does not stall every window. A partition still behind its high
  watermark is never idle, however slow it is.
* The watermark is monotone: a smaller candidate never lowers it.
"""

from __future__ import annotations

__all__ = ["OutOfOrdernessWatermark"]


class OutOfOrdernessWatermark:
    def __init__(self, bound_ms: int, state: tuple[int | None, int | None] | None = None):
        if bound_ms < 0:
            raise ValueError("the max out-of-orderness must not be negative")
        self.bound_ms = bound_ms
        self.max_event_ms, self.watermark_ms = state if state is not None else (None, None)

    def observe(self, event_ms: int) -> None:
        if self.max_event_ms is None or event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
            self._raise_to(event_ms - self.bound_ms)

    def caught_up(self, now_ms: int) -> None:
        self._raise_to(now_ms - self.bound_ms)

    def log_watermark_ms(self) -> int | None:
        """The watermark the log alone gives (the clock left out): what decides too late."""
        return None if self.max_event_ms is None else self.max_event_ms - self.bound_ms

    def current_ms(self) -> int | None:
        return self.watermark_ms

    def state(self) -> tuple[int | None, int | None]:
        return self.max_event_ms, self.watermark_ms

    def _raise_to(self, candidate_ms: int) -> None:
        if self.watermark_ms is None or candidate_ms > self.watermark_ms:
            self.watermark_ms = candidate_ms
