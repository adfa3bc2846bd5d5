"""One record's way from bytes to a :class:`SourceRecord`, or to a dead letter.

Every source calls this, so Kafka, Pub/Sub and archive records fail the same way:
``decode_error`` when the codec rejects the bytes, ``invalid_record`` when the
decoded record has no usable event time. ``parse`` is the hot path (sources that
read in batches call it directly and build records themselves); ``__call__`` is
the whole step for one record.
"""

from __future__ import annotations

from schemas import DecodeError
from schemas.records import DeadLetter, Provenance, SourceRecord
from transforms.event_time import EventTimeSpec, InvalidEventTime

__all__ = ["FAILURES", "RecordDecoder"]

#: What ``parse`` raises for a record that belongs in the dead letters.
FAILURES = (DecodeError, InvalidEventTime)


class RecordDecoder:
    def __init__(self, codec, event_time: EventTimeSpec):
        self._decode = codec.decode if codec is not None else None
        self._extract = event_time.extract
        self.uses_broker_type = event_time.uses_broker_time

    def parse(self, payload: bytes | None, broker_ms: int | None = None, broker_type: str | None = None,
              decoded: dict | None = None, attributes: dict | None = None) -> tuple[dict, int]:
        """(value, event_ms), or one of FAILURES. ``decoded`` skips the codec (Avro files)."""
        if decoded is None:
            if payload is None:
                raise DecodeError("the record has no value (a tombstone)")
            decoded = self._decode(payload)
        return decoded, self._extract(decoded, broker_ms, broker_type if self.uses_broker_type else None, attributes)

    @staticmethod
    def dead_letter(err: Exception, payload: bytes | None, key: bytes | None, provenance: Provenance) -> DeadLetter:
        return DeadLetter(err.reason, str(err), provenance, payload, key)

    def __call__(self, payload: bytes | None, key: bytes | None, provenance: Provenance,
                 broker_type: str | None = None, decoded: dict | None = None,
                 attributes: dict | None = None) -> SourceRecord | DeadLetter:
        try:
            value, event_ms = self.parse(payload, provenance.broker_ms, broker_type, decoded, attributes)
        except FAILURES as err:
            return self.dead_letter(err, payload, key, provenance)
        return SourceRecord(value, event_ms, key, provenance)
