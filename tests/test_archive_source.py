"""Archive files written by `kappa produce` read back as the same records, with (file, line)
provenance; bad lines become dead letters."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from kappa.replay.archive_source import ReadArchive, read_archive_records
from kappa.replay.errors import ReplayError
from kappa.runners.cli import main
from kappa.runners.produce import DOMAINS, DisorderSpec, plan_arrivals
from kappa.schemas.records import DeadLetter, SourceRecord
from tests.kafka_helpers import ms_of


def _expected(count, seed, start_ms):
    generator = DOMAINS["payments"].generator(seed)
    plan = plan_arrivals(count, seed, start_ms, 50.0, DisorderSpec(0.2, 5000))
    return [generator.next(a.event_ms)[1] for a in plan]


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_archive_records_are_the_produced_events_in_order(tmp_path, suffix):
    path = tmp_path / f"payments{suffix}"
    assert main(["produce", "payments", "--count", "120", "--seed", "4", "--start", "2026-11-20T09:00:00Z",
                 "--disorder", "0.2", "--max-disorder", "5s", "--no-wait", "--archive", str(path), "--no-kafka"]) == 0
    out = list(read_archive_records(path, "payment", "field:timestamp"))
    assert all(isinstance(r, SourceRecord) for r in out)
    assert [r.value for r in out] == _expected(120, 4, 1_795_165_200_000)
    assert [r.provenance.position for r in out] == list(range(1, 121))
    assert {r.provenance.source for r in out} == {"file"} and out[0].provenance.stream == str(path)
    assert all(r.event_ms == ms_of(r.value["timestamp"]) for r in out)


def test_bad_archive_lines_become_dead_letters_with_their_line(tmp_path):
    good = tmp_path / "good.jsonl"
    main(["produce", "payments", "--count", "3", "--archive", str(good), "--no-kafka", "--no-wait"])
    lines = good.read_text().splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([lines[0], "{not json", lines[1], '{"transaction_id": "x"}', "", lines[2]]) + "\n")
    out = list(read_archive_records(mixed, "payment", "field:timestamp"))
    assert [type(r).__name__ for r in out] == ["SourceRecord", "DeadLetter", "SourceRecord", "DeadLetter", "SourceRecord"]
    dead = [r for r in out if isinstance(r, DeadLetter)]
    assert [(d.provenance.position, d.reason) for d in dead] == [(2, "decode_error"), (4, "decode_error")]
    assert dead[0].payload == b"{not json"


def test_read_archive_in_a_pipeline_splits_records_and_dead_letters(tmp_path):
    path = tmp_path / "p.jsonl"
    main(["produce", "payments", "--count", "20", "--archive", str(path), "--no-kafka", "--no-wait"])
    with open(path, "a") as f:
        f.write("garbage\n")
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        out = p | ReadArchive([path])
        assert_that(out["records"] | "Count" >> beam.combiners.Count.Globally(), equal_to([20]), label="records")
        assert_that(out["dead_letters"] | "Lines" >> beam.Map(lambda d: (d.reason, d.provenance.position)),
                    equal_to([("decode_error", 21)]), label="dead letters")


def test_a_file_that_is_not_avro_is_a_clear_error(tmp_path):
    path = tmp_path / "x.avro"
    path.write_bytes(b"plain text")
    with pytest.raises(ReplayError, match="not an Avro container file"):
        list(read_archive_records(path, "payment", "field:timestamp"))
