"""Soak: a live run's memory over many distinct keys, once their windows close.

    .venv/bin/python bench/soak.py [--keys 1000000] [--minutes 30] [--rate 2000] [--runner prism]
        [--bootstrap HOST:PORT] [--out bench/soak.json]

``kappa live --pipeline fraud_alerts`` (keyed by account, 10-minute windows sliding every
minute) follows a fresh 4-partition topic on ``--runner``. Then ``--keys`` payments are
produced at ``--rate`` a second, each from its own account (so every key is new), their
event times spread evenly over ``--minutes`` of event time ending 11 minutes ago: the
watermark moves through those minutes while the log is written, and every key's ten
windows open and close behind it (the last ones once the log is quiet and the clock
moves the watermark). Every 2 s: the resident memory of kappa's whole process tree (the launcher,
its workers, the runner's own process), the records read, and the records committed by
the run's group (a live run commits an offset once every window holding the records
before it has closed and its results are durable, so this is the windowing stage's own
progress). The run is drained once everything is committed, or a few minutes after the
producer ends. Flat means: the peak memory of the last third of the production is within
20% of the middle third's; keeping up means: committed follows produced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTITIONS = 4


def _produce(bootstrap: str, topic: str, keys: int, minutes: float, rate: float, produced: list) -> None:
    """``keys`` payments at ``rate`` a second, each its own account; ``produced[0]`` counts them."""
    import random

    from confluent_kafka import Producer

    from kappa.runners.produce.domains import DOMAINS
    from kappa.schemas import make_codec

    codec = make_codec("avro", "payment")
    events = DOMAINS["payments"].generator(1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                         "queue.buffering.max.messages": 500_000})
    span_ms = int(minutes * 60_000)
    # The last event 11 minutes before now: once the log goes quiet, the clock moves the idle
    # partitions' watermark (now minus the bound) past every window, so all of them close.
    first_ms = int(time.time() * 1000) - span_ms - 11 * 60_000
    rng = random.Random(7)
    started = time.monotonic()
    for n in range(keys):
        due = started + n / rate
        if n % 200 == 0:
            time.sleep(max(0.0, due - time.monotonic()))
            producer.poll(0)
        event_ms = first_ms + n * span_ms // keys
        _, record = events.next(event_ms)
        record["account_id"] = f"S{n:08d}"  # a key of its own
        producer.produce(topic, codec.encode(record), key=record["account_id"].encode(), timestamp=event_ms,
                         partition=rng.randrange(PARTITIONS))
        produced[0] = n + 1
    producer.flush(120)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    try:
        answer = admin.list_consumer_group_offsets([request])[group].result(10)
    except Exception:  # no commits yet
        return 0
    return sum(max(0, tp.offset) for tp in answer.topic_partitions)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    from kappa.runners.children import processes

    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for p, fields in processes():
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1e6


def _read_so_far(run_dir: Path) -> int:
    total = 0
    for path in (run_dir / "progress").glob("*.json"):
        try:
            total += json.loads(path.read_text()).get("position", 0)
        except ValueError:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=2000, help="payments produced a second")
    parser.add_argument("--runner", default="prism")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "soak.json"))
    args = parser.parse_args()

    from kappa.runners.kafka_util import admin_client
    from tests.kafka_helpers import create_topic

    topic, group = f"soak-{uuid.uuid4().hex[:8]}", f"soak-{uuid.uuid4().hex[:8]}"
    create_topic(admin_client(args.bootstrap), topic, PARTITIONS)
    work = Path(tempfile.mkdtemp(prefix="kappa-soak-"))
    run_dir = work / "run"
    live = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "live", "--pipeline", "fraud_alerts", "--source",
         f"kafka://{args.bootstrap}/{topic}", "--from", "earliest", "--group", group, "--format", "avro",
         "--runner", args.runner, "--sink", f"file:{work / 'out' / 'alerts.jsonl'}", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(live.stderr), daemon=True).start()
    while not any("running;" in line for line in lines):
        if live.poll() is not None:
            raise SystemExit(f"kappa live did not start:\n{''.join(lines)[-3000:]}")
        time.sleep(0.5)
    print(f"producing {args.keys:,} payments at {args.rate:g}/s, one account each, over {args.minutes:g} minutes "
          "of event time", file=sys.stderr)
    produced = [0]
    producer = threading.Thread(target=_produce, daemon=True,
                                args=(args.bootstrap, topic, args.keys, args.minutes, args.rate, produced))
    started, samples, produced_for = time.monotonic(), [], None
    producer.start()
    try:
        while True:
            now = time.monotonic() - started
            if produced_for is None and not producer.is_alive():
                produced_for = now
            samples.append({"s": round(now, 1), "produced": produced[0], "records_read": _read_so_far(run_dir),
                            "committed": _committed(args.bootstrap, group, topic),
                            "rss_mb": round(_tree_rss_mb(live.pid), 1)})
            print(f"  {samples[-1]}", file=sys.stderr)
            if live.poll() is not None:
                raise SystemExit(f"kappa live exited {live.returncode}: {''.join(lines)[-2000:]}")
            if produced_for is not None and (samples[-1]["committed"] >= args.keys or now > produced_for + 180):
                break
            time.sleep(2)
        live.send_signal(2)
        live.wait(timeout=600)
    finally:
        if live.poll() is None:
            live.kill()
    producing = [s for s in samples if s["s"] <= produced_for] or samples
    third = max(1, len(producing) // 3)
    middle = max(s["rss_mb"] for s in producing[third:2 * third] or producing)
    last = max(s["rss_mb"] for s in producing[-third:])
    behind = [s["produced"] - s["committed"] for s in producing]
    result = {
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "keys": args.keys, "minutes_of_event_time": args.minutes, "rate": args.rate, "runner": args.runner,
        "pipeline": "fraud_alerts", "produced_for_s": round(produced_for, 1),
        "committed_at_end": samples[-1]["committed"],
        "uncommitted_max": max(behind), "uncommitted_at_production_end": behind[-1],
        "peak_rss_mb_middle_third": middle, "peak_rss_mb_last_third": last,
        "flat": last <= middle * 1.2, "samples": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"middle third {middle:.0f} MB, last third {last:.0f} MB: {'flat' if result['flat'] else 'GROWS'}; "
          f"uncommitted at most {max(behind):,}, {behind[-1]:,} when production ended; {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
