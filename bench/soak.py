"""Soak: a live run's memory over many distinct keys, once their windows close.

    .venv/bin/python bench/soak.py [--keys 1000000] [--minutes 30] [--runner prism]
        [--bootstrap HOST:PORT] [--out bench/soak.json]

A fresh 4-partition topic gets ``--keys`` payments, each from its own account (so every
key is new), their event times spread evenly over ``--minutes`` of event time ending
now. ``kappa live --pipeline fraud_alerts`` (keyed by account, sliding windows) then
reads the topic from the start on ``--runner``: it catches up through the minutes of
event time, every key's windows open and close behind the watermark. The resident memory
of kappa's whole process tree (the launcher, its workers, the runner's own process) is
sampled every 2 s with the records read so far; the run is drained once it has read
everything. Flat means: the memory of the last third of the run is within 20% of the
middle third's, while a million keys went by.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTITIONS = 4


def _produce(bootstrap: str, topic: str, keys: int, minutes: float) -> None:
    import random

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from kappa.runners.produce.domains import DOMAINS
    from kappa.schemas import make_codec

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    codec = make_codec("avro", "payment")
    events = DOMAINS["payments"].generator(1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4",
                         "queue.buffering.max.messages": 500_000})
    end_ms = int(time.time() * 1000)
    span_ms = int(minutes * 60_000)
    rng = random.Random(7)
    for n in range(keys):
        event_ms = end_ms - span_ms + n * span_ms // keys
        _, record = events.next(event_ms)
        record["account_id"] = f"S{n:08d}"  # a key of its own
        producer.produce(topic, codec.encode(record), key=record["account_id"].encode(), timestamp=event_ms,
                         partition=rng.randrange(PARTITIONS))
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


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
    parser.add_argument("--runner", default="prism")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "soak.json"))
    args = parser.parse_args()

    topic = f"soak-{uuid.uuid4().hex[:8]}"
    print(f"producing {args.keys:,} payments, one account each, over {args.minutes:g} minutes of event time",
          file=sys.stderr)
    _produce(args.bootstrap, topic, args.keys, args.minutes)
    work = Path(tempfile.mkdtemp(prefix="kappa-soak-"))
    run_dir = work / "run"
    live = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "live", "--pipeline", "fraud_alerts", "--source",
         f"kafka://{args.bootstrap}/{topic}", "--from", "earliest", "--format", "avro", "--runner", args.runner,
         "--sink", f"file:{work / 'out' / 'alerts.jsonl'}", "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    started, samples = time.monotonic(), []
    try:
        while True:
            read = _read_so_far(run_dir)
            samples.append({"s": round(time.monotonic() - started, 1), "records_read": read,
                            "rss_mb": round(_tree_rss_mb(live.pid), 1)})
            print(f"  {samples[-1]}", file=sys.stderr)
            if live.poll() is not None:
                raise SystemExit(f"kappa live exited {live.returncode}: {live.stderr.read()[-2000:]}")
            if read >= args.keys:
                break
            time.sleep(2)
        live.send_signal(2)
        live.wait(timeout=300)
    finally:
        if live.poll() is None:
            live.kill()
    reading = [s for s in samples if 0 < s["records_read"] < args.keys] or samples
    third = max(1, len(reading) // 3)
    middle = max(s["rss_mb"] for s in reading[third:2 * third] or reading)
    last = max(s["rss_mb"] for s in reading[-third:])
    result = {
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "keys": args.keys, "minutes_of_event_time": args.minutes, "runner": args.runner,
        "pipeline": "fraud_alerts", "records_per_s": round(args.keys / (samples[-1]["s"] or 1)),
        "peak_rss_mb_middle_third": middle, "peak_rss_mb_last_third": last,
        "flat": last <= middle * 1.2, "samples": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"middle third {middle:.0f} MB, last third {last:.0f} MB: {'flat' if result['flat'] else 'GROWS'}; "
          f"{args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
