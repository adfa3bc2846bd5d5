"""The replay-point grammar of shared/DESIGN.md, parsed into small value objects.

``--from``: ``earliest`` | ``latest`` | ISO-8601 instant | a duration ago (``-PT6H``)
| ``offsets:0=1200,1=1180`` | ``group:<consumer-group>`` | ``snapshot:<name>`` (Pub/Sub).

``--to``: ``now`` | ``never`` | ISO-8601 instant | ``+PT1H`` (a duration after
``--from``) | ``offsets:...``.

Parsing needs the launch clock (``now_ms``) once, for "ago" points; everything else
is resolved against the log by :mod:`replay.resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kappa.replay.errors import ReplayError
from kappa.schemas.jsonform import format_instant
from kappa.transforms.durations import format_duration_ms, parse_duration_ms, parse_instant_ms

__all__ = [
    "AfterStart", "AtInstant", "AtOffsets", "Earliest", "FromPoint", "GroupPosition", "Latest", "Never", "Now",
    "Snapshot", "ToPoint", "parse_from", "parse_to",
]


@dataclass(frozen=True)
class Earliest:
    def __str__(self):
        return "earliest"


@dataclass(frozen=True)
class Latest:
    def __str__(self):
        return "latest"


@dataclass(frozen=True)
class AtInstant:
    ms: int

    def __str__(self):
        return format_instant(self.ms)


@dataclass(frozen=True)
class AtOffsets:
    offsets: tuple[tuple[int, int], ...]  #: (partition, offset), sorted by partition

    def as_dict(self) -> dict[int, int]:
        return dict(self.offsets)

    def __str__(self):
        return "offsets:" + ",".join(f"{p}={o}" for p, o in self.offsets)


@dataclass(frozen=True)
class GroupPosition:
    group: str

    def __str__(self):
        return f"group:{self.group}"


@dataclass(frozen=True)
class Snapshot:
    name: str

    def __str__(self):
        return f"snapshot:{self.name}"


@dataclass(frozen=True)
class Now:
    def __str__(self):
        return "now"


@dataclass(frozen=True)
class Never:
    def __str__(self):
        return "never"


@dataclass(frozen=True)
class AfterStart:
    duration_ms: int

    def __str__(self):
        return f"+{format_duration_ms(self.duration_ms)}"


FromPoint = Earliest | Latest | AtInstant | AtOffsets | GroupPosition | Snapshot
ToPoint = Now | Never | AtInstant | AfterStart | AtOffsets


def parse_from(text: str, now_ms: int) -> FromPoint:
    value = text.strip()
    if value == "earliest":
        return Earliest()
    if value == "latest":
        return Latest()
    if value.startswith("offsets:"):
        return _offsets(value, "--from")
    if value.startswith("group:"):
        if not value[6:]:
            raise ReplayError("--from group: needs a consumer group id (group:<id>)")
        return GroupPosition(value[6:])
    if value.startswith("snapshot:"):
        if not value[9:]:
            raise ReplayError("--from snapshot: needs a snapshot name (snapshot:<name>)")
        return Snapshot(value[9:])
    return AtInstant(_instant(value, now_ms, "--from",
                              "earliest, latest, an ISO-8601 instant, -PT6H, offsets:0=12,1=30, group:<id> or snapshot:<name>"))


def parse_to(text: str, now_ms: int) -> ToPoint:
    value = text.strip()
    if value == "now":
        return Now()
    if value == "never":
        return Never()
    if value.startswith("offsets:"):
        return _offsets(value, "--to")
    if value.startswith("+"):
        try:
            return AfterStart(parse_duration_ms(value[1:]))
        except ValueError as err:
            raise ReplayError(f"--to {value}: {err}") from None
    return AtInstant(_instant(value, now_ms, "--to", "now, never, an ISO-8601 instant, +PT1H or offsets:0=120,1=300"))


def _instant(value: str, now_ms: int, flag: str, choices: str) -> int:
    try:
        return parse_instant_ms(value, now_ms)
    except ValueError as err:
        if value.startswith("-") or value[:1].isdigit():
            raise ReplayError(f"{flag} {value}: {err}") from None
        raise ReplayError(f"{flag} {value!r} is not a replay point (write {choices})") from None


def _offsets(value: str, flag: str) -> AtOffsets:
    pairs = {}
    for item in value[len("offsets:"):].split(","):
        partition, sep, offset = item.partition("=")
        if not sep or not partition.strip().isdigit() or not offset.strip().isdigit():
            raise ReplayError(f"{flag} {value}: {item!r} is not partition=offset (write offsets:0=1200,1=1180)")
        if int(partition) in pairs:
            raise ReplayError(f"{flag} {value}: partition {int(partition)} is given twice")
        pairs[int(partition)] = int(offset)
    return AtOffsets(tuple(sorted(pairs.items())))
