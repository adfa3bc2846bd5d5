"""What every peer shares: its command line, the Confluent Avro decoding, and the totals it writes.

Each peer runs in its own virtualenv (``bench/.venvs/<name>``) with only its requirements and
fastavro; this module is plain Python, imported by path. A peer reads offsets
[0, events/partitions) of every partition of ``--topic``, computes per (merchant, 1-minute
event-time window) a count and an exact decimal total, and writes ``--out`` as JSON:
``{"events": N read, "invalid": n, "late": n dropped as late by the peer (or null when it does
not say), "totals": [[merchant, window_start_ms, count, "total"], ...]}``.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
from decimal import Decimal
from pathlib import Path

WINDOW_MS = 60_000
BOUND_MS = 30_000  # bench/pipeline_replay.py's watermark bound (kappa's max out-of-orderness)
HEADER = 5  # Confluent wire format: magic byte 0, then a 4-byte schema id, then the Avro body


def parse_args(description: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--schema", required=True, help="schemas/avro/payment.avsc")
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", help="a scratch directory of this run")
    args = parser.parse_args()
    args.stop = args.events // args.partitions
    return args


def avro_decoder(schema_path: str):
    """bytes in the Confluent wire format -> the payment dict (fastavro: Decimal amount, datetime timestamp)."""
    import fastavro

    schema = fastavro.parse_schema(json.loads(Path(schema_path).read_text()))
    reader = fastavro.schemaless_reader

    def decode(value: bytes) -> dict:
        if len(value) < HEADER or value[0] != 0:
            raise ValueError("not the Confluent wire format")
        return reader(io.BytesIO(value[HEADER:]), schema, None)

    return decode


def epoch_ms(dt) -> int:
    """A timezone-aware datetime as integer epoch milliseconds (no float rounding)."""
    from datetime import datetime, timedelta, timezone

    return (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)


def write_totals(out: str, totals: dict, events: int, invalid: int = 0, late: int | None = None) -> None:
    """``totals``: {(merchant, window_start_ms): (count, Decimal total)}."""
    rows = [[k, int(w), int(c), str(Decimal(t))] for (k, w), (c, t) in sorted(totals.items())]
    Path(out).write_text(json.dumps({"events": events, "invalid": invalid, "late": late, "totals": rows,
                                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
