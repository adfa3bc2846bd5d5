"""user_sessions: page-view and cart events per user in session windows (default gap
30 minutes): when the session started and ended, how many events, which products
were viewed, and whether a cart add led to a purchase."""

from __future__ import annotations

from kappa.pipelines.base import InvalidRecord, WindowedPipeline
from kappa.schemas.jsonform import format_instant

__all__ = ["UserSessions"]


class _Session:
    """(first ms, last ms, events, products viewed, carted products, bought products)."""

    def create(self):
        return None, None, 0, frozenset(), frozenset(), frozenset()

    def add(self, acc, event):
        t, action, product = event
        first = t if acc[0] is None else min(acc[0], t)
        last = t if acc[1] is None else max(acc[1], t)
        viewed = acc[3] | {product} if action == "view" else acc[3]
        carted = acc[4] | {product} if action == "add_to_cart" else acc[4]
        bought = acc[5] | {product} if action == "purchase" else acc[5]
        return first, last, acc[2] + 1, viewed, carted, bought

    def merge(self, accs):
        firsts = [a[0] for a in accs if a[0] is not None]
        lasts = [a[1] for a in accs if a[1] is not None]
        union = lambda i: frozenset().union(*(a[i] for a in accs))  # noqa: E731
        return (min(firsts, default=None), max(lasts, default=None), sum(a[2] for a in accs),
                union(3), union(4), union(5))

    def extract(self, acc):
        return acc


class UserSessions(WindowedPipeline):
    name = "user_sessions"
    input_schema = "commerce_event"
    DEFAULTS = {"window": "session:30m", "allowed_lateness": "0s", "max_out_of_orderness": "1m"}

    def key_of(self, event: dict) -> str:
        if not event.get("user_id"):
            raise InvalidRecord("user_id is missing or empty")
        return event["user_id"]

    def value_of(self, record):
        return record.event_ms, record.value["action"], record.value["product_id"]

    def aggregation(self):
        return _Session()

    def values(self, acc) -> dict:
        first, last, events, viewed, carted, bought = acc
        return {
            "session_start": format_instant(first),
            "session_end": format_instant(last),
            "events": events,
            "products_viewed": sorted(viewed),
            "cart_to_purchase": bool(carted & bought),
        }
