"""Pub/Sub redeliveries: an id counts as seen only once the bundle that emitted it is
committed, so a bundle the runner did not commit loses nothing when it is retried.

The rules are pure (``replay/redelivery.py``) and tested with an injected clock; the
reader's use of them runs against the real emulator. No local runner retries a bundle
that its worker finished, so the emulator test drives the live reader's bundles itself,
as a runner does: a bundle pulls until its checkpoint, and the runner calls the
finalization callbacks once it has committed the bundle's output (or never, when it has
not)."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import replace

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker

from kappa.replay.decoding import SourceWatermark, offset_tracker
from kappa.replay.manifest import DecodingSpec
from kappa.replay.pubsub_source import PubSubReadSettings, _PullLiveFn
from kappa.replay.redelivery import DUPLICATE, NEW, UNDECIDED, Redeliveries
from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
from kappa.schemas import make_codec
from tests.kafka_helpers import payment_at

T0 = 1_795_000_000_000


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# -- the rules --------------------------------------------------------------------------------------

def test_an_id_is_seen_only_once_its_bundle_is_committed():
    book = Redeliveries(settle_s=60, clock=_Clock())
    first = book.begin()
    assert first.classify("a") == NEW
    assert first.classify("a") == DUPLICATE, "a copy in the same bundle: it commits or fails with the first"
    second = book.begin()
    assert second.classify("a") == UNDECIDED, "the first bundle's fate is not known yet: hand the copy back"
    first.committed()
    assert book.begin().classify("a") == DUPLICATE


def test_a_bundle_never_committed_is_taken_as_failed_after_the_settle_time():
    clock = _Clock()
    book = Redeliveries(settle_s=60, clock=clock)
    book.begin().classify("a")  # emitted by a bundle the runner never committed
    clock.now = 59
    assert book.begin().classify("a") == UNDECIDED
    clock.now = 61
    retry = book.begin()
    assert retry.classify("a") == NEW, "its redelivery is emitted again, not lost"
    retry.committed()
    assert book.begin().classify("a") == DUPLICATE


def test_seen_ids_are_bounded_oldest_first():
    book = Redeliveries(limit=2, clock=_Clock())
    for record_id in "abc":
        bundle = book.begin()
        bundle.classify(record_id)
        bundle.committed()
    assert [book.begin().classify(i) for i in "abc"] == [NEW, DUPLICATE, DUPLICATE]


# -- the live reader against the emulator -----------------------------------------------------------

class _Finalizer:
    """The bundle-finalization callbacks a runner calls once it has committed the bundle."""

    def __init__(self):
        self.callbacks = []

    def register(self, callback):
        self.callbacks.append(callback)

    def commit(self):
        for callback in self.callbacks:
            callback()


def _bundle(fn: _PullLiveFn, subscription: str) -> tuple[list[str], _Finalizer]:
    """One bundle of the live reader, up to its checkpoint: (transaction ids emitted, its finalizer)."""
    tracker = RestrictionTrackerView(ThreadsafeRestrictionTracker(offset_tracker(OffsetRange(0, sys.maxsize))))
    finalizer = _Finalizer()
    out = list(fn._pull(subscription, tracker, SourceWatermark(0, None), finalizer))
    return sorted(o.value.value["transaction_id"] for o in out if not isinstance(o, TaggedOutput)), finalizer


def _redeliver_now(subscriber, subscription: str) -> None:
    """Every message not acked comes again at once (as after its ack deadline lapsed)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    subscriber.seek(request={"subscription": subscription, "time": Timestamp(seconds=0)}, timeout=30)


@pytest.mark.pubsub
def test_a_bundle_the_runner_did_not_commit_is_read_again_not_dropped_as_seen(pubsub_host):
    """The old reader marked ids seen as it emitted them: the retried bundle's redeliveries
    were dropped as duplicates and acked, so those messages were lost."""
    publisher, subscriber = emulator_clients(pubsub_host)
    name = f"kappa-redelivery-{uuid.uuid4().hex[:8]}"
    topic = publisher.create_topic(request={"name": publisher.topic_path(DEFAULT_PROJECT, name)}).name
    subscription = subscriber.create_subscription(request={
        "name": subscriber.subscription_path(DEFAULT_PROJECT, name), "topic": topic, "ack_deadline_seconds": 60}).name
    codec = make_codec("json", "payment")
    sent = [payment_at(T0 + n * 1000, n) for n in range(5)]
    for record in sent:
        publisher.publish(topic, codec.encode(record), id=record["transaction_id"]).result(30)
    ids = sorted(r["transaction_id"] for r in sent)
    settings = PubSubReadSettings(subscription, DecodingSpec("json", "payment"), "field:timestamp", "id",
                                  emulator_host=pubsub_host, pull_timeout_s=0.5, checkpoint_every_s=0.5,
                                  redelivery_settle_s=1.0)
    fn = _PullLiveFn(settings)
    fn.setup()

    emitted, _ = _bundle(fn, subscription)  # the runner never commits this bundle
    assert emitted == ids
    time.sleep(1.1)  # past the settle time: that bundle failed
    _redeliver_now(subscriber, subscription)
    retried, finalizer = _bundle(fn, subscription)
    assert retried == ids, "the retried bundle must emit the redelivered messages again"
    finalizer.commit()  # committed: seen, and acked

    _redeliver_now(subscriber, subscription)  # a redelivery of committed messages is still a duplicate
    again, finalizer = _bundle(fn, subscription)
    assert again == []
    finalizer.commit()


def test_a_live_run_acking_when_durable_asks_for_no_bundle_finalization():
    """A pipeline's live run acks once its results are durable (replay/durable.py), so its
    reader must not ask for bundle finalization: Flink finalizes only on checkpoints, which
    live runs do not take, and the SDK keeps every bundle awaiting finalization with its
    whole bundle processor (the Kafka reader's twin grew by about 3 GB in 90 s). A raw live
    read acks by finalization."""
    from kappa.replay.durable import CommitSpec
    from kappa.replay.pubsub_source import ReadFromPubSubReplay
    from kappa.transforms.windows import FixedWindows
    from tests.beam_helpers import asks_for_finalization

    subscription = f"projects/{DEFAULT_PROJECT}/subscriptions/s"
    settings = PubSubReadSettings(subscription, DecodingSpec("json", "payment"))
    durable = CommitSpec("run", "", "", "", FixedWindows(60_000), 0, subscription=subscription)
    assert not asks_for_finalization(ReadFromPubSubReplay(replace(settings, durable=durable)))
    assert asks_for_finalization(ReadFromPubSubReplay(settings))
