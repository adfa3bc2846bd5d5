"""A live run killed with SIGKILL and restarted on its group loses no window and gets
none wrong (issue 11: a commit means durable).

While payments are produced at the clock, ``kappa live`` (its whole process tree: the
launcher, prism or the Flink job server) is killed with SIGKILL three times, at
different moments, and restarted each time with the same command on the same group.
At the end the last run is drained, the whole topic is replayed on DirectRunner, and
``kappa verify`` must find every final window of the live result files equal to the
replay's, none missing, none extra. A restart rebuilds the windows open at the kill from
the log (the commit is the lowest offset not yet durably done) and emits nothing for the
windows written before it (no partial value under a final id).
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
from tests.test_runners import _env, _LiveRun, kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners, pytest.mark.faults]

COUNT, RATE = 1800, 40  #: 45 s of payments on 2 partitions


class _KillableRun(_LiveRun):
    """``kappa live`` in its own process group, so SIGKILL takes its runner's processes too;
    its stderr also goes to ``log``."""

    def __init__(self, args, log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "kappa.runners.cli", "live", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            self.log.write(line)
            self.log.flush()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def _read_to(run_dir: Path) -> dict[int, int]:
    """Partition -> the position its reader reports in this run."""
    found = {}
    for path in (run_dir / "progress").glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        found[data["partition"]] = data["position"]
    return found


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kappa-test-ends"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)}
    finally:
        consumer.close()


@pytest.mark.parametrize("runner, pipeline, domain, window", [
    ("prism", "merchant_totals", "payments", "fixed:4s"),
    ("flink", "merchant_totals", "payments", "fixed:4s"),
    # A session's offsets are held where it is open. This case failed 1 CI run in 3 until
    # kappa's prism kept a split bundle's keys (runners/local/prism.patch):
    # a second bundle had run the key, closing a lone proto-session of a record whose next
    # record, the same key's, was still in the first bundle.
    ("prism", "user_sessions", "commerce", "session:1s"),
])
def test_a_live_run_killed_three_times_and_restarted_agrees_with_a_replay_of_the_whole_topic(
        runner, pipeline, domain, window, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    group = f"{topic_name}-live"
    windowing = ["--window", window, "--max-out-of-orderness", "2s"]
    flags = ["--pipeline", pipeline, "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
             "--registry", registry, "--runner", runner, *windowing, "--early-firing", "1s",
             "--group", group, "--sink", f"file:{tmp_path / 'live' / 'results.jsonl'}"]
    producer = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "produce", domain, "--topic", topic_name, "--bootstrap",
         kafka_bootstrap, "--registry", registry, "--seed", "5", "--count", str(COUNT), "--rate", str(RATE),
         "--start", "now", "--disorder", "0.2", "--max-disorder", "1s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        # Killed 3 s, 9 s and 5 s after each run starts reading: mid-window, with panes being written.
        for n, runs_for in enumerate((3, 9, 5)):
            run = _KillableRun([*flags, *(["--from", "earliest"] if n == 0 else []),
                                "--run-dir", tmp_path / f"run{n}"], tmp_path / f"run{n}.log")
            run.wait_for(lambda: "running;" in run.output, "start", 180)
            run.wait_for(lambda: sum(_read_to(tmp_path / f"run{n}").values()) > 0, "records read", 60)
            time.sleep(runs_for)
            run.kill()
        assert producer.wait(timeout=180) == 0, producer.stderr.read()
        ends = _ends(kafka_bootstrap, topic_name)
        last = _KillableRun([*flags, "--run-dir", tmp_path / "last"], tmp_path / "last.log")
        last.wait_for(lambda: "running;" in last.output, "start", 180)
        last.wait_for(lambda: _read_to(tmp_path / "last") == ends, "the last run reading to the end", 120)
        time.sleep(2)
        last.drain()
    finally:
        if producer.poll() is None:
            producer.kill()

    kappa("replay", "--pipeline", pipeline, "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
          "--from", "earliest", "--to", "now", "--registry", registry, "--runner", "direct", *windowing,
          "--sink", f"file:{tmp_path / 'replay' / 'results.jsonl'}", "--quiet")
    verdict = kappa("verify", f"file:{tmp_path / 'live' / 'results.jsonl'}",
                    f"file:{tmp_path / 'replay' / 'results.jsonl'}", check=False)
    assert verdict.returncode == 0, verdict.stdout[-4000:] + verdict.stderr[-2000:]
    assert " 0 missing in B, 0 extra in B, 0 not final, 0 excluded" in verdict.stdout, verdict.stdout[-2000:]


def _written(out: Path) -> int:
    """Bytes in the result files under ``out`` (they grow as panes are written)."""
    return sum(path.stat().st_size for path in out.glob("*.jsonl")) if out.exists() else 0


@pytest.mark.pubsub
@pytest.mark.parametrize("runner", ["prism", "flink"])
def test_a_live_pubsub_run_killed_and_restarted_agrees_with_a_replay_of_the_topic(runner, pubsub_host, tmp_path):
    """The same on Pub/Sub: messages stay unacked (their deadlines extended) until done,
    so a killed run's open windows come back to the restarted run as redeliveries. Each
    run is killed 4 s and 8 s after it has written a pane."""
    import uuid

    from google.protobuf.duration_pb2 import Duration

    from kappa.runners.local.pubsub import DEFAULT_PROJECT, emulator_clients
    from kappa.schemas import make_codec
    from tests.kafka_helpers import payment_at

    publisher, subscriber = emulator_clients(pubsub_host)
    name = f"crash-{uuid.uuid4().hex[:10]}"
    topic = publisher.topic_path(DEFAULT_PROJECT, name)
    publisher.create_topic(request={"name": topic, "message_retention_duration": Duration(seconds=3600)})
    subscriber.create_subscription(request={"name": subscriber.subscription_path(DEFAULT_PROJECT, name),
                                            "topic": topic, "ack_deadline_seconds": 10})
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host  # inherited by the children
    windowing = ["--window", "fixed:4s", "--max-out-of-orderness", "2s", "--format", "json"]
    flags = ["--pipeline", "merchant_totals", "--source", f"pubsub://{DEFAULT_PROJECT}/{name}", "--runner", runner,
             *windowing, "--early-firing", "1s", "--sink", f"file:{tmp_path / 'live' / 'totals.jsonl'}"]
    codec = make_codec("json", "payment")
    stop = threading.Event()

    def publish():  # 30/s at the clock, in order
        n = 0
        while not stop.is_set() and n < 1200:
            publisher.publish(topic, codec.encode(payment_at(int(time.time() * 1000), n))).result(30)
            n += 1
            time.sleep(1 / 30)

    producer = threading.Thread(target=publish, daemon=True)
    try:
        for n, runs_for in enumerate((4, 8)):
            run = _KillableRun([*flags, "--run-dir", tmp_path / f"run{n}"], tmp_path / f"run{n}.log")
            written = _written(tmp_path / "live")
            run.wait_for(lambda: "running;" in run.output, "start", 180)
            if n == 0:
                producer.start()
            run.wait_for(lambda: _written(tmp_path / "live") > written, "a pane written", 120)
            time.sleep(runs_for)
            run.kill()
        last = _KillableRun([*flags, "--run-dir", tmp_path / "last"], tmp_path / "last.log")
        last.wait_for(lambda: "running;" in last.output, "start", 180)
        producer.join(timeout=120)
        last.wait_for(lambda: "waits for them" in last.output, "the restart waiting for held messages", 10)
        time.sleep(30)  # the redeliveries of what the killed runs held (their deadline, then the wait)
        last.drain()
    finally:
        stop.set()

    kappa("replay", "--pipeline", "merchant_totals", "--source", f"pubsub://{DEFAULT_PROJECT}/{name}",
          "--from", "earliest", "--to", "now", "--runner", "direct", *windowing,
          "--sink", f"file:{tmp_path / 'replay' / 'totals.jsonl'}", "--quiet")
    verdict = kappa("verify", f"file:{tmp_path / 'live' / 'totals.jsonl'}",
                    f"file:{tmp_path / 'replay' / 'totals.jsonl'}", check=False)
    assert verdict.returncode == 0, verdict.stdout[-4000:]
    assert " 0 missing in B, 0 extra in B, 0 not final, 0 excluded" in verdict.stdout
    counted = sum(json.loads(line)["count"] for path in (tmp_path / "replay").glob("totals-*.jsonl")
                  for line in path.read_text().splitlines() if json.loads(line)["is_last"])
    assert counted == 1200
