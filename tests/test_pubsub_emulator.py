"""The Pub/Sub emulator fixture is the real emulator: publish, pull, and the seek
operations replay relies on (to a snapshot, to a time)."""

from __future__ import annotations

import time
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients

pytestmark = pytest.mark.pubsub


@pytest.fixture
def clients(pubsub_host):
    return emulator_clients(pubsub_host)


@pytest.fixture
def topic_and_subscription(clients):
    publisher, subscriber = clients
    name = f"kappa-{uuid.uuid4().hex[:10]}"
    topic = publisher.topic_path(DEFAULT_PROJECT, name)
    subscription = subscriber.subscription_path(DEFAULT_PROJECT, name)
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic, "retain_acked_messages": True})
    return topic, subscription


def _publish(publisher, topic, values, **attributes):
    for value in values:
        publisher.publish(topic, value, **attributes).result(timeout=30)


def _pull_all(subscriber, subscription, expected: int) -> list:
    got, deadline = [], time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=subscription,
                                   ack_ids=[m.ack_id for m in response.received_messages])
            got += [m.message for m in response.received_messages]
    return got


def test_published_messages_are_pulled_with_their_attributes(clients, topic_and_subscription):
    publisher, subscriber = clients
    topic, subscription = topic_and_subscription
    _publish(publisher, topic, [b"one", b"two", b"three"], event_time="2026-11-20T09:00:00Z", id="x")
    messages = _pull_all(subscriber, subscription, 3)
    assert sorted(m.data for m in messages) == [b"one", b"three", b"two"]
    assert all(m.attributes["event_time"] == "2026-11-20T09:00:00Z" for m in messages)


def test_seek_to_a_snapshot_redelivers_what_came_after_it(clients, topic_and_subscription):
    publisher, subscriber = clients
    topic, subscription = topic_and_subscription
    _publish(publisher, topic, [b"before"])
    assert [m.data for m in _pull_all(subscriber, subscription, 1)] == [b"before"]
    snapshot = subscriber.snapshot_path(DEFAULT_PROJECT, f"snap-{uuid.uuid4().hex[:8]}")
    subscriber.create_snapshot(name=snapshot, subscription=subscription)
    _publish(publisher, topic, [b"after-1", b"after-2"])
    assert len(_pull_all(subscriber, subscription, 2)) == 2

    subscriber.seek(request={"subscription": subscription, "snapshot": snapshot})
    replayed = _pull_all(subscriber, subscription, 2)
    assert sorted(m.data for m in replayed) == [b"after-1", b"after-2"]


def test_seek_to_a_time_redelivers_acked_messages_published_since(clients, topic_and_subscription):
    publisher, subscriber = clients
    topic, subscription = topic_and_subscription
    _publish(publisher, topic, [b"old"])
    time.sleep(1.1)
    cut = Timestamp()
    cut.GetCurrentTime()
    time.sleep(1.1)
    _publish(publisher, topic, [b"new-1", b"new-2"])
    assert len(_pull_all(subscriber, subscription, 3)) == 3

    subscriber.seek(request={"subscription": subscription, "time": cut})
    replayed = _pull_all(subscriber, subscription, 2)
    assert sorted(m.data for m in replayed) == [b"new-1", b"new-2"]
