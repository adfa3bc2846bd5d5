"""A minimal reproduction of Beam prism (v2.77.0) losing a stateful DoFn's updates, and
the check that kappa's patched prism does not.

    .venv/bin/python bench/prism_state_repro.py [--runs 4] [--events 6000 | --timers 25] [--compare]

A ten-line stateful DoFn counts per key in a ReadModifyWriteState and emits (key, n) per
element; the largest n per key must be the key's number of elements. Every 600th element
sleeps 1 s, as a busy worker (a GC pause, the GIL, a slow write) stalls now and then.

The mechanism: prism asks for a split of any bundle that shows no progress for one
progress tick (100 ms, ``stage.go``; every SDK stage is splittable, stateful ones
included). The SDK splits at an element; ``splitBundle`` (``engine/elementmanager.go``)
then frees every key of the residual elements, including the key the primary is still
working on. That key's residual elements are scheduled in a second bundle at once, on
the state committed before the first bundle, and the bundle that persists last
overwrites the other's updates. (Beam promises one bundle per key at a time,
apache/beam#28543.) ``runners/local/prism.patch`` keeps such a key in
progress with the primary; ``kappa local install`` builds prism with it.

``--timers SECONDS`` is the second case: the counter on a live stream (PeriodicImpulse,
250 elements a second), each key also keeping an event-time timer whose callback
writes the key's state back and is slow for two keys. A bundle then carries data and
timers, and prism's list of its elements interleaves them, while the SDK's split point
counts data elements only and the SDK runs every timer anyway: cutting that list there
gives a key to a second bundle while the first still runs it (prism warns "Unexpected
split on a bundle with timers", apache/beam#35771). kappa's patch keeps the timers with
the primary and cuts the data elements where the SDK did.

``--compare`` also builds Beam's prism unpatched (``go install``, into a temporary
directory) and runs the same pipeline on both, side by side. ``--prism PATH`` runs one
binary. Before the mechanism was known, the reproduction fed the counter from kappa's
Kafka reader (lossy 3 of 6 runs on 200,000 records, exact after a Reshuffle); any source
does, once a bundle of the stateful stage is slow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = 50
SLOW_EVERY = 600
SLOW_S = 1.0
SLOW_TIMER_KEYS = ("k0", "k25")


def expected_counts(elements: int) -> dict[str, int]:
    """Each key's number of elements, element i going to key ``k{i % KEYS}``."""
    return {f"k{k}": len(range(k, elements, KEYS)) for k in range(KEYS)}


def count_per_key(prism: str, events: int) -> dict[str, int]:
    """Run the counter on ``prism``; the largest count each key reached."""
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    class CountFn(beam.DoFn):
        COUNT = ReadModifyWriteStateSpec("n", VarIntCoder())

        def process(self, element, count=beam.DoFn.StateParam(COUNT)):
            n = (count.read() or 0) + 1
            count.write(n)
            if element[1] % SLOW_EVERY == 0:
                time.sleep(SLOW_S)  # no progress for a few ticks: prism splits the bundle
            yield element[0], n

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "counts")
        options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK",
                                   "--experiments=disable_prism_server_singleton"])  # this binary, not a shared one
        with beam.Pipeline(options=options) as p:
            (p | beam.Create([(f"k{i % KEYS}", i) for i in range(events)])
             | beam.ParDo(CountFn())
             | beam.CombinePerKey(max)
             | beam.Map(lambda kv: f"{kv[0]}\t{kv[1]}")
             | beam.io.WriteToText(out))
        return _largest(tmp)


def count_per_key_with_timers(prism: str, seconds: float) -> tuple[dict[str, int], dict[str, int]]:
    """The counter on a live stream whose keys also have an event-time timer, and whose
    timer callbacks are slow for two keys; (the largest count each key reached, the
    number of elements each key had)."""
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.periodicsequence import PeriodicImpulse
    from apache_beam.transforms.timeutil import TimeDomain
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer

    class CountWithTimerFn(beam.DoFn):
        COUNT = ReadModifyWriteStateSpec("n", VarIntCoder())
        TICK = TimerSpec("tick", TimeDomain.WATERMARK)

        def process(self, element, timestamp=beam.DoFn.TimestampParam, count=beam.DoFn.StateParam(COUNT),
                    tick=beam.DoFn.TimerParam(TICK)):
            n = (count.read() or 0) + 1
            count.write(n)
            tick.set(timestamp + 0.05)
            yield element[0], n

        @on_timer(TICK)
        def fire(self, key=beam.DoFn.KeyParam, count=beam.DoFn.StateParam(COUNT)):
            n = count.read() or 0
            count.write(n)  # a timer's bundle writes the key's state back too
            if key in SLOW_TIMER_KEYS:
                time.sleep(0.4)  # no progress for a few ticks, with data queued behind the timers
            yield key, n

    interval = 0.004
    start = time.time() + 3  # once the pipeline is up
    sequence = int(seconds / interval)

    def numbered(t: float) -> tuple[str, int]:
        i = int(round((t - start) / interval))
        return f"k{i % KEYS}", i

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "counts")
        options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={prism}", "--environment_type=LOOPBACK",
                                   "--experiments=disable_prism_server_singleton", "--streaming"])
        with beam.Pipeline(options=options) as p:
            (p | PeriodicImpulse(start_timestamp=start, stop_timestamp=start + seconds, fire_interval=interval)
             | beam.Map(numbered)
             | "Global" >> beam.WindowInto(beam.window.GlobalWindows())
             | beam.ParDo(CountWithTimerFn())
             | "One window" >> beam.WindowInto(beam.window.FixedWindows(10**9))
             | beam.CombinePerKey(max)
             | beam.Map(lambda kv: f"{kv[0]}\t{kv[1]}")
             | beam.io.WriteToText(out))
        return _largest(tmp), expected_counts(sequence)


def _largest(folder: str) -> dict[str, int]:
    best: dict[str, int] = {}
    for name in os.listdir(folder):
        for line in Path(folder, name).read_text().splitlines():
            key, n = line.split("\t")
            best[key] = max(best.get(key, 0), int(n))
    return best


def upstream_prism(into: Path) -> str:
    """Beam's prism as published, built with ``go install``."""
    from kappa.runners.local.tools import BEAM_VERSION, PRISM_MODULE_ROOT

    subprocess.run(["go", "install", f"{PRISM_MODULE_ROOT}/go/cmd/prism@v{BEAM_VERSION}"], check=True,
                   env={**os.environ, "GOBIN": str(into), "GOFLAGS": "-mod=mod"})
    return str(into / "prism")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--prism", help="run this prism binary only (default: kappa's patched prism)")
    parser.add_argument("--name", default="kappa's prism", help=argparse.SUPPRESS)
    parser.add_argument("--compare", action="store_true", help="also run Beam's unpatched prism, side by side")
    parser.add_argument("--timers", type=float, metavar="SECONDS",
                        help="the case with timers instead: a live stream of SECONDS, keys with event-time timers")
    args = parser.parse_args()

    from kappa.runners.local.tools import install_prism

    if not args.compare:
        prism = args.prism or str(install_prism())
        for run in range(1, args.runs + 1):
            if args.timers:
                best, expected = count_per_key_with_timers(prism, args.timers)
            else:
                best = count_per_key(prism, args.events)
                expected = expected_counts(args.events)
            short = sorted(k for k in expected if best.get(k) != expected[k])
            lost = sum(expected.values()) - sum(best.get(k, 0) for k in expected)
            verdict = "exact" if not short else f"LOST {lost:,} updates on {len(short)} keys"
            print(f"run {run} {args.name:>14}: {verdict}", flush=True)
        return
    # One process per run, so that neither binary's run can affect the other's.
    tmp = Path(tempfile.mkdtemp())
    try:
        binaries = {"upstream prism": upstream_prism(tmp), "kappa's prism": args.prism or str(install_prism())}
        for run in range(1, args.runs + 1):
            for name, binary in binaries.items():
                case = ["--timers", str(args.timers)] if args.timers else ["--events", str(args.events)]
                out = subprocess.run([sys.executable, __file__, "--prism", binary, "--name", name, "--runs", "1", *case],
                                     capture_output=True, text=True, check=True)
                print(out.stdout.strip().replace("run 1", f"run {run}"), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
