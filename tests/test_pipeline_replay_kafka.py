"""Pipelines over a bounded Kafka replay: when no record is too late (a watermark bound
wider than the disorder), final values do not depend on how many partitions the log
has or how the reader's ranges are split into bundles."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from kappa.pipelines import MerchantTotals
from kappa.replay.kafka_source import ReadFromKafkaReplay
from kappa.replay.manifest import DecodingSpec
from kappa.replay.plan import plan_kafka_replay
from tests.beam_helpers import Collect, collected, new_tag
from tests.kafka_helpers import create_topic, ms_of, payment_at, write_log

pytestmark = pytest.mark.kafka
T0 = 1_795_165_200_000


def _final_totals(manifest, split_size):
    tag = new_tag()
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        records = (p | ReadFromKafkaReplay(manifest, split_size=split_size))["records"]
        (records | MerchantTotals(max_out_of_orderness="10m"))["results"] | beam.ParDo(Collect(tag))
    return {(r["key"], ms_of(r["window_start"])): (r["values"]["count"], r["values"]["total_amount"])
            for r in collected(tag) if r["is_last"]}


def test_final_values_do_not_depend_on_partitions_or_splits(kafka_bootstrap, kafka_admin):
    stamps = [T0 + (i * 7919) % 600_000 for i in range(300)]  # ten minutes, out of order
    expected = defaultdict(lambda: (0, Decimal(0)))
    for n, ms in enumerate(stamps):
        p = payment_at(ms, n)
        count, total = expected[(p["merchant"]["name"], ms // 60_000 * 60_000)]
        expected[(p["merchant"]["name"], ms // 60_000 * 60_000)] = (count + 1, total + p["amount"])

    outcomes = []
    for partitions, split_size in [(1, None), (4, None), (4, 13)]:
        topic = f"pipe-{partitions}-{uuid.uuid4().hex[:8]}"
        create_topic(kafka_admin, topic, partitions)
        per_partition = defaultdict(list)
        for n, ms in enumerate(stamps):
            per_partition[n % partitions].append(ms)
        write_log(kafka_bootstrap, topic, {p: per_partition[p] for p in range(partitions)})
        manifest = plan_kafka_replay(kafka_bootstrap, topic, "earliest", "now", DecodingSpec("avro", "payment"),
                                     max_out_of_orderness_ms=600_000)
        outcomes.append(_final_totals(manifest, split_size))
    # write_log numbers payments partition by partition, so recompute per layout:
    assert [sum(c for c, _ in o.values()) for o in outcomes] == [300, 300, 300]
    assert outcomes[0] == _expected_for_layout(stamps, 1)
    assert outcomes[1] == outcomes[2] == _expected_for_layout(stamps, 4)


def _expected_for_layout(stamps, partitions):
    """What write_log wrote for this layout: payments numbered partition by partition."""
    per_partition = defaultdict(list)
    for n, ms in enumerate(stamps):
        per_partition[n % partitions].append(ms)
    expected = defaultdict(lambda: (0, Decimal(0)))
    n = 0
    for p in range(partitions):
        for ms in per_partition[p]:
            payment = payment_at(ms, n)
            n += 1
            key = (payment["merchant"]["name"], ms // 60_000 * 60_000)
            count, total = expected[key]
            expected[key] = (count + 1, total + payment["amount"])
    return dict(expected)
