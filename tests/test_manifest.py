"""Manifests round-trip through JSON and bad ones are refused with a reason."""

import json

import pytest

from kappa.replay.errors import ReplayError
from kappa.replay.manifest import DecodingSpec, Manifest, PartitionRange, code_version


def _manifest(**overrides):
    fields = dict(
        bootstrap="127.0.0.1:9092", topic="payment_msg", from_point="earliest", to_point="now",
        ranges=(PartitionRange("payment_msg", 0, 0, 10, "earliest", "now"),
                PartitionRange("payment_msg", 1, 5, 5, "earliest", "now")),
        decoding=DecodingSpec("confluent", "payment", "/tmp/r.json", "payment_msg-value", (1, 2)),
        max_out_of_orderness_ms=30_000, pipeline={"name": "merchant_totals"},
        created_at="2026-11-21T00:00:00.000Z", code_version=code_version(),
    )
    fields.update(overrides)
    return Manifest(**fields)


def test_manifest_round_trips_through_json(tmp_path):
    manifest = _manifest()
    manifest.save(tmp_path / "m.json")
    assert Manifest.load(tmp_path / "m.json") == manifest
    assert manifest.total == 10 and not manifest.live
    assert code_version().startswith("kappa ")


def test_live_manifest_has_no_total():
    live = _manifest(ranges=(PartitionRange("payment_msg", 0, 3, None),))
    assert live.live and live.total is None
    assert Manifest.from_json(live.to_json()) == live


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=99), "manifest version 99"),
    (lambda d: d.pop("topic"), "not a kappa replay manifest"),
    (lambda d: d["ranges"][0].update(stop=-1), "inverted range"),
    (lambda d: d.update(surprise=1), "not a kappa replay manifest"),
])
def test_bad_manifests_are_refused(mutate, message):
    data = json.loads(_manifest().to_json())
    mutate(data)
    with pytest.raises(ReplayError, match=message):
        Manifest.from_json(json.dumps(data))


def test_missing_or_invalid_manifest_files_name_the_file(tmp_path):
    with pytest.raises(ReplayError, match="cannot read manifest .*nope.json"):
        Manifest.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ReplayError, match="bad.json is not a kappa replay manifest"):
        Manifest.load(tmp_path / "bad.json")



def test_carried_decoding_holds_the_schemas_not_the_launchers_paths(tmp_path):
    """What travels to a remote worker decodes with the launcher's files gone: the reader
    schema's contents and the registry file's writer schemas go with it, by id."""
    import pickle

    from kappa.schemas import DecodeError, make_codec
    from kappa.schemas.catalog import load_schema
    from kappa.schemas.registry import FileSchemaRegistry
    from tests.kafka_helpers import payment_at

    registry, reader = tmp_path / "registry.json", tmp_path / "payment.avsc"
    reader.write_text(json.dumps(load_schema("payment")))
    writer = make_codec("confluent", "payment", FileSchemaRegistry(registry), "payments-value")
    payload = writer.encode(payment_at(1_796_000_000_000, 1))
    carried = pickle.loads(pickle.dumps(DecodingSpec("confluent", str(reader), str(registry)).carried()))
    registry.unlink()
    reader.unlink()
    codec = carried.make_codec()
    assert codec.decode(payload) == writer.decode(payload)
    with pytest.raises(DecodeError, match="was not in the registry"):  # registered after launch: not carried
        codec.decode(payload[:1] + (99).to_bytes(4, "big") + payload[5:])
