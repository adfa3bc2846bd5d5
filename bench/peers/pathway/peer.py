"""Pathway 0.33.0: per (merchant, 1-minute event-time window) count and exact decimal total.

``pw.io.kafka.read`` in static mode (raw values; reads each partition to its end at start, so
the topic must hold exactly ``--events``: bench/run gives it bench-payments-N), a Python UDF
decoding the Confluent Avro value with fastavro into (merchant, event ms, amount in cents),
``windowby`` a 1-minute tumbling window per merchant with ``common_behavior(cutoff=30 s)`` (the
bound kappa uses), count and sum. Pathway has no decimal column type: the amount (Avro
decimal(18, 2)) is summed exactly as integer cents. Results are taken with ``pw.io.subscribe``
(the last addition per window wins). Pathway judges lateness against the greatest event time it
has seen in the whole stream, so where it reads the partitions one after another it drops
records of a later partition as late: what it gives is reported, not corrected.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pathway as pw  # noqa: E402

from common import BOUND_MS, WINDOW_MS, avro_decoder, epoch_ms, parse_args, write_totals  # noqa: E402


def main() -> None:
    args = parse_args(__doc__)
    decode = avro_decoder(args.schema)

    @pw.udf
    def fields(value: bytes) -> tuple[str, int, int]:
        try:
            p = decode(value)
            return (p["merchant"]["name"], epoch_ms(p["timestamp"]), int(p["amount"].scaleb(2)))
        except Exception:  # noqa: BLE001  (counted below as invalid, as the loop counts them)
            return ("", -1, 0)

    raw = pw.io.kafka.read({"bootstrap.servers": args.bootstrap, "group.id": f"bench-pathway-{args.out}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": "false"},
                           args.topic, format="raw", mode="static", autocommit_duration_ms=1000)
    decoded = raw.select(f=fields(pw.this.data))
    payments = decoded.select(merchant=pw.this.f[0], ms=pw.this.f[1], cents=pw.this.f[2])
    per_minute = payments.windowby(
        pw.this.ms, window=pw.temporal.tumbling(duration=WINDOW_MS), instance=pw.this.merchant,
        behavior=pw.temporal.common_behavior(cutoff=BOUND_MS),
    ).reduce(merchant=pw.this._pw_instance, start=pw.this._pw_window_start,
             n=pw.reducers.count(), cents=pw.reducers.sum(pw.this.cents))
    read = payments.reduce(n=pw.reducers.count())
    totals: dict = {}
    seen = {"n": 0}

    def on_window(key, row, time, is_addition):
        slot = (row["merchant"], row["start"])
        if is_addition:
            totals[slot] = (row["n"], row["cents"])
        elif totals.get(slot) == (row["n"], row["cents"]):
            del totals[slot]

    def on_read(key, row, time, is_addition):
        if is_addition:
            seen["n"] = row["n"]

    pw.io.subscribe(per_minute, on_change=on_window)
    pw.io.subscribe(read, on_change=on_read)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    invalid = totals.pop(("", -1 - (-1 % WINDOW_MS)), (0, 0))[0]  # the undecodable records' window, if any
    result = {slot: (n, Decimal(cents).scaleb(-2)) for slot, (n, cents) in totals.items()}
    counted = invalid + sum(n for n, _ in result.values())
    write_totals(args.out, result, seen["n"], invalid, late=seen["n"] - counted)


if __name__ == "__main__":
    main()
