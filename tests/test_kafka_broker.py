"""The local broker is a real Kafka: the behaviours replay depends on work as Kafka
documents them (offsets-for-times, high watermarks, group commits, transactions
with read_committed)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

pytestmark = pytest.mark.kafka


def _create(admin, topic: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def _produce(bootstrap: str, topic: str, records: list[tuple[int, int, bytes]]) -> None:
    """records: (partition, timestamp_ms, value)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for partition, ts, value in records:
        producer.produce(topic, value=value, partition=partition, timestamp=ts)
    assert producer.flush(30) == 0


_open_consumers: list[Consumer] = []


@pytest.fixture(autouse=True)
def _close_consumers():
    yield
    while _open_consumers:
        _open_consumers.pop().close()


def _consumer(bootstrap: str, **extra) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kappa-test-reader",
                         "enable.auto.commit": False, **extra})
    _open_consumers.append(consumer)
    return consumer


def _read_all(consumer: Consumer, topic: str, partition: int, start: int, stop: int) -> list:
    consumer.assign([TopicPartition(topic, partition, start)])
    out, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            assert msg.error() is None, msg.error()
            out.append(msg)
        if out and out[-1].offset() >= stop - 1:
            break
    return out


def _hwm(consumer: Consumer, topic: str, partition: int) -> int:
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]


def _settled_hwm(consumer: Consumer, topic: str, partition: int, expected: int) -> int:
    """The end offset once it reaches ``expected`` (or after 30 s): the transaction
    coordinator writes commit and abort markers asynchronously."""
    deadline = time.monotonic() + 30
    while (hwm := _hwm(consumer, topic, partition)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return hwm


def test_produced_records_are_consumed_in_offset_order_with_their_timestamps(kafka_bootstrap, kafka_admin, topic_name):
    _create(kafka_admin, topic_name)
    records = [(0, 1_700_000_000_000 + i, f"v{i}".encode()) for i in range(50)]
    _produce(kafka_bootstrap, topic_name, records)
    got = _read_all(_consumer(kafka_bootstrap), topic_name, 0, 0, 50)
    assert [m.value() for m in got] == [v for _, _, v in records]
    assert [m.offset() for m in got] == list(range(50))
    assert [m.timestamp()[1] for m in got] == [ts for _, ts, _ in records]


def test_high_watermark_is_one_past_the_last_offset(kafka_bootstrap, kafka_admin, topic_name):
    _create(kafka_admin, topic_name, partitions=2)
    _produce(kafka_bootstrap, topic_name, [(0, 1000, b"a")] * 7 + [(1, 1000, b"b")] * 3)
    consumer = _consumer(kafka_bootstrap)
    assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 7)
    assert consumer.get_watermark_offsets(TopicPartition(topic_name, 1), timeout=10) == (0, 3)


def test_offsets_for_times_gives_first_offset_at_or_after_the_instant(kafka_bootstrap, kafka_admin, topic_name):
    _create(kafka_admin, topic_name)
    # Out-of-order CreateTimes: the answer is the earliest offset whose timestamp >= t,
    # not the offset of the smallest timestamp >= t.
    stamps = [1000, 3000, 2000, 5000, 4000, 6000]
    _produce(kafka_bootstrap, topic_name, [(0, ts, b"x") for ts in stamps])
    consumer = _consumer(kafka_bootstrap)

    def offset_for(t: int) -> int:
        return consumer.offsets_for_times([TopicPartition(topic_name, 0, t)], timeout=10)[0].offset

    for t in [0, 1000, 1001, 2500, 3000, 4500, 6000]:
        expected = next(i for i, ts in enumerate(stamps) if ts >= t)
        assert offset_for(t) == expected, t
    assert offset_for(6001) == -1  # past the end: Kafka answers "no such offset"


def test_committed_group_offsets_are_where_a_new_group_member_resumes(kafka_bootstrap, kafka_admin, topic_name):
    _create(kafka_admin, topic_name)
    _produce(kafka_bootstrap, topic_name, [(0, 1000 + i, f"{i}".encode()) for i in range(20)])
    group = f"g-{topic_name}"
    first = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
    first.commit(offsets=[TopicPartition(topic_name, 0, 12)], asynchronous=False)
    first.close()

    observer = _consumer(kafka_bootstrap, **{"group.id": group})
    assert observer.committed([TopicPartition(topic_name, 0)], timeout=10)[0].offset == 12
    observer.close()

    resumed = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False,
                        "auto.offset.reset": "earliest"})
    resumed.subscribe([topic_name])
    got, deadline = [], time.monotonic() + 30
    while len(got) < 8 and time.monotonic() < deadline:
        got += [m for m in resumed.consume(100, timeout=0.5) if m.error() is None]
    resumed.close()
    assert [m.offset() for m in got] == list(range(12, 20))


def test_read_committed_hides_aborted_and_open_transactions(kafka_bootstrap, kafka_admin, topic_name):
    _create(kafka_admin, topic_name)
    _produce(kafka_bootstrap, topic_name, [(0, 1000, b"plain-0"), (0, 1001, b"plain-1")])
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic_name}"})
    tx.init_transactions(30)

    tx.begin_transaction()
    tx.produce(topic_name, b"committed", partition=0, timestamp=1002)
    tx.commit_transaction(30)
    tx.begin_transaction()
    tx.produce(topic_name, b"aborted", partition=0, timestamp=1003)
    tx.flush(30)  # on the log before the abort (abort_transaction purges unsent records)
    tx.abort_transaction(30)
    tx.begin_transaction()
    tx_topic = topic_name
    tx.produce(tx_topic, b"open", partition=0, timestamp=1004)
    tx.flush(30)

    committed = _consumer(kafka_bootstrap, **{"isolation.level": "read_committed"})
    uncommitted = _consumer(kafka_bootstrap, **{"isolation.level": "read_uncommitted"})
    # Offsets: plain-0, plain-1, committed, (commit marker), aborted, (abort marker), open.
    assert _settled_hwm(uncommitted, tx_topic, 0, 7) == 7
    assert _settled_hwm(committed, tx_topic, 0, 6) == 6  # the last stable offset stops at the open transaction

    assert [m.value() for m in _read_all(uncommitted, tx_topic, 0, 0, 7)] == [
        b"plain-0", b"plain-1", b"committed", b"aborted", b"open"]
    visible = _read_all(committed, tx_topic, 0, 0, 3)
    assert [m.value() for m in visible] == [b"plain-0", b"plain-1", b"committed"]

    tx.commit_transaction(30)
    assert _settled_hwm(committed, tx_topic, 0, 8) == 8
    values = [m.value() for m in _read_all(_consumer(kafka_bootstrap, **{"isolation.level": "read_committed"}),
                                           tx_topic, 0, 0, 7)]
    assert values == [b"plain-0", b"plain-1", b"committed", b"open"]
