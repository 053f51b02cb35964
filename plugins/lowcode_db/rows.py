"""The JSON of a row (6.6) and the adaptation of values for binding.

Integers stay numbers while a JavaScript client can hold them exactly (within 2^53-1);
decimals are strings so that no digit is lost; non-finite floats and decimals, which JSON
cannot carry, become the strings ``NaN``, ``Infinity`` and ``-Infinity``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from typing import Any

from psycopg2.extras import Json

SAFE_INTEGER = 2**53 - 1


def adapt(field_type: str, value: Any) -> Any:
    """The value as psycopg2 binds it; a JSON null in a ``json`` field is SQL NULL."""
    if value is None:
        return None
    if field_type == "json":
        return Json(value)
    return value


def _non_finite(value: float | decimal.Decimal) -> str:
    if value != value:  # NaN is the only value unequal to itself
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def to_json(field_type: str, value: Any) -> Any:
    """One column value in the JSON of 6.6."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else _non_finite(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def row_to_json(
    names: Sequence[str], types: Sequence[str], row: Sequence[Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, value in zip(names, types, row, strict=False):
        cls = type(value)
        # What to_json gives back unchanged or as text, without its chain of checks.
        if cls is str or value is None or cls is bool:
            out[name] = value
        elif cls is int and -SAFE_INTEGER <= value <= SAFE_INTEGER:
            out[name] = value
        elif cls is decimal.Decimal and value.is_finite():
            out[name] = str(value)
        else:
            out[name] = to_json(kind, value)
    return out
