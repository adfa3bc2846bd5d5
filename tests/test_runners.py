"""The same pipeline on every runner, end to end through the ``kappa`` command, against
the real broker: prism and an embedded Flink (Beam's job server, installed by
``kappa local install``), DirectRunner, and the Dataflow job built offline.

* A replay manifest run on DirectRunner and on Flink writes identical result files.
* A live run (prism, Flink) emits early and on-time panes for records produced after
  it started, drains on SIGINT, saves the offsets it read; replaying them on
  DirectRunner gives results ``kappa verify`` finds equal, window by window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.kafka_helpers import create_topic

pytestmark = [pytest.mark.kafka, pytest.mark.runners]

START = "2026-11-20T09:00:00Z"


def kappa(*args, check: bool = True, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "kappa.runners.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=cwd)
    if check and done.returncode != 0:
        raise AssertionError(f"kappa {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _produce(bootstrap, topic, registry, *extra) -> None:
    kappa("produce", "payments", "--topic", topic, "--bootstrap", bootstrap, "--registry", registry,
          "--seed", "7", "--disorder", "0.2", "--max-disorder", "2s", *extra)


def _window_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("totals-*.jsonl"))}


def _results(folder: Path) -> list[dict]:
    return [json.loads(line) for data in _window_files(folder).values() for line in data.splitlines()]


def test_a_replay_manifest_gives_identical_result_files_on_direct_and_flink(kafka_bootstrap, kafka_admin, topic_name,
                                                                             tmp_path):
    create_topic(kafka_admin, topic_name, 4)
    registry = tmp_path / "registry.json"
    _produce(kafka_bootstrap, topic_name, registry, "--count", "3000", "--rate", "20", "--start", START,
             "--no-wait", "--late", "0.01", "--late-by", "2m")
    manifest = tmp_path / "plan.json"
    kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", registry, "--save", manifest)

    # direct in two processes (each reading two of the partitions) and as it defaults to for
    # a replay this small (one, kappa's own: ONE_WORKER_BELOW); Flink with two workers.
    for side, runner, extra in (("direct", "direct", ["--parallelism", "2"]), ("direct-1", "direct", []),
                                ("flink", "flink", ["--parallelism", "2"])):
        kappa("replay", "--pipeline", "merchant_totals", "--manifest", manifest, "--registry", registry,
              "--runner", runner, "--sink", f"file:{tmp_path / side / 'totals.jsonl'}", "--quiet",
              "--run-dir", tmp_path / side / "run", *extra)

    assert len(_reader_processes(tmp_path / "direct" / "run")) == 2
    assert len(_reader_processes(tmp_path / "direct-1" / "run")) == 1
    direct, flink = _window_files(tmp_path / "direct"), _window_files(tmp_path / "flink")
    assert len(direct) >= 2, "the replay should span several windows"
    assert direct == flink == _window_files(tmp_path / "direct-1")
    results = _results(tmp_path / "direct")
    assert sum(r["count"] for r in results if r["is_last"]) + _dead_count(tmp_path / "direct") == 3000
    assert (tmp_path / "flink" / "totals.dead.jsonl").read_bytes() == (tmp_path / "direct" / "totals.dead.jsonl").read_bytes()


def _reader_processes(run_dir: Path) -> set[int]:
    """The worker processes whose readers reported progress in a run."""
    return {json.loads(p.read_text())["pid"] for p in (run_dir / "progress").glob("*.json")}


def _dead_count(folder: Path) -> int:
    path = folder / "totals.dead.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


class _LiveRun:
    """``kappa live`` in a child process, its stderr collected as it comes."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "kappa.runners.cli", "live", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
                                     start_new_session=True)  # its group: a failed test ends its job server too
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def drain(self) -> None:
        """SIGINT, as Ctrl-C: the run must drain and exit 0."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=120) == 0, self.output[-3000:]
        assert "draining" in self.output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # kappa and the runner it started, if still there
        except ProcessLookupError:
            pass

    def wait_for(self, condition, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"kappa live exited {self.proc.returncode} while waiting for {what}:\n"
                                     f"{self.output[-3000:]}")
            time.sleep(0.5)
        self.proc.kill()
        raise AssertionError(f"no {what} after {timeout_s:.0f}s:\n{self.output[-3000:]}")


@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_a_live_run_emits_early_and_on_time_panes_then_drains_to_a_replay_that_agrees(
        runner, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    _produce(kafka_bootstrap, topic_name, registry, "--count", "5", "--rate", "100", "--no-wait")  # older data
    live_dir, run_dir = tmp_path / "live", tmp_path / "run"
    with _LiveRun("--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
                  "--from", "latest", "--registry", registry, "--runner", runner, "--window", "fixed:4s",
                  "--early-firing", "1s", "--max-out-of-orderness", "2s", "--sink", f"file:{live_dir / 'totals.jsonl'}",
                  "--run-dir", run_dir) as run:
        run.wait_for(lambda: "running;" in run.output, "start", 120)
        run.wait_for(lambda: _readers_reporting(run_dir) == 2, "every reader reading", 120)
        _produce(kafka_bootstrap, topic_name, registry, "--count", "300", "--rate", "30", "--start", "now")
        timings = lambda: {r["timing"] for r in _results(live_dir)}  # noqa: E731
        run.wait_for(lambda: {"EARLY", "ON_TIME"} <= timings(), "early and on-time panes", 90)
        run.wait_for(lambda: _offsets_read(run_dir) == 300, "the reader catching up", 60)
        run.drain()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    read = sum(r["stop"] - r["start"] for r in manifest["ranges"])
    assert read == 300, "the live run started at the end of the log and, caught up, read all produced after"
    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          "--sink", f"file:{tmp_path / 'replay' / 'totals.jsonl'}", "--quiet")
    # Too late follows the log, and where the clock decided live, the drained manifest's clock
    # marks make the replay decide alike: the same records dropped, for the same reason.
    live_late = _too_late(live_dir / "totals.dead.jsonl")
    assert _too_late(tmp_path / "replay" / "totals.dead.jsonl") == live_late
    verdict = kappa("verify", f"file:{live_dir / 'totals.jsonl'}", f"file:{tmp_path / 'replay' / 'totals.jsonl'}",
                    check=False)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert sum(r["count"] for r in _results(tmp_path / "replay") if r["is_last"]) == 300


def _too_late(dead_letters: Path) -> dict[tuple[int, int], str]:
    """(partition, offset) -> decided_by of every too_late dead letter in the file (none if absent)."""
    if not dead_letters.exists():
        return {}
    records = [json.loads(line) for line in dead_letters.read_text().splitlines() if line.strip()]
    return {(d["provenance"]["partition"], d["provenance"]["position"]): d["decided_by"]
            for d in records if d["reason"] == "too_late"}


def _readers_reporting(run_dir: Path) -> int:
    """Partitions whose live reader has reported, at the latest once at the end of its
    partition: "running;" comes as the job is submitted, and Flink deploys its tasks for
    seconds after, so data produced before this would reach the readers as one backlog."""
    return len(list((run_dir / "progress").glob("*.json")))


def _offsets_read(run_dir: Path) -> int:
    """Offsets the live run has read so far, from its readers' progress reports."""
    starts = {r["partition"]: r["start"] for r in json.loads((run_dir / "live-manifest.json").read_text())["ranges"]}
    reports = [json.loads(p.read_text()) for p in (run_dir / "progress").glob("*.json")]
    return sum(r["position"] - starts[r["partition"]] for r in reports)


def test_the_dataflow_job_is_built_and_checked_offline(kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    _produce(kafka_bootstrap, topic_name, registry, "--count", "10", "--no-wait")
    job_file = tmp_path / "job.json"
    common = ["--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
              "--registry", registry, "--runner", "dataflow", "--project", "kappa-test", "--region", "europe-west1",
              "--sink", f"kafka://{kafka_bootstrap}/{topic_name}-totals", "--dry-run"]
    kappa("live", *common, "--temp-location", "gs://kappa-test/tmp", "--max-num-workers", "4", "--job-file", job_file)

    job = json.loads(job_file.read_text())
    assert job["type"] == "JOB_TYPE_STREAMING"
    assert job["options"]["enable_streaming_engine"] is True
    assert job["options"]["max_num_workers"] == 4
    assert job["options"]["staging_location"].startswith("gs://kappa-test/tmp/staging/")
    assert any(t.startswith("Read/") and "_ReadPartitionLiveFn" in t for t in job["transforms"])
    assert any("_WindowPerKeyFn" in t for t in job["transforms"])
    assert any(t.startswith("WriteResults/") for t in job["transforms"])
    (environment,) = job["environments"].values()
    assert environment["urn"] == "beam:env:docker:v1"
    assert environment["image"].endswith(":2.77.0")
    assert "workflow.tar.gz" in environment["staged_files"], "kappa itself must be staged for the workers"

    missing = kappa("replay", *common, check=False)  # no --temp-location
    assert missing.returncode == 2
    assert missing.stderr.strip() == "kappa: error: --runner dataflow: --temp-location is required"


@pytest.mark.pubsub
@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_a_live_pubsub_run_drains_with_every_message_in_a_final_window(runner, pubsub_host, tmp_path):
    import uuid

    from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
    from kappa.schemas import make_codec
    from tests.kafka_helpers import payment_at

    publisher, subscriber = emulator_clients(pubsub_host)
    name = f"live-{uuid.uuid4().hex[:10]}"
    topic = publisher.topic_path(DEFAULT_PROJECT, name)
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(request={"name": subscriber.subscription_path(DEFAULT_PROJECT, name),
                                            "topic": topic})
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host  # inherited by the child
    out = tmp_path / "live"
    with _LiveRun("--pipeline", "merchant_totals", "--source", f"pubsub://{DEFAULT_PROJECT}/{name}",
                  "--format", "json", "--runner", runner, "--window", "fixed:4s", "--max-out-of-orderness", "1s",
                  "--sink", f"file:{out / 'totals.jsonl'}", "--run-dir", tmp_path / "run") as run:
        run.wait_for(lambda: "running;" in run.output, "start", 120)
        codec = make_codec("json", "payment")
        now = int(time.time() * 1000)
        for n in range(200):
            publisher.publish(topic, codec.encode(payment_at(now + n * 50, n))).result(30)
        run.wait_for(lambda: any(r["timing"] == "ON_TIME" for r in _results(out)), "an on-time pane", 90)
        time.sleep(5)  # all 200 were published before: a pull or two more and the reader has them all
        run.drain()
    assert sum(r["count"] for r in _results(out) if r["is_last"]) == 200
