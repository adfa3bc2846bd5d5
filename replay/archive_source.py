"""Reading archive files written by ``kappa produce --archive``: JSON lines or Avro
container files, with the same element shape as the live sources.

Provenance is ``("file", path, None, position)``: the 1-based line of a ``.jsonl``
file, the 1-based record number of an ``.avro`` file. A line that does not decode,
or a record without a usable event time, goes to the dead-letter output.
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam

from kappa.replay.decoding import DEAD_LETTER, RECORDS_READ, RecordDecoder, at_event_time, count_dead_letter, expand_read
from kappa.replay.errors import ReplayError
from kappa.schemas import make_codec
from kappa.schemas.records import Provenance, SourceRecord
from kappa.transforms.event_time import EventTimeSpec
from kappa.transforms.watermark import OutOfOrdernessWatermark

__all__ = ["ReadArchive", "read_archive_records"]


def read_archive_records(path: Path, schema: str, event_time: str, bound_ms: int = 0):
    """Yield SourceRecord or DeadLetter for every line or record of ``path``, in file order;
    a record's cutoff is the file's watermark before it (greatest event time so far - ``bound_ms``)."""
    watermark = OutOfOrdernessWatermark(bound_ms)  # a file is read once, start to end: no clock
    for out in _decoded(path, schema, event_time):
        if type(out) is SourceRecord:
            out = out._replace(cutoff_ms=watermark.log_watermark_ms())
            watermark.observe(out.event_ms)
        yield out


def _decoded(path: Path, schema: str, event_time: str):
    decode = RecordDecoder(make_codec("json", schema), EventTimeSpec.parse(event_time))
    stream = str(path)
    if path.suffix == ".jsonl":
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield decode(line, None, Provenance("file", stream, None, number))
    elif path.suffix == ".avro":
        import fastavro

        with open(path, "rb") as data:
            try:
                reader = fastavro.reader(data)
            except Exception as err:  # not an Avro container at all
                raise ReplayError(f"{path} is not an Avro container file: {err}") from None
            for number, record in enumerate(reader, start=1):
                yield decode(None, None, Provenance("file", stream, None, number), decoded=record)
    else:
        raise ReplayError(f"{path}: an archive is a .jsonl or .avro file")


class _ReadArchiveFn(beam.DoFn):
    def __init__(self, schema: str, event_time: str, bound_ms: int):
        self.schema, self.event_time, self.bound_ms = schema, event_time, bound_ms

    def process(self, path: str):
        for out in read_archive_records(Path(path), self.schema, self.event_time, self.bound_ms):
            RECORDS_READ.inc()
            if type(out) is SourceRecord:
                yield at_event_time(out)
            else:
                count_dead_letter(out.reason)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, out)


class ReadArchive(beam.PTransform):
    """Archive files as ``{"records": ..., "dead_letters": ...}`` (a bounded read)."""

    def __init__(self, paths: list[str | Path], schema: str = "payment", event_time: str = "field:timestamp",
                 max_out_of_orderness_ms: int = 0):
        super().__init__()
        self.paths = [str(p) for p in paths]
        self.schema, self.event_time, self.bound_ms = schema, event_time, max_out_of_orderness_ms

    def expand(self, pbegin):
        return expand_read(pbegin, "Files", self.paths, _ReadArchiveFn(self.schema, self.event_time, self.bound_ms))
