"""``kappa demo``: the README's first command.

Starts the local Kafka broker, produces a few minutes of seeded payments with
some disorder, reads exactly the records it produced back from the broker, and
prints a per-merchant count and total. (Later stages replace the read-back with
a live run and a replay checked by ``kappa verify``.)
"""

from __future__ import annotations

import argparse
import collections
import time
from decimal import Decimal

from runners import cliargs
from runners.errors import KappaError
from runners.home import default_registry_path
from replay.kafka_log import KafkaTopicLog, consumer_config
from runners.kafka_util import admin_client, ensure_topic
from runners.local.command import local_stack
from runners.produce import DOMAINS, DisorderSpec, plan_arrivals, produce_events
from runners.produce.writer import Progress
from schemas import DecodeError, FileSchemaRegistry, make_codec

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="start the local broker, produce demo payments, read them back, print per-merchant totals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--count", type=cliargs.positive_int, default=3000, help="payments to produce (default 3000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--topic", default="payment_msg", help="topic (default payment_msg)")
    p.set_defaults(run=run)


def run(args) -> int:
    broker, _ = local_stack()
    if not broker.running():
        print(f"starting Kafka on {broker.bootstrap} ...", flush=True)
        broker.start()
    admin = admin_client(broker.bootstrap)
    ensure_topic(admin, args.topic, 4)
    before = _high_watermarks(broker.bootstrap, args.topic)

    domain = DOMAINS["payments"]
    rate = 10.0
    start_ms = int(time.time() * 1000) - int(args.count / rate * 1000)  # history ending about now
    spec = DisorderSpec(disorder_fraction=0.1, max_disorder_ms=20_000, late_fraction=0.01, late_by_ms=120_000)
    plan = plan_arrivals(args.count, args.seed, start_ms, rate, spec)
    codec = make_codec("confluent", domain.schema, FileSchemaRegistry(default_registry_path()), f"{args.topic}-value")
    summary = produce_events(domain, plan, args.seed, kafka=(broker.bootstrap, args.topic, codec), wait=False,
                             progress=Progress("produce payments"))
    print("\n".join(summary.lines(domain, f"{args.topic} at {broker.bootstrap}")))

    after = _high_watermarks(broker.bootstrap, args.topic)
    counts, totals, read, bad = _read_back(broker.bootstrap, args.topic, before, after, codec)
    print(f"\nread back {read} records from offsets {before} up to {after}; undecodable: {bad}")
    print(f"\n{'merchant':<20}{'payments':>10}{'total amount':>16}")
    for merchant in sorted(counts, key=lambda m: (-counts[m], m)):
        print(f"{merchant:<20}{counts[merchant]:>10}{totals[merchant]:>16,.2f}")
    if read != summary.count:
        raise KappaError(f"produced {summary.count} payments but read back {read}")
    return 0


def _high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    with KafkaTopicLog(bootstrap, topic) as log:
        return {p: log.watermarks(p)[1] for p in log.partitions()}


def _read_back(bootstrap, topic, start: dict[int, int], stop: dict[int, int], codec):
    """Read exactly [start, stop) of every partition (explicit assignment, no group commits)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap, "kappa-demo"))
    consumer.assign([TopicPartition(topic, p, o) for p, o in start.items() if o < stop[p]])
    remaining = {p for p in start if start[p] < stop[p]}
    counts: collections.Counter = collections.Counter()
    totals: dict[str, Decimal] = collections.defaultdict(Decimal)
    read = bad = 0
    deadline = time.monotonic() + 60
    try:
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() or msg.partition() not in remaining:
                    continue
                if msg.offset() >= stop[msg.partition()]:
                    remaining.discard(msg.partition())
                    continue
                read += 1
                try:
                    payment = codec.decode(msg.value())
                except DecodeError:
                    bad += 1
                else:
                    counts[payment["merchant"]["name"]] += 1
                    totals[payment["merchant"]["name"]] += payment["amount"]
                if msg.offset() + 1 >= stop[msg.partition()]:
                    remaining.discard(msg.partition())
    finally:
        consumer.close()
    return counts, totals, read, bad
