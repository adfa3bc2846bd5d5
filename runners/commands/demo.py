"""``kappa demo``: the README's first command, the Kappa promise end to end.

1. starts the local Kafka broker (``kappa local up``) on a fresh topic;
2. runs ``merchant_totals`` live on the local streaming runner (prism), from the
   start of the topic, writing early and on-time panes to files;
3. produces a few minutes of seeded payments as they happen, some out of order;
4. drains the live run (as Ctrl-C would): the offsets it read become a manifest;
5. replays exactly those offsets on DirectRunner, as a batch job;
6. ``kappa verify``: the live run's final windows equal the replay's.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from kappa.runners import cliargs
from kappa.runners.errors import KappaError
from kappa.runners.home import default_registry_path
from kappa.runners.kafka_util import admin_client, ensure_topic
from kappa.runners.commands.local import local_stack
from kappa.runners.produce import DOMAINS, DisorderSpec, plan_arrivals, produce_events
from kappa.runners.produce.writer import Progress
from kappa.runners.sinks import read_window_file, window_files
from kappa.schemas import make_codec, open_registry

__all__ = ["add_parsers"]

WINDOWING = ["--window", "fixed:20s", "--early-firing", "5s", "--max-out-of-orderness", "10s"]


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="live run, replay of the same offsets, and kappa verify agreeing, on the local stack",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  kappa demo                 # about 2 1/2 minutes\n"
               "  kappa demo --minutes 0.5   # the same in about 40 seconds\n"
               "  kappa demo --rate 50 --out out/demo-fast")
    p.add_argument("--minutes", type=cliargs.positive_float, default=2.0,
                   help="how many minutes of payments to produce, as they happen (default 2)")
    p.add_argument("--rate", type=cliargs.positive_float, default=20.0, help="payments per second (default 20)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where results go (default out/demo)")
    p.set_defaults(run=run)


def run(args) -> int:
    say = lambda text: print(f"\n== {text}", flush=True)  # noqa: E731
    broker, _ = local_stack()
    if not broker.running():
        say(f"starting Kafka on {broker.bootstrap}")
        broker.start()
    topic = f"demo-payments-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    ensure_topic(admin_client(broker.bootstrap), topic, 4)
    source = f"kafka://{broker.bootstrap}/{topic}"
    live_sink, replay_sink = args.out / "live" / "totals.jsonl", args.out / "replay" / "totals.jsonl"
    run_dir = args.out / "live-run"

    say(f"live merchant_totals on prism, reading {source} (windows of 20 s, early panes every 5 s)")
    live = _start_live(source, live_sink, run_dir)
    live.wait_for("running;", timeout_s=180)

    count = int(args.minutes * 60 * args.rate)
    say(f"producing {count} payments over {args.minutes:g} minutes, 10% of them up to 5 s out of order")
    domain = DOMAINS["payments"]
    plan = plan_arrivals(count, args.seed, int(time.time() * 1000), args.rate,
                         DisorderSpec(disorder_fraction=0.1, max_disorder_ms=5_000))
    codec = make_codec("confluent", domain.schema, open_registry(default_registry_path()), f"{topic}-value")
    summary = produce_events(domain, plan, args.seed, kafka=(broker.bootstrap, topic, codec), wait=True,
                             progress=Progress("produce payments"))
    print("\n".join(summary.lines(domain, f"{topic} at {broker.bootstrap}")))

    say("draining the live run (what Ctrl-C does): readers stop where they are, open windows close")
    time.sleep(3)
    live.stop()
    panes = collections.Counter(r["timing"] for r in _results(live_sink))
    print(f"live panes written: {', '.join(f'{n} {t}' for t, n in sorted(panes.items()))}")

    from kappa.runners.cli import main

    say("replaying exactly the offsets the live run read, on DirectRunner (a batch job)")
    if main(["replay", "--manifest", str(run_dir / "manifest.json"), "--runner", "direct",
             "--sink", f"file:{replay_sink}"]) != 0:
        raise KappaError("the replay failed")
    _print_totals(replay_sink)

    # Too late follows the log, and where the clock decided live, the manifest's clock marks
    # make the replay decide the same: nothing is left out.
    say(" ".join(["kappa verify", f"file:{live_sink}", f"file:{replay_sink}"]))
    return main(["verify", f"file:{live_sink}", f"file:{replay_sink}"])


class _Live:
    """``kappa live`` as a child process; its stderr is echoed, indented."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "kappa.runners.cli", "live", *argv],
                                     stderr=subprocess.PIPE, text=True)
        self.seen = threading.Event()
        self.marker = None
        threading.Thread(target=self._echo, daemon=True).start()

    def _echo(self):
        for line in self.proc.stderr:
            if not line.startswith(("INFO:", "WARNING:")):
                sys.stderr.write(f"   live | {line}")
            if self.marker and self.marker in line:
                self.seen.set()

    def wait_for(self, marker: str, timeout_s: float) -> None:
        self.marker = marker
        deadline = time.monotonic() + timeout_s
        while not self.seen.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise KappaError("the live run did not start (its output is above)")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        if self.proc.wait(timeout=300) != 0:
            raise KappaError(f"the live run ended with exit code {self.proc.returncode} (its output is above)")


def _start_live(source: str, sink: Path, run_dir: Path) -> _Live:
    return _Live(["--pipeline", "merchant_totals", "--source", source, "--from", "earliest", "--runner", "prism",
                  *WINDOWING, "--sink", f"file:{sink}", "--run-dir", str(run_dir)])


def _results(sink: Path) -> list[dict]:
    return [r for path in window_files(sink) for r in read_window_file(path)]


def _print_totals(sink: Path) -> None:
    counts: collections.Counter = collections.Counter()
    totals: dict[str, Decimal] = collections.defaultdict(Decimal)
    for r in _results(sink):
        if r["is_last"]:
            counts[r["key"]] += r["values"]["count"]
            totals[r["key"]] += Decimal(str(r["values"]["total_amount"]))
    print(f"\n{'merchant':<20}{'payments':>10}{'total amount':>16}   (sum of the replay's final windows)")
    for merchant in sorted(counts, key=lambda m: (-counts[m], m)):
        print(f"{merchant:<20}{counts[merchant]:>10}{totals[merchant]:>16,.2f}")
