"""Helpers for tests that write a known log to the real broker and read it back through Beam."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from replay.kafka_source import ReadFromKafkaReplay
from runners.produce import DOMAINS
from schemas import make_codec

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_COLLECTED: dict[str, list] = {}
_ids = itertools.count()


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


class _Collect(beam.DoFn):
    def __init__(self, run_id: str):
        self.run_id = run_id

    def process(self, element):
        _COLLECTED[self.run_id].append(element)


def run_reads(manifests: dict[str, object], **settings) -> dict[str, tuple[list, list]]:
    """Read several manifests in one DirectRunner pipeline: {name: (records, dead_letters)}."""
    ids = {}
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        for name, manifest in manifests.items():
            run_id = f"{name}-{next(_ids)}-{uuid.uuid4().hex[:6]}"
            ids[name] = run_id
            _COLLECTED[run_id + "/records"] = []
            _COLLECTED[run_id + "/dead"] = []
            out = pipeline | f"Read {name}" >> ReadFromKafkaReplay(manifest, **settings)
            out["records"] | f"Collect {name}" >> beam.ParDo(_Collect(run_id + "/records"))
            out["dead_letters"] | f"Collect dead {name}" >> beam.ParDo(_Collect(run_id + "/dead"))
    return {name: (_COLLECTED.pop(i + "/records"), _COLLECTED.pop(i + "/dead")) for name, i in ids.items()}


def positions(records) -> list[tuple[int, int]]:
    return sorted((r.provenance.partition, r.provenance.position) for r in records)


def ms_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)
