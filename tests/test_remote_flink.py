"""kappa on a remote Flink: a standalone Flink 1.19 session cluster (its own JobManager
and TaskManager JVMs, from Flink's jars: ``runners/local/flink_cluster.py``), the job
submitted over its REST API, Python workers started by the TaskManager from Beam's boot
program (``--environment-type PROCESS``), so nothing runs in kappa's process.

* A replay writes the same files, byte for byte, as DirectRunner does from the same
  manifest, with the registry named by a path relative to the launcher's directory,
  which the workers (started elsewhere) cannot open: the schemas travel with the job.
* A live run shows its readers' lag from Flink's metrics (REST) and drains through
  Flink's REST API (stop-with-savepoint with drain): nothing goes through the run directory, the savepoint completes, the readers' positions come
  back as job metrics into the drained manifest, and a replay of it on DirectRunner is
  found equal by ``kappa verify``.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.kafka_helpers import create_topic
from tests.test_runners import START, _LiveRun, _produce, _results, _window_files, kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]

REMOTE = ("--runner", "flink", "--environment-type", "PROCESS")


def _rest(master: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{master}{path}", timeout=10) as response:
        return json.load(response)


def _savepoints(master: str, job_id: str, settle_s: float = 15.0) -> list[str]:
    """The statuses of a finished job's savepoints; Flink's statistics may show the final one
    IN_PROGRESS for a moment after the job has FINISHED (seen once in three runs)."""
    deadline = time.monotonic() + settle_s
    while True:
        statuses = [c["status"] for c in _rest(master, f"/jobs/{job_id}/checkpoints")["history"] if c["is_savepoint"]]
        if "IN_PROGRESS" not in statuses or time.monotonic() > deadline:
            return statuses
        time.sleep(0.5)


def test_a_replay_on_a_standalone_flink_cluster_writes_the_files_direct_writes(
        flink_master, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 4)
    _produce(kafka_bootstrap, topic_name, tmp_path / "registry.json", "--count", "3000", "--rate", "20",
             "--start", START, "--no-wait", "--late", "0.01", "--late-by", "2m")
    # Relative to the launcher's directory: a worker reading the path would find nothing there.
    kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", "registry.json",
          "--save", "plan.json", cwd=tmp_path)
    for runner in (("--runner", "direct"), (*REMOTE, "--flink-master", flink_master)):
        out = tmp_path / runner[1] / "totals.jsonl"
        kappa("replay", "--pipeline", "merchant_totals", "--manifest", "plan.json", "--registry", "registry.json",
              *runner, "--sink", f"file:{out}", "--quiet", cwd=tmp_path)

    direct, flink = _window_files(tmp_path / "direct"), _window_files(tmp_path / "flink")
    assert len(direct) >= 2, "the replay should span several windows"
    assert direct == flink
    assert (tmp_path / "flink" / "totals.dead.jsonl").read_bytes() == (tmp_path / "direct" / "totals.dead.jsonl").read_bytes()
    assert sum(r["count"] for r in _results(tmp_path / "flink") if r["is_last"]) > 2900, "records were decoded"
    finished = [j for j in _rest(flink_master, "/jobs/overview")["jobs"] if j["state"] == "FINISHED"]
    assert finished, "the replay ran on the cluster"


def test_a_live_run_on_a_standalone_flink_cluster_drains_through_its_rest_api(
        flink_master, kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    _produce(kafka_bootstrap, topic_name, registry, "--count", "600", "--rate", "20", "--start", START, "--no-wait")
    live_dir, run_dir, job_name = tmp_path / "live", tmp_path / "run", f"kappa-remote-{topic_name[-8:]}"
    with _LiveRun("--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
                  "--from", "earliest", "--registry", registry, *REMOTE, "--flink-master", flink_master,
                  "--job-name", job_name, "--group", topic_name, "--sink", f"file:{live_dir / 'totals.jsonl'}",
                  "--run-dir", run_dir) as run:
        run.wait_for(lambda: _window_files(live_dir), "the backlog's windows closing", 180)
        run.wait_for(lambda: "lag p0=0 p1=0" in run.output, "progress from Flink's metrics, caught up", 60)
        _produce(kafka_bootstrap, topic_name, registry, "--count", "100", "--rate", "50", "--start", "now")
        run.drain()  # SIGINT: kappa asks Flink for stop-with-savepoint with drain

    (job,) = [j for j in _rest(flink_master, "/jobs/overview")["jobs"] if j["name"] == job_name]
    assert job["state"] == "FINISHED"
    assert _savepoints(flink_master, job["jid"]) == ["COMPLETED"], "Flink's stop-with-savepoint ended the job"
    assert not (run_dir / "stop").exists() and not (run_dir / "progress").exists(), "nothing went through the run dir"

    manifest = json.loads((run_dir / "manifest.json").read_text())
    read = sum(r["stop"] - r["start"] for r in manifest["ranges"])
    assert 600 <= read <= 700
    dead = (live_dir / "totals.dead.jsonl").read_text().splitlines() if (live_dir / "totals.dead.jsonl").exists() else []
    assert sum(r["count"] for r in _results(live_dir) if r["is_last"]) + len(dead) == read, \
        "every record the drained manifest names is in a final window or a dead letter"
    kappa("replay", "--manifest", run_dir / "manifest.json", "--registry", registry, "--runner", "direct",
          "--sink", f"file:{tmp_path / 'replay' / 'totals.jsonl'}", "--quiet")
    verdict = kappa("verify", f"file:{live_dir / 'totals.jsonl'}", f"file:{tmp_path / 'replay' / 'totals.jsonl'}",
                    check=False)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
