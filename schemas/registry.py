"""Schema registries: where Confluent wire-format schema ids are resolved.

The interface mirrors Confluent Schema Registry's core (register a schema under a
subject, look one up by id): a JSON file (one host) or an HTTP registry
(``--registry https://...``), the codecs cannot tell which.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import fastavro
from fastavro.schema import to_parsing_canonical_form

__all__ = ["FileSchemaRegistry", "HttpSchemaRegistry", "RegistryUnavailable", "SchemaRegistry", "SnapshotRegistry",
           "UnknownSchemaError", "configure_http_registry", "is_url", "open_registry", "public_location"]


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

    def snapshot(self) -> dict[int, str]:
        """Every schema in the file now, by id (JSON text)."""
        return {int(sid): text for sid, text in self._read()["schemas"].items()}

    def subject_ids(self, subject: str) -> list[int]:
        """The ids of ``subject``'s versions, oldest first (none if the subject is unknown)."""
        return list(self.subjects().get(subject, []))

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


#: Settings of the HTTP registry client (``--registry-option key=value``: basic.auth.user.info,
#: bearer.auth.*, ssl.ca.location, ...) as JSON, held in this process's environment so the SDK
#: worker processes a local runner starts have them too; never written.
_SETTINGS_ENV = "KAPPA_REGISTRY_SETTINGS"


def configure_http_registry(settings: dict[str, str], location: str | Path | None = None) -> None:
    """This process's HTTP registry settings; ``user:password@`` in ``location`` (a URL) gives
    ``basic.auth.user.info`` unless ``settings`` has it."""
    settings = dict(settings)
    credentials = _credentials(str(location or ""))
    if credentials:
        settings.setdefault("basic.auth.user.info", credentials)
    os.environ[_SETTINGS_ENV] = json.dumps(settings)


def _http_settings() -> dict[str, str]:
    """This process's settings (in a worker process, those of the kappa process that started it)."""
    return json.loads(os.environ.get(_SETTINGS_ENV) or "{}")


def is_url(location: str | Path) -> bool:
    """Whether a ``--registry`` value names an HTTP registry (else a registry file)."""
    return str(location).startswith(("http://", "https://"))


def _credentials(location: str) -> str | None:
    """``user:password`` of a URL's ``user:password@host``."""
    netloc = urlsplit(location).netloc if is_url(location) else ""
    return unquote(netloc.rsplit("@", 1)[0]) if "@" in netloc else None


def public_location(location: str) -> str:
    """``location`` as it may be written down: a URL without the credentials it may carry."""
    if _credentials(location) is None:
        return location
    parts = urlsplit(location)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class SnapshotRegistry:
    """A registry file's schemas copied at launch (``FileSchemaRegistry.snapshot``), for
    workers: an id the copy lacks (registered after launch) is looked up in the file
    itself where the worker sees it (local runners), else it is unknown. Lookups only."""

    def __init__(self, schemas: dict[int, str], path: str | Path):
        self._schemas = dict(schemas)
        self._file = FileSchemaRegistry(path)

    def schema_by_id(self, schema_id: int) -> dict:
        if schema_id in self._schemas:
            return json.loads(self._schemas[schema_id])
        if self._file.path.exists():
            return self._file.schema_by_id(schema_id)
        raise UnknownSchemaError(f"schema id {schema_id} was not in the registry {self._file.path} when the run "
                                 "started (a worker that cannot read that file decodes with the copy taken then)")

    def register(self, subject: str, schema: dict) -> int:
        raise TypeError("a registry snapshot is read-only")

    def latest(self, subject: str) -> tuple[int, dict]:
        raise TypeError("a registry snapshot keeps schemas by id only")


def open_registry(location: str | Path) -> SchemaRegistry:
    """``http(s)://...``: a Confluent-API schema registry; anything else: a registry file."""
    return HttpSchemaRegistry(str(location)) if is_url(location) else FileSchemaRegistry(location)


class HttpSchemaRegistry:
    """A Confluent Schema Registry (or one speaking its REST API) through confluent-kafka's
    SchemaRegistryClient: writer schemas fetched by id once and cached; ``register`` puts a
    schema under a subject (``kappa produce``: ``<topic>-value``). Credentials come from
    the URL's ``user:password@`` or ``--registry-option basic.auth.user.info=user:password``."""

    def __init__(self, url: str):
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = public_location(url)
        config = {"url": self.url, **_http_settings()}
        credentials = _credentials(url)
        if credentials:
            config.setdefault("basic.auth.user.info", credentials)
        self._client = SchemaRegistryClient(config)
        self._by_id: dict[int, dict] = {}

    def register(self, subject: str, schema: dict) -> int:
        from confluent_kafka.schema_registry import Schema

        return self._call(lambda: self._client.register_schema(subject, Schema(json.dumps(schema), "AVRO")),
                          f"registering a schema under {subject!r}")

    def schema_by_id(self, schema_id: int) -> dict:
        if schema_id not in self._by_id:
            found = self._call(lambda: self._client.get_schema(schema_id), f"schema id {schema_id}")
            self._by_id[schema_id] = json.loads(found.schema_str)
        return self._by_id[schema_id]

    def latest(self, subject: str) -> tuple[int, dict]:
        found = self._call(lambda: self._client.get_latest_version(subject), f"subject {subject!r}")
        return found.schema_id, json.loads(found.schema.schema_str)

    def subject_ids(self, subject: str) -> list[int]:
        """The ids of ``subject``'s versions, oldest first (none if the subject is unknown)."""
        try:
            versions = self._call(lambda: self._client.get_versions(subject), f"subject {subject!r}")
        except UnknownSchemaError:
            return []
        return [self._call(lambda: self._client.get_version(subject, v), f"subject {subject!r}").schema_id
                for v in versions]

    def _call(self, request, what: str):
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return request()
        except SchemaRegistryError as err:
            if err.http_status_code == 404:
                raise UnknownSchemaError(f"{what} is not in the registry {self.url}") from None
            raise RegistryUnavailable(f"schema registry {self.url}: {what}: HTTP {err.http_status_code}: "
                                      f"{err.error_message}") from None
        except Exception as err:  # requests' connection errors, TLS, DNS
            raise RegistryUnavailable(f"schema registry {self.url} did not answer ({what}): "
                                      f"{type(err).__name__}: {str(err)[:200]}") from None


class RegistryUnavailable(RuntimeError):
    """The HTTP registry refused or could not be reached."""
