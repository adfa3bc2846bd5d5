"""Stopping kappa with a signal ends what it started: a replay stopped by SIGTERM or
Ctrl-C exits 130 with one line, and no runner process (prism's binary, a Flink job
server) outlives it (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.kafka_helpers import create_topic
from tests.test_crash_restart import _read_to
from tests.test_runners import _env, kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]


def _session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("runner, signum", [("prism", signal.SIGTERM), ("flink", signal.SIGINT)])
def test_a_replay_stopped_by_a_signal_exits_130_and_leaves_no_runner_process(
        runner, signum, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    kappa("produce", "payments", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", registry,
          "--count", "200000", "--rate", "1000", "--start", "2026-11-20T09:00:00Z", "--no-wait", timeout=600)
    run_dir = tmp_path / "run"
    replay = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "replay", "--pipeline", "merchant_totals", "--source",
         f"kafka://{kafka_bootstrap}/{topic_name}", "--from", "earliest", "--to", "now", "--registry", str(registry),
         "--runner", runner, "--run-dir", str(run_dir), "--sink", f"file:{tmp_path / 'out' / 'totals.jsonl'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while sum(_read_to(run_dir).values()) == 0:
            assert replay.poll() is None, replay.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the replay did not start reading"
            time.sleep(0.1)
        replay.send_signal(signum)
        assert replay.wait(timeout=60) == 130
        err = replay.stderr.read()
        assert err.rstrip().splitlines()[-1] == "kappa: interrupted", err[-3000:]
        assert "Traceback" not in err, err[:6000]
        deadline = time.monotonic() + 10
        while _session_alive(replay.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _session_alive(replay.pid), "a runner process outlived kappa"
    finally:
        if _session_alive(replay.pid):
            os.killpg(replay.pid, signal.SIGKILL)
