"""merchant_totals: payments per merchant name in fixed windows (default 1 minute):
``count`` and ``total_amount`` (exact decimal; ``"1234.50"`` in JSON)."""

from __future__ import annotations

from decimal import Decimal

from kappa.pipelines.base import InvalidRecord, WindowedPipeline

__all__ = ["MerchantTotals"]

_CENT = Decimal("0.01")


class CountAndTotal:
    """(count, total): Decimal sums are exact, so the order of arrival cannot matter."""

    def create(self):
        return 0, Decimal(0)

    def add(self, acc, amount):
        return acc[0] + 1, acc[1] + amount

    def merge(self, accs):
        return sum(a[0] for a in accs), sum((a[1] for a in accs), Decimal(0))

    def extract(self, acc):
        return acc


class MerchantTotals(WindowedPipeline):
    name = "merchant_totals"
    input_schema = "payment"
    DEFAULTS = {"window": "1m", "allowed_lateness": "0s", "max_out_of_orderness": "30s"}

    def key_of(self, payment: dict) -> str:
        name = (payment.get("merchant") or {}).get("name")
        if not name:
            raise InvalidRecord("merchant.name is missing or empty")
        return name

    def value_of(self, record):
        return record.value["amount"]

    def aggregation(self):
        return CountAndTotal()

    def values(self, acc) -> dict:
        return {"count": acc[0], "total_amount": acc[1].quantize(_CENT)}
