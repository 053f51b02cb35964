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

import psycopg2.extensions
from psycopg2.extras import Json

SAFE_INTEGER = 2**53 - 1
NUMERIC_OID = 1700


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
    # No ``strict=``: parsing that keyword costs zip about 0.2 µs a call, a third of a row.
    for name, kind, value in zip(names, types, row):  # noqa: B905
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


def _numeric_text(value: str | None, cursor: Any) -> str | None:
    return value


NUMERIC_AS_TEXT = psycopg2.extensions.new_type(
    (NUMERIC_OID,), "LOWCODE_NUMERIC_AS_TEXT", _numeric_text
)


def register_typecasters(connection: psycopg2.extensions.connection) -> None:
    """Have ``connection`` hand ``numeric`` values over as PostgreSQL's own text.

    That text is what a row answers (6.6: exact, ``NaN``, ``Infinity`` and ``-Infinity`` as
    PostgreSQL writes them), so no Decimal is built per value only to be turned back into a
    string. Unlike ``str(Decimal)`` it never uses an exponent: ``0.0000001``, not ``1E-7``.
    Registered on one raw psycopg2 connection (aiopg's ``connection.raw``), never globally.
    """
    psycopg2.extensions.register_type(NUMERIC_AS_TEXT, connection)
