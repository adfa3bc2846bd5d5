"""A saved manifest whose start retention has deleted: never a silent empty replay.
The check runs at launch against the real broker; records are deleted with the admin
API, as retention does."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import TopicPartition

from tests.kafka_helpers import create_topic, write_log
from tests.test_runners import kappa

pytestmark = pytest.mark.kafka
T0 = 1_795_165_200_000


def test_a_manifest_whose_start_was_deleted_fails_or_replays_what_is_left(kafka_bootstrap, kafka_admin, topic_name,
                                                                         tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    write_log(kafka_bootstrap, topic_name, {0: [T0 + i * 1000 for i in range(10)], 1: [T0 + i * 1000 for i in range(8)]})
    manifest = tmp_path / "plan.json"
    kappa("plan", "--source", f"kafka://{kafka_bootstrap}/{topic_name}", "--format", "avro", "--save", manifest)
    deleted = kafka_admin.delete_records([TopicPartition(topic_name, 0, 4), TopicPartition(topic_name, 1, 8)])
    for future in deleted.values():
        future.result(30)

    common = ("replay", "--pipeline", "merchant_totals", "--manifest", manifest, "--window", "1m", "--quiet")
    refused = kappa(*common, "--sink", f"file:{tmp_path / 'a' / 'totals.jsonl'}", check=False)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"offsets [0, 4) of {topic_name}[0] were deleted since the plan" in lines[0], lines
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").glob("totals-*"))

    kappa(*common, "--on-missing-offsets", "earliest", "--sink", f"file:{tmp_path / 'b' / 'totals.jsonl'}")
    results = [json.loads(line) for path in (tmp_path / "b").glob("totals-*.jsonl")
               for line in path.read_text().splitlines()]
    assert sum(r["count"] for r in results if r["is_last"]) == 6  # what partition 0 has left; partition 1 is gone
