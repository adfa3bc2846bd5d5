"""Event schemas (Avro ``.avsc`` files in ``avro/``) and the codecs that turn
records into bytes and back: plain Avro, the Confluent wire format and JSON.

A decoded record is the same Python shape whatever the format: a ``dict`` whose
timestamps are UTC ``datetime`` objects (millisecond precision) and whose money
is ``Decimal``. Bytes that cannot be decoded raise :class:`DecodeError`, the one
error type callers route to dead letters.
"""

from kappa.schemas.catalog import SCHEMA_NAMES, load_schema, parse_schema_file
from kappa.schemas.codec import (
    AvroCodec,
    Codec,
    ConfluentCodec,
    DecodeError,
    EncodeError,
    JsonCodec,
    make_codec,
)
from kappa.schemas.registry import (FileSchemaRegistry, HttpSchemaRegistry, RegistryUnavailable, SchemaRegistry,
                                    UnknownSchemaError, open_registry)

__all__ = [
    "SCHEMA_NAMES",
    "AvroCodec",
    "Codec",
    "ConfluentCodec",
    "DecodeError",
    "EncodeError",
    "FileSchemaRegistry",
    "HttpSchemaRegistry",
    "JsonCodec",
    "RegistryUnavailable",
    "SchemaRegistry",
    "UnknownSchemaError",
    "load_schema",
    "make_codec",
    "open_registry",
    "parse_schema_file",
]
