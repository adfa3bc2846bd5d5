"""The element shapes every source emits: a decoded record with its event time and
provenance, and a dead letter for whatever could not become one.

Both are plain NamedTuples (cheap to build per record, picklable for any runner).
Provenance is passed explicitly, never kept in hidden context.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

from kappa.schemas.jsonform import format_instant

__all__ = ["DeadLetter", "Provenance", "RecordBatch", "SourceRecord"]


class Provenance(NamedTuple):
    """Where a record came from.

    ``source`` is ``kafka``, ``pubsub`` or ``file``; ``stream`` the topic,
    subscription or file path; ``partition`` the Kafka partition (None otherwise);
    ``position`` the Kafka offset, the file's line (1-based) or record index, or the
    Pub/Sub message id; ``broker_ms`` the broker's timestamp (Kafka record time,
    Pub/Sub publish time), None for files.
    """

    source: str
    stream: str
    partition: int | None
    position: int | str
    broker_ms: int | None = None

    def to_json(self) -> dict:
        out = {"source": self.source, "stream": self.stream, "partition": self.partition, "position": self.position}
        out["broker_time"] = format_instant(self.broker_ms) if self.broker_ms is not None else None
        return out


class SourceRecord(NamedTuple):
    """A decoded record: ``value`` as the codec returns it, ``event_ms`` its event time,
    ``cutoff_ms`` its partition's (or stream's) watermark when it was read: the greatest
    event time read before it there minus the watermark bound, None before any. A
    function of the log alone, the same in a live run and a replay: windows that closed
    at or before it (``end + allowed lateness <= cutoff_ms``) are too late for it.

    ``clock_cutoff_ms`` is set only where the clock raised the partition's watermark past
    the log's and past the record's event time (a live partition idle at the head of the
    log): the watermark the live reader held when it read the record. The live run's
    drained manifest records these (``PartitionRange.clock_marks``), so a replay of it
    gives each record the same clock cutoff and drops the same records."""

    value: dict
    event_ms: int
    key: bytes | None
    provenance: Provenance
    cutoff_ms: int | None = None
    clock_cutoff_ms: int | None = None


class RecordBatch(list):
    """SourceRecords a bounded read emits as one element (``ReadSettings.batched``), in
    offset order, for a consumer that takes batches (a bounded replay's batch windowing):
    Beam's per-element cost is then paid once per batch instead of once per record."""

    __slots__ = ()


class DeadLetter(NamedTuple):
    """A record that could not be processed, with everything needed to look into it.

    ``reason`` is one of ``decode_error``, ``invalid_record``, ``too_late``, ...;
    ``error`` says what was wrong in words; ``payload`` is the raw bytes. For
    ``too_late``, ``event_ms`` and ``lateness_ms`` say by how much.
    """

    reason: str
    error: str
    provenance: Provenance
    payload: bytes | None
    key: bytes | None = None
    event_ms: int | None = None
    lateness_ms: int | None = None
    window: tuple[int, int] | None = None
    #: too_late: ``log`` (its partition's watermark: the same in every run) or ``clock`` (a
    #: live runner's watermark the clock moved past the log's; a replay may count the record)
    decided_by: str | None = None

    def to_json(self) -> dict:
        """The dead-letter record of shared/DESIGN.md, JSON-ready."""
        out = {
            "reason": self.reason,
            "error": self.error,
            "provenance": self.provenance.to_json(),
            "payload_base64": base64.b64encode(self.payload).decode("ascii") if self.payload is not None else None,
            "key_base64": base64.b64encode(self.key).decode("ascii") if self.key is not None else None,
        }
        if self.event_ms is not None:
            out["event_time"] = format_instant(self.event_ms)
        if self.lateness_ms is not None:
            out["lateness_ms"] = self.lateness_ms
        if self.window is not None:
            out["window_start"], out["window_end"] = (format_instant(t) for t in self.window)
        if self.decided_by is not None:
            out["decided_by"] = self.decided_by
        return out
