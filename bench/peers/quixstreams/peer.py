"""Quix Streams 3.28.1: per (merchant, 1-minute event-time window) count and exact decimal total.

A fresh consumer group per run (``auto_offset_reset="earliest"``), a deserializer decoding the
Confluent Avro value with fastavro into (merchant, amount in exact integer cents: the JSON that
Quix writes between steps has no decimals), event time from the payload (a timestamp extractor),
``group_by("merchant")`` (Quix windows per message key: it repartitions through a Kafka topic
of its own), then ``tumbling_window(1 min, grace 30 s)`` (the bound kappa uses) ``.reduce``
``.current()``, keeping the latest value per window. Records past offset ``stop`` of their
partition are filtered out; the run stops once all ``events`` records have reached the window
step (Quix has no end offsets). Changelog topics are off (the other systems keep no durable
state either); late records (Quix logs and drops them) show as events missing from the totals.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quixstreams import Application, message_context  # noqa: E402
from quixstreams.models.serializers import Deserializer  # noqa: E402

from common import BOUND_MS, WINDOW_MS, avro_decoder, epoch_ms, parse_args, write_totals  # noqa: E402


class PaymentDeserializer(Deserializer):
    def __init__(self, schema: str):
        super().__init__()
        self._decode = avro_decoder(schema)

    def __call__(self, value: bytes, ctx):
        try:
            p = self._decode(value)
            return {"merchant": p["merchant"]["name"], "ms": epoch_ms(p["timestamp"]),
                    "cents": int(p["amount"].scaleb(2))}
        except Exception:  # noqa: BLE001  (counted as invalid, as the loop counts them)
            return {"merchant": None, "ms": 0, "cents": 0}


def main() -> None:
    args = parse_args(__doc__)
    state = tempfile.mkdtemp(prefix="quix-state-", dir=args.work)
    app = Application(broker_address=args.bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
                      auto_offset_reset="earliest", state_dir=state, use_changelog_topics=False,
                      loglevel="ERROR")  # a WARNING line per late record would be timed too
    topic = app.topic(args.topic, value_deserializer=PaymentDeserializer(args.schema),
                      timestamp_extractor=lambda value, headers, ts, kind: value["ms"])
    counts = {"events": 0, "invalid": 0, "arrived": 0}

    def in_range(value) -> bool:
        if message_context().offset >= args.stop:
            return False
        counts["events"] += 1
        if value["merchant"] is None:
            counts["invalid"] += 1
            return False
        return True

    totals: dict = {}

    def arrived(value):
        counts["arrived"] += 1
        if counts["arrived"] + counts["invalid"] >= args.stop * args.partitions:
            app.stop()  # the message in hand still goes through the window

    def keep(value, key, timestamp, headers):
        merchant = key.decode() if isinstance(key, bytes) else key
        totals[(merchant, value["start"])] = tuple(value["value"])

    sdf = app.dataframe(topic)
    sdf = sdf.filter(in_range)
    sdf = sdf.group_by("merchant")
    sdf = sdf.update(arrived)
    sdf = (sdf.tumbling_window(duration_ms=WINDOW_MS, grace_ms=BOUND_MS)
           .reduce(reducer=lambda acc, v: [acc[0] + 1, acc[1] + v["cents"]], initializer=lambda v: [1, v["cents"]])
           .current())
    sdf = sdf.update(keep, metadata=True)
    app.run()
    result = {slot: (n, Decimal(cents).scaleb(-2)) for slot, (n, cents) in totals.items()}
    counted = sum(n for n, _ in result.values())
    write_totals(args.out, result, counts["events"], counts["invalid"],
                 late=counts["events"] - counts["invalid"] - counted)


if __name__ == "__main__":
    main()
