"""Schema registries: where Confluent wire-format schema ids are resolved.

The interface mirrors Confluent Schema Registry's core (register a schema under a
subject, look one up by id) so an HTTP client can stand in for the file-backed
registry later without touching the codecs.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

import fastavro
from fastavro.schema import to_parsing_canonical_form

__all__ = ["FileSchemaRegistry", "SchemaRegistry", "UnknownSchemaError"]


class UnknownSchemaError(LookupError):
    """No schema is registered under the id or subject asked for."""


class SchemaRegistry(Protocol):
    def register(self, subject: str, schema: dict) -> int:
        """Register ``schema`` under ``subject``; return its id.

        Registering a schema that is already known (same canonical form) returns
        the existing id, as Confluent's registry does.
        """

    def schema_by_id(self, schema_id: int) -> dict:
        """The schema JSON registered under ``schema_id``, or UnknownSchemaError."""

    def latest(self, subject: str) -> tuple[int, dict]:
        """The id and JSON of the newest version under ``subject``."""


class FileSchemaRegistry:
    """A registry kept in one JSON file, safe for several processes on one host.

    Ids start at 1 and are never reused. Writes take an exclusive ``flock`` and
    replace the file atomically; lookups of an id not yet seen re-read the file,
    so a consumer sees schemas a producer registered after the consumer started.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._by_id: dict[int, dict] = {}

    def register(self, subject: str, schema: dict) -> int:
        canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
        with self._locked() as state:
            for sid, text in state["schemas"].items():
                if to_parsing_canonical_form(fastavro.parse_schema(json.loads(text))) == canonical:
                    schema_id = int(sid)
                    break
            else:
                schema_id = state["next_id"]
                state["next_id"] += 1
                state["schemas"][str(schema_id)] = json.dumps(schema, sort_keys=True)
            versions = state["subjects"].setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            self._write(state)
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict:
        if schema_id not in self._by_id:
            text = self._read()["schemas"].get(str(schema_id))
            if text is None:
                raise UnknownSchemaError(f"schema id {schema_id} is not in the registry {self.path}")
            self._by_id[schema_id] = json.loads(text)
        return self._by_id[schema_id]

    def latest(self, subject: str) -> tuple[int, dict]:
        versions = self._read()["subjects"].get(subject)
        if not versions:
            raise UnknownSchemaError(f"subject {subject!r} is not in the registry {self.path}")
        return versions[-1], self.schema_by_id(versions[-1])

    def subjects(self) -> dict[str, list[int]]:
        return self._read()["subjects"]

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"next_id": 1, "schemas": {}, "subjects": {}}

    @contextmanager
    def _locked(self) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self._read()

    def _write(self, state: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
