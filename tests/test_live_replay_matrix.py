"""The Kappa promise across the matrix, end to end through the ``kappa`` command and a
real broker: every pipeline x {accumulating, discarding} x {no early firing, early
firing every second}.

For each: a live run on prism, started before its data is produced (paced at the
clock, out of order, with late records), drained on SIGINT; then its manifest
replayed twice on DirectRunner. The two replays write byte-identical result and
dead-letter files; the live run and the replay drop exactly the same records as too
late, for the same reasons; and ``kappa verify`` finds every final window equal, with
no exclusions. The harder half (discarding with early firings) also runs live on the
embedded Flink.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kappa.runners.sinks import read_window_file, window_files
from tests.kafka_helpers import create_topic
from tests.test_runners import _LiveRun, _offsets_read, _readers_reporting, kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]

#: pipeline -> (domain for kappa produce, its window on prism, on Flink)
CASES = {
    "merchant_totals": ("payments", "fixed:2s", "fixed:4s"),
    "fraud_alerts": ("payments", "sliding:6s/2s", "sliding:8s/4s"),
    "turnstile_counts": ("turnstiles", "fixed:2s", "fixed:4s"),
    "user_sessions": ("commerce", "session:1s", "session:2s"),
}
COUNT = 240
#: events per second: about 4 s of event time on prism; 8 s on Flink, whose bundles are
#: longer, so that windows stay open across several early firings there too
RATE = {"prism": 60, "flink": 30}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jsonl"))}


def _results(folder: Path) -> list[dict]:
    return [json.loads(line) for name, data in _files(folder).items() if not name.endswith(".dead.jsonl")
            for line in data.splitlines()]


def _dropped(folder: Path) -> set[tuple]:
    """(partition, offset, window start, decided_by) of every too_late dead letter."""
    path = folder / "results.dead.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {(d["provenance"]["partition"], d["provenance"]["position"], d["window_start"], d["decided_by"])
            for d in records if d["reason"] == "too_late"}


def _live_then_replays(runner: str, pipeline: str, accumulation: str, early: bool, bootstrap, admin, topic,
                       tmp_path: Path) -> None:
    domain, prism_window, flink_window = CASES[pipeline]
    count = COUNT
    create_topic(admin, topic, 2)
    registry = tmp_path / "registry.json"
    live_dir, run_dir = tmp_path / "live", tmp_path / "run"
    window = prism_window if runner == "prism" else flink_window
    flags = ["--window", window, "--accumulation", accumulation, "--max-out-of-orderness", "1s",
             *(["--early-firing", "1s"] if early else [])]
    with _LiveRun("--pipeline", pipeline, "--source", f"kafka://{bootstrap}/{topic}", "--from", "latest",
                  "--registry", registry, "--runner", runner, *flags,
                  "--sink", f"file:{live_dir / 'results.jsonl'}", "--run-dir", run_dir) as run:
        run.wait_for(lambda: "running;" in run.output, "start", 120)
        run.wait_for(lambda: _readers_reporting(run_dir) == 2, "every reader reading", 120)  # not one backlog
        kappa("produce", domain, "--topic", topic, "--bootstrap", bootstrap, "--registry", registry, "--seed", "11",
              "--count", count, "--rate", RATE[runner], "--start", "now", "--disorder", "0.2", "--max-disorder", "2s",
              "--late", "0.03", "--late-by", "10s")
        run.wait_for(lambda: _offsets_read(run_dir) == count, "the reader catching up", 60)
        run.drain()

    manifest = run_dir / "manifest.json"
    replays = [tmp_path / f"replay{n}" for n in (1, 2)]
    for folder in replays:
        kappa("replay", "--manifest", manifest, "--registry", registry, "--runner", "direct",
              "--sink", f"file:{folder / 'results.jsonl'}", "--quiet")
    assert _files(replays[0]) == _files(replays[1]), "a replay is a pure function of its manifest and settings"

    finals = [r for r in _results(replays[0]) if r["is_last"]]
    assert finals, f"{pipeline}: the replay should have final windows"
    assert _dropped(live_dir), "the data has late records: some must be too late"
    assert _dropped(live_dir) == _dropped(replays[0]), "the live run and its replay drop the same records"
    verdict = kappa("verify", f"file:{live_dir / 'results.jsonl'}", f"file:{replays[0] / 'results.jsonl'}",
                    check=False)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    live = _results(live_dir)
    assert all(r["pane_index"] == 0 and r["timing"] == "ON_TIME" for r in finals), "a replay: one pane per window"
    if early:
        assert any(r["timing"] == "EARLY" for r in live), "early firings every second should show"
    for path in window_files(live_dir / "results.jsonl"):  # appended to live, compacted when the window closed
        order = [(r["key"], r["pane_index"], r["pipeline"], r["id"]) for r in read_window_file(path)]
        assert order == sorted(set(order)), f"{path.name} was not compacted: not sorted, or an id twice"


@pytest.mark.parametrize("early", [False, True], ids=["no-early", "early"])
@pytest.mark.parametrize("accumulation", ["accumulating", "discarding"])
@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_a_drained_live_run_on_prism_and_its_replays_agree_exactly(pipeline, accumulation, early, kafka_bootstrap,
                                                                     kafka_admin, topic_name, tmp_path):
    _live_then_replays("prism", pipeline, accumulation, early, kafka_bootstrap, kafka_admin, topic_name, tmp_path)


@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_a_drained_discarding_live_run_with_early_panes_on_flink_and_its_replays_agree_exactly(
        pipeline, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    _live_then_replays("flink", pipeline, "discarding", True, kafka_bootstrap, kafka_admin, topic_name, tmp_path)
