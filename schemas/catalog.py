"""The project's Avro schemas, by short name, each parsed once."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import fastavro

__all__ = ["SCHEMA_DIR", "SCHEMA_NAMES", "load_schema", "parse_schema_file", "raw_schema"]

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"

#: Short names of the shipped schemas: ``payment`` is ``avro/payment.avsc``.
SCHEMA_NAMES: tuple[str, ...] = tuple(sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc")))


def raw_schema(name: str) -> dict:
    """The JSON of a shipped schema, as written in its ``.avsc`` file."""
    if name not in SCHEMA_NAMES:
        known = ", ".join(SCHEMA_NAMES)
        raise KeyError(f"unknown schema {name!r} (known: {known})")
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())


@functools.cache
def load_schema(name: str) -> dict:
    """A shipped schema, parsed by fastavro once per process and shared."""
    return fastavro.parse_schema(raw_schema(name))


def parse_schema_file(path: str | Path) -> dict:
    """Parse a user's ``.avsc`` file (not cached: files may change)."""
    return fastavro.parse_schema(json.loads(Path(path).read_text()))
