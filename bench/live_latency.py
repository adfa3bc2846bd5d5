"""Benchmark: a live run's latency and whether it keeps up, on prism and on Flink.

    .venv/bin/python bench/live_latency.py [--rate 5000] [--seconds 120] [--runners prism,flink]
        [--bootstrap HOST:PORT] [--out bench/live.json]

For each runner: a fresh 4-partition topic; ``kappa live --pipeline merchant_totals``
(10 s windows, early panes every second, accumulating, Kafka sink) started at the end
of the log; then ``kappa produce payments --rate R`` for S seconds, paced at the wall
clock and in order (so an event's production time is its event time, which is also its
Kafka timestamp; its first event is due 5 s after it starts, so its own start-up, planning and
connecting, is not counted), from when every reader has reported (``kappa live`` says "running;" as
the job is submitted; Flink then still deploys its tasks for seconds); the live run is
drained once it has read everything.

Latency of an event: from its production to the first pane that includes it, that pane's
Kafka timestamp (the sink produces at write time). Panes are accumulating, so the
first pane of the event's (merchant, window) whose count reaches the event's rank among
that window's events (in production order), written at or after the event, is taken to
include it (exact when a partition's events are read in order, which they are; across
partitions this errs on the late side). p50, p99 and max over every event, and over the events after the first 10 s (the runner
warming up: first bundles, the JVM's compiler); the run keeps
up when the readers' lag (high watermark minus position, from the run directory) does
not grow over the second half of the run.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOW_MS = 10_000
PRODUCER_LEAD_S = 5.0  #: the first event is due this long after the producer starts
PARTITIONS = 4


def _kappa(*args) -> list[str]:
    return [sys.executable, "-m", "kappa.runners.cli", *map(str, args)]


def _read_topic(bootstrap: str, topic: str, decode) -> list:
    """Every message of ``topic`` (all partitions, start to the high watermark): (timestamp, decoded)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"latency-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    consumer.assign([TopicPartition(topic, p, 0) for p in parts if ends[p] > 0])
    left = {p for p in parts if ends[p] > 0}
    out = []
    while left:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error():
                left.discard(msg.partition())
                continue
            out.append((msg.timestamp()[1], decode(msg)))
            if msg.offset() + 1 >= ends[msg.partition()]:
                left.discard(msg.partition())
    consumer.close()
    return out


def _lag(run_dir: Path) -> int | None:
    total = 0
    for path in (run_dir / "progress").glob("*.json"):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if report.get("high") is None:
            return None
        total += max(0, report["high"] - report["position"])
    return total


def measure(runner: str, args) -> dict:
    from kappa.runners.kafka_util import admin_client
    from kappa.schemas import FileSchemaRegistry, make_codec
    from tests.kafka_helpers import create_topic

    topic = f"latency-{runner}-{uuid.uuid4().hex[:6]}"
    create_topic(admin_client(args.bootstrap), topic, PARTITIONS)
    results_topic = f"{topic}-totals"
    run_dir = Path(args.work) / f"run-{runner}"
    registry = Path(args.work) / "registry.json"
    live = subprocess.Popen(_kappa(
        "live", "--pipeline", "merchant_totals", "--source", f"kafka://{args.bootstrap}/{topic}", "--from", "latest",
        "--registry", registry, "--runner", runner, "--window", "fixed:10s", "--early-firing", "1s",
        "--max-out-of-orderness", "2s", "--sink", f"kafka://{args.bootstrap}/{results_topic}",
        "--run-dir", run_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(live.stderr), daemon=True).start()
    deadline = time.monotonic() + 180
    while not any("running;" in line for line in lines):
        if live.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kappa live on {runner} did not start:\n{''.join(lines)[-3000:]}")
        time.sleep(0.5)
    # "running;" comes as the job is submitted: wait until every reader has reported (read to
    # the end of its partition), so that what is measured is a running run, not its start-up.
    submitted = time.monotonic()
    while len(list((run_dir / "progress").glob("*.json"))) < PARTITIONS:
        if live.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kappa live on {runner}: readers did not start:\n{''.join(lines)[-3000:]}")
        time.sleep(0.2)
    readers_after = time.monotonic() - submitted
    count = int(args.rate * args.seconds)
    lags: list[tuple[float, int]] = []
    # The producer's first event is due a few seconds on, once it has planned its events and
    # connected: an event's timestamp is when it is due, so one sent late would count the
    # producer's start-up as the run's latency.
    first_due = time.time() + PRODUCER_LEAD_S
    producer = subprocess.Popen(_kappa(
        "produce", "payments", "--topic", topic, "--bootstrap", args.bootstrap, "--registry", registry,
        "--count", count, "--rate", args.rate, "--start", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first_due))
        + f".{int(first_due * 1000) % 1000:03d}Z", "--seed", "3"), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic() + (first_due - time.time())
    while producer.poll() is None:
        time.sleep(1.0)
        lag = _lag(run_dir)
        if lag is not None:
            lags.append((time.monotonic() - started, lag))
        if live.poll() is not None:
            producer.kill()
            raise SystemExit(f"kappa live on {runner} exited {live.returncode}:\n{''.join(lines)[-3000:]}")
    produced_for = time.monotonic() - started
    while (_lag(run_dir) or 0) > 0 and time.monotonic() - started < produced_for + 120:
        time.sleep(1.0)
    caught_up_after = time.monotonic() - started - produced_for
    cpu_s = _cpu_s(live.pid)
    live.send_signal(2)
    live.wait(timeout=300)

    codec = make_codec("confluent", "payment", FileSchemaRegistry(registry))
    events = _read_topic(args.bootstrap, topic, lambda m: codec.decode(m.value())["merchant"]["name"])
    result_codec = make_codec("json", "window_result")
    panes = _read_topic(args.bootstrap, results_topic, lambda m: result_codec.decode(m.value()))
    by_window = defaultdict(list)
    for written_ms, pane in panes:
        start_ms = int(pane["window_start"].timestamp() * 1000)
        by_window[(pane["key"], start_ms)].append((written_ms, pane["values"]["count"]))
    latencies, missing, timed = [], 0, []
    first_ms = min((produced_ms for produced_ms, _ in events), default=0)
    ranks: dict[tuple, int] = defaultdict(int)
    for produced_ms, merchant in sorted(events):
        slot = (merchant, produced_ms - produced_ms % WINDOW_MS)
        ranks[slot] += 1
        candidates = sorted(by_window.get(slot, []))
        i = bisect.bisect_left(candidates, (produced_ms, -1))
        first = next((w for w, n in candidates[i:] if n >= ranks[slot]), None)
        if first is None:
            missing += 1
        else:
            latencies.append(first - produced_ms)
            timed.append((produced_ms, first - produced_ms))
    settled = sorted(lat for produced_ms, lat in timed if produced_ms >= first_ms + 10_000)
    latencies.sort()
    half = [lag for t, lag in lags if t >= produced_for / 2]
    dead = Counter()  # why events are in no pane: their dead letters, by reason and decider
    try:
        for _, letter in _read_topic(args.bootstrap, f"{results_topic}.dead-letters", lambda m: json.loads(m.value())):
            dead[f"{letter['reason']} ({letter.get('decided_by') or '-'})"] += 1
    except KeyError:  # no dead letters: the topic was never created
        pass
    return {
        "events": len(events), "produced_per_s": round(len(events) / produced_for),
        "latency_ms": _percentiles(latencies),
        "latency_ms_after_first_10_s": _percentiles(settled),
        "events_without_a_pane": missing,
        "dead_letters": dict(dead),
        "lag_records": {"second_half_first": half[0] if half else None, "second_half_last": half[-1] if half else None,
                        "max": max((lag for _, lag in lags), default=None)},
        "caught_up_s_after_production": round(caught_up_after, 1),
        "drained": live.returncode == 0,
        "readers_started_s_after_submit": round(readers_after, 1),
        "cpu_s": cpu_s,
    }


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (kappa, its
    job server and workers): what the run cost, whatever else the machine was doing."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = defaultdict(list)
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children[int(fields[1])].append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += int(stats[p][11]) + int(stats[p][12])
        todo += children.get(p, [])
    return round(total / tick, 1) if pid in stats else None


def _percentiles(latencies: list[int]) -> dict | None:
    if not latencies:
        return None
    return {"p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)], "max": latencies[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--runners", default="prism,flink")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "live.json"))
    parser.add_argument("--keep", help="keep each run's directory (beam.log, progress) under this folder")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kappa-live-bench-") as work:
        args.work = args.keep or work
        report = {"rate": args.rate, "seconds": args.seconds, "window": "fixed:10s", "early_firing": "1s",
                  "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runners": {}}
        for runner in [r for r in args.runners.split(",") if r]:
            print(f"live on {runner}: {args.rate:.0f} payments/s for {args.seconds:.0f} s ...", file=sys.stderr)
            try:
                report["runners"][runner] = measure(runner, args)
            except SystemExit as err:
                report["runners"][runner] = {"failed": str(err)[-2000:]}
            print(json.dumps(report["runners"][runner]), file=sys.stderr)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
