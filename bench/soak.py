"""Soak: a live run's memory over many distinct keys, once their windows close.

    .venv/bin/python bench/soak.py [--keys 1000000] [--minutes 60] [--rate 2000] [--runner flink]
        [--window sliding:10m/1m] [--bootstrap HOST:PORT] [--out bench/soak.json]

``kappa live --pipeline fraud_alerts`` (keyed by account; 10-minute windows sliding every
minute unless ``--window``) follows a fresh 4-partition topic on ``--runner``. Then ``--keys``
payments are produced at ``--rate`` a second, each from its own account (so every key is
new), their event times spread evenly over ``--minutes`` of event time ending 11 minutes ago:
the watermark moves through those minutes while the log is written, and every key's windows
open and close behind it (the last ones once the log is quiet and the clock moves the
watermark). Every 2 s: the resident memory of kappa's whole process tree (the launcher, its
workers, the runner's own process: JVM or prism, each kind also on its own), the records
read, and the records committed by the run's group (a live run commits an offset once every
window holding the records before it has closed and its results are durable, so this is the
windowing stage's own progress). The run is drained once everything is committed, or a few
minutes after the producer ends.

A key is held for its windows' span, the 30 s bound, then ``FORGET_AFTER_MS`` (10 minutes) of
event time as its watermark alone. So the keys held grow for that long into the event time,
then stay level: new keys come as old ones are cleared. **Flat** means: over that plateau
(from when that much event time has been read to the end of reading) memory grows by at
most a fifth of its rate per key read before it (least-squares slopes of tree RSS against
records read). A run that kept every key would grow at the same rate on the plateau. The
chart (``--out`` with .png) shows memory against records read, the plateau shaded.
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


def _tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` and all its descendants, in MB: in all (``rss_mb``) and per
    kind of process (``jvm``, ``prism``, ``python``)."""
    from kappa.runners.children import processes

    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for p, fields in processes():
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    kinds: dict[str, float] = {"jvm": 0.0, "prism": 0.0, "python": 0.0}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            command = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            command = ""
        kind = "jvm" if command.endswith("java") else "prism" if "prism" in command else "python"
        kinds[kind] += rss.get(p, 0) / 1e6
        todo.extend(children.get(p, []))
    return {"rss_mb": round(sum(kinds.values()), 1), **{f"{k}_mb": round(v, 1) for k, v in kinds.items()}}


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y against x."""
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else None


def judge(samples: list[dict], keys: int, held_fraction: float) -> dict:
    """Flat or not (see the module's docstring): RSS slopes per 100,000 records read before
    and on the plateau, which starts once ``held_fraction`` of the keys have been read."""
    plateau_from = keys * held_fraction
    reading = [s for s in samples if 0 < s["records_read"] < keys] + [
        next((s for s in samples if s["records_read"] >= keys), samples[-1])]
    growth = [(s["records_read"] / 1e5, s["rss_mb"]) for s in reading if s["records_read"] < plateau_from]
    plateau = [(s["records_read"] / 1e5, s["rss_mb"]) for s in reading if s["records_read"] >= plateau_from]
    before, after = _slope(growth), _slope(plateau)
    flat = None if before is None or after is None or held_fraction >= 0.9 else after <= max(before, 0) * 0.2
    return {"plateau_from_records": round(plateau_from), "mb_per_100k_records_before": before and round(before, 1),
            "mb_per_100k_records_on_plateau": after and round(after, 1), "flat": flat}


def chart(result: dict, png: Path) -> None:
    """Memory against records read, per kind of process, the plateau shaded."""
    from bench.venvs import venv

    python = venv("chart", ROOT / "bench" / "chart-requirements.txt", lambda line: print(line, file=sys.stderr))
    subprocess.run([str(python), "-c", _CHART, json.dumps(result), str(png)], check=True)


_CHART = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
r = json.loads(sys.argv[1])
xs = [s["records_read"] for s in r["samples"]]
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.plot(xs, [s["rss_mb"] for s in r["samples"]], label="whole tree")
for kind in ("python", "jvm", "prism"):
    ys = [s.get(f"{kind}_mb", 0) for s in r["samples"]]
    if max(ys, default=0) > 0:
        ax.plot(xs, ys, "--", linewidth=1, label=kind)
ax.axvspan(r["plateau_from_records"], r["keys"], alpha=0.12, color="green", label="plateau: keys held stay level")
ax.set_xlabel("records read (each a new key)")
ax.set_ylabel("resident memory (MB)")
ax.set_ylim(bottom=0)
ax.set_title(f"soak: {r['keys']:,} keys, {r['minutes_of_event_time']:g} min of event time, {r['runner']}, "
             f"{r['window']}, {r['at']}: {'flat' if r['flat'] else 'NOT flat' if r['flat'] is False else 'not judged'}",
             fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
'''


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
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000, help="payments produced a second")
    parser.add_argument("--runner", default="flink")
    parser.add_argument("--window", help="fraud_alerts' window (default its own, sliding:10m/1m)")
    parser.add_argument("--stall", type=float, default=180, help="give up once nothing more is read for this long "
                        "after production (default 180 s)")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "soak.json"), help="its .png is the chart")
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
         "--runner", args.runner, "--sink", f"file:{work / 'out' / 'alerts.jsonl'}", "--run-dir", str(run_dir),
         *(["--window", args.window] if args.window else [])],
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
    started, samples, produced_for, last_read = time.monotonic(), [], None, 0.0
    producer.start()
    try:
        while True:
            now = time.monotonic() - started
            if produced_for is None and not producer.is_alive():
                produced_for = now
            samples.append({"s": round(now, 1), "produced": produced[0], "records_read": _read_so_far(run_dir),
                            "committed": _committed(args.bootstrap, group, topic),
                            **_tree_rss_mb(live.pid)})
            print(f"  {samples[-1]}", file=sys.stderr)
            if live.poll() is not None:
                raise SystemExit(f"kappa live exited {live.returncode}: {''.join(lines)[-2000:]}")
            if len(samples) > 1 and samples[-1]["records_read"] > samples[-2]["records_read"]:
                last_read = now
            # Done once everything is committed; given up once reading has stalled for --stall s.
            if produced_for is not None and (samples[-1]["committed"] >= args.keys or now - last_read > args.stall):
                break
            time.sleep(2)
        live.send_signal(2)
        live.wait(timeout=600)
    finally:
        if live.poll() is None:
            live.kill()
    from kappa.pipelines.fraud_alerts import FraudAlerts
    from kappa.transforms.durations import parse_duration_ms
    from kappa.transforms.windowing import FORGET_AFTER_MS
    from kappa.transforms.windows import parse_window

    window = parse_window(args.window or FraudAlerts.DEFAULTS["window"])
    held_ms = (getattr(window, "size_ms", getattr(window, "gap_ms", 0))
               + parse_duration_ms(FraudAlerts.DEFAULTS["max_out_of_orderness"]) + FORGET_AFTER_MS)
    behind = [s["produced"] - s["committed"] for s in samples if s["s"] <= produced_for] or [0]
    result = {
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "keys": args.keys, "minutes_of_event_time": args.minutes, "rate": args.rate, "runner": args.runner,
        "pipeline": "fraud_alerts", "window": str(window), "key_held_for_event_minutes": held_ms / 60_000,
        "produced_for_s": round(produced_for, 1), "committed_at_end": samples[-1]["committed"],
        "uncommitted_max": max(behind), "uncommitted_at_production_end": behind[-1],
        **judge(samples, args.keys, held_ms / (args.minutes * 60_000)), "samples": samples,
    }
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1) + "\n")
    chart(result, out.with_suffix(".png"))
    print(f"{result['mb_per_100k_records_before']} MB per 100k keys read before the plateau, "
          f"{result['mb_per_100k_records_on_plateau']} on it: "
          f"{ {True: 'flat', False: 'GROWS', None: 'not judged'}[result['flat']] }; "
          f"uncommitted at most {max(behind):,}, {behind[-1]:,} when production ended; {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
