"""`kappa produce` against the real broker: what lands on the topic is what was planned."""

from __future__ import annotations

import json
import time
from datetime import timezone

import fastavro
import pytest
from confluent_kafka import Consumer, TopicPartition

from kappa.runners.cli import main
from kappa.schemas import FileSchemaRegistry, make_codec

pytestmark = pytest.mark.kafka


def _read_topic(bootstrap: str, topic: str) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kappa-test", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out, deadline = [], time.monotonic() + 30
        while len(out) < sum(ends.values()) and time.monotonic() < deadline:
            out += [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
        return out
    finally:
        consumer.close()


def test_produced_payments_are_keyed_stamped_with_event_time_and_decodable(kafka_bootstrap, topic_name, tmp_path):
    registry = tmp_path / "registry.json"
    archive = tmp_path / "payments.jsonl"
    code = main(["produce", "payments", "--topic", topic_name, "--count", "400", "--rate", "100", "--seed", "5",
                 "--start", "2026-11-20T09:00:00Z", "--no-wait", "--disorder", "0.2", "--max-disorder", "10s",
                 "--late", "0.05", "--late-by", "1m", "--bootstrap", kafka_bootstrap, "--partitions", "3",
                 "--registry", str(registry), "--archive", str(archive)])
    assert code == 0
    messages = _read_topic(kafka_bootstrap, topic_name)
    assert len(messages) == 400
    codec = make_codec("confluent", "payment", FileSchemaRegistry(registry))
    by_account_partition: dict[str, set] = {}
    for msg in messages:
        payment = codec.decode(msg.value())
        event_ms = int(payment["timestamp"].astimezone(timezone.utc).timestamp() * 1000)
        assert msg.timestamp() == (1, event_ms)  # TIMESTAMP_CREATE_TIME, the event time
        assert msg.key().decode() == payment["account_id"]
        by_account_partition.setdefault(payment["account_id"], set()).add(msg.partition())
    assert all(len(parts) == 1 for parts in by_account_partition.values())  # same key, same partition
    assert {m.partition() for m in messages} == {0, 1, 2}

    # The archive holds the same events, in arrival order; each partition's order is a
    # subsequence of it.
    archived = [json.loads(line) for line in archive.read_text().splitlines()]
    order = {p["transaction_id"]: i for i, p in enumerate(archived)}
    assert len(order) == 400
    for partition in {0, 1, 2}:
        positions = [order[codec.decode(m.value())["transaction_id"]] for m in messages if m.partition() == partition]
        assert positions == sorted(positions)


def test_same_seed_and_start_give_identical_archives(tmp_path):
    paths = [tmp_path / "a.avro", tmp_path / "b.avro", tmp_path / "c.avro"]
    for path, seed in zip(paths, [9, 9, 10]):
        assert main(["produce", "commerce", "--count", "300", "--seed", str(seed), "--start", "2026-01-01T00:00:00Z",
                     "--no-wait", "--disorder", "0.1", "--archive", str(path), "--no-kafka"]) == 0
    read = [list(fastavro.reader(open(p, "rb"))) for p in paths]
    assert len(read[0]) == 300
    assert read[0] == read[1]
    assert read[0] != read[2]


def test_paced_producer_sends_events_as_their_time_comes(kafka_bootstrap, topic_name, tmp_path):
    started = time.time()
    assert main(["produce", "turnstiles", "--topic", topic_name, "--count", "30", "--rate", "20",
                 "--bootstrap", kafka_bootstrap, "--format", "json"]) == 0
    elapsed = time.time() - started
    messages = _read_topic(kafka_bootstrap, topic_name)
    assert len(messages) == 30
    stamps = sorted(m.timestamp()[1] for m in messages)
    # Event times start at launch and span about count / rate seconds: the producer waited.
    assert stamps[0] >= started * 1000 - 1000
    assert elapsed * 1000 >= stamps[-1] - stamps[0] - 100
