"""Bytewax 0.21.1: per (merchant, 1-minute event-time window) count and exact Decimal total.

Input: a custom partitioned source over confluent-kafka (Bytewax's KafkaSource has no end
offsets), one consumer per partition reading [0, stop) in batches of 500; Bytewax polls the
partitions in turn, so they advance together in event time (500 records of a partition span
20 s of event time here, under the 30 s bound). Windows: ``fold_window`` with an
``EventClock`` waiting 30 s (the bound kappa uses), a ``TumblingWindower`` of 1 minute aligned
to the epoch; late records are counted from the window operator's ``late`` stream.

``--processes N`` runs a Bytewax cluster of N processes on this machine (``cluster_main``,
as ``python -m bytewax.testing -p N`` does): the partitions are spread over them, each key's
windows are folded in one of them, and each writes its own totals, merged here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bytewax.operators as op  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition  # noqa: E402
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window  # noqa: E402
from bytewax.testing import TestingSink, cluster_main, run_main  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from common import BOUND_MS, WINDOW_MS, avro_decoder, epoch_ms, parse_args, write_totals  # noqa: E402

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
BATCH = 500


class _RangePartition(StatefulSourcePartition):
    def __init__(self, bootstrap: str, topic: str, partition: int, start: int, stop: int):
        self._stop = stop
        self._next = start
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bytewax",
                                   "enable.auto.commit": False, "log_level": 0})
        self._consumer.assign([TopicPartition(topic, partition, start)])

    def next_batch(self):
        if self._next >= self._stop:
            raise StopIteration
        values = []
        for msg in self._consumer.consume(min(BATCH, self._stop - self._next), timeout=0.05):
            if msg.error() or msg.offset() >= self._stop:
                continue
            self._next = msg.offset() + 1
            values.append(msg.value())
        return values

    def snapshot(self):
        return self._next

    def close(self):
        self._consumer.close()


class RangeSource(FixedPartitionedSource):
    """Offsets [0, stop) of each partition of a topic."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, stop: int):
        self._args = bootstrap, topic, partitions, stop

    def list_parts(self):
        return [str(p) for p in range(self._args[2])]

    def build_part(self, step_id, for_part, resume_state):
        bootstrap, topic, _, stop = self._args
        return _RangePartition(bootstrap, topic, int(for_part), resume_state or 0, stop)


def _processes(parser) -> None:
    parser.add_argument("--processes", type=int, default=1, help="a Bytewax cluster of this many processes")
    parser.add_argument("--proc-id", type=int, default=None, help=argparse.SUPPRESS)


def main() -> None:
    args = parse_args(__doc__, _processes)
    if args.processes > 1 and args.proc_id is None:
        return _cluster(args)
    decode = avro_decoder(args.schema)
    counters = {"events": 0, "invalid": 0}

    def parse(value: bytes):
        counters["events"] += 1
        try:
            p = decode(value)
            return p["merchant"]["name"], (p["timestamp"], p["amount"])
        except Exception:  # noqa: BLE001  (counted, as the loop counts its invalid records)
            counters["invalid"] += 1
            return None

    flow = Dataflow("bench_bytewax")
    raw = op.input("kafka", flow, RangeSource(args.bootstrap, args.topic, args.partitions, args.stop))
    keyed = op.filter_map("decode", raw, parse)
    clock = EventClock(lambda v: v[0], wait_for_system_duration=timedelta(milliseconds=BOUND_MS))
    windower = TumblingWindower(length=timedelta(milliseconds=WINDOW_MS), align_to=EPOCH)
    out = fold_window("per_minute", keyed, clock, windower, lambda: [0, Decimal(0)],
                      lambda acc, v: [acc[0] + 1, acc[1] + v[1]], lambda a, b: [a[0] + b[0], a[1] + b[1]])
    totals, late = [], []
    op.output("totals", out.down, TestingSink(totals))
    op.output("late", out.late, TestingSink(late))
    if args.proc_id is None:
        run_main(flow)
    else:
        addresses = [f"localhost:{2101 + i}" for i in range(args.processes)]
        cluster_main(flow, addresses, args.proc_id)
    result = {}
    for merchant, (window_id, (count, total)) in totals:  # window_id counts windows from align_to
        result[(merchant, window_id * WINDOW_MS)] = (count, total)
    write_totals(args.out, result, counters["events"], counters["invalid"], len(late))


def _cluster(args) -> None:
    """``--processes`` copies of this script as one cluster; their totals merged into ``--out``.
    Each copy gets this script's arguments plus its ``--proc-id`` and an ``--out`` of its own
    (argparse keeps the last of a repeated option)."""
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--proc-id", str(i), "--out", f"{args.out}.{i}"])
             for i in range(args.processes)]
    if any(p.wait() for p in procs):
        raise SystemExit(f"a Bytewax cluster process failed: exit codes {[p.returncode for p in procs]}")
    merged, events, invalid, late = {}, 0, 0, 0
    for i in range(args.processes):
        part = json.loads(Path(f"{args.out}.{i}").read_text())
        Path(f"{args.out}.{i}").unlink()
        events, invalid, late = events + part["events"], invalid + part["invalid"], late + part["late"]
        for k, w, c, t in part["totals"]:
            if (k, w) in merged:
                raise SystemExit(f"window ({k}, {w}) came from two cluster processes")
            merged[(k, w)] = (c, Decimal(t))
    write_totals(args.out, merged, events, invalid, late)


if __name__ == "__main__":
    main()
