"""Schema-driven JSON form of Avro records: exact decimals, ISO-8601 times.

JSON alone cannot tell a decimal from a float or a timestamp from a string, so
both directions walk the record's Avro schema:

* ``decimal`` is a string with exactly the schema's scale (``"1234.50"``); on the
  way in a string or a JSON number is accepted (numbers are parsed as Decimal, never
  float) but more fraction digits than the scale is an error, not a rounding.
* ``timestamp-millis`` is ``"2026-11-20T09:00:00.000Z"``; on the way in any
  ISO-8601 instant with an offset, or integer epoch milliseconds, is accepted.
  A time without an offset is ambiguous and rejected.
* ``bytes`` is base64; unions are written as the bare value (no Avro JSON
  ``{"type": value}`` wrapper) and read back by matching the value's JSON type.

Errors raise ``ValueError`` naming the field path; the codec turns them into
DecodeError or EncodeError.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

__all__ = ["from_json", "to_json"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PRIMITIVE_PY = {
    "null": type(None),
    "boolean": bool,
    "string": str,
}


def to_json(value, schema, named: dict, path: str = "$"):
    """The JSON-ready form of ``value`` under the parsed ``schema``."""
    schema = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(schema, list):
        return to_json(value, _union_branch_for_python(value, schema, named, path), named, path)
    kind, logical = _kind(schema)
    if logical == "decimal":
        return _decimal_text(value, schema["scale"], path)
    if logical == "timestamp-millis":
        return format_instant(value)
    if kind == "record":
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a record, got {type(value).__name__}")
        return {
            f["name"]: to_json(_field_value(value, f, path), f["type"], named, f"{path}.{f['name']}")
            for f in schema["fields"]
        }
    if kind == "array":
        return [to_json(v, schema["items"], named, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        return {k: to_json(v, schema["values"], named, f"{path}.{k}") for k, v in value.items()}
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "double" or kind == "float":
        return float(value)
    return value


def from_json(obj, schema, named: dict, path: str = "$"):
    """The decoded record (same shape fastavro gives) from its JSON form."""
    schema = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(schema, list):
        return from_json(obj, _union_branch_for_json(obj, schema, named, path), named, path)
    kind, logical = _kind(schema)
    if logical == "decimal":
        return _parse_decimal(obj, schema["scale"], path)
    if logical == "timestamp-millis":
        return parse_instant(obj, path)
    if kind == "record":
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected an object, got {_json_type(obj)}")
        out = {}
        for f in schema["fields"]:
            name = f["name"]
            if name in obj:
                out[name] = from_json(obj[name], f["type"], named, f"{path}.{name}")
            elif "default" in f:
                out[name] = f["default"]
            else:
                raise ValueError(f"{path}.{name}: missing required field")
        return out
    if kind == "array":
        _expect(obj, list, path, "an array")
        return [from_json(v, schema["items"], named, f"{path}[{i}]") for i, v in enumerate(obj)]
    if kind == "map":
        _expect(obj, dict, path, "an object")
        return {k: from_json(v, schema["values"], named, f"{path}.{k}") for k, v in obj.items()}
    if kind == "enum":
        if obj not in schema["symbols"]:
            raise ValueError(f"{path}: {obj!r} is not one of {schema['symbols']}")
        return obj
    if kind == "bytes":
        _expect(obj, str, path, "a base64 string")
        return base64.b64decode(obj, validate=True)
    if kind in ("int", "long"):
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise ValueError(f"{path}: expected an integer, got {_json_type(obj)}")
        return obj
    if kind in ("double", "float"):
        if isinstance(obj, bool) or not isinstance(obj, (int, float, Decimal)):
            raise ValueError(f"{path}: expected a number, got {_json_type(obj)}")
        return float(obj)
    _expect(obj, _PRIMITIVE_PY[kind], path, kind)
    return obj


def format_instant(value) -> str:
    """``2026-11-20T09:00:00.000Z`` from a UTC datetime or epoch milliseconds."""
    if isinstance(value, int):
        value = EPOCH + timedelta(milliseconds=value)
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    value = value.astimezone(timezone.utc)
    # Not strftime: its %Y does not zero-pad years before 1000 on every platform.
    v = value
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}Z"


def parse_instant(obj, path: str = "$") -> datetime:
    """A UTC datetime (millisecond precision) from ISO-8601 text or epoch ms."""
    if isinstance(obj, int) and not isinstance(obj, bool):
        return EPOCH + timedelta(milliseconds=obj)
    if not isinstance(obj, str):
        raise ValueError(f"{path}: expected an ISO-8601 instant, got {_json_type(obj)}")
    try:
        value = datetime.fromisoformat(obj)
    except ValueError:
        raise ValueError(f"{path}: {obj!r} is not an ISO-8601 instant") from None
    if value.tzinfo is None:
        raise ValueError(f"{path}: {obj!r} has no UTC offset (write ...Z or +00:00)")
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _kind(schema) -> tuple[str, str | None]:
    if isinstance(schema, str):
        return schema, None
    return schema["type"], schema.get("logicalType")


def _field_value(record: dict, field: dict, path: str):
    if field["name"] in record:
        return record[field["name"]]
    if "default" in field:
        return field["default"]
    raise ValueError(f"{path}.{field['name']}: missing required field")


def _decimal_text(value, scale: int, path: str) -> str:
    if not isinstance(value, Decimal):
        raise ValueError(f"{path}: expected a Decimal, got {type(value).__name__}")
    quantum = Decimal(1).scaleb(-scale)
    if value != value.quantize(quantum):
        raise ValueError(f"{path}: {value} has more than {scale} decimal places")
    return f"{value.quantize(quantum):f}"


def _parse_decimal(obj, scale: int, path: str) -> Decimal:
    if isinstance(obj, bool) or not isinstance(obj, (str, int, Decimal)):
        raise ValueError(f"{path}: expected a decimal string, got {_json_type(obj)}")
    try:
        value = Decimal(obj)
    except InvalidOperation:
        raise ValueError(f"{path}: {obj!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{path}: {obj!r} is not a finite decimal")
    quantum = Decimal(1).scaleb(-scale)
    if value != value.quantize(quantum):
        raise ValueError(f"{path}: {obj!r} has more than {scale} decimal places")
    return value.quantize(quantum)


def _union_branch_for_python(value, branches: list, named: dict, path: str):
    for branch in branches:
        if _python_matches(value, named.get(branch, branch) if isinstance(branch, str) else branch):
            return branch
    raise ValueError(f"{path}: {type(value).__name__} fits no branch of the union")


def _python_matches(value, schema) -> bool:
    kind, logical = _kind(schema)
    if logical == "decimal":
        return isinstance(value, Decimal)
    if logical == "timestamp-millis":
        return isinstance(value, datetime)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("double", "float"):
        return isinstance(value, float)
    if kind == "record" or kind == "map":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if kind == "enum":
        return isinstance(value, str) and value in schema["symbols"]
    if kind == "bytes":
        return isinstance(value, bytes)
    return isinstance(value, _PRIMITIVE_PY[kind])


def _union_branch_for_json(obj, branches: list, named: dict, path: str):
    # A JSON string could be a string, an enum symbol, a decimal or a timestamp:
    # the first branch that accepts it wins, in the union's declared order.
    for branch in branches:
        try:
            from_json(obj, branch, named, path)
        except ValueError:
            continue
        return branch
    raise ValueError(f"{path}: {_json_type(obj)} fits no branch of the union")


def _expect(obj, py_type, path: str, what: str) -> None:
    if not isinstance(obj, py_type) or (py_type is not bool and isinstance(obj, bool)):
        raise ValueError(f"{path}: expected {what}, got {_json_type(obj)}")


def _json_type(obj) -> str:
    if obj is None:
        return "null"
    return {bool: "boolean", str: "string", dict: "object", list: "array"}.get(type(obj), "number")
