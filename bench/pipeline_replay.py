"""Benchmark: the whole ``kappa replay`` path, the ``merchant_totals`` pipeline over a
bounded Kafka replay of Avro payments, on each local runner side by side, against a
plain Python loop doing the same work, in the same run.

    .venv/bin/python bench/pipeline_replay.py --events 300000 [--bootstrap HOST:PORT] [--rounds 2]
        [--runners direct,prism,flink] [--keep-going]

Every side is a process of its own, timed from the outside (wall time, start-up
included) while its process tree's memory is sampled:

- **loop**: confluent-kafka consumer on all partitions, decode (the same codec), and
  per (merchant, 1-minute window) a count and an exact Decimal sum in a dict: what a
  user would write by hand for a one-off backfill;
- **direct / prism / flink**: ``python -m runners.cli replay --manifest PLAN --runner R
  --sink file:... --quiet``, the command a user runs; 1-minute fixed windows per merchant
  in kappa's event-time engine, results written one file per window.

Each side also replays a tiny plan (``--tiny`` events) in each round, so start-up and
steady state can be told apart: steady state = (N - tiny) / (t_N - t_tiny). Every
replay's final panes must equal the loop's dict, window by window, and its dead letters
the loop's invalid records: a run that disagrees stops the benchmark (with
``--keep-going``: the measuring goes on, and the benchmark exits 1 at the end, naming it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kafka_read import PARTITIONS, ensure_topic  # noqa: E402  (the same topic and generator)

RUNNERS = ("direct", "prism", "flink")
WINDOW_MS = 60_000  # merchant_totals' default window: fixed 1 minute
BOUND_MS = 30_000  # merchant_totals' default max out-of-orderness
#: The loop's consumer: bench/kafka_read.py's loop settings (big fetches, 64 MB prefetch cap).
LOOP_CONSUMER = {"group.id": "bench-loop", "enable.auto.commit": False, "isolation.level": "read_committed",
                 "fetch.max.bytes": 52428800, "queued.max.messages.kbytes": 65536, "log_level": 0}


# -- the baseline, in its own process ----------------------------------------------------------

def measure_loop(bootstrap: str, topic: str, events: int, registry: str, partitions: int = PARTITIONS) -> dict:
    """Offsets [0, events/partitions) of every partition: decode, then count and sum per (merchant, minute).

    It counts every record, and also how many kappa would judge too late (``too_late``: the record's
    partition cutoff, the greatest event time before it in the partition minus BOUND_MS, at or past its
    window's end); where that is 0, every system must give exactly these totals."""
    from confluent_kafka import Consumer, TopicPartition

    from kappa.schemas import DecodeError, FileSchemaRegistry, make_codec
    from kappa.transforms.event_time import EventTimeSpec, InvalidEventTime

    stop = events // partitions
    left = dict.fromkeys(range(partitions), stop)
    latest = dict.fromkeys(range(partitions), -(2**63))
    consumer = Consumer({"bootstrap.servers": bootstrap, **LOOP_CONSUMER})
    consumer.assign([TopicPartition(topic, p, 0) for p in left])
    decode = make_codec("confluent", "payment", FileSchemaRegistry(registry)).decode
    event_time = EventTimeSpec.parse("field:timestamp").extract
    totals: dict[tuple[str, int], list] = {}
    invalid = too_late = 0
    while any(left.values()):
        for msg in consumer.consume(5000, timeout=1.0):
            p = msg.partition()
            if msg.error() or msg.offset() >= stop:
                continue
            left[p] -= 1
            if not left[p]:
                consumer.pause([TopicPartition(topic, p)])  # a longer topic: read no further
            try:
                payment = decode(msg.value())
                ms = event_time(payment, None, None)
            except (DecodeError, InvalidEventTime):
                invalid += 1
                continue
            merchant = (payment.get("merchant") or {}).get("name")
            if not merchant:
                invalid += 1
                continue
            start = ms - ms % WINDOW_MS
            too_late += latest[p] - BOUND_MS >= start + WINDOW_MS
            latest[p] = max(latest[p], ms)
            slot = totals.setdefault((merchant, start), [0, Decimal(0)])
            slot[0] += 1
            slot[1] += payment["amount"]
    consumer.close()
    return {"events": stop * partitions, "invalid": invalid, "too_late": too_late,
            "totals": [[k, w, c, str(t)] for (k, w), (c, t) in sorted(totals.items())]}


def child(args) -> None:
    result = measure_loop(args.bootstrap, args.topic, args.events, args.registry, args.partitions)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result))


# -- running and watching one side -------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                kids = [int(k) for k in Path(f"/proc/{parent}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _memory_kb(pid: int) -> tuple[str, int, int] | None:
    """(command name, VmHWM, VmRSS) of a live process, in kB."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return None
    kb = lambda name: int(fields.get(name, "0 kB").split()[0])  # noqa: E731
    name = fields["Name"].strip()
    if name.startswith("python"):  # which one: python -m MODULE / python SCRIPT
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            name = " ".join(a.decode() for a in argv[1:3] if a)
        except OSError:
            pass
    return name, kb("VmHWM"), kb("VmRSS")


def run_watched(cmd: list[str], every_s: float = 0.2, timeout_s: float | None = None) -> dict:
    """Run ``cmd``; its wall time, the peak RSS of its own process and of each kind of child
    (VmHWM, sampled), and the peak of the tree's summed RSS. Past ``timeout_s`` its whole
    process group (it gets one of its own) is killed and this raises SystemExit."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    peaks: dict[int, tuple[str, int]] = {}
    tree_peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(every_s):
            total = 0
            for pid in [proc.pid, *_descendants(proc.pid)]:
                seen = _memory_kb(pid)
                if seen:
                    name, hwm, rss = seen
                    peaks[pid] = (name, max(hwm, peaks.get(pid, ("", 0))[1]))
                    total += rss
            tree_peak[0] = max(tree_peak[0], total)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        done.set()
        raise SystemExit(f"{' '.join(cmd[:6])} ... timed out after {timeout_s:.0f} s (killed)") from None
    took = time.perf_counter() - started
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-4000:]}")
    own = peaks.pop(proc.pid, ("", 0))[1]
    children: dict[str, int] = {}
    for name, hwm in peaks.values():
        children[name] = max(children.get(name, 0), hwm)
    return {"seconds": took, "rss_mb": own / 1024, "children_rss_mb": {k: v / 1024 for k, v in children.items()},
            "tree_rss_mb": tree_peak[0] / 1024, "stderr": err}


def fill_topic(args, attempts: int = 20) -> None:
    """kafka_read's ensure_topic, given a new topic's partitions time to get a leader."""
    from confluent_kafka import KafkaException

    for attempt in range(attempts):
        try:
            return ensure_topic(args.bootstrap, args.topic, args.events, args.registry,
                                getattr(args, "partitions", PARTITIONS))
        except KafkaException as err:
            if attempt == attempts - 1 or "leader" not in str(err).lower():
                raise
            time.sleep(0.5)


# -- plans, sides, and checking what they wrote ------------------------------------------------

def save_plan(args, events: int, path: Path) -> Path:
    from kappa.replay.manifest import DecodingSpec
    from kappa.replay.plan import plan_kafka_replay

    partitions = getattr(args, "partitions", PARTITIONS)
    per = events // partitions
    offsets = lambda n: "offsets:" + ",".join(f"{p}={n}" for p in range(partitions))  # noqa: E731
    manifest = plan_kafka_replay(args.bootstrap, args.topic, offsets(0), offsets(per),
                                 DecodingSpec("confluent", "payment", args.registry, f"{args.topic}-value"),
                                 "field:timestamp", BOUND_MS, pipeline={"name": "merchant_totals", "settings": {}})
    manifest.save(path)
    return path


def run_side(side: str, args, events: int, plan: Path, work: Path) -> dict:
    """One measured run of ``side``; returns its timings, memory, and what it computed."""
    out = work / f"{side}-{events}"
    if side == "loop":
        result = run_watched([sys.executable, __file__, "--child", "--events", str(events), "--topic", args.topic,
                              "--bootstrap", args.bootstrap, "--registry", args.registry, "--out", str(out),
                              "--partitions", str(getattr(args, "partitions", PARTITIONS))],
                             timeout_s=getattr(args, "timeout_s", None))
        computed = json.loads(out.read_text())
        out.unlink()
        result["rss_mb"] = max(result["rss_mb"], computed["peak_rss_mb"])  # exact, not sampled
        result.update(events=computed["events"], invalid=computed["invalid"], too_late=computed["too_late"],
                      totals={(k, w): (c, Decimal(t)) for k, w, c, t in computed["totals"]})
        return result
    result = run_watched([sys.executable, "-m", "kappa.runners.cli", "replay", "--manifest", str(plan),
                          "--pipeline", "merchant_totals", "--runner", side, "--run-dir", str(out / "run"),
                          "--sink", f"file:{out / 'totals.jsonl'}", "--quiet"], timeout_s=getattr(args, "timeout_s", None))
    result.update(events=events, **read_results(out / "totals.jsonl"))
    shutil.rmtree(out)
    return result


def read_results(path: Path) -> dict:
    """The final pane of every window the replay wrote, and how many dead letters."""
    from kappa.runners.sinks import read_window_file, window_files

    totals = {}
    for file in window_files(path):
        for r in read_window_file(file):
            if r["is_last"]:
                slot = (r["key"], int(r["window_start"].timestamp() * 1000))
                if slot in totals:
                    raise SystemExit(f"{file}: two final panes for {slot}")
                totals[slot] = (r["values"]["count"], Decimal(str(r["values"]["total_amount"])))
    dead = path.with_name(f"{path.stem}.dead.jsonl")
    return {"totals": totals, "invalid": len(dead.read_text().splitlines()) if dead.exists() else 0}


def disagreement(side: str, result: dict, loop: dict) -> str | None:
    """What ``side`` computed differently from the loop (final pane per window, dead letters), if anything."""
    want, got = loop["totals"], result["totals"]
    wrong = [(slot, want.get(slot), got.get(slot)) for slot in sorted(set(want) | set(got))
             if want.get(slot) != got.get(slot)]
    if not wrong and result["invalid"] == loop["invalid"]:
        return None
    missing = sum(want[slot][0] - (got.get(slot) or (0,))[0] for slot in want)
    lines = [f"  {slot}: loop {a}, {side} {b}" for slot, a, b in wrong[:6]]
    return (f"{side} DISAGREES with the loop over {result['events']:,} events: {len(wrong)} of {len(want)} windows "
            f"differ ({missing:,} events short), dead letters {result['invalid']} vs {loop['invalid']}\n"
            + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--tiny", type=int, default=1_000, help="events of the start-up run")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--topic", default=None, help="default bench-payments-EVENTS (as bench/kafka_read.py); "
                                                      "any topic it filled with at least EVENTS will do")
    parser.add_argument("--registry", default=str(ROOT / ".kappa" / "bench-registry.json"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="of a new topic, and the plan's")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--keep-going", action="store_true", help="on a runner disagreeing with the loop, finish "
                        "measuring and exit 1 at the end (default: stop at once)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.topic = args.topic or f"bench-payments-{args.events}"
    if args.child:
        return child(args)
    runners = [r for r in args.runners.split(",") if r]
    if set(runners) - set(RUNNERS) or args.events % PARTITIONS or args.tiny % PARTITIONS or args.tiny >= args.events:
        parser.error(f"--runners from {','.join(RUNNERS)}; --events and --tiny multiples of {PARTITIONS}, tiny < events")

    fill_topic(args)
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="kappa-bench-") as tmp:
        work = Path(tmp)
        plans = {n: save_plan(args, n, work / f"plan-{n}.json") for n in (args.tiny, args.events)}
        for round_ in range(args.rounds):
            reference = {}
            for side in ("loop", *runners):  # alternated, so drift on a shared machine hits every side
                for n in (args.events, args.tiny):
                    result = run_side(side, args, n, plans[n], work)
                    if side == "loop":
                        reference[n] = result
                    wrong = None if side == "loop" else disagreement(side, result, reference[n])
                    if wrong and not args.keep_going:
                        raise SystemExit(wrong)
                    if wrong:
                        print(wrong, file=sys.stderr)
                        failures.append(f"round {round_ + 1}: {wrong.splitlines()[0]}")
                    rows.append({"side": side, "events": n, "agrees": not wrong,
                                 **{k: v for k, v in result.items() if k not in ("totals", "stderr")}})
                    kids = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(result["children_rss_mb"].items()))
                    print(f"round {round_ + 1} {side:>6} {n:>9,} events: {result['seconds']:6.1f}s, "
                          f"{len(result['totals'])} windows{' (WRONG)' if wrong else ''}, "
                          f"peak RSS {result['rss_mb']:.0f} MB"
                          + (f" (+ {kids}; tree {result['tree_rss_mb']:.0f} MB)" if kids else ""), file=sys.stderr)

    summary = {}
    for side in ("loop", *runners):
        t_n = statistics.median(r["seconds"] for r in rows if r["side"] == side and r["events"] == args.events)
        t_0 = statistics.median(r["seconds"] for r in rows if r["side"] == side and r["events"] == args.tiny)
        mine = [r for r in rows if r["side"] == side]
        full = [r for r in mine if r["events"] == args.events]  # memory: the full runs' (the tiny ones are smaller)
        children: dict[str, float] = {}
        for r in full:
            for k, v in r["children_rss_mb"].items():
                children[k] = max(children.get(k, 0), v)
        summary[side] = {
            "events_per_s_steady": round((args.events - args.tiny) / (t_n - t_0)),
            "events_per_s_end_to_end": round(args.events / t_n),
            "seconds": round(t_n, 1),
            "startup_s": round(t_0, 1),
            "peak_rss_mb": round(max(r["rss_mb"] for r in full)),
            "children_peak_rss_mb": {k: round(v) for k, v in children.items()},
            "tree_peak_rss_mb": round(max(r["tree_rss_mb"] for r in full)),
            "runs_agreeing_with_loop": f"{sum(r['agrees'] for r in mine)}/{len(mine)}",
        }
    for side in runners:
        for what in ("steady", "end_to_end"):
            summary[side][f"ratio_{what}"] = round(summary[side][f"events_per_s_{what}"]
                                                   / summary["loop"][f"events_per_s_{what}"], 4)
    print(json.dumps({"events": args.events, "tiny": args.tiny, "rounds": args.rounds, "topic": args.topic,
                      **summary}, indent=1))
    if failures:
        raise SystemExit("WRONG RESULTS, these figures measure runs that lost or changed data:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
