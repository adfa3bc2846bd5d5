"""Where a record's event time comes from: a payload field, or the Kafka record
timestamp (CreateTime or LogAppendTime), chosen per pipeline or by ``--event-time``.

Spellings: ``field:timestamp`` (a dotted path such as ``field:meta.created``),
``create_time``, ``log_append_time`` (Kafka), ``publish_time`` and
``attribute:<name>`` (Pub/Sub; the attribute holds epoch milliseconds or an
ISO-8601 instant, as Beam's ``timestamp_attribute``). Extraction returns epoch milliseconds or
raises :class:`InvalidEventTime`, which sources route to dead letters as
``invalid_record``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from kappa.schemas.jsonform import parse_instant

__all__ = ["BROKER_TIMESTAMP_TYPES", "DEFAULT_MAX_AHEAD_MS", "EventTimeSpec", "FutureEventTime", "InvalidEventTime"]

#: confluent-kafka's timestamp type constants, by name.
BROKER_TIMESTAMP_TYPES = {1: "create_time", 2: "log_append_time"}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class InvalidEventTime(ValueError):
    reason = "invalid_record"


class FutureEventTime(InvalidEventTime):
    """An event time further ahead of the broker's timestamp than the bound allows (e.g.
    microseconds where milliseconds are expected): a dead letter, the watermark untouched."""

    reason = "future_event_time"


#: How far an event time may be ahead of its record's broker timestamp (Kafka record time,
#: Pub/Sub publish time) by default: a day covers producers' clock skew and buffering.
DEFAULT_MAX_AHEAD_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class EventTimeSpec:
    source: str  #: "field", "attribute", "create_time", "log_append_time" or "publish_time"
    path: tuple[str, ...] = ()  #: the field path, or (attribute name,)

    @classmethod
    def parse(cls, text: str) -> "EventTimeSpec":
        value = text.strip()
        if value in ("create_time", "log_append_time", "publish_time"):
            return cls(value)
        if value.startswith("field:") and value[6:] and all(value[6:].split(".")):
            return cls("field", tuple(value[6:].split(".")))
        if value.startswith("attribute:") and value[10:]:
            return cls("attribute", (value[10:],))
        raise ValueError(f"{text!r} is not an event-time source (write field:<name>, create_time, "
                         "log_append_time, publish_time or attribute:<name>)")

    def __str__(self) -> str:
        if self.source in ("field", "attribute"):
            return f"{self.source}:{'.'.join(self.path)}"
        return self.source

    @property
    def uses_broker_time(self) -> bool:
        return self.source not in ("field", "attribute")

    def extract(self, value: dict, broker_ms: int | None, broker_type: str | None,
                attributes: dict | None = None) -> int:
        """The event time of one record, in epoch ms."""
        if self.source == "attribute":
            raw = (attributes or {}).get(self.path[0])
            if raw is None:
                raise InvalidEventTime(f"the event-time attribute {self.path[0]!r} is missing")
            return _to_ms(int(raw) if raw.isdigit() else raw, self.path[0])
        if self.source == "publish_time":
            if broker_ms is None:
                raise InvalidEventTime("the message has no publish time")
            return broker_ms
        if self.source != "field":
            if broker_ms is None or broker_ms < 0:
                raise InvalidEventTime("the record has no broker timestamp")
            if broker_type is not None and broker_type != self.source:
                raise InvalidEventTime(f"the record's timestamp is {broker_type}, the pipeline reads {self.source}")
            return broker_ms
        node = value
        for name in self.path:
            if not isinstance(node, dict) or name not in node or node[name] is None:
                raise InvalidEventTime(f"the event-time field {'.'.join(self.path)!r} is missing")
            node = node[name]
        return _to_ms(node, ".".join(self.path))


def _to_ms(raw, name: str) -> int:
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raise InvalidEventTime(f"event-time field {name!r} has no time zone")
        return (raw - _EPOCH) // _MS  # exact integer arithmetic, any time zone
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return _to_ms(parse_instant(raw, name), name)
        except ValueError as err:
            raise InvalidEventTime(f"event-time field {name!r}: {err}") from None
    raise InvalidEventTime(f"event-time field {name!r} holds a {type(raw).__name__}, not a time")
