"""A minimal reproduction of Beam prism (v2.77) losing a stateful DoFn's updates when the
stateful stage is fed straight from a splittable DoFn, and of the workaround kappa uses.

    .venv/bin/python bench/prism_state_repro.py [--events 200000] [--runs 3] [--bootstrap HOST:PORT]

kappa's Kafka reader (a splittable DoFn) reads N payments of the bench topic, keys
them by merchant, and a ten-line stateful DoFn counts per key in a ReadModifyWriteState,
emitting (key, n) per element. Every count must reach the key's number of records:
the check is the largest n per key against the records read. Each run is made twice on
prism: straight (reader -> key -> stateful counter) and with ``beam.Reshuffle()``
between the keying and the counter. Beam promises one bundle per key at a time
(apache/beam#28543); a lower count than records means two bundles updated one key's
state at once, and one's update was lost.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pipeline(manifest_path: str, reshuffle: bool, out: str):
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    from replay.kafka_source import ReadFromKafkaReplay
    from replay.manifest import Manifest

    class CountFn(beam.DoFn):
        COUNT = ReadModifyWriteStateSpec("n", VarIntCoder())

        def process(self, element, count=beam.DoFn.StateParam(COUNT)):
            n = (count.read() or 0) + 1
            count.write(n)
            yield element[0], n

    def write(p):
        records = (p | ReadFromKafkaReplay(Manifest.load(manifest_path)))["records"]
        keyed = records | beam.Map(lambda r: (r.value["merchant"]["name"], r.provenance.position))
        if reshuffle:
            keyed = keyed | beam.Reshuffle()
        (keyed | beam.ParDo(CountFn())
         | beam.CombinePerKey(max)  # the largest count each key reached
         | beam.Map(lambda kv: f"{kv[0]}\t{kv[1]}")
         | beam.io.WriteToText(out))
    return write


def run_once(manifest_path: str, reshuffle: bool, expected: dict[str, int]) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from runners.local.tools import prism_binary

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "counts")
        options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={prism_binary()}",
                                   "--environment_type=LOOPBACK"])
        with beam.Pipeline(options=options) as p:
            _pipeline(manifest_path, reshuffle, out)(p)
        best: dict[str, int] = collections.defaultdict(int)
        for name in os.listdir(tmp):
            for line in Path(tmp, name).read_text().splitlines():
                key, n = line.split("\t")
                best[key] = max(best[key], int(n))
    counted = sum(best.values())
    return {"counted": counted, "expected": sum(expected.values()),
            "keys_short": sorted(k for k in expected if best.get(k, 0) != expected[k])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--registry", default=str(ROOT / ".kappa" / "bench-registry.json"))
    args = parser.parse_args()

    from bench.kafka_read import PARTITIONS, ensure_topic
    from bench.pipeline_replay import save_plan
    from schemas import FileSchemaRegistry, make_codec

    args.topic = f"bench-payments-{args.events}"
    ensure_topic(args.bootstrap, args.topic, args.events, args.registry)
    with tempfile.TemporaryDirectory() as tmp:
        plan = save_plan(args, args.events, Path(tmp) / "plan.json")
        # What every key must count to: the records per merchant, from a plain read.
        from confluent_kafka import Consumer, TopicPartition

        decode = make_codec("confluent", "payment", FileSchemaRegistry(args.registry)).decode
        consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "repro", "enable.auto.commit": False})
        per = args.events // PARTITIONS
        consumer.assign([TopicPartition(args.topic, p, 0) for p in range(PARTITIONS)])
        expected: dict[str, int] = collections.Counter()
        seen = collections.Counter()
        while sum(seen.values()) < args.events:
            for msg in consumer.consume(5000, timeout=1.0):
                if msg.error() or msg.offset() >= per:
                    continue
                seen[msg.partition()] += 1
                expected[decode(msg.value())["merchant"]["name"]] += 1
        consumer.close()
        for n in range(args.runs):
            for reshuffle in (False, True):
                got = run_once(str(plan), reshuffle, expected)
                verdict = "exact" if not got["keys_short"] else f"LOST {got['expected'] - got['counted']:,} updates"
                print(f"run {n + 1} {'with Reshuffle' if reshuffle else 'straight     '}: counted {got['counted']:,} "
                      f"of {got['expected']:,}: {verdict} {got['keys_short'][:4]}", flush=True)


if __name__ == "__main__":
    main()
