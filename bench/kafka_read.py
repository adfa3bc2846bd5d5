"""Benchmark: a bounded read of Avro payments through kappa's replay reader and
decoder, side by side with a plain confluent-kafka consume-and-decode loop on the
same topic, in the same run.

    .venv/bin/python bench/kafka_read.py --events 2000000 [--bootstrap HOST:PORT] [--rounds 2]

Each measurement runs in its own process (so peak memory is its own). Both sides
decode the Confluent wire format with the same codec and take each record's event
time from its payload; the reader additionally claims offsets, stamps event-time
timestamps, tracks watermarks and routes dead letters, on Beam's DirectRunner.
Peak memory of the reader is also taken at a quarter of the events, to show it does
not grow with the number of events.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTITIONS = 4


def ensure_topic(bootstrap: str, topic: str, events: int, registry: str, partitions: int = PARTITIONS) -> None:
    """Fill ``topic`` with ``events`` payments over ``partitions`` partitions, round robin (once; reused
    when already full). Event time is 10 ms per event, so every partition is in event-time order."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from kappa.runners.kafka_util import admin_client, ensure_topic as create
    from kappa.runners.produce import DOMAINS
    from kappa.schemas import FileSchemaRegistry, make_codec

    create(admin_client(bootstrap), topic, partitions)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "log_level": 0})
    have = sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    probe.close()
    if have >= events:
        return
    codec = make_codec("confluent", "payment", FileSchemaRegistry(registry), f"{topic}-value")
    generator = DOMAINS["payments"].generator(1)
    pool = [generator.next(0) for _ in range(20_000)]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000, "log_level": 0})
    start_ms = 1_790_000_000_000
    print(f"writing {events - have} payments to {topic} ...", file=sys.stderr)
    for i in range(have, events):
        key, record = pool[i % len(pool)]
        ms = start_ms + i * 10
        record = {**record, "timestamp": ms}
        while True:
            try:
                producer.produce(topic, codec.encode(record), key.encode(), partition=i % partitions, timestamp=ms)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def measure_loop(bootstrap: str, topic: str, events: int, registry: str) -> dict:
    """The baseline: assign all partitions, consume in batches, decode, take event time."""
    from confluent_kafka import Consumer, TopicPartition

    from kappa.schemas import DecodeError, FileSchemaRegistry, make_codec
    from kappa.transforms.event_time import EventTimeSpec

    codec = make_codec("confluent", "payment", FileSchemaRegistry(registry))
    extract = EventTimeSpec.parse("field:timestamp").extract
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-loop", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "fetch.max.bytes": 52428800,
                         "queued.max.messages.kbytes": 65536, "log_level": 0})
    per_partition = events // PARTITIONS
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = good = 0
    while seen < per_partition * PARTITIONS:
        for msg in consumer.consume(5000, timeout=1.0):
            if msg.error() or msg.offset() >= per_partition:
                continue
            seen += 1
            try:
                extract(codec.decode(msg.value()), None, None)
                good += 1
            except DecodeError:
                pass
    took = time.perf_counter() - started
    consumer.close()
    return {"side": "loop", "events": good, "seconds": took}


def measure_reader(bootstrap: str, topic: str, events: int, registry: str) -> dict:
    """kappa: plan offsets [0, events/4) per partition and read them on DirectRunner."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from kappa.replay.kafka_source import ReadFromKafkaReplay
    from kappa.replay.manifest import DecodingSpec, Manifest, PartitionRange

    per_partition = events // PARTITIONS
    manifest = Manifest(bootstrap, topic, "offsets", "offsets",
                        tuple(PartitionRange(topic, p, 0, per_partition) for p in range(PARTITIONS)),
                        DecodingSpec("confluent", "payment", registry, f"{topic}-value"),
                        max_out_of_orderness_ms=5000)
    started = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        (pipeline | ReadFromKafkaReplay(manifest))["records"] | beam.ParDo(_make_count_fn()())
    took = time.perf_counter() - started
    return {"side": "kappa", "events": _CountFn.total, "seconds": took}


class _CountFn:
    """The lightest sink: count records per bundle (the loop's ``good += 1``)."""

    total = 0


def _make_count_fn():
    import apache_beam as beam

    class CountFn(beam.DoFn):
        def start_bundle(self):
            self.n = 0

        def process(self, record):
            self.n += 1

        def finish_bundle(self):
            _CountFn.total += self.n  # the DirectRunner runs bundles in this process

    return CountFn


def child(args) -> None:
    measure = {"loop": measure_loop, "kappa": measure_reader}[args.child]
    result = measure(args.bootstrap, args.topic, args.events, args.registry)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(side: str, args, events: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", side, "--events", str(events), "--topic", args.topic,
                          "--bootstrap", args.bootstrap, "--registry", args.registry],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--topic", default=None)
    parser.add_argument("--registry", default=str(ROOT / ".kappa" / "bench-registry.json"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["loop", "kappa"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.topic = args.topic or f"bench-payments-{args.events}"
    if args.child:
        return child(args)

    ensure_topic(args.bootstrap, args.topic, args.events, args.registry)
    rows = []
    for round_ in range(args.rounds):
        for side in ("loop", "kappa"):  # alternated, so drift on a shared machine hits both
            result = run_child(side, args, args.events)
            result["rate"] = result["events"] / result["seconds"]
            rows.append(result)
            print(f"round {round_ + 1} {side:>5}: {result['events']:,} events in {result['seconds']:.1f}s = "
                  f"{result['rate']:,.0f}/s, peak RSS {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
    quarter = run_child("kappa", args, args.events // 4)
    loop = statistics.median(r["rate"] for r in rows if r["side"] == "loop")
    kappa = statistics.median(r["rate"] for r in rows if r["side"] == "kappa")
    peak = max(r["peak_rss_mb"] for r in rows if r["side"] == "kappa")
    print(json.dumps({
        "events": args.events,
        "loop_events_per_s": round(loop),
        "kappa_events_per_s": round(kappa),
        "ratio": round(kappa / loop, 3),
        "kappa_peak_rss_mb": round(peak),
        "kappa_peak_rss_mb_at_quarter": round(quarter["peak_rss_mb"]),
    }, indent=1))


if __name__ == "__main__":
    main()
