"""The event-time rules through the wiring users run: ``kappa replay`` over a real
Kafka topic. Too late follows the log (each partition's watermark at the record), a
bounded replay is a pure function of its manifest and settings (early firings do not
fire in a batch), and a window's final value has one id whatever the run."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kappa.pipelines import result_id
from kappa.schemas import make_codec
from kappa.schemas.jsonform import parse_instant
from tests.kafka_helpers import create_topic, ms_of, payment_at
from tests.test_runners import kappa

pytestmark = [pytest.mark.kafka, pytest.mark.runners]

T0 = ms_of(parse_instant("2026-11-20T09:00:00Z"))
MIN = 60_000
#: (merchant, minutes after T0) per partition, in offset order. Partition 0 races ahead to
#: minute 10; partition 1 lags at minute 4-5. With 1-minute windows and no bound:
LOG = {
    0: [("Anchor", 10.0),
        ("Quiet", 5.0),      # no open window for this key: too late all the same (cutoff 10:00)
        ("Fresh", 1 / 60),   # a brand-new key, 9:59 behind: too late
        ("Anchor", 9.5),     # window [9, 10) ends exactly at the cutoff: closed, too late
        ("Anchor", 10.5),    # on time
        ("Late", 9.99),      # too late by 10 ms
        ("Future", 10.25, 7 * 24 * 60 * MIN),  # a week ahead of its broker time: future_event_time, no watermark move
        ("Anchor", 10.75)],  # on time: the future record moved nothing
    1: [("Quiet", 4.0),
        ("Quiet", 5.0),      # on time: this partition is only at minute 4, whatever partition 0 did
        ("Slow", 4.5),       # window [4, 5) ends at this partition's cutoff (5:00): too late
        ("Slow", 5.25)],     # on time
}


def _write(bootstrap: str, topic: str) -> dict[tuple[int, int], dict]:
    codec = make_codec("avro", "payment")
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    written, n = {}, 0
    for partition, entries in LOG.items():
        for offset, (merchant, minutes, *mistake) in enumerate(entries):
            ms = T0 + round(minutes * MIN)
            record = payment_at(ms + sum(mistake), n)
            record["merchant"]["name"] = merchant
            n += 1
            producer.produce(topic, codec.encode(record), key=merchant.encode(), partition=partition, timestamp=ms)
            written[(partition, offset)] = record
    assert producer.flush(30) == 0
    return written


def _expected(written):
    """The log's rule, written out: cutoff = the greatest event time before the record in its
    partition; too late iff cutoff >= window end."""
    finals, late = defaultdict(lambda: [0, Decimal(0)]), set()
    for partition in LOG:
        newest = None
        for offset in range(len(LOG[partition])):
            record = written[(partition, offset)]
            ms = ms_of(record["timestamp"])
            if len(LOG[partition][offset]) == 3:
                continue  # the far-future one
            start = (ms - T0) // MIN * MIN + T0
            if newest is not None and newest >= start + MIN:
                late.add((partition, offset))
            else:
                finals[(record["merchant"]["name"], start)][0] += 1
                finals[(record["merchant"]["name"], start)][1] += record["amount"]
            newest = ms if newest is None else max(newest, ms)
    return {k: (c, str(t.quantize(Decimal("0.01")))) for k, (c, t) in finals.items()}, late


def _replay(kafka_bootstrap, topic, out: Path, runner: str, *extra) -> dict[str, bytes]:
    kappa("replay", "--pipeline", "merchant_totals", "--source", f"kafka://{kafka_bootstrap}/{topic}",
          "--format", "avro", "--window", "1m", "--max-out-of-orderness", "0s", *extra,
          "--sink", f"file:{out / 'totals.jsonl'}", "--runner", runner, "--quiet", "--run-dir", out / "run")
    return {p.name: p.read_bytes() for p in sorted(out.glob("totals*.jsonl"))}


def test_too_late_follows_each_partitions_log_and_replays_are_byte_identical(kafka_bootstrap, kafka_admin,
                                                                            topic_name, tmp_path):
    create_topic(kafka_admin, topic_name, 2)
    finals, late = _expected(_write(kafka_bootstrap, topic_name))
    assert late == {(0, 1), (0, 2), (0, 3), (0, 5), (1, 2)}  # the cases above, as the rule says

    runs = [_replay(kafka_bootstrap, topic_name, tmp_path / name, runner, *extra) for name, runner, extra in (
        ("a", "direct", ("--early-firing", "1ms")), ("b", "direct", ("--early-firing", "1ms")),
        ("plain", "direct", ()), ("flink", "flink", ("--early-firing", "1ms")))]
    assert runs[0] == runs[1] == runs[2] == runs[3], "a replay must be a pure function of its log and settings"

    files = runs[0]
    dead = [json.loads(line) for line in files.pop("totals.dead.jsonl").splitlines()]
    too_late = [d for d in dead if d["reason"] == "too_late"]
    assert {(d["provenance"]["partition"], d["provenance"]["position"]) for d in too_late} == late
    assert {d["decided_by"] for d in too_late} == {"log"}
    [future] = [d for d in dead if d["reason"] != "too_late"]
    assert future["reason"] == "future_event_time" and future["provenance"]["position"] == 6, future
    results = [json.loads(line) for data in files.values() for line in data.splitlines()]
    # One pane per window in a bounded replay: final, ON_TIME, index 0, with the final-value id.
    assert all(r["is_last"] and r["timing"] == "ON_TIME" and r["pane_index"] == 0 for r in results)
    for r in results:
        window = (ms_of(parse_instant(r["window_start"])), ms_of(parse_instant(r["window_end"])))
        assert r["id"] == result_id("merchant_totals", r["key"], window)
        assert r["pane_id"] == result_id("merchant_totals", r["key"], window, 0) != r["id"]
    got = {(r["key"], ms_of(parse_instant(r["window_start"]))): (r["count"], r["total_amount"]) for r in results}
    assert got == finals
