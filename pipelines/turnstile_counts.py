"""turnstile_counts: entries and exits summed per station over 4-hour windows, with
a 4-hour watermark bound (turnstiles report in bursts, hours late)."""

from __future__ import annotations

from kappa.pipelines.base import InvalidRecord, WindowedPipeline

__all__ = ["TurnstileCounts"]


class EntriesExits:
    def create(self):
        return 0, 0, 0

    def add(self, acc, reading):
        return acc[0] + 1, acc[1] + reading[0], acc[2] + reading[1]

    def merge(self, accs):
        return tuple(sum(a[i] for a in accs) for i in range(3))

    def extract(self, acc):
        return acc


class TurnstileCounts(WindowedPipeline):
    name = "turnstile_counts"
    input_schema = "turnstile"
    DEFAULTS = {"window": "4h", "allowed_lateness": "0s", "max_out_of_orderness": "4h"}

    def key_of(self, reading: dict) -> str:
        if not reading.get("station"):
            raise InvalidRecord("station is missing or empty")
        return reading["station"]

    def value_of(self, record):
        return record.value["entries"], record.value["exits"]

    def aggregation(self):
        return EntriesExits()

    def values(self, acc) -> dict:
        return {"readings": acc[0], "entries": acc[1], "exits": acc[2]}
