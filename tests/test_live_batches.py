"""How a live Kafka read fetches its batches (replay/kafka_source.py ``_fetch``): what it
asks the consumer, against a recording stand-in (the reads themselves are tested against
the broker in test_kafka_live.py)."""

from __future__ import annotations

import time

from kappa.replay.kafka_source import ReadSettings, _ReadPartitionFn


class _Consumer:
    def __init__(self, batches):
        self.batches, self.calls = list(batches), []

    def consume(self, n, timeout):
        self.calls.append(("consume", n, round(timeout, 2)))
        return self.batches.pop(0) if self.batches else []

    def poll(self, timeout):
        self.calls.append(("poll", round(timeout, 2)))
        batch = self.batches.pop(0) if self.batches else []
        return batch[0] if batch else None


def _reader(**settings):
    fn = _ReadPartitionFn(ReadSettings("localhost:1", None, **settings))
    fn._batch_due = {}
    return fn


def test_a_bounded_read_waits_for_a_full_batch():
    fn, consumer = _reader(poll_timeout_s=0.2), _Consumer([["m"] * 3])
    assert fn._fetch(consumer, 100, "t-0", live=False) == ["m"] * 3
    assert consumer.calls == [("consume", 100, 0.2)]


def test_a_live_read_with_nothing_due_waits_for_the_first_record_only_then_takes_what_has_come():
    fn, consumer = _reader(poll_timeout_s=0.2), _Consumer([["first"], ["m", "m"]])
    assert fn._fetch(consumer, 100, "t-0", live=True) == ["first", "m", "m"]
    assert consumer.calls == [("poll", 0.2), ("consume", 99, 0)]


def test_a_live_read_after_a_batch_waits_only_until_the_next_is_due():
    fn, consumer = _reader(live_batch_interval_s=0.1), _Consumer([["m"]])
    fn._batch_due["t-0"] = time.monotonic() + 0.05
    fn._batch_due["t-1"] = time.monotonic() - 1  # overdue: what has come, at once
    fn._fetch(consumer, 100, "t-0", live=True)
    fn._fetch(consumer, 100, "t-1", live=True)
    (_, n0, wait0), (_, n1, wait1) = consumer.calls
    assert n0 == n1 == 100 and 0 < wait0 <= 0.05 and wait1 == 0
