"""Helpers for tests that write a known log to the real broker and read it back through Beam."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from kappa.replay.kafka_source import ReadFromKafkaReplay
from kappa.runners.produce import DOMAINS
from kappa.schemas import make_codec
from tests.beam_helpers import Collect, collected, new_tag

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def create_topic(admin, topic: str, partitions: int) -> None:
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def payment_at(ms: int, n: int) -> dict:
    """A valid payment with event time ``ms`` (the rest from the demo generator)."""
    _, record = DOMAINS["payments"].generator(n).next(ms)
    return record


def write_log(bootstrap: str, topic: str, log: dict[int, list[int]], fmt: str = "avro", start_n: int = 0,
              raw: dict[tuple[int, int], bytes] | None = None) -> dict[int, list[dict]]:
    """Write ``log[partition] = [event_ms, ...]`` as payments, CreateTime = event time.

    ``raw[(partition, index)]`` replaces that record's value with the given bytes.
    Returns the payments written per partition, in offset order."""
    codec = make_codec(fmt, "payment")
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    written: dict[int, list[dict]] = {}
    n = start_n
    for partition, stamps in log.items():
        for index, ms in enumerate(stamps):
            record = payment_at(ms, n)
            n += 1
            value = (raw or {}).get((partition, index)) or codec.encode(record)
            producer.produce(topic, value=value, key=record["account_id"].encode(), partition=partition, timestamp=ms)
            written.setdefault(partition, []).append(record)
    assert producer.flush(30) == 0
    return written


def run_reads(manifests: dict[str, object], **settings) -> dict[str, tuple[list, list]]:
    """Read several manifests in one DirectRunner pipeline: {name: (records, dead_letters)}."""
    tags = {}
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        for name, manifest in manifests.items():
            tags[name] = (new_tag(), new_tag())
            out = pipeline | f"Read {name}" >> ReadFromKafkaReplay(manifest, **settings)
            out["records"] | f"Collect {name}" >> beam.ParDo(Collect(tags[name][0]))
            out["dead_letters"] | f"Collect dead {name}" >> beam.ParDo(Collect(tags[name][1]))
    return {name: (collected(records), collected(dead)) for name, (records, dead) in tags.items()}


def positions(records) -> list[tuple[int, int]]:
    return sorted((r.provenance.partition, r.provenance.position) for r in records)


def ms_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)
