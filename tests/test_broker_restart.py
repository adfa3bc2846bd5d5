"""The broker stopped and started again in the middle of a replay and of a live run:
both finish, with results equal to an undisturbed run (issue 11). librdkafka reconnects
beneath the reader; the reader raises only on errors that are not transient.

Each test has its own broker (the session's serves the other tests), on free ports, and
stops it for several seconds once the run is reading."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kappa.runners.home import kappa_home
from kappa.runners.local.kafka import KafkaBroker
from kappa.runners.local.process import free_port
from tests.kafka_helpers import create_topic
from tests.test_crash_restart import _KillableRun, _ends, _read_to
from tests.test_runners import _env, kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners, pytest.mark.faults]

OUTAGE_S = 8


@pytest.fixture
def broker(tmp_path):
    broker = KafkaBroker(kappa_home(), tmp_path / "broker", port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def _outage(broker: KafkaBroker) -> None:
    assert broker.stop()
    time.sleep(OUTAGE_S)
    broker.start()


def _window_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jsonl"))}


def test_a_replay_survives_a_broker_restart_with_results_equal_to_an_undisturbed_replay(broker, tmp_path):
    topic, registry = "payments-restart", tmp_path / "registry.json"
    create_topic(_admin(broker.bootstrap), topic, 2)
    kappa("produce", "payments", "--topic", topic, "--bootstrap", broker.bootstrap, "--registry", registry,
          "--seed", "3", "--count", "300000", "--rate", "500", "--start", "2026-11-20T09:00:00Z", "--no-wait",
          "--disorder", "0.1", "--max-disorder", "5s", "--late", "0.001", "--late-by", "1m", timeout=600)
    run_dir = tmp_path / "disturbed-run"
    replay = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "replay", "--pipeline", "merchant_totals", "--source",
         f"kafka://{broker.bootstrap}/{topic}", "--from", "earliest", "--to", "now", "--registry", str(registry),
         "--runner", "direct", "--run-dir", str(run_dir), "--sink", f"file:{tmp_path / 'disturbed' / 'totals.jsonl'}",
         "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while sum(_read_to(run_dir).values()) == 0:
        assert replay.poll() is None and time.monotonic() < deadline, replay.stderr.read()[-3000:]
        time.sleep(0.1)
    _outage(broker)
    assert replay.wait(timeout=300) == 0, replay.stderr.read()[-3000:]
    assert sum(_read_to(run_dir).values()) == 300000

    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          "--sink", f"file:{tmp_path / 'undisturbed' / 'totals.jsonl'}", "--quiet")
    disturbed, undisturbed = _window_files(tmp_path / "disturbed"), _window_files(tmp_path / "undisturbed")
    assert len(undisturbed) >= 10  # 10 minutes of 1-minute windows
    assert disturbed == undisturbed


def test_a_live_run_survives_a_broker_restart_and_agrees_with_a_replay_of_what_it_read(broker, tmp_path):
    topic, registry = "payments-live-restart", tmp_path / "registry.json"
    create_topic(_admin(broker.bootstrap), topic, 2)
    live_dir, run_dir = tmp_path / "live", tmp_path / "run"
    run = _KillableRun(["--pipeline", "merchant_totals", "--source", f"kafka://{broker.bootstrap}/{topic}",
                        "--from", "earliest", "--registry", registry, "--runner", "prism", "--window", "fixed:4s",
                        "--early-firing", "1s", "--max-out-of-orderness", "2s",
                        "--sink", f"file:{live_dir / 'totals.jsonl'}", "--run-dir", run_dir], tmp_path / "live.log")
    try:
        run.wait_for(lambda: "running;" in run.output, "start", 180)
        producer = subprocess.Popen(
            [sys.executable, "-m", "kappa.runners.cli", "produce", "payments", "--topic", topic, "--bootstrap",
             broker.bootstrap, "--registry", str(registry), "--seed", "4", "--count", "1200", "--rate", "40",
             "--start", "now", "--disorder", "0.2", "--max-disorder", "1s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        run.wait_for(lambda: sum(_read_to(run_dir).values()) > 100, "records read", 60)
        _outage(broker)
        assert producer.wait(timeout=180) == 0, producer.stderr.read()[-3000:]
        ends = _ends(broker.bootstrap, topic)
        run.wait_for(lambda: _read_to(run_dir) == ends, "the run reading to the end", 120)
        time.sleep(2)
        run.drain()
    finally:
        run.kill()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {r["partition"]: r["stop"] for r in manifest["ranges"]} == ends

    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          "--sink", f"file:{tmp_path / 'replay' / 'totals.jsonl'}", "--quiet")
    verdict = kappa("verify", f"file:{live_dir / 'totals.jsonl'}", f"file:{tmp_path / 'replay' / 'totals.jsonl'}",
                    check=False)
    assert verdict.returncode == 0, verdict.stdout[-4000:]
    assert " 0 missing in B, 0 extra in B, 0 not final, 0 excluded" in verdict.stdout
