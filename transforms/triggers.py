"""When panes fire: trigger policies, accumulation modes, and their spellings.

* ``watermark`` (default): an ON_TIME pane when the watermark passes the window's end;
  optional EARLY panes every ``--early-firing`` of processing time while data arrives
  before that; LATE panes for data within the allowed lateness, per element
  (``--late-firing element``) or every N late elements (``--late-firing count:N``).
* ``count:N``: a pane whenever N new elements have arrived (Beam's Repeatedly(AfterCount)).
* ``processing-time:D``: a pane D after the first element of each pane
  (Beam's Repeatedly(AfterProcessingTime)).

Whatever the policy, a window's last pane fires when the window closes (the watermark
passes end + allowed lateness), marked ``is_last``: every window ends with exactly one
final pane, so final values can be compared between runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kappa.transforms.durations import format_duration_ms, parse_duration_ms

__all__ = ["ACCUMULATION_MODES", "TriggerPolicy", "parse_late_firing", "parse_trigger"]

ACCUMULATION_MODES = ("accumulating", "discarding")


@dataclass(frozen=True)
class TriggerPolicy:
    kind: str = "watermark"  #: watermark | count | processing_time
    early_every_ms: int | None = None  #: watermark: EARLY panes this often (processing time)
    late_every: int = 1  #: watermark: a LATE pane every this many late elements
    count: int | None = None  #: count: a pane per this many elements
    delay_ms: int | None = None  #: processing_time: a pane this long after a pane's first element

    def __post_init__(self):
        if self.kind not in ("watermark", "count", "processing_time"):
            raise ValueError(f"unknown trigger kind {self.kind!r}")
        if self.early_every_ms is not None and self.early_every_ms <= 0:
            raise ValueError("early firings need a period longer than 0")
        if self.late_every < 1:
            raise ValueError("late firings need a count of at least 1")
        if self.kind == "count" and (self.count is None or self.count < 1):
            raise ValueError("a count trigger needs a count of at least 1")
        if self.kind == "processing_time" and (self.delay_ms is None or self.delay_ms <= 0):
            raise ValueError("a processing-time trigger needs a delay longer than 0")

    def __str__(self):
        if self.kind == "count":
            return f"count:{self.count}"
        if self.kind == "processing_time":
            return f"processing-time:{format_duration_ms(self.delay_ms)}"
        early = f", early every {format_duration_ms(self.early_every_ms)}" if self.early_every_ms else ""
        late = "per element" if self.late_every == 1 else f"every {self.late_every}"
        return f"watermark{early}, late {late}"


def parse_trigger(text: str, early_firing: str | None = None, late_firing: str | None = None) -> TriggerPolicy:
    value = text.strip()
    if value == "watermark":
        early = parse_duration_ms(early_firing) if early_firing else None
        return TriggerPolicy("watermark", early_every_ms=early, late_every=parse_late_firing(late_firing or "element"))
    if early_firing or late_firing:
        raise ValueError("--early-firing and --late-firing go with --trigger watermark")
    if value.startswith("count:") and value[6:].isdigit():
        return TriggerPolicy("count", count=int(value[6:]))
    if value.startswith("processing-time:"):
        return TriggerPolicy("processing_time", delay_ms=parse_duration_ms(value[16:]))
    raise ValueError(f"{text!r} is not a trigger (write watermark, count:<n> or processing-time:<duration>)")


def parse_late_firing(text: str) -> int:
    value = text.strip()
    if value == "element":
        return 1
    if value.startswith("count:") and value[6:].isdigit() and int(value[6:]) >= 1:
        return int(value[6:])
    raise ValueError(f"{text!r} is not a late firing (write element or count:<n>)")
