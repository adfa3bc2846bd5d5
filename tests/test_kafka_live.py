"""A live read follows the log: it picks up records produced after it started and
commits its progress to its own consumer group once the bundle is done."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.kafka_helpers import create_topic, write_log

pytestmark = pytest.mark.kafka
T0 = 1_795_000_000_000


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_live_read_picks_up_new_records_and_commits_them(kafka_bootstrap, kafka_admin, topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    write_log(kafka_bootstrap, topic_name, {0: [T0, T0 + 1], 1: [T0 + 2]})  # before the start: not read
    out = tmp_path / "live.jsonl"
    group = f"live-{topic_name}"
    reader = subprocess.Popen(
        [sys.executable, "-m", "kappa.runners.cli", "read", "--source", f"kafka://{kafka_bootstrap}/{topic_name}",
         "--format", "avro", "--from", "latest", "--to", "never", "--commit-group", group, "--out", str(out)],
        stderr=subprocess.PIPE, text=True)
    try:
        banner = reader.stderr.readline()
        assert "following it live" in banner and "0:2, 1:1" in banner
        time.sleep(3)  # let the pipeline start its reads
        write_log(kafka_bootstrap, topic_name, {0: [T0 + 10 + i for i in range(6)], 1: [T0 + 20 + i for i in range(4)]},
                  start_n=100)
        lines = _wait_for(lambda: (out.exists() and len(out.read_text().splitlines()) >= 10
                                   and out.read_text().splitlines()), 90, "10 live records")
        got = sorted((r["provenance"]["partition"], r["provenance"]["position"]) for r in map(json.loads, lines))
        assert got == [(0, o) for o in range(2, 8)] + [(1, o) for o in range(1, 5)]

        probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})

        def committed():
            offsets = probe.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
            return [tp.offset for tp in offsets] == [8, 5]

        _wait_for(committed, 60, "the live group's commits to reach the end")
        probe.close()
    finally:
        reader.terminate()
        reader.wait(30)
