"""A live run on a group committed on some partitions only never skips a backlog
silently: partitions without a commit fail the launch (naming them and the flag), or
with ``--on-missing-offsets earliest`` start at the log start. Against the real broker
and prism."""

from __future__ import annotations

import json

import pytest

from kappa.replay.kafka_log import commit_offsets
from tests.kafka_helpers import create_topic, write_log
from tests.test_runners import kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]
T0 = 1_795_165_200_000


def test_partitions_without_a_commit_fail_the_launch_or_start_at_the_log_start(kafka_bootstrap, kafka_admin,
                                                                              topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i * 1000 for i in range(10)], 1: [T0 + i * 1000 for i in range(8)]})
    group = f"{topic_name}-group"
    commit_offsets(kafka_bootstrap, group, topic_name, {0: 2})  # partition 1: no commit

    common = ("live", "--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
              "--format", "avro", "--group", group, "--window", "1m", "--quiet", "--runner", "prism")
    refused = kappa(*common, "--sink", f"file:{tmp_path / 'a' / 'totals.jsonl'}", "--run-dir", tmp_path / "a-run",
                    check=False)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "no committed offset for partition 1" in lines[0] \
        and "--on-missing-offsets=earliest" in lines[0], lines

    run_dir = tmp_path / "b-run"
    kappa(*common, "--on-missing-offsets", "earliest", "--stop-after", "5s",
          "--sink", f"file:{tmp_path / 'b' / 'totals.jsonl'}", "--run-dir", run_dir)
    drained = json.loads((run_dir / "manifest.json").read_text())
    assert {r["partition"]: (r["start"], r["stop"]) for r in drained["ranges"]} == {0: (2, 10), 1: (0, 8)}
