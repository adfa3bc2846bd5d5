"""The pipelines on the DirectRunner as bounded replays: final values against plain
Python over the same events; alerts; sessions; invalid records; stable result ids."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from kappa.pipelines import PIPELINES, FraudAlerts, MerchantTotals, TurnstileCounts, UserSessions, get_pipeline, to_fraud_alert
from kappa.runners.produce import DOMAINS
from kappa.schemas import make_codec
from kappa.schemas.records import Provenance, SourceRecord
from tests.beam_helpers import Collect, collected, new_tag
from tests.kafka_helpers import ms_of
from kappa.transforms.config import ConfigError

T0 = 1_795_165_200_000  # 2026-11-20T09:00:00Z


def run(pipeline, values: list[dict]) -> tuple[list[dict], list]:
    tag, dead_tag = new_tag(), new_tag()
    records = [SourceRecord(v, ms_of(v["timestamp"]), None, Provenance("test", "t", 0, i, None))
               for i, v in enumerate(values)]
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        out = (p | beam.Create(records)
               | beam.Map(lambda r: beam.window.TimestampedValue(r, r.event_ms / 1000)) | pipeline)
        out["results"] | "Keep" >> beam.ParDo(Collect(tag))
        out["dead_letters"] | "KeepDead" >> beam.ParDo(Collect(dead_tag))
    return collected(tag), collected(dead_tag)


def events(domain: str, count: int, seed: int = 1, spacing_ms: int = 1500) -> list[dict]:
    generator = DOMAINS[domain].generator(seed)
    return [generator.next(T0 + i * spacing_ms)[1] for i in range(count)]


def finals(results) -> dict:
    return {(r["key"], ms_of(r["window_start"])): r for r in results if r["is_last"]}


def test_merchant_totals_equal_exact_sums_per_merchant_and_minute():
    payments = events("payments", 400)
    results, dead = run(MerchantTotals(), payments)
    expected = defaultdict(lambda: [0, Decimal(0)])
    for p in payments:
        window = ms_of(p["timestamp"]) // 60_000 * 60_000
        expected[(p["merchant"]["name"], window)][0] += 1
        expected[(p["merchant"]["name"], window)][1] += p["amount"]
    got = finals(results)
    assert {k: (r["values"]["count"], r["values"]["total_amount"]) for k, r in got.items()} == \
        {k: (c, t) for k, (c, t) in expected.items()}
    assert dead == []
    assert all(r["timing"] == "ON_TIME" and r["pane_index"] == 0 for r in results)
    line = json.loads(make_codec("json", "window_result").encode(next(iter(got.values()))))
    assert set(line) >= {"id", "pipeline", "key", "window_start", "window_end", "timing", "pane_index", "is_last",
                         "count", "total_amount"}
    assert line["total_amount"].count(".") == 1 and len(line["total_amount"].split(".")[1]) == 2


def test_result_ids_are_stable_across_runs_and_unique_per_key_window_pane():
    payments = events("payments", 200, seed=3)
    first, _ = run(MerchantTotals(), payments)
    second, _ = run(MerchantTotals(), list(reversed(payments)))
    assert sorted(r["id"] for r in first) == sorted(r["id"] for r in second)
    ids = {(r["key"], r["window_start"], r["pane_index"]): r["id"] for r in first}
    assert len(set(ids.values())) == len(ids) == len(first)


def test_fraud_alerts_flag_a_large_payment_in_every_sliding_window_holding_it():
    payments = events("payments", 30, seed=5, spacing_ms=20_000)
    big = dict(payments[10], account_id="A00001", amount=Decimal("7500.00"), transaction_id="bigone")
    results, _ = run(FraudAlerts(), payments[:10] + [big] + payments[11:])
    flagged = [r for r in results if r["key"] == "A00001" and r["is_last"]]
    assert len(flagged) == 10  # 10-minute windows every minute
    assert all(r["values"]["transaction_ids"] == ["bigone"] for r in flagged)
    assert all(r["values"]["reason"] == "Unusual high amount: 7500.00" for r in flagged)
    alert = to_fraud_alert(flagged[0])
    assert alert["action"] == "Flagged for review" and alert["alert_id"].startswith("alert")
    assert make_codec("avro", "fraud_alert").decode(make_codec("avro", "fraud_alert").encode(alert)) == alert


def test_fraud_alerts_flag_too_many_payments_in_a_window():
    base = events("payments", 12, seed=8, spacing_ms=10_000)
    burst = [dict(p, account_id="A00002", amount=Decimal("5.00")) for p in base]
    results, _ = run(FraudAlerts(count_limit=10), burst)
    reasons = {r["values"]["reason"] for r in results if r["key"] == "A00002"}
    assert "Unusual number of payments: 11" in reasons or "Unusual number of payments: 12" in reasons


def test_turnstile_counts_sum_entries_and_exits_per_station_and_four_hours():
    readings = events("turnstiles", 300, spacing_ms=120_000)  # ten hours
    results, _ = run(TurnstileCounts(), readings)
    expected = defaultdict(lambda: [0, 0])
    for r in readings:
        window = ms_of(r["timestamp"]) // 14_400_000 * 14_400_000
        expected[(r["station"], window)][0] += r["entries"]
        expected[(r["station"], window)][1] += r["exits"]
    got = {k: [r["values"]["entries"], r["values"]["exits"]] for k, r in finals(results).items()}
    assert got == dict(expected)


def test_user_sessions_split_on_the_gap_and_detect_cart_to_purchase():
    def event(minute, action, product):
        return {"event_id": f"e{minute}", "timestamp": _at(T0 + minute * 60_000), "user_id": "U1", "session_hint": None,
                "device": "web", "action": action, "product_id": product, "category": "Books",
                "price": Decimal("10.00"), "quantity": 1}
    evs = [event(0, "view", "P1"), event(5, "add_to_cart", "P1"), event(12, "purchase", "P1"),
           event(80, "view", "P2"), event(85, "add_to_cart", "P2")]
    results, _ = run(UserSessions(), evs)
    sessions = sorted((r["values"] for r in results if r["is_last"]), key=lambda v: v["session_start"])
    assert [(s["events"], s["products_viewed"], s["cart_to_purchase"]) for s in sessions] == [
        (3, ["P1"], True), (2, ["P2"], False)]
    assert sessions[0]["session_start"] == "2026-11-20T09:00:00.000Z"
    assert sessions[0]["session_end"] == "2026-11-20T09:12:00.000Z"


def test_records_without_a_key_are_invalid_records_not_results():
    payments = events("payments", 5)
    payments[2] = dict(payments[2], merchant=dict(payments[2]["merchant"], name=""))
    results, dead = run(MerchantTotals(), payments)
    assert sum(r["values"]["count"] for r in results if r["is_last"]) == 4
    assert [(d.reason, d.provenance.position) for d in dead] == [("invalid_record", 2)]


def test_pipeline_configuration_is_validated_with_the_setting_named():
    assert set(PIPELINES) == {"merchant_totals", "fraud_alerts", "turnstile_counts", "user_sessions"}
    assert MerchantTotals(window="5m").config.window.size_ms == 300_000
    with pytest.raises(ConfigError, match="--pipeline merchant_total: unknown pipeline"):
        get_pipeline("merchant_total")
    with pytest.raises(ConfigError, match="--allowed-lateness 5 minutes"):
        MerchantTotals(allowed_lateness="5 minutes")
    with pytest.raises(ConfigError, match="--window -1m"):
        TurnstileCounts(window="-1m")


def _at(ms):
    from datetime import datetime, timedelta, timezone

    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
