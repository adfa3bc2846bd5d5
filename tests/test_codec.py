"""Codec behaviour by example: wire layouts, the JSON form, schema evolution and the
errors bad bytes give."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from kappa.schemas import (
    AvroCodec,
    ConfluentCodec,
    DecodeError,
    EncodeError,
    FileSchemaRegistry,
    JsonCodec,
    UnknownSchemaError,
    load_schema,
    make_codec,
)
from kappa.schemas.catalog import SCHEMA_NAMES, raw_schema

PAYMENT = {
    "transaction_id": "abcd1234",
    "timestamp": datetime(2023, 10, 18, 14, 10, tzinfo=timezone.utc),
    "account_id": "A78901",
    "transaction_type": "purchase",
    "amount": Decimal("500.00"),
    "currency": "USD",
    "merchant": {"name": "ElectronicsStore", "category": "Electronics",
                 "location": {"latitude": 40.730610, "longitude": -73.935242}},
}


@pytest.fixture
def registry(tmp_path):
    return FileSchemaRegistry(tmp_path / "registry.json")


def test_every_shipped_schema_parses_and_is_cached():
    assert set(SCHEMA_NAMES) >= {"payment", "payment_v2", "fraud_alert", "turnstile", "commerce_event", "window_result"}
    for name in SCHEMA_NAMES:
        assert load_schema(name) is load_schema(name)


def test_confluent_wire_format_is_magic_byte_schema_id_then_the_avro_body(registry):
    codec = ConfluentCodec("payment", registry, "payment_msg-value")
    data = codec.encode(PAYMENT)
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert (magic, schema_id) == (0, codec.schema_id)
    assert data[5:] == AvroCodec("payment").encode(PAYMENT)
    assert codec.writer_schema_id(data) == codec.schema_id


def test_json_form_has_exact_decimal_strings_and_iso_instants():
    obj = json.loads(JsonCodec("payment").encode({**PAYMENT, "amount": Decimal("1234.5")}))
    assert obj["amount"] == "1234.50"
    assert obj["timestamp"] == "2023-10-18T14:10:00.000Z"
    assert obj["merchant"]["location"] == {"latitude": 40.73061, "longitude": -73.935242}


def test_json_decode_accepts_offsets_epoch_millis_and_exact_numbers():
    codec = JsonCodec("payment")
    base = json.loads(codec.encode(PAYMENT))
    for stamp in ["2023-10-18T16:10:00+02:00", "2023-10-18T14:10:00Z", 1697638200000]:
        assert codec.decode(json.dumps({**base, "timestamp": stamp}).encode())["timestamp"] == PAYMENT["timestamp"]
    # A JSON number is read as Decimal, never through a float.
    decoded = codec.decode(json.dumps(base).replace('"500.00"', "0.30").encode())
    assert decoded["amount"] == Decimal("0.30")


def test_json_result_records_put_values_beside_the_envelope():
    codec = make_codec("json", "window_result")
    record = {
        "id": "r1", "pane_id": "r1", "pipeline": "merchant_totals", "key": "BookNook",
        "window_start": datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc),
        "window_end": datetime(2026, 11, 20, 9, 1, tzinfo=timezone.utc),
        "timing": "ON_TIME", "pane_index": 0, "is_last": True,
        "values": {"count": 3, "total_amount": Decimal("1234.50")},
    }
    obj = json.loads(codec.encode(record))
    assert obj["count"] == 3 and obj["total_amount"] == "1234.50" and "values" not in obj
    assert obj["window_start"] == "2026-11-20T09:00:00.000Z"
    assert codec.decode(codec.encode(record))["values"] == {"count": 3, "total_amount": "1234.50"}


def test_newer_reader_fills_new_fields_with_defaults():
    old = AvroCodec("payment").encode(PAYMENT)
    decoded = AvroCodec("payment", reader_schema="payment_v2").decode(old)
    assert decoded == {**PAYMENT, "channel": "unknown", "card_country": None}


def test_older_reader_skips_fields_it_does_not_know():
    new = AvroCodec("payment_v2").encode({**PAYMENT, "channel": "online", "card_country": "DE"})
    assert AvroCodec("payment_v2", reader_schema="payment").decode(new) == PAYMENT


def test_confluent_decoder_resolves_each_message_by_its_writer_schema_id(registry):
    v1 = ConfluentCodec("payment", registry, "payment_msg-value")
    v2 = ConfluentCodec("payment_v2", registry, "payment_msg-value")
    assert v1.schema_id != v2.schema_id
    reader = ConfluentCodec("payment_v2", registry)  # reads only; registers nothing
    assert reader.decode(v1.encode(PAYMENT))["channel"] == "unknown"
    assert reader.decode(v2.encode({**PAYMENT, "channel": "mobile", "card_country": None}))["channel"] == "mobile"


def test_registry_gives_the_same_id_to_the_same_schema_across_processes(tmp_path):
    path = tmp_path / "r.json"
    first = FileSchemaRegistry(path).register("a-value", raw_schema("payment"))
    again = FileSchemaRegistry(path).register("b-value", raw_schema("payment"))
    other = FileSchemaRegistry(path).register("a-value", raw_schema("payment_v2"))
    assert first == again and other != first
    assert FileSchemaRegistry(path).latest("a-value") == (other, raw_schema("payment_v2"))
    assert FileSchemaRegistry(path).subjects() == {"a-value": [first, other], "b-value": [first]}
    with pytest.raises(UnknownSchemaError):
        FileSchemaRegistry(path).schema_by_id(999)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "too short"),
        (b"\x00\x00\x00", "too short"),
        (b"\x01\x00\x00\x00\x01" + b"x" * 20, "magic byte is 1"),
        (b"\x00\x00\x00\x03\xe7" + b"x" * 20, "unknown schema id 999"),
    ],
)
def test_confluent_bad_headers_raise_decode_error_naming_the_problem(registry, data, message):
    codec = ConfluentCodec("payment", registry, "payment_msg-value")
    with pytest.raises(DecodeError, match=message):
        codec.decode(data)


def test_avro_garbage_truncation_and_trailing_bytes_raise_decode_error():
    codec = AvroCodec("payment")
    good = codec.encode(PAYMENT)
    for bad, message in [(good[:10], "not a valid Avro"), (good + b"\x00", "1 trailing bytes"),
                         (b"\xff" * 40, "not a valid Avro")]:
        with pytest.raises(DecodeError, match=message):
            codec.decode(bad)
    assert DecodeError("x").reason == "decode_error"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("account_id"), r"\$.account_id: missing required field"),
        (lambda o: o.update(amount="12.345"), r"\$.amount: '12.345' has more than 2 decimal places"),
        (lambda o: o.update(amount="twelve"), r"\$.amount: 'twelve' is not a decimal number"),
        (lambda o: o.update(timestamp="2023-10-18T14:10:00"), r"\$.timestamp: .* has no UTC offset"),
        (lambda o: o.update(transaction_type="gift"), r"\$.transaction_type: 'gift' is not one of"),
        (lambda o: o["merchant"]["location"].update(latitude="north"), r"\$.merchant.location.latitude: expected a number"),
    ],
)
def test_json_that_does_not_fit_the_schema_names_the_field(mutate, message):
    codec = JsonCodec("payment")
    obj = json.loads(codec.encode(PAYMENT))
    mutate(obj)
    with pytest.raises(DecodeError, match=message):
        codec.decode(json.dumps(obj).encode())


def test_invalid_json_and_non_utf8_raise_decode_error():
    codec = JsonCodec("payment")
    for bad in [b"{", b"\xff\xfe", b"[1, 2]"]:
        with pytest.raises(DecodeError):
            codec.decode(bad)


def test_encoding_a_record_that_does_not_fit_raises_encode_error(registry):
    too_precise = {**PAYMENT, "amount": Decimal("1.001")}
    for codec in [AvroCodec("payment"), JsonCodec("payment"), ConfluentCodec("payment", registry, "p-value")]:
        with pytest.raises(EncodeError):
            codec.encode(too_precise)
    with pytest.raises(EncodeError, match="needs a subject"):
        ConfluentCodec("payment", registry).encode(PAYMENT)


def test_make_codec_names_unknown_formats():
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        make_codec("xml", "payment")
