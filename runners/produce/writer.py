"""Writing a planned stream of demo events to Kafka and/or an archive file."""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kappa.replay.kafka_client import client_config
from kappa.runners.errors import KappaError
from kappa.runners.produce.disorder import Arrival, Kind
from kappa.runners.produce.domains import Domain
from kappa.schemas import Codec, load_schema, make_codec
from kappa.schemas.jsonform import format_instant

__all__ = ["ARCHIVE_SUFFIXES", "Progress", "ProduceSummary", "produce_events"]

ARCHIVE_SUFFIXES = (".jsonl", ".avro")


@dataclass
class ProduceSummary:
    count: int = 0
    kinds: collections.Counter = field(default_factory=collections.Counter)
    per_partition: collections.Counter = field(default_factory=collections.Counter)
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    seconds: float = 0.0

    def lines(self, domain: Domain, target: str) -> list[str]:
        span = ""
        if self.first_event_ms is not None:
            span = f", event time {format_instant(self.first_event_ms)} .. {format_instant(self.last_event_ms)}"
        out = [f"produced {self.count} {domain.name} events to {target} in {self.seconds:.1f}s{span}"]
        out.append(
            "  in order: {}, out of order: {}, late: {}".format(
                self.kinds[Kind.IN_ORDER], self.kinds[Kind.OUT_OF_ORDER], self.kinds[Kind.LATE]
            )
        )
        if self.per_partition:
            parts = ", ".join(f"{p}: {n}" for p, n in sorted(self.per_partition.items()))
            out.append(f"  per partition: {parts}")
        return out


class _KafkaSink:
    def __init__(self, bootstrap: str, topic: str, codec: Codec, summary: ProduceSummary):
        from confluent_kafka import Producer

        self.topic = topic
        self.codec = codec
        self.summary = summary
        self.failures: list[str] = []
        self.producer = Producer(client_config({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,  # no duplicates on internal retries
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # the Java client's partitioner: same key, same partition
            "log_level": 0,
        }))

    def write(self, key: str, record: dict, event_ms: int) -> None:
        value = self.codec.encode(record)
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key.encode(), timestamp=event_ms,
                                      on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
        self.producer.poll(0)

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failures.append(str(err))
        else:
            self.summary.per_partition[msg.partition()] += 1

    def close(self) -> None:
        remaining = self.producer.flush(60)
        if remaining:
            raise KappaError(f"{remaining} events were not delivered to {self.topic} within 60s")
        if self.failures:
            raise KappaError(f"{len(self.failures)} events failed to reach {self.topic}: {self.failures[0]}")


class _ArchiveSink:
    """JSON lines (one record per line) or an Avro container file, in arrival order."""

    def __init__(self, path: Path, domain: Domain):
        self.path = path
        self.file = open(path, "wb")
        if path.suffix == ".avro":
            from fastavro.write import Writer

            self.avro = Writer(self.file, load_schema(domain.schema), codec="deflate")
        else:
            self.avro = None
            self.json = make_codec("json", domain.schema)

    def write(self, key: str, record: dict, event_ms: int) -> None:
        if self.avro is not None:
            self.avro.write(record)
        else:
            self.file.write(self.json.encode(record) + b"\n")

    def close(self) -> None:
        if self.avro is not None:
            self.avro.flush()
        self.file.close()


def produce_events(
    domain: Domain,
    plan: list[Arrival],
    seed: int,
    *,
    kafka: tuple[str, str, Codec] | None = None,
    archive: Path | None = None,
    wait: bool = True,
    progress=None,
) -> ProduceSummary:
    """Generate one event per planned arrival and write it to each sink.

    ``kafka`` is ``(bootstrap, topic, codec)``; the Kafka timestamp of each record
    is its event time (CreateTime). With ``wait`` an event is not sent before its
    arrival time on the wall clock, so a plan reaching into the future plays out
    live; without it everything is sent at once.
    """
    summary = ProduceSummary()
    sinks = []
    if kafka is not None:
        sinks.append(_KafkaSink(*kafka, summary))
    if archive is not None:
        sinks.append(_ArchiveSink(archive, domain))
    generator = domain.generator(seed)
    started = time.monotonic()
    try:
        for i, arrival in enumerate(plan):
            if wait:
                ahead_s = arrival.arrival_ms / 1000 - time.time()
                if ahead_s > 0:
                    time.sleep(ahead_s)
            key, record = generator.next(arrival.event_ms)
            for sink in sinks:
                sink.write(key, record, arrival.event_ms)
            summary.count += 1
            summary.kinds[arrival.kind] += 1
            if progress is not None:
                progress(i + 1, len(plan))
    finally:
        for sink in sinks:
            sink.close()
    summary.seconds = time.monotonic() - started
    if plan:
        summary.first_event_ms = min(a.event_ms for a in plan)
        summary.last_event_ms = max(a.event_ms for a in plan)
    return summary


class Progress:
    """Progress on stderr: a self-overwriting line twice a second on a terminal,
    a plain line every ten seconds otherwise (logs, CI)."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = 0.5 if self.tty else 10.0
        self.started = self.shown = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.shown < self.every_s and not (done == total and self.tty):
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        line = f"{self.label}: {done}/{total} ({100 * done // max(total, 1)}%, {rate:,.0f}/s)"
        end = "\n" if done == total or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
