"""Codec invariants, property-tested over generated records with edge values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kappa.schemas import DecodeError, FileSchemaRegistry, make_codec
from kappa.schemas.catalog import SCHEMA_NAMES
from tests.strategies import BY_SCHEMA, window_results

EVENT_SCHEMAS = ["payment", "turnstile", "commerce_event", "fraud_alert"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return FileSchemaRegistry(tmp_path_factory.mktemp("registry") / "registry.json")


def _codec(fmt, schema, registry):
    return make_codec(fmt, schema, registry=registry, subject=f"{schema}-value")


@pytest.mark.parametrize("fmt", ["avro", "confluent", "json"])
@pytest.mark.parametrize("schema", EVENT_SCHEMAS)
def test_decode_of_encode_is_identity(schema, fmt, registry):
    """decode(encode(x)) == x for every record of the schema, in every format,
    including decimals at the precision limit and instants from year 1 to 9999."""
    codec = _codec(fmt, schema, registry)

    @settings(max_examples=150, deadline=None)
    @given(BY_SCHEMA[schema])
    def round_trip(record):
        assert codec.decode(codec.encode(record)) == record

    round_trip()


@pytest.mark.parametrize("fmt", ["avro", "confluent"])
def test_result_record_decode_of_encode_is_identity_in_avro(fmt, registry):
    """decode(encode(x)) == x for result records with any mix of value types."""
    codec = _codec(fmt, "window_result", registry)

    @settings(max_examples=150, deadline=None)
    @given(BY_SCHEMA["window_result"])
    def round_trip(record):
        assert codec.decode(codec.encode(record)) == record

    round_trip()


def test_result_record_decode_of_encode_is_identity_in_json_without_decimal_values():
    """decode(encode(x)) == x for JSON result records whose values hold no Decimal.

    In JSON a decimal value is a string ("1234.50"), so it reads back as that
    string: the one documented loss of the flattened JSON form."""
    codec = make_codec("json", "window_result")
    no_decimals = st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in {"id", "pipeline", "key", "window_start", "window_end",
                                                        "timing", "pane_index", "is_last", "values"}),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10),
                  st.lists(st.text(max_size=5), max_size=3)),
        max_size=5,
    )

    @settings(max_examples=150, deadline=None)
    @given(window_results(values=no_decimals))
    def round_trip(record):
        assert codec.decode(codec.encode(record)) == record

    round_trip()


@pytest.mark.parametrize("fmt", ["avro", "confluent", "json"])
@pytest.mark.parametrize("schema", SCHEMA_NAMES)
def test_decoding_arbitrary_bytes_returns_a_record_or_raises_decode_error_only(schema, fmt, registry):
    """No input bytes make decode raise anything but DecodeError (dead-letter routing
    relies on one except clause)."""
    codec = _codec(fmt, schema, registry)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def decode_any(data):
        try:
            codec.decode(data)
        except DecodeError:
            pass

    decode_any()


@pytest.mark.parametrize("fmt", ["avro", "confluent", "json"])
def test_truncating_a_valid_payment_never_decodes_silently_to_a_wrong_record(fmt, registry):
    """Every strict prefix of a valid encoding either fails with DecodeError or, for
    JSON, is impossible to mistake for the original (it is not valid JSON)."""
    codec = _codec(fmt, "payment", registry)

    @settings(max_examples=60, deadline=None)
    @given(BY_SCHEMA["payment"], st.data())
    def truncated(record, data):
        encoded = codec.encode(record)
        cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
        with pytest.raises(DecodeError):
            codec.decode(encoded[:cut])

    truncated()
