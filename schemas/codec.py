"""Codecs: records to bytes and back, in plain Avro, Confluent wire format or JSON.

Every codec has ``encode(record) -> bytes`` and ``decode(data) -> record`` and is
built once per schema (schemas are parsed once, in the constructor). Decoding
never raises anything but :class:`DecodeError` for bad bytes, so a reader can
route every failure to its dead-letter output with one ``except``.
"""

from __future__ import annotations

import io
import json
import struct
from decimal import Decimal
from typing import Protocol

import fastavro

from kappa.schemas.catalog import raw_schema
from kappa.schemas.jsonform import from_json, to_json
from kappa.schemas.registry import SchemaRegistry, UnknownSchemaError

__all__ = [
    "FORMATS",
    "AvroCodec",
    "Codec",
    "ConfluentCodec",
    "DecodeError",
    "EncodeError",
    "JsonCodec",
    "make_codec",
]

#: Formats ``make_codec`` (and every ``--format`` flag) accepts.
FORMATS = ("avro", "confluent", "json")

_CONFLUENT_HEADER = struct.Struct(">bI")  # magic byte 0, 4-byte big-endian schema id


class DecodeError(ValueError):
    """Bytes that do not decode as a record of the expected schema.

    ``reason`` is the dead-letter reason; ``str(err)`` says what was wrong.
    """

    reason = "decode_error"


class EncodeError(ValueError):
    """A record that does not fit the schema it is being written with."""


class Codec(Protocol):
    format: str

    def encode(self, record: dict) -> bytes: ...

    def decode(self, data: bytes) -> dict: ...


def _as_raw(schema: str | dict) -> dict:
    """A schema given by shipped name (``"payment"``) or as its JSON dict."""
    return raw_schema(schema) if isinstance(schema, str) else schema


class AvroCodec:
    """Avro binary body without any header (schemaless), as fastavro writes it.

    With ``reader_schema`` set, records written with ``schema`` are resolved to the
    reader's shape (Avro schema evolution: defaults fill new fields, removed
    fields are skipped).
    """

    format = "avro"

    def __init__(self, schema: str | dict, reader_schema: str | dict | None = None):
        self.schema_json = _as_raw(schema)
        self.schema = fastavro.parse_schema(self.schema_json)
        reader_json = _as_raw(reader_schema) if reader_schema is not None else None
        # Resolution costs time on every record: skip it when the schemas are the same.
        same = reader_json is None or json.dumps(reader_json, sort_keys=True) == json.dumps(
            self.schema_json, sort_keys=True
        )
        self.reader_schema = None if same else fastavro.parse_schema(reader_json)

    def encode(self, record: dict) -> bytes:
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, self.schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:
            raise EncodeError(f"record does not fit schema {self.schema['name']}: {err}") from err
        return out.getvalue()

    def decode(self, data: bytes) -> dict:
        return self._decode_body(data, 0)

    def _decode_body(self, data: bytes, offset: int) -> dict:
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            record = fastavro.schemaless_reader(buf, self.schema, self.reader_schema)
        except Exception as err:  # fastavro raises many types on bad bytes
            raise DecodeError(
                f"not a valid Avro {self.schema['name']} body: {type(err).__name__}: {err}"
            ) from err
        if buf.tell() != len(data):
            raise DecodeError(
                f"{len(data) - buf.tell()} trailing bytes after an Avro {self.schema['name']} body"
            )
        return record


class ConfluentCodec:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

    Encoding registers ``schema`` under ``subject`` (Confluent's TopicNameStrategy
    names it ``<topic>-value``) and stamps its id. Decoding looks the writer's
    schema up by the id in each message and resolves it to ``schema``, so records
    written with older or newer compatible versions decode to one shape.
    """

    format = "confluent"

    def __init__(self, schema: str | dict, registry: SchemaRegistry, subject: str | None = None):
        self.schema_json = _as_raw(schema)
        self.registry = registry
        self.schema_id = registry.register(subject, self.schema_json) if subject else None
        self._body = AvroCodec(self.schema_json)
        self._by_writer_id: dict[int, AvroCodec] = {}
        if self.schema_id is not None:
            self._by_writer_id[self.schema_id] = self._body

    def encode(self, record: dict) -> bytes:
        if self.schema_id is None:
            raise EncodeError("a ConfluentCodec needs a subject to encode (its schema id)")
        return _CONFLUENT_HEADER.pack(0, self.schema_id) + self._body.encode(record)

    def decode(self, data: bytes) -> dict:
        if len(data) < _CONFLUENT_HEADER.size:
            raise DecodeError(f"{len(data)} bytes is too short for the Confluent wire format")
        magic, schema_id = _CONFLUENT_HEADER.unpack_from(data)
        if magic != 0:
            raise DecodeError(f"magic byte is {magic}, not 0: not Confluent wire format")
        return self._codec_for(schema_id)._decode_body(data, _CONFLUENT_HEADER.size)

    def writer_schema_id(self, data: bytes) -> int | None:
        """The schema id stamped in a message, or None when it has no valid header."""
        if len(data) < _CONFLUENT_HEADER.size or data[0] != 0:
            return None
        return _CONFLUENT_HEADER.unpack_from(data)[1]

    def _codec_for(self, schema_id: int) -> AvroCodec:
        codec = self._by_writer_id.get(schema_id)
        if codec is None:
            try:
                writer = self.registry.schema_by_id(schema_id)
            except UnknownSchemaError as err:
                raise DecodeError(f"unknown schema id {schema_id}: {err}") from err
            codec = self._by_writer_id[schema_id] = AvroCodec(writer, self.schema_json)
        return codec


class JsonCodec:
    """UTF-8 JSON objects, with exact decimals and ISO-8601 instants.

    ``flatten`` names a map field whose entries are written as top-level keys and
    gathered back on decode (result records put their values beside the envelope).
    """

    format = "json"

    def __init__(self, schema: str | dict, flatten: str | None = None):
        self.schema_json = _as_raw(schema)
        self.schema = fastavro.parse_schema(self.schema_json)
        self._named = self.schema.get("__named_schemas", {})
        self.flatten = flatten
        self._field_names = {f["name"] for f in self.schema["fields"]}

    def encode(self, record: dict) -> bytes:
        try:
            obj = to_json(record, self.schema, self._named)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise EncodeError(f"record does not fit schema {self.schema['name']}: {err}") from err
        if self.flatten:
            obj.update(obj.pop(self.flatten))
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode(self, data: bytes) -> dict:
        try:
            obj = json.loads(data, parse_float=Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DecodeError(f"not valid JSON: {err}") from err
        if self.flatten and isinstance(obj, dict):
            extra = {k: obj.pop(k) for k in list(obj) if k not in self._field_names}
            obj[self.flatten] = extra
        try:
            return from_json(obj, self.schema, self._named)
        except (ValueError, TypeError) as err:
            raise DecodeError(f"JSON does not fit schema {self.schema['name']}: {err}") from err


def make_codec(
    fmt: str,
    schema: str | dict,
    registry: SchemaRegistry | None = None,
    subject: str | None = None,
) -> Codec:
    """The codec for ``--format`` ``fmt`` (one of FORMATS) and a schema."""
    if fmt == "avro":
        return AvroCodec(schema)
    if fmt == "confluent":
        if registry is None:
            raise ValueError("the confluent format needs a schema registry")
        return ConfluentCodec(schema, registry, subject)
    if fmt == "json":
        flatten = "values" if schema == "window_result" else None
        return JsonCodec(schema, flatten=flatten)
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")

