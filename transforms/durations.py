"""Durations and instants as integer milliseconds, parsed from what users type.

Durations: ISO-8601 (``PT30S``, ``PT1H30M``, ``P1D``) or shorthand with a unit
(``500ms``, ``30s``, ``5m``, ``4h``, ``1d``, combinable: ``1h30m``). Months and
years are refused: their length in milliseconds is not fixed.

Instants: ISO-8601 with an offset (``2026-11-20T09:00:00Z``), ``now``, or a
duration ago (``-PT6H``, ``-6h``). Every value is epoch milliseconds (UTC).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["format_duration_ms", "parse_duration_ms", "parse_instant_ms"]

_ISO = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d{1,3})?)S)?)?$"
)
_SHORT = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a non-negative duration; ValueError saying why if it is not one."""
    value = text.strip()
    match = _ISO.match(value.upper())
    if match and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        d, h, m, s = (match.group(k) for k in "dhms")
        return (
            int(d or 0) * _UNIT_MS["d"]
            + int(h or 0) * _UNIT_MS["h"]
            + int(m or 0) * _UNIT_MS["m"]
            + round(float(s or 0) * 1000)
        )
    parts = _SHORT.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(int(n) * _UNIT_MS[u] for n, u in parts)
    raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h30m, PT10M or P1D)")


def parse_instant_ms(text: str, now_ms: int) -> int:
    """Epoch ms of an ISO-8601 instant, ``now``, or a duration ago (``-PT6H``, ``-6h``)."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    if value.startswith("-"):
        return now_ms - parse_duration_ms(value[1:])
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an instant (write e.g. 2026-11-20T09:00:00Z, now, or -PT6H for six hours ago)"
        ) from None
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +00:00)")
    return int(instant.astimezone(timezone.utc).timestamp() * 1000)


def format_duration_ms(ms: int) -> str:
    """Short human form: ``1h30m``, ``45s``, ``250ms``."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
