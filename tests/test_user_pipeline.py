"""Your own pipeline, as a user writes one (examples/page_views.py: views per product in
sliding windows, with a reader schema of its own): loaded by --pipeline as a file or a
module, run live on prism and replayed on direct, and the two agree. A pipeline that
cannot be loaded is one line naming why."""

from __future__ import annotations

import json
import time

import pytest

from tests.kafka_helpers import create_topic
from tests.test_crash_restart import _KillableRun, _ends, _read_to
from tests.test_runners import kappa

EXAMPLE = "examples/page_views.py:PageViews"


def test_the_example_pipeline_live_on_prism_agrees_with_its_replay_on_direct(
        kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    kappa("produce", "commerce", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", registry,
          "--seed", "8", "--count", "600", "--rate", "20", "--start", "2026-11-20T09:00:00Z", "--no-wait",
          "--disorder", "0.2", "--max-disorder", "2s", "--late", "0.02", "--late-by", "30s")
    run_dir, live_out = tmp_path / "live-run", tmp_path / "live" / "views.jsonl"
    run = _KillableRun(["--pipeline", EXAMPLE, "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
                        "--from", "earliest", "--registry", registry, "--runner", "prism",
                        "--window", "sliding:10s/5s", "--allowed-lateness", "0s", "--max-out-of-orderness", "2s",
                        "--sink", f"file:{live_out}", "--run-dir", run_dir], tmp_path / "live.log")
    try:
        ends = _ends(kafka_bootstrap, topic_name)
        run.wait_for(lambda: _read_to(run_dir) == ends, "the live run reading to the end", 180)
        time.sleep(2)
        run.drain()
    finally:
        run.kill()
    kappa("replay", "--manifest", run_dir / "manifest.json", "--pipeline", "examples.page_views:PageViews",
          "--registry", registry, "--runner", "direct", "--sink", f"file:{tmp_path / 'replay' / 'views.jsonl'}",
          "--quiet")
    verdict = kappa("verify", f"file:{live_out}", f"file:{tmp_path / 'replay' / 'views.jsonl'}", check=False)
    assert verdict.returncode == 0, verdict.stdout[-3000:]
    assert " 0 missing in B, 0 extra in B, 0 not final" in verdict.stdout
    results = [line for p in (tmp_path / "replay").glob("views-*.jsonl") for line in p.read_text().splitlines()]
    assert len(results) > 50 and all('"pipeline":"page_views"' in line for line in results)
    dead = (tmp_path / "replay" / "views.dead.jsonl").read_text()
    assert "decode_error" not in dead  # the example's reader schema resolves against the writer's


def test_a_plain_beam_ptransform_replays_to_the_same_results_as_the_windowed_pipeline(
        kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    """examples/beam_page_views.py windows with Beam's own SlidingWindows and CombinePerKey;
    on a log with no record later than the bound it must give examples/page_views.py's
    results, ids included. It is refused live, and with windowing flags, in one line."""
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    kappa("produce", "commerce", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", registry,
          "--seed", "11", "--count", "800", "--rate", "20", "--start", "2026-11-20T09:00:00Z", "--no-wait",
          "--disorder", "0.2", "--max-disorder", "2s")
    manifest = tmp_path / "plan.json"
    kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", registry,
          "--schema", "examples/product_view.avsc", "--save", manifest)
    for side, spec in (("engine", EXAMPLE), ("beam", "examples/beam_page_views.py:BeamPageViews")):
        kappa("replay", "--manifest", manifest, "--pipeline", spec, "--registry", registry, "--runner", "direct",
              "--sink", f"file:{tmp_path / side / 'views.jsonl'}", "--quiet")
    verdict = kappa("verify", f"file:{tmp_path / 'engine' / 'views.jsonl'}", f"file:{tmp_path / 'beam' / 'views.jsonl'}",
                    check=False)
    assert verdict.returncode == 0, verdict.stdout[-3000:]
    engine = {p.name: p.read_bytes() for p in (tmp_path / "engine").glob("views-*.jsonl")}
    assert sum(data.count(b"\n") for data in engine.values()) > 100, "many products in several windows"
    assert engine == {p.name: p.read_bytes() for p in (tmp_path / "beam").glob("views-*.jsonl")}

    for extra, says in ((["live", "--source", f"kafka://{kafka_bootstrap}/{topic_name}"], "runs in replays only"),
                        (["replay", "--manifest", manifest, "--window", "1m"], "windows by itself")):
        done = kappa(extra[0], "--pipeline", "examples/beam_page_views.py:BeamPageViews", *extra[1:],
                     "--registry", registry, check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and says in lines[0], done.stderr


@pytest.mark.parametrize("spec, says", [
    ("examples/missing.py:PageViews", "--pipeline examples/missing.py:PageViews: no file examples/missing.py"),
    ("examples/page_views.py:Nope", "--pipeline examples/page_views.py:Nope: examples/page_views.py has no 'Nope'"),
    ("examples/page_views.py:ViewsAndCarts", "ViewsAndCarts is neither a kappa.pipelines.base.WindowedPipeline nor a "
                                             "beam.PTransform subclass"),
    ("no_such_package.views:PageViews", "no module 'no_such_package'"),
    ("{broken}:Broken", "failed at line 3: ZeroDivisionError: division by zero"),
    ("page_views", "unknown pipeline (choose from fraud_alerts, merchant_totals"),
])
def test_a_pipeline_that_cannot_be_loaded_is_one_line_naming_why(tmp_path, spec, says):
    broken = tmp_path / "broken.py"
    broken.write_text("from pipelines.base import WindowedPipeline\n\nRATE = 1 / 0\n")
    done = kappa("replay", "--pipeline", spec.format(broken=broken), "--source", "kafka://127.0.0.1:1/t",
                 check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("kappa: error: --pipeline"), done.stderr
    assert says in lines[0], lines[0]


def test_a_users_own_package_named_pipelines_is_theirs_not_kappas(kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    """kappa installs as one name, kappa: a user's package called ``pipelines`` (a common
    name) is the one ``--pipeline pipelines.views:Views`` loads."""
    import subprocess
    import sys

    from tests.test_runners import _env

    create_topic(kafka_admin, topic_name, 1)
    registry = tmp_path / "registry.json"
    kappa("produce", "commerce", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", registry,
          "--seed", "3", "--count", "200", "--rate", "10", "--start", "2026-11-20T09:00:00Z", "--no-wait")
    package = tmp_path / "work" / "pipelines"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "views.py").write_text(
        "from kappa.pipelines.base import WindowedPipeline\n\n\n"
        "class Count:\n"
        "    def create(self): return 0\n"
        "    def add(self, acc, _): return acc + 1\n"
        "    def merge(self, accs): return sum(accs)\n"
        "    def extract(self, acc): return acc\n\n\n"
        "class Views(WindowedPipeline):\n"
        "    name = 'my_views'\n"
        "    input_schema = 'commerce_event'\n"
        "    DEFAULTS = {'window': '1m'}\n\n"
        "    def key_of(self, event): return event['category']\n\n"
        "    def aggregation(self): return Count()\n\n"
        "    def values(self, n): return {'events': n}\n")
    done = subprocess.run(
        [sys.executable, "-m", "kappa.runners.cli", "replay", "--pipeline", "pipelines.views:Views", "--source",
         f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", str(registry), "--runner", "direct",
         "--sink", f"file:{tmp_path / 'out' / 'views.jsonl'}", "--quiet"],
        cwd=package.parent, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    results = [line for p in (tmp_path / "out").glob("views-*.jsonl") for line in p.read_text().splitlines()]
    assert results and all('"pipeline":"my_views"' in line for line in results)
    assert sum(json.loads(line)["events"] for line in results) == 200


def test_a_manifest_replayed_through_another_reader_schema_uses_it(kafka_bootstrap, kafka_admin, topic_name,
                                                                    tmp_path):
    """``kappa replay --manifest --schema`` reads the manifest's records through that reader
    schema, and the run's manifest records it: an evolved schema (payment_v2, new fields
    with defaults) gives the same totals; one that cannot read the writer's records sends
    every record to the dead letters, none lost."""
    create_topic(kafka_admin, topic_name, 2)
    registry = tmp_path / "registry.json"
    kappa("produce", "payments", "--topic", topic_name, "--bootstrap", kafka_bootstrap, "--registry", registry,
          "--seed", "3", "--count", "300", "--rate", "50", "--start", "2026-11-20T09:00:00Z", "--no-wait")
    plan = tmp_path / "plan.json"
    kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--registry", registry, "--save", plan)
    unreadable = json.loads(open("schemas/avro/payment.avsc").read())
    unreadable["fields"] = [{**f, "type": "int"} if f["name"] == "amount" else f for f in unreadable["fields"]]
    (tmp_path / "unreadable.avsc").write_text(json.dumps(unreadable))

    def replay(name, *schema):
        kappa("replay", "--manifest", plan, "--pipeline", "merchant_totals", "--registry", registry, *schema,
              "--runner", "direct", "--sink", f"file:{tmp_path / name / 'totals.jsonl'}", "--run-dir",
              tmp_path / f"run-{name}", "--quiet")
        return json.loads((tmp_path / f"run-{name}" / "manifest.json").read_text())["decoding"]["schema"]

    assert replay("v1") == "payment"
    assert replay("v2", "--schema", "schemas/avro/payment_v2.avsc") == "schemas/avro/payment_v2.avsc"
    verdict = kappa("verify", f"file:{tmp_path / 'v1' / 'totals.jsonl'}", f"file:{tmp_path / 'v2' / 'totals.jsonl'}",
                    check=False)
    assert verdict.returncode == 0 and " 0 values differ" in verdict.stdout, verdict.stdout[-2000:]
    replay("unreadable", "--schema", tmp_path / "unreadable.avsc")
    dead = [json.loads(line) for line in (tmp_path / "unreadable" / "totals.dead.jsonl").read_text().splitlines()]
    assert len(dead) == 300 and {d["reason"] for d in dead} == {"decode_error"}
    assert "is not int" in dead[0]["error"]
