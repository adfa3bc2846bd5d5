"""Hypothesis strategies for records of the shipped schemas, edges included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_AMOUNT = Decimal("9999999999999999.99")  # decimal(18, 2)

# Millisecond-precision UTC instants from year 1 to 9999, with the edges drawn often.
instants = st.one_of(
    st.sampled_from([
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc),
        EPOCH,
        EPOCH - timedelta(milliseconds=1),
        EPOCH + timedelta(milliseconds=1),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=timezone.utc),  # past 32-bit seconds
    ]),
    st.integers(min_value=-62135596800000, max_value=253402300799999).map(
        lambda ms: EPOCH + timedelta(milliseconds=ms)
    ),
)

amounts = st.one_of(
    st.sampled_from([Decimal("0.00"), Decimal("0.01"), Decimal("-0.01"), MAX_AMOUNT, -MAX_AMOUNT]),
    st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=2, allow_nan=False, allow_infinity=False),
)

text = st.text(max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False)

payments = st.fixed_dictionaries({
    "transaction_id": text,
    "timestamp": instants,
    "account_id": text,
    "transaction_type": st.sampled_from(["purchase", "withdrawal", "deposit", "refund"]),
    "amount": amounts,
    "currency": st.sampled_from(["USD", "EUR", "GBP", "JPY"]),
    "merchant": st.fixed_dictionaries({
        "name": text,
        "category": text,
        "location": st.fixed_dictionaries({"latitude": finite, "longitude": finite}),
    }),
})

turnstile_readings = st.fixed_dictionaries({
    "reading_id": text,
    "timestamp": instants,
    "station": text,
    "turnstile_id": text,
    "device_id": text,
    "entries": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "exits": st.integers(min_value=0, max_value=2**63 - 1),
})

commerce_events = st.fixed_dictionaries({
    "event_id": text,
    "timestamp": instants,
    "user_id": text,
    "session_hint": st.none() | text,
    "device": st.sampled_from(["web", "ios", "android"]),
    "action": st.sampled_from(["view", "add_to_cart", "remove_from_cart", "purchase"]),
    "product_id": text,
    "category": text,
    "price": amounts,
    "quantity": st.integers(min_value=-(2**31), max_value=2**31 - 1),
})

fraud_alerts = st.fixed_dictionaries({
    "alert_id": text,
    "timestamp": instants,
    "account_id": text,
    "transaction_ids": st.lists(text, max_size=5),
    "window_start": instants,
    "window_end": instants,
    "reason": text,
    "action": text,
    "count": st.integers(min_value=0, max_value=2**63 - 1),
    "total_amount": amounts,
})


def window_results(values=None):
    """Result records; ``values`` overrides the strategy for the values map."""
    value = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), finite, text,
                      st.lists(text, max_size=4), amounts)
    return st.fixed_dictionaries({
        "id": text,
        "pane_id": text,
        "pipeline": text,
        "key": text,
        "window_start": instants,
        "window_end": instants,
        "timing": st.sampled_from(["EARLY", "ON_TIME", "LATE"]),
        "pane_index": st.integers(min_value=0, max_value=2**63 - 1),
        "is_last": st.booleans(),
        "merged_into": st.none() | text,
        "values": values if values is not None else st.dictionaries(text, value, max_size=6),
    })


BY_SCHEMA = {
    "payment": payments,
    "turnstile": turnstile_readings,
    "commerce_event": commerce_events,
    "fraud_alert": fraud_alerts,
    "window_result": window_results(),
}
