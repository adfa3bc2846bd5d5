"""The replay reader against the real broker: exactly the planned records, however the
runner splits; timestamp points as Kafka resolves them; manifests re-read the same
records; dead letters instead of failures; clear errors for impossible points."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kappa.replay.errors import ReplayError
from kappa.replay.kafka_source import ReadFromKafkaReplay
from kappa.replay.manifest import DecodingSpec, Manifest, PartitionRange
from kappa.replay.plan import plan_kafka_replay, summarize
from kappa.schemas.jsonform import format_instant
from tests.beam_helpers import asks_for_finalization
from tests.kafka_helpers import create_topic, ms_of, positions, run_reads, write_log

pytestmark = pytest.mark.kafka

AVRO = DecodingSpec("avro", "payment")
T0 = 1_795_000_000_000

logs = st.dictionaries(
    st.integers(0, 2),
    st.lists(st.integers(0, 600_000), max_size=25).map(lambda d: [T0 + x for x in d]),
    min_size=1, max_size=3,
)


def _manifest(bootstrap, topic, spans: dict[int, tuple[int, int]]) -> Manifest:
    ranges = tuple(PartitionRange(topic, p, a, b) for p, (a, b) in sorted(spans.items()))
    return Manifest(bootstrap, topic, "test", "test", ranges, AVRO, max_out_of_orderness_ms=5_000)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=logs, split_size=st.sampled_from([None, 1, 3, 7]), data=st.data())
def test_records_read_are_exactly_the_planned_ranges_however_split(kafka_bootstrap, kafka_admin, log, split_size, data):
    """For any log and sub-ranges [a, c) with a cut b: read([a, c)) is exactly the
    offsets a..c-1 of each partition, and read([a, b)) + read([b, c)) == read([a, c)),
    whatever the initial split size."""
    topic = f"prop-{abs(hash((str(log), split_size))) % 10**12}-{data.draw(st.integers(0, 10**9))}"
    partitions = max(log) + 1
    create_topic(kafka_admin, topic, partitions)
    written = write_log(kafka_bootstrap, topic, log)
    whole, first, second = {}, {}, {}
    for p in range(partitions):
        n = len(log.get(p, []))
        a = data.draw(st.integers(0, n))
        c = data.draw(st.integers(a, n))
        b = data.draw(st.integers(a, c))
        whole[p], first[p], second[p] = (a, c), (a, b), (b, c)
    out = run_reads({name: _manifest(kafka_bootstrap, topic, spans)
                     for name, spans in [("whole", whole), ("first", first), ("second", second)]},
                    split_size=split_size)
    expected = sorted((p, o) for p, (a, c) in whole.items() for o in range(a, c))
    assert positions(out["whole"][0]) == expected
    assert sorted(positions(out["first"][0]) + positions(out["second"][0])) == expected
    assert all(dead == [] for _, dead in out.values())
    for record in out["whole"][0]:
        source = written[record.provenance.partition][record.provenance.position]
        assert record.value == source
        assert record.event_ms == ms_of(source["timestamp"]) == record.provenance.broker_ms


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stamps=st.lists(st.integers(0, 1000), min_size=1, max_size=30), t=st.integers(-10, 1010), span=st.integers(0, 500))
def test_timestamp_points_resolve_as_kafka_offsets_for_times(kafka_bootstrap, kafka_admin, stamps, t, span):
    """--from T --to T+span starts at the first offset whose CreateTime >= T and stops at the
    first >= T+span (or the end), also with out-of-order timestamps."""
    topic = f"times-{abs(hash((tuple(stamps), t, span))) % 10**12}-{uuid.uuid4().hex[:6]}"  # fresh on a reused broker
    create_topic(kafka_admin, topic, 1)
    write_log(kafka_bootstrap, topic, {0: [T0 + s for s in stamps]})
    start, stop = T0 + t, T0 + t + span
    first = next((i for i, s in enumerate(stamps) if T0 + s >= start), None)
    if first is None:
        with pytest.raises(ReplayError, match="after the end of the log"):
            plan_kafka_replay(kafka_bootstrap, topic, format_instant(start), format_instant(stop), AVRO)
        return
    manifest = plan_kafka_replay(kafka_bootstrap, topic, format_instant(start), format_instant(stop), AVRO)
    last = next((i for i, s in enumerate(stamps) if T0 + s >= stop), len(stamps))
    [r] = manifest.ranges
    assert (r.start, r.stop) == (first, max(first, last))


def test_saved_manifest_rereads_the_same_records_after_appends(kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i for i in range(20)], 1: [T0 + i for i in range(15)]})
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "now", AVRO)
    manifest.save(tmp_path / "m.json")
    before = run_reads({"m": manifest})["m"][0]
    write_log(kafka_bootstrap, topic_name, {0: [T0 + 100 + i for i in range(10)], 1: [T0 + 200]}, start_n=1000)
    again = run_reads({"m": Manifest.load(tmp_path / "m.json")})["m"][0]
    assert len(before) == 35
    assert positions(again) == positions(before)
    assert sorted(r.value["transaction_id"] for r in again) == sorted(r.value["transaction_id"] for r in before)
    lines = summarize(manifest)
    assert "35 records" in lines[-1]


def test_undecodable_and_timeless_records_go_to_dead_letters_and_the_read_goes_on(kafka_bootstrap, kafka_admin, topic_name):
    create_topic(kafka_admin, topic_name, 1)
    garbage = {(0, 3): b"\x00not avro at all", (0, 7): b"\xff" * 3}
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i for i in range(10)]}, raw=garbage)
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "now", AVRO)
    records, dead = run_reads({"m": manifest})["m"]
    assert positions(records) == [(0, o) for o in range(10) if o not in (3, 7)]
    assert sorted(d.provenance.position for d in dead) == [3, 7]
    assert {d.reason for d in dead} == {"decode_error"}
    assert {d.payload for d in dead} == set(garbage.values())
    assert all(d.provenance.stream == topic_name for d in dead)

    no_time = dataclasses.replace(manifest, event_time="field:merchant.missing")
    records, dead = run_reads({"m": no_time})["m"]
    assert records == []
    reasons = {d.provenance.position: d.reason for d in dead}
    assert reasons == {o: ("decode_error" if o in (3, 7) else "invalid_record") for o in range(10)}
    assert all("merchant.missing" in d.error for d in dead if d.reason == "invalid_record")


def test_a_batched_read_emits_the_same_records_in_batches_and_the_same_dead_letters(kafka_bootstrap, kafka_admin,
                                                                                    topic_name):
    """A batched bounded read (for the batch windowing of replays) hands on RecordBatches
    that hold exactly the records, cutoffs included, a plain read emits one by one."""
    from kappa.schemas.records import RecordBatch

    create_topic(kafka_admin, topic_name, 2)
    garbage = {(0, 5): b"\x00not avro", (1, 2): b"\xff"}
    write_log(kafka_bootstrap, topic_name, {0: [T0 + 7 * i % 50 for i in range(40)], 1: [T0 + i for i in range(30)]},
              raw=garbage)
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "now", AVRO)
    plain = run_reads({"m": manifest})["m"]
    batches, dead = run_reads({"m": manifest}, batched=True, batch_size=7)["m"]
    assert batches and all(type(b) is RecordBatch and b for b in batches)
    assert len(batches) >= 70 // 7, "a batch per fetch of at most batch_size records"
    by_offset = lambda records: sorted(records, key=lambda r: (r.provenance.partition, r.provenance.position))  # noqa: E731
    assert by_offset(r for b in batches for r in b) == by_offset(plain[0])
    assert sorted(d.provenance.position for d in dead) == sorted(d.provenance.position for d in plain[1]) == [2, 5]


def test_read_committed_replay_skips_aborted_transactions_and_finishes(kafka_bootstrap, kafka_admin, topic_name):
    from confluent_kafka import Producer

    from kappa.schemas import make_codec
    from tests.kafka_helpers import payment_at

    create_topic(kafka_admin, topic_name, 1)
    codec = make_codec("avro", "payment")
    tx = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic_name}"})
    tx.init_transactions(30)
    for n, keep in enumerate([True, False, True, False]):
        tx.begin_transaction()
        tx.produce(topic_name, codec.encode(payment_at(T0 + n, n)), partition=0, timestamp=T0 + n)
        tx.flush(30)
        tx.commit_transaction(30) if keep else tx.abort_transaction(30)
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "now", AVRO)
    records, dead = run_reads({"m": manifest})["m"]
    # Offsets: 0 data, 1 commit, 2 aborted data, 3 abort, 4 data, 5 commit, 6 aborted, 7 abort.
    assert [r.provenance.position for r in sorted(records, key=lambda r: r.provenance.position)] == [0, 4]
    assert dead == []


def test_bounded_replays_never_commit_offsets(kafka_bootstrap, kafka_admin, topic_name):
    create_topic(kafka_admin, topic_name, 1)
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i for i in range(5)]})
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "now", AVRO)
    with pytest.raises(ValueError, match="never commits"):
        ReadFromKafkaReplay(manifest, commit_group="some-group")
    assert len(run_reads({"m": manifest})["m"][0]) == 5
    probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "kappa-replay"})
    assert probe.committed([TopicPartition(topic_name, 0)], timeout=10)[0].offset < 0
    probe.close()


def test_impossible_points_are_clear_errors(kafka_bootstrap, kafka_admin, topic_name):
    create_topic(kafka_admin, topic_name, 2)
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i for i in range(10)], 1: [T0]})
    plan = lambda a, b="now", **kw: plan_kafka_replay(kafka_bootstrap, topic_name, a, b, AVRO, **kw)  # noqa: E731

    with pytest.raises(ReplayError, match="topic 'no-such-topic' does not exist"):
        plan_kafka_replay(kafka_bootstrap, "no-such-topic", "earliest", "now", AVRO)
    with pytest.raises(ReplayError, match="has no partition 7"):
        plan("offsets:7=0")
    with pytest.raises(ReplayError, match="after the end of the log"):
        plan("2099-01-01T00:00:00Z")
    with pytest.raises(ReplayError, match="has no committed offsets"):
        plan("group:nobody-here")

    # Retention: delete the first 4 records of partition 0.
    kafka_admin.delete_records([TopicPartition(topic_name, 0, 4)])[TopicPartition(topic_name, 0, 4)].result(30)
    with pytest.raises(ReplayError, match=r"offset 2 of .*\[0\] was already deleted \(the log now starts at 4\)"):
        plan("offsets:0=2")
    fallback = plan("offsets:0=2", on_missing="earliest")
    assert (fallback.ranges[0].start, fallback.ranges[0].stop) == (4, 10)
    assert [r.provenance.position for r in run_reads({"m": fallback})["m"][0]] == list(range(4, 10))


def test_unreachable_broker_is_named_after_a_bounded_wait():
    from kappa.runners.local.process import free_port

    port = free_port()
    with pytest.raises(ReplayError, match=f"cannot reach Kafka at 127.0.0.1:{port} within 2s"):
        plan_kafka_replay(f"127.0.0.1:{port}", "payment_msg", "earliest", "now", AVRO, timeout_s=2)


def test_a_live_run_committing_when_durable_asks_for_no_bundle_finalization(kafka_bootstrap, kafka_admin,
                                                                             topic_name):
    """Its commits follow durable results (replay/durable.py), so it must not ask for bundle
    finalization: Flink finalizes only on checkpoints, which live runs do not take, and the
    SDK keeps every bundle awaiting finalization with its whole bundle processor (a live
    Flink run grew by about 3 GB in 90 s). A raw live read commits by finalization."""
    from kappa.replay.durable import CommitSpec, StartPoint
    from kappa.transforms.windows import FixedWindows

    create_topic(kafka_admin, topic_name, 2)
    manifest = plan_kafka_replay(kafka_bootstrap, topic_name, "earliest", "never", AVRO)
    spec = CommitSpec("run", kafka_bootstrap, "g", topic_name, FixedWindows(60_000), 0, None,
                      {p: StartPoint(0, None) for p in (0, 1)})
    assert not asks_for_finalization(ReadFromKafkaReplay(manifest, commit_group="g", durable=spec))
    assert asks_for_finalization(ReadFromKafkaReplay(manifest, commit_group="g"))
