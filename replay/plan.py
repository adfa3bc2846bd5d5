"""Planning a Kafka replay: resolve the points once, at launch, into a manifest."""

from __future__ import annotations

import time

from kappa.replay.kafka_log import KafkaTopicLog
from kappa.replay.manifest import DecodingSpec, Manifest, code_version
from kappa.replay.points import parse_from, parse_to
from kappa.replay.resolve import resolve_ranges
from kappa.schemas.jsonform import format_instant

__all__ = ["plan_kafka_replay", "summarize"]


def plan_kafka_replay(
    bootstrap: str,
    topic: str,
    start: str,
    stop: str,
    decoding: DecodingSpec = DecodingSpec(),
    event_time: str = "field:timestamp",
    max_out_of_orderness_ms: int = 0,
    on_missing: str = "error",
    isolation_level: str = "read_committed",
    pipeline: dict | None = None,
    now_ms: int | None = None,
    timeout_s: float = 10.0,
) -> Manifest:
    """The manifest for reading ``topic`` from ``start`` to ``stop`` (replay-point text)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    from_point, to_point = parse_from(start, now_ms), parse_to(stop, now_ms)
    with KafkaTopicLog(bootstrap, topic, isolation_level, timeout_s) as log:
        ranges = resolve_ranges(log, from_point, to_point, on_missing)
    return Manifest(
        bootstrap=bootstrap,
        topic=topic,
        from_point=start,
        to_point=stop,
        ranges=tuple(ranges),
        decoding=_with_schema_ids(decoding),
        event_time=event_time,
        max_out_of_orderness_ms=max_out_of_orderness_ms,
        isolation_level=isolation_level,
        pipeline=pipeline or {},
        created_at=format_instant(now_ms),
        code_version=code_version(),
    )


def _with_schema_ids(decoding: DecodingSpec) -> DecodingSpec:
    if decoding.format != "confluent" or not decoding.registry or not decoding.subject:
        return decoding
    from dataclasses import replace

    from kappa.schemas import open_registry

    ids = open_registry(decoding.registry).subject_ids(decoding.subject)
    return replace(decoding, schema_ids=tuple(ids))


def summarize(manifest: Manifest, timeout_s: float = 10.0) -> list[str]:
    """Per partition: the range, its record count and the broker-time span of its ends."""
    lines = [f"{'partition':>9}  {'start':>10}  {'stop':>10}  {'records':>9}  first .. last record time"]
    with KafkaTopicLog(manifest.bootstrap, manifest.topic, manifest.isolation_level, timeout_s) as log:
        for r in manifest.ranges:
            span = ""
            if r.stop is None:
                count, stop = "live", "never"
            else:
                count, stop = str(r.size), str(r.stop)
                if r.size:
                    stamps = log.first_timestamps(r.partition, [r.start, r.stop - 1])
                    first, last = stamps[r.start], stamps[r.stop - 1]
                    if first is not None and last is not None:
                        span = f"{format_instant(first)} .. {format_instant(last)}"
            lines.append(f"{r.partition:>9}  {r.start:>10}  {stop:>10}  {count:>9}  {span}")
    total = "unbounded (live)" if manifest.live else f"{manifest.total} records"
    lines.append(f"{manifest.topic} at {manifest.bootstrap}: {len(manifest.ranges)} partitions, {total}")
    return lines


