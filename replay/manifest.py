"""The replay manifest: every replay point resolved, once, at launch, into exact
per-partition offset ranges, plus everything needed to read them the same way again.

A manifest is JSON (``Manifest.to_json`` / ``Manifest.load``). Running from a saved
manifest reads exactly the records it names, however much was appended since.
Ranges are half-open: ``[start, stop)``; ``stop`` is None for a live (unbounded) read.

A drained live run's manifest also holds, per partition, the **clock marks** of the
run (``PartitionRange.clock_marks``): the watermarks a caught-up partition's clock gave
the records it may have decided. A replay gives each record the clock cutoff the live
run gave it, so it drops exactly the records the live run dropped.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kappa.replay.errors import ReplayError

__all__ = ["MANIFEST_VERSION", "CarriedDecoding", "DecodingSpec", "Manifest", "PartitionRange", "code_version"]

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PartitionRange:
    """One partition's offsets ``[start, stop)``.

    ``clock_marks``: ``(offset, watermark_ms)`` pairs in increasing offset order, one for
    each record whose fate the clock could decide in a live run: read while its
    partition's watermark W, moved by the clock, was past both the log's watermark before
    the record (its cutoff) and its event time (the record's clock cutoff,
    ``SourceRecord.clock_cutoff_ms``), or dropped at its key by a runner's watermark past
    its cutoffs (that watermark; the greater one where both). A replay gives the record
    at offset o the watermark w of its own mark as its clock cutoff, on the live run's
    condition ``cutoff < w`` and ``event_ms < w``: that repeats every live decision, and
    a record without a mark had no clock cutoff live either."""

    topic: str
    partition: int
    start: int
    stop: int | None  #: exclusive; None: live, no end
    start_selector: str = ""  #: how ``start`` was found, for people reading the manifest
    stop_selector: str = ""
    clock_marks: tuple[tuple[int, int], ...] = ()
    #: the log's greatest event time before ``start`` (a live run continuing a group's
    #: commit): the reader's watermark starts there, so cutoffs are as from the beginning
    start_newest_ms: int | None = None

    @property
    def size(self) -> int | None:
        return None if self.stop is None else self.stop - self.start


@dataclass(frozen=True)
class DecodingSpec:
    """How record values are decoded: a codec format and the reader's schema."""

    format: str = "confluent"  #: avro | confluent | json
    schema: str = "payment"  #: shipped schema name, or a path to an .avsc file
    registry: str | None = None  #: file-backed schema registry, for the confluent format
    subject: str | None = None
    schema_ids: tuple[int, ...] = ()  #: ids registered under the subject at launch

    def make_codec(self):
        return self.carried().make_codec()

    def carried(self) -> "CarriedDecoding":
        """This decoding as it travels with a job to its workers: the reader schema's
        contents and, for a registry file, the writer schemas it holds now; a remote
        worker has no copy of the launcher's files. An HTTP registry travels as its URL."""
        from kappa.schemas.catalog import SCHEMA_NAMES
        from kappa.schemas.registry import FileSchemaRegistry, is_url

        try:
            schema = self.schema if self.schema in SCHEMA_NAMES else json.loads(Path(self.schema).read_text())
        except (OSError, ValueError) as err:
            raise ReplayError(f"--schema {self.schema}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
        if self.registry and not is_url(self.registry):
            writers = tuple(sorted(FileSchemaRegistry(self.registry).snapshot().items()))
            return CarriedDecoding(self.format, schema, None, self.registry, writers)
        return CarriedDecoding(self.format, schema, self.registry)


@dataclass(frozen=True)
class CarriedDecoding:
    """A :class:`DecodingSpec` with contents instead of launcher paths (``DecodingSpec.carried``)."""

    format: str
    schema: str | dict  #: a shipped schema's name, or the reader schema itself
    registry_url: str | None = None  #: an HTTP registry
    registry_file: str | None = None  #: the launcher's registry file: read where a worker sees it
    writer_schemas: tuple[tuple[int, str], ...] = ()  #: that file's schemas at launch, by id

    def make_codec(self):
        from kappa.schemas import make_codec
        from kappa.schemas.registry import HttpSchemaRegistry, SnapshotRegistry

        if self.registry_url:
            registry = HttpSchemaRegistry(self.registry_url)
        elif self.registry_file:
            registry = SnapshotRegistry(dict(self.writer_schemas), self.registry_file)
        else:
            registry = None
        return make_codec(self.format, self.schema, registry=registry)


@dataclass(frozen=True)
class Manifest:
    bootstrap: str
    topic: str
    from_point: str
    to_point: str
    ranges: tuple[PartitionRange, ...]
    decoding: DecodingSpec = DecodingSpec()
    event_time: str = "field:timestamp"
    max_out_of_orderness_ms: int = 0
    isolation_level: str = "read_committed"
    pipeline: dict = field(default_factory=dict)
    created_at: str = ""
    code_version: str = ""
    version: int = MANIFEST_VERSION

    @property
    def live(self) -> bool:
        return any(r.stop is None for r in self.ranges)

    @property
    def total(self) -> int | None:
        """Records (offsets) to read in all; None for a live read."""
        return None if self.live else sum(r.size for r in self.ranges)

    def to_json(self) -> str:
        data = asdict(self)
        data["decoding"]["schema_ids"] = list(self.decoding.schema_ids)
        return json.dumps(data, indent=2)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.to_json() + "\n")
        except OSError as err:
            raise ReplayError(f"cannot write the manifest to {path}: {err.strerror}") from None

    @classmethod
    def from_json(cls, text: str, origin: str = "manifest") -> "Manifest":
        try:
            data = json.loads(text)
            if data.get("version") != MANIFEST_VERSION:
                raise ReplayError(f"{origin} has manifest version {data.get('version')!r}; "
                                  f"this kappa reads version {MANIFEST_VERSION}")
            data["ranges"] = tuple(_partition_range(r) for r in data["ranges"])
            decoding = dict(data.get("decoding") or {})
            decoding["schema_ids"] = tuple(decoding.get("schema_ids", ()))
            data["decoding"] = DecodingSpec(**decoding)
            manifest = cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as err:  # ValueError: bad JSON too
            raise ReplayError(f"{origin} is not a kappa replay manifest: {err}") from None
        for r in manifest.ranges:
            if r.start < 0 or (r.stop is not None and r.stop < r.start):
                raise ReplayError(f"{origin}: partition {r.partition} has an empty or inverted range [{r.start}, {r.stop})")
            offsets = [o for o, _ in r.clock_marks]
            if offsets != sorted(set(offsets)):
                raise ReplayError(f"{origin}: partition {r.partition} has clock marks out of offset order")
        return manifest

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ReplayError(f"cannot read manifest {path}: {err.strerror}") from None
        return cls.from_json(text, origin=str(path))


def _partition_range(data: dict) -> PartitionRange:
    """A range from its JSON form (clock marks as lists; manifests before them have none)."""
    marks = tuple((int(o), int(w)) for o, w in data.get("clock_marks", ()))
    return PartitionRange(**{**data, "clock_marks": marks})


def code_version() -> str:
    """The package version and, in a git checkout, the commit (``+dirty`` if modified)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("kappa-replay")
    except PackageNotFoundError:
        package = "unknown"
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty=+dirty"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"kappa {package}" + (f" ({commit})" if commit else "")
