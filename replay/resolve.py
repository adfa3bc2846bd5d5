"""Resolving replay points against a log into per-partition ``[start, stop)`` ranges.

Pure logic over the small :class:`TopicLog` interface (a real Kafka topic in
:mod:`replay.kafka_log`, an in-memory log in tests). Rules, per partition:

* ``earliest`` / ``latest``: the log start offset / the high watermark at launch.
* an instant: the first offset whose record timestamp is at or after it (Kafka's
  offsets-for-times). A partition with no such record starts (or stops) at its high
  watermark; an instant past the end of *every* partition is an error for ``--from``
  on a bounded read.
* ``offsets:`` reads only the partitions listed; ``group:<id>`` where that group
  has committed (read, never moved).
* an offset below the log start (deleted by retention) is an error, unless
  ``on_missing="earliest"``, which starts at the log start instead and says so.
* ``now``: the high watermark at launch (the last stable offset under
  read_committed); ``never``: no stop (live); ``+PT1H``: the instant ``--from`` + 1 h.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from kappa.replay.errors import NoCommits, ReplayError
from kappa.replay.manifest import PartitionRange
from kappa.replay.points import (
    AfterStart, AtInstant, AtOffsets, Earliest, FromPoint, GroupPosition, Latest, Never, Now, Snapshot, ToPoint,
)

__all__ = ["ON_MISSING", "TopicLog", "check_ranges_still_there", "resolve_ranges"]

ON_MISSING = ("error", "earliest")


class TopicLog(Protocol):
    topic: str

    def partitions(self) -> list[int]:
        """The topic's partitions; ReplayError if the topic does not exist."""

    def watermarks(self, partition: int) -> tuple[int, int]:
        """(log start offset, high watermark) now."""

    def offset_for_time(self, partition: int, ms: int) -> int | None:
        """First offset with timestamp >= ms, or None if there is none."""

    def committed(self, group: str, partitions: list[int]) -> dict[int, int | None]:
        """The group's committed offsets (None where it has none)."""


def resolve_ranges(log: TopicLog, start: FromPoint, stop: ToPoint, on_missing: str = "error") -> list[PartitionRange]:
    if on_missing not in ON_MISSING:
        raise ReplayError(f"--on-missing-offsets must be one of {', '.join(ON_MISSING)}, not {on_missing!r}")
    if isinstance(start, Snapshot):
        raise ReplayError(f"--from {start} is for Pub/Sub sources; a Kafka topic starts at offsets, times or groups")
    existing = log.partitions()
    partitions = _partitions_to_read(log, start, existing)
    marks = {p: log.watermarks(p) for p in partitions}
    starts = _starts(log, start, stop, partitions, marks, on_missing)
    ranges = []
    for p in partitions:
        begin, begin_why = starts[p]
        end, end_why = _stop(log, start, stop, p, marks[p], begin)
        ranges.append(PartitionRange(log.topic, p, begin, end, begin_why, end_why))
    return ranges


def _partitions_to_read(log: TopicLog, start: FromPoint, existing: list[int]) -> list[int]:
    if isinstance(start, AtOffsets):
        unknown = sorted(set(start.as_dict()) - set(existing))
        if unknown:
            raise ReplayError(f"--from {start}: topic {log.topic!r} has no partition {unknown[0]} "
                              f"(it has {len(existing)}: 0..{len(existing) - 1})")
        return sorted(start.as_dict())
    return sorted(existing)


def _starts(log, start, stop, partitions, marks, on_missing) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    if isinstance(start, Earliest):
        return {p: (marks[p][0], "earliest: log start offset") for p in partitions}
    if isinstance(start, Latest):
        return {p: (marks[p][1], "latest: high watermark at launch") for p in partitions}
    if isinstance(start, AtInstant):
        found = {p: log.offset_for_time(p, start.ms) for p in partitions}
        for p, offset in found.items():
            if offset is None:
                out[p] = (marks[p][1], f"{start}: after the partition's last record, so its high watermark")
            else:
                out[p] = (offset, f"{start}: first offset at or after it (offsets-for-times)")
        if not isinstance(stop, Never) and all(offset is None for offset in found.values()):
            raise ReplayError(f"--from {start} is after the end of the log: no record of {log.topic!r} "
                              "is that recent (use --to never to wait for new records)")
        return out
    if isinstance(start, AtOffsets):
        for p, offset in start.as_dict().items():
            out[p] = _checked_offset(log, p, offset, marks[p], f"{start}", on_missing)
        return out
    if isinstance(start, GroupPosition):
        committed = log.committed(start.group, partitions)
        if all(committed.get(p) is None for p in partitions):
            raise NoCommits(f"--from {start}: the group has no committed offsets on {log.topic!r} "
                            "(check the group id, or start from earliest or a time)")
        for p in partitions:
            offset = committed.get(p)
            if offset is None:
                if on_missing != "earliest":
                    raise ReplayError(f"--from {start}: the group has no committed offset for partition {p} "
                                      "(--on-missing-offsets=earliest starts such partitions at the log start)")
                out[p] = (marks[p][0], f"{start}: none committed, so the log start (--on-missing-offsets=earliest)")
            else:
                out[p] = _checked_offset(log, p, offset, marks[p], f"{start} committed", on_missing)
        return out
    raise ReplayError(f"--from {start} is not a replay point for a Kafka topic")


def _checked_offset(log, partition, offset, marks, why, on_missing) -> tuple[int, str]:
    low, high = marks
    if offset < low:
        if on_missing == "earliest":
            return low, f"{why} {offset} was deleted by retention, so the log start (--on-missing-offsets=earliest)"
        raise ReplayError(
            f"offset {offset} of {log.topic}[{partition}] was already deleted (the log now starts at {low}); "
            "--on-missing-offsets=earliest starts at the log start instead")
    if offset > high:
        raise ReplayError(f"offset {offset} of {log.topic}[{partition}] is beyond its end (high watermark {high})")
    return offset, f"{why}: offset {offset}"


def _stop(log, start, stop, partition, marks, begin) -> tuple[int | None, str]:
    low, high = marks
    if isinstance(stop, Never):
        return None, "never: live, no end"
    if isinstance(stop, Now):
        return max(high, begin), "now: high watermark at launch"
    if isinstance(stop, AfterStart):
        if not isinstance(start, AtInstant):
            raise ReplayError(f"--to {stop} counts from --from, which must then be an instant or a duration ago")
        stop = AtInstant(start.ms + stop.duration_ms)
    if isinstance(stop, AtInstant):
        if isinstance(start, AtInstant) and stop.ms < start.ms:
            raise ReplayError(f"--to {stop} is before --from {start}")
        offset = log.offset_for_time(partition, stop.ms)
        if offset is None:
            return max(high, begin), f"{stop}: after the partition's last record, so its high watermark at launch"
        return max(offset, begin), f"{stop}: first offset at or after it (offsets-for-times)"
    if isinstance(stop, AtOffsets):
        offsets = stop.as_dict()
        if partition not in offsets:
            raise ReplayError(f"--to {stop} gives no stop offset for partition {partition}")
        offset = offsets[partition]
        if offset < begin:
            raise ReplayError(f"--to offset {offset} of partition {partition} is before its start offset {begin}")
        if offset > high:
            raise ReplayError(f"--to offset {offset} of {log.topic}[{partition}] is beyond its end (high watermark {high})")
        return offset, f"{stop}: offset {offset}"
    raise ReplayError(f"--to {stop} is not a stop point")


def check_ranges_still_there(log: TopicLog, ranges, on_missing: str = "error") -> list[PartitionRange]:
    """A saved manifest's ranges against the log as it is now: a range whose start retention
    has deleted since the plan is an error naming what is gone, unless ``on_missing`` is
    ``earliest``, which keeps what is left (from the log start; empty if all is gone)."""
    out = []
    for r in ranges:
        low, _ = log.watermarks(r.partition)
        if r.start >= low:
            out.append(r)
            continue
        start = low if r.stop is None else min(low, r.stop)  # what is left starts here
        gone = f"offsets [{r.start}, {start}) of {r.topic}[{r.partition}]"
        if on_missing != "earliest":
            raise ReplayError(f"{gone} were deleted since the plan (the log now starts at {low}); "
                              "--on-missing-offsets=earliest replays what is left")
        out.append(dataclasses.replace(r, start=start, start_selector=f"{r.start_selector}; {gone} deleted, "
                                       "so the log start (--on-missing-offsets=earliest)"))
    return out
