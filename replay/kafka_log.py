"""A Kafka topic as seen by the replay planner: partitions, watermarks, offsets for
times and committed group positions, through one confluent-kafka consumer that
never joins a group (it only assigns and queries)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kappa.replay.errors import ReplayError
from kappa.replay.kafka_client import ClientErrors, Unreachable, client_config, wait_for_metadata

__all__ = ["KafkaTopicLog", "commit_offsets", "consumer_config", "retrying"]

#: Group-coordinator errors a broker gives while it starts, restarts or moves a group: retried.
_COORDINATOR_MOVING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       KafkaError.COORDINATOR_NOT_AVAILABLE)


def retrying(request, timeout_s: float, failed: str):
    """``request()``, again while the broker says to retry (a group coordinator that is
    moving or still loading, as on a broker just started or restarted), for up to
    ``timeout_s``; then, or on any other error, a ReplayError: ``failed``, the broker's reason."""
    deadline, pause = time.monotonic() + timeout_s, 0.2
    while True:
        try:
            return request()
        except KafkaException as err:
            error = err.args[0]
            transient = error.retriable() or error.code() in _COORDINATOR_MOVING
            if not transient or time.monotonic() + pause > deadline:
                raise ReplayError(f"{failed}: {error.str()}") from None
        time.sleep(pause)
        pause = min(2 * pause, 2.0)


def consumer_config(bootstrap: str, group: str, isolation_level: str = "read_committed", **extra) -> dict:
    """Settings every kappa consumer shares: explicit offsets, no auto-commit, no topic creation,
    and an assigned offset that no longer exists is an error, never a silent jump to the end;
    with the user's client settings (TLS, SASL, ...) added."""
    return client_config({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "error",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "allow.auto.create.topics": False,
        "isolation.level": isolation_level,
        "log_level": 0,
        **extra,
    })


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int], timeout_s: float = 10.0,
                   metadata: dict[int, str] | None = None) -> None:
    """Commit ``offsets`` (partition -> next offset to read) to ``group``, synchronously,
    each with its ``metadata`` string if given."""
    consumer = Consumer(consumer_config(bootstrap, group, **{"socket.timeout.ms": int(timeout_s * 1000)}))
    try:
        metadata = metadata or {}
        retrying(lambda: consumer.commit(offsets=[TopicPartition(topic, p, o, metadata=metadata.get(p, ""))
                                                  for p, o in sorted(offsets.items())], asynchronous=False),
                 timeout_s, f"committing the drained offsets to group {group!r}")
    finally:
        consumer.close()


class KafkaTopicLog:
    def __init__(self, bootstrap: str, topic: str, isolation_level: str = "read_committed", timeout_s: float = 10.0):
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._errors = ClientErrors()
        self._consumer = Consumer(consumer_config(bootstrap, "kappa-planner", isolation_level, error_cb=self._errors))
        self._partitions: list[int] | None = None

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def partitions(self) -> list[int]:
        if self._partitions is None:
            try:
                metadata = wait_for_metadata(self._consumer, self._errors, self.timeout_s, self.topic)
            except Unreachable as err:
                raise ReplayError(f"cannot reach Kafka at {self.bootstrap}{err}"
                                  + ("" if err.cause else " (is the broker up? `kappa local up` starts the local one)")
                                  ) from None
            found = metadata.topics.get(self.topic)
            if found is None or found.error is not None or not found.partitions:
                raise ReplayError(f"topic {self.topic!r} does not exist on {self.bootstrap}")
            self._partitions = sorted(found.partitions)
        return self._partitions

    def watermarks(self, partition: int) -> tuple[int, int]:
        return self._call(lambda: self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=self.timeout_s, cached=False))

    def offset_for_time(self, partition: int, ms: int) -> int | None:
        [found] = self._call(lambda: self._consumer.offsets_for_times(
            [TopicPartition(self.topic, partition, ms)], timeout=self.timeout_s))
        return None if found.offset < 0 else found.offset

    def committed(self, group: str, partitions: list[int]) -> dict[int, int | None]:
        found = self.commit_metadata(group, partitions)
        return {p: found[p][0] if p in found else None for p in partitions}

    def commit_metadata(self, group: str, partitions: list[int]) -> dict[int, tuple[int, str | None]]:
        """Per partition with a commit: (its offset, the metadata it was committed with)."""
        # A separate consumer with the group's id reads its commits; it never subscribes,
        # so the group's members and positions are untouched.
        reader = Consumer(consumer_config(self.bootstrap, group))
        try:
            found = self._call(lambda: reader.committed(
                [TopicPartition(self.topic, p) for p in partitions], timeout=self.timeout_s))
        finally:
            reader.close()
        return {tp.partition: (tp.offset, tp.metadata) for tp in found if tp.offset >= 0}

    def first_timestamps(self, partition: int, offsets: list[int]) -> dict[int, int | None]:
        """Record timestamps at the given offsets (the next record at or after each)."""
        out = {}
        for offset in offsets:
            self._consumer.assign([TopicPartition(self.topic, partition, offset)])
            msg = self._consumer.poll(self.timeout_s)
            out[offset] = msg.timestamp()[1] if msg is not None and msg.error() is None else None
        self._consumer.unassign()
        return out

    def _call(self, request):
        return retrying(request, self.timeout_s, f"Kafka at {self.bootstrap} did not answer for {self.topic!r}")
