"""Realistic demo events for the seed domains (shared/DOMAINS.md), seeded.

Each domain is a small generator object: ``next(event_ms)`` returns
``(key, record)`` for an event at that time. Everything random comes from one
``random.Random`` seeded by (domain, seed), so a seed gives the same events.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

__all__ = ["DOMAINS", "Domain"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CENT = Decimal("0.01")


def _at(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _money(rng: random.Random, median: float, spread: float = 0.8) -> Decimal:
    return Decimal(str(max(0.5, rng.lognormvariate(math.log(median), spread)))).quantize(_CENT)


# (name, category, median amount, latitude, longitude): shops around New York City.
_MERCHANTS = [
    ("ElectronicsStore", "Electronics", 180.0, 40.730610, -73.935242),
    ("GroceryMart", "Groceries", 45.0, 40.712776, -74.005974),
    ("CoffeeCorner", "Food & Drink", 6.5, 40.741895, -73.989308),
    ("BookNook", "Books", 22.0, 40.729513, -73.996461),
    ("FashionHub", "Apparel", 75.0, 40.758896, -73.985130),
    ("FuelStop", "Fuel", 52.0, 40.650002, -73.949997),
    ("PharmaPlus", "Health", 28.0, 40.678178, -73.944158),
    ("HomeGoods", "Home", 95.0, 40.789142, -73.134960),
    ("PizzaPalace", "Food & Drink", 24.0, 40.706086, -73.996864),
    ("TravelDesk", "Travel", 420.0, 40.641311, -73.778139),
    ("GameZone", "Entertainment", 60.0, 40.750298, -73.993324),
    ("PetWorld", "Pets", 38.0, 40.768093, -73.981886),
]
_TX_TYPES = ["purchase"] * 17 + ["refund", "withdrawal", "deposit"]


class _Payments:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.accounts = [f"A{rng.randrange(10000, 99999)}" for _ in range(400)]
        # A few busy accounts, as real traffic has.
        self.weights = [rng.paretovariate(1.5) for _ in self.accounts]

    def next(self, event_ms: int) -> tuple[str, dict]:
        rng = self.rng
        account = rng.choices(self.accounts, self.weights)[0]
        name, category, median, lat, lon = rng.choice(_MERCHANTS)
        amount = _money(rng, median)
        if rng.random() < 0.005:  # the odd very large payment a fraud rule should catch
            amount = _money(rng, 8000.0, 0.4)
        record = {
            "transaction_id": f"{rng.getrandbits(64):016x}",
            "timestamp": _at(event_ms),
            "account_id": account,
            "transaction_type": rng.choice(_TX_TYPES),
            "amount": amount,
            "currency": rng.choices(["USD", "EUR", "GBP"], [90, 6, 4])[0],
            "merchant": {
                "name": name,
                "category": category,
                "location": {
                    "latitude": round(lat + rng.uniform(-0.01, 0.01), 6),
                    "longitude": round(lon + rng.uniform(-0.01, 0.01), 6),
                },
            },
        }
        return account, record


_STATIONS = {
    "Times Sq-42 St": 14, "Grand Central-42 St": 12, "34 St-Penn Station": 12,
    "Fulton St": 8, "Union Sq-14 St": 10, "Atlantic Av-Barclays Ctr": 8,
    "59 St-Columbus Circle": 8, "Jay St-MetroTech": 6, "125 St": 6, "Court Sq": 4,
}


class _Turnstiles:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.devices = [
            (station, f"R{100 + s:03d}-{t // 4:02d}-{t % 4:02d}", f"D{rng.getrandbits(24):06X}", size)
            for s, (station, size) in enumerate(_STATIONS.items())
            for t in range(size)
        ]

    def next(self, event_ms: int) -> tuple[str, dict]:
        rng = self.rng
        station, turnstile, device, size = rng.choice(self.devices)
        hour = _at(event_ms).hour
        rush = 3.0 if hour in (7, 8, 9, 17, 18, 19) else 1.0
        record = {
            "reading_id": f"{rng.getrandbits(64):016x}",
            "timestamp": _at(event_ms),
            "station": station,
            "turnstile_id": turnstile,
            "device_id": device,
            "entries": int(rng.expovariate(1 / (4 * rush))),
            "exits": int(rng.expovariate(1 / (3.5 * rush))),
        }
        return station, record


_PRODUCTS = [(f"P{n:04d}", cat, price) for n, (cat, price) in enumerate(
    [("Electronics", 249.0), ("Books", 18.0), ("Apparel", 39.0), ("Home", 59.0), ("Toys", 25.0)] * 8
)]


class _Commerce:
    """Users in visits: views, some cart adds, fewer purchases, then they leave."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.users = [f"U{rng.randrange(100000, 999999)}" for _ in range(300)]
        self.active: list[dict] = []

    def next(self, event_ms: int) -> tuple[str, dict]:
        rng = self.rng
        if len(self.active) < 40 or rng.random() < 0.05:
            self.active.append({
                "user": rng.choice(self.users),
                "hint": f"s{rng.getrandbits(40):010x}" if rng.random() < 0.7 else None,
                "device": rng.choice(["web", "web", "ios", "android"]),
                "cart": [],
            })
        visit = rng.choice(self.active)
        if visit["cart"] and rng.random() < 0.2:
            action, product = "purchase", visit["cart"][-1]
            self.active.remove(visit)
        elif visit["cart"] and rng.random() < 0.05:
            action, product = "remove_from_cart", visit["cart"].pop()
        else:
            product = rng.choice(_PRODUCTS)
            action = "add_to_cart" if rng.random() < 0.15 else "view"
            if action == "add_to_cart":
                visit["cart"].append(product)
            elif rng.random() < 0.08:
                self.active.remove(visit)  # left without buying
        product_id, category, price = product
        record = {
            "event_id": f"{rng.getrandbits(64):016x}",
            "timestamp": _at(event_ms),
            "user_id": visit["user"],
            "session_hint": visit["hint"],
            "device": visit["device"],
            "action": action,
            "product_id": product_id,
            "category": category,
            "price": Decimal(str(price)).quantize(_CENT),
            "quantity": 1 if action != "add_to_cart" else rng.choice([1, 1, 1, 2]),
        }
        return visit["user"], record


@dataclass(frozen=True)
class Domain:
    name: str
    schema: str  #: shipped schema name (schemas/avro/<schema>.avsc)
    topic: str  #: default topic
    key_field: str
    make: Callable[[random.Random], object]

    def generator(self, seed: int):
        return self.make(random.Random(f"{self.name}:{seed}"))


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain("payments", "payment", "payment_msg", "account_id", _Payments),
        Domain("turnstiles", "turnstile", "turnstile-stream", "station", _Turnstiles),
        Domain("commerce", "commerce_event", "commerce-events", "user_id", _Commerce),
    )
}
