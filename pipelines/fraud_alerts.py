"""fraud_alerts: payments per account over sliding windows (default 10 minutes every
minute). A window raises an alert when one amount exceeds ``single_limit``, or its
count exceeds ``count_limit``, or its total exceeds ``total_limit``. Results are
emitted only for alerting panes; :func:`to_fraud_alert` gives the FraudAlert record
(``schemas/avro/fraud_alert.avsc``), its ``alert_id`` deterministic per account,
window and reason.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from kappa.pipelines.base import InvalidRecord, WindowedPipeline

__all__ = ["FraudAlerts", "to_fraud_alert"]

_CENT = Decimal("0.01")


class _Window:
    """(count, total, largest amount, its transaction, transaction ids)."""

    def create(self):
        return 0, Decimal(0), Decimal(0), "", ()

    def add(self, acc, payment):
        amount, tx = payment
        largest, largest_tx = (amount, tx) if (amount, tx) > (acc[2], acc[3]) else (acc[2], acc[3])
        return acc[0] + 1, acc[1] + amount, largest, largest_tx, tuple(sorted(acc[4] + (tx,)))

    def merge(self, accs):
        out = self.create()
        for a in accs:
            largest = max((out[2], out[3]), (a[2], a[3]))
            out = out[0] + a[0], out[1] + a[1], largest[0], largest[1], tuple(sorted(out[4] + a[4]))
        return out

    def extract(self, acc):
        return acc


class FraudAlerts(WindowedPipeline):
    name = "fraud_alerts"
    input_schema = "payment"
    DEFAULTS = {"window": "sliding:10m/1m", "allowed_lateness": "0s", "max_out_of_orderness": "30s"}

    def __init__(self, config=None, single_limit: Decimal = Decimal("5000.00"), count_limit: int = 10,
                 total_limit: Decimal = Decimal("10000.00"), **overrides):
        super().__init__(config, **overrides)
        self.single_limit, self.count_limit, self.total_limit = Decimal(single_limit), count_limit, Decimal(total_limit)

    def key_of(self, payment: dict) -> str:
        if not payment.get("account_id"):
            raise InvalidRecord("account_id is missing or empty")
        return payment["account_id"]

    def value_of(self, record):
        return record.value["amount"], record.value["transaction_id"]

    def aggregation(self):
        return _Window()

    def values(self, acc) -> dict | None:
        count, total, largest, largest_tx, txs = acc
        if largest > self.single_limit:
            reason, ids = f"Unusual high amount: {largest.quantize(_CENT)}", [largest_tx]
        elif count > self.count_limit:
            reason, ids = f"Unusual number of payments: {count}", list(txs)
        elif total > self.total_limit:
            reason, ids = f"Unusual total: {total.quantize(_CENT)}", list(txs)
        else:
            return None
        return {"count": count, "total_amount": total.quantize(_CENT), "reason": reason,
                "action": "Flagged for review", "transaction_ids": ids}


def to_fraud_alert(result: dict) -> dict:
    """The FraudAlert record of a fraud_alerts result."""
    values = result["values"]
    reason_kind = values["reason"].split(":")[0]
    alert_id = hashlib.sha256(f"{result['key']}\x1f{result['window_start']}\x1f{reason_kind}".encode()).hexdigest()[:16]
    return {
        "alert_id": f"alert{alert_id}",
        "timestamp": result["window_end"],
        "account_id": result["key"],
        "transaction_ids": values["transaction_ids"],
        "window_start": result["window_start"],
        "window_end": result["window_end"],
        "reason": values["reason"],
        "action": values["action"],
        "count": values["count"],
        "total_amount": values["total_amount"],
    }
