"""Pub/Sub through the same interface, against the real emulator: a replay seeks a
dedicated subscription and reads exactly what was published in the window; a live
read picks up new messages; bad messages become dead letters; redeliveries and
duplicate ids are dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf.duration_pb2 import Duration

from kappa.replay.errors import ReplayError
from kappa.replay.manifest import DecodingSpec
from kappa.replay.points import AtInstant, Snapshot
from kappa.replay.pubsub_source import PubSubReadSettings, ReadFromPubSubReplay, prepare_replay
from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
from kappa.schemas import make_codec
from tests.beam_helpers import Collect, collected, new_tag
from tests.kafka_helpers import payment_at

pytestmark = pytest.mark.pubsub
T0 = 1_795_000_000_000
JSON = DecodingSpec("json", "payment")


@pytest.fixture
def channel(pubsub_host):
    """(publisher, subscriber, topic path, live subscription path) on a topic that retains messages."""
    publisher, subscriber = emulator_clients(pubsub_host)
    name = f"kappa-{uuid.uuid4().hex[:10]}"
    topic = publisher.topic_path(DEFAULT_PROJECT, name)
    publisher.create_topic(request={"name": topic, "message_retention_duration": Duration(seconds=86400)})
    live = subscriber.subscription_path(DEFAULT_PROJECT, name)
    subscriber.create_subscription(request={"name": live, "topic": topic})
    return publisher, subscriber, topic, live


def _publish(publisher, topic, n0, count, **extra):
    codec = make_codec("json", "payment")
    for n in range(n0, n0 + count):
        record = payment_at(T0 + n * 1000, n)
        publisher.publish(topic, codec.encode(record), event_time=str(T0 + n * 1000), id=record["transaction_id"],
                          **extra).result(30)


def _read(settings: PubSubReadSettings):
    records, dead = new_tag(), new_tag()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        out = p | ReadFromPubSubReplay(settings)
        out["records"] | "Keep" >> beam.ParDo(Collect(records))
        out["dead_letters"] | "KeepDead" >> beam.ParDo(Collect(dead))
    return collected(records), collected(dead)


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_replay_by_time_reads_exactly_what_was_published_in_the_window(pubsub_host, channel):
    publisher, subscriber, topic, live = channel
    _publish(publisher, topic, 0, 4)
    time.sleep(1.1)
    cut = _now_ms()
    time.sleep(1.1)
    _publish(publisher, topic, 4, 6)
    publisher.publish(topic, b"not json", event_time=str(T0)).result(30)
    time.sleep(1.1)
    stop = _now_ms()
    time.sleep(1.1)
    _publish(publisher, topic, 100, 3)  # after the stop: not part of the replay

    replay = prepare_replay(live, AtInstant(cut), pubsub_host)
    records, dead = _read(PubSubReadSettings(replay, JSON, "attribute:event_time", "id", 0, pubsub_host, stop,
                                             pull_timeout_s=1.0))
    assert sorted(r.event_ms for r in records) == [T0 + n * 1000 for n in range(4, 10)]
    assert all(r.value["timestamp"] for r in records)
    assert [(d.reason, d.payload) for d in dead] == [("decode_error", b"not json")]
    assert {r.provenance.source for r in records} == {"pubsub"}
    # The live subscription was not moved: it still holds everything, unread.
    pulled = subscriber.pull(request={"subscription": live, "max_messages": 100}, timeout=10)
    assert len(pulled.received_messages) >= 10


def test_replay_from_a_snapshot_and_duplicate_ids_are_dropped(pubsub_host, channel):
    publisher, subscriber, topic, live = channel
    snapshot = f"snap-{uuid.uuid4().hex[:8]}"
    subscriber.create_snapshot(request={"name": subscriber.snapshot_path(DEFAULT_PROJECT, snapshot), "subscription": live})
    _publish(publisher, topic, 0, 5)
    _publish(publisher, topic, 2, 2)  # the same ids again (a producer retry)
    time.sleep(1.1)
    replay = prepare_replay(live, Snapshot(snapshot), pubsub_host)
    records, dead = _read(PubSubReadSettings(replay, JSON, "field:timestamp", "id", 0, pubsub_host, _now_ms(),
                                             pull_timeout_s=1.0))
    assert sorted(r.event_ms for r in records) == [T0 + n * 1000 for n in range(5)]
    assert dead == []


def test_replay_of_a_missing_subscription_is_a_clear_error(pubsub_host):
    with pytest.raises(ReplayError, match="does not exist"):
        prepare_replay(f"projects/{DEFAULT_PROJECT}/subscriptions/nope-{uuid.uuid4().hex[:6]}", AtInstant(0), pubsub_host)


def test_live_read_picks_up_messages_published_after_it_started(pubsub_host, channel, tmp_path):
    publisher, subscriber, topic, live = channel
    out = tmp_path / "live.jsonl"
    reader = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "read", "--source", f"pubsub://{DEFAULT_PROJECT}/{live.rsplit('/', 1)[1]}",
         "--format", "json", "--from", "latest", "--to", "never", "--event-time", "attribute:event_time",
         "--id-attribute", "id", "--out", str(out)],
        stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "PUBSUB_EMULATOR_HOST": pubsub_host})
    try:
        assert "following it live" in reader.stderr.readline()
        time.sleep(3)
        _publish(publisher, topic, 0, 8)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and len(out.read_text().splitlines()) >= 8):
            time.sleep(0.3)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(line["value"]["transaction_id"] for line in lines) == sorted(
            payment_at(T0 + n * 1000, n)["transaction_id"] for n in range(8))
        # Acked once the bundles were finalized: nothing is left to redeliver.
        time.sleep(2)
        left = subscriber.pull(request={"subscription": live, "max_messages": 100}, timeout=5)
        assert len(left.received_messages) == 0
    finally:
        reader.terminate()
        reader.wait(30)


def test_a_replay_deletes_the_replay_subscription_it_made(pubsub_host, channel, tmp_path):
    """A seeked replay subscription retains messages for as long as it exists: the read that
    made it deletes it when it ends, and the live subscription stays."""
    publisher, subscriber, topic, live = channel
    _publish(publisher, topic, 0, 5)
    out = tmp_path / "replay.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "kappa.runners.cli", "read", "--source", f"pubsub://{DEFAULT_PROJECT}/{live.rsplit('/', 1)[1]}",
         "--format", "json", "--from", "earliest", "--to", "now", "--event-time", "attribute:event_time",
         "--out", str(out)],
        capture_output=True, text=True, timeout=180, env={**__import__("os").environ, "PUBSUB_EMULATOR_HOST": pubsub_host})
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(out.read_text().splitlines()) == 5
    attached = list(publisher.list_topic_subscriptions(request={"topic": topic}))
    assert attached == [live]


def test_a_bounded_replay_of_a_busy_topic_reads_exactly_up_to_its_end(pubsub_host, channel):
    """Messages keep being published while the replay runs, and some messages from before
    its end come late: it reads every message published before its end and none after.

    Pub/Sub's delivery order is best effort and a lapsed lease comes back late; the
    emulator delivers in order, so the test holds back a few of the oldest messages (leased
    for 3 s, as another delivery attempt would). The old reader took three pulls that
    brought only newer messages, milliseconds apart on a busy topic, as the end."""
    import threading

    publisher, subscriber, topic, live = channel
    codec = make_codec("json", "payment")
    before = [payment_at(T0 + n, n) for n in range(500)]
    for future in [publisher.publish(topic, codec.encode(r), id=r["transaction_id"]) for r in before]:
        future.result(60)
    time.sleep(1.1)
    stop = _now_ms()
    time.sleep(1.1)
    busy = threading.Event()

    def keep_publishing():
        n = 10_000
        while not busy.is_set():
            for future in [publisher.publish(topic, codec.encode(payment_at(T0 + k, k))) for k in range(n, n + 100)]:
                future.result(60)
            n += 100

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    try:
        time.sleep(1)  # newer messages before the replay starts, and more while it runs
        replay = prepare_replay(live, AtInstant(stop - 60_000), pubsub_host)
        held = subscriber.pull(request={"subscription": replay, "max_messages": 20}, timeout=10).received_messages
        subscriber.modify_ack_deadline(request={"subscription": replay, "ack_ids": [m.ack_id for m in held],
                                                "ack_deadline_seconds": 3})
        records, dead = _read(PubSubReadSettings(replay, JSON, "field:timestamp", "id", 0, pubsub_host, stop,
                                                 batch_size=100, pull_timeout_s=1.0))
    finally:
        busy.set()
        thread.join(60)
    assert len(held) == 20
    assert dead == []
    assert sorted(r.value["transaction_id"] for r in records) == sorted(r["transaction_id"] for r in before)
