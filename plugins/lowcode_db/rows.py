"""The JSON of a row (6.6) and the adaptation of values for binding.

Integers stay numbers while a JavaScript client can hold them exactly (within 2^53-1), and
always in a ``json`` field, which answers what it was given;
decimals are strings so that no digit is lost; non-finite floats and decimals, which JSON
cannot carry, become the strings ``NaN``, ``Infinity`` and ``-Infinity``. Dates and times that
Python cannot hold (PostgreSQL's infinities, years past 9999 or before 1) are answered too,
rather than failing every read of their table.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Sequence
from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json

SAFE_INTEGER = 2**53 - 1
NUMERIC_OID = 1700
DATE_OID = 1082
TIMESTAMPTZ_OID = 1184


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
    """One column value in the JSON of 6.6; a ``json`` one as it was stored, whatever it is."""
    if value is None or field_type == "json":
        return value
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
        try:
            return value.astimezone(dt.UTC).isoformat()
        except OverflowError:  # 9999-12-31 19:00-05 is in year 10000 in UTC
            return beyond_python(value.isoformat(sep=" "))
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


INFINITIES = {"infinity": "Infinity", "-infinity": "-Infinity"}

# PostgreSQL's ISO output of a date or timestamptz (DateStyle ISO, its default).
_PG_MOMENT = re.compile(
    r"(?P<year>\d{4,})-(?P<month>\d\d)-(?P<day>\d\d)"
    r"(?: (?P<time>\d\d:\d\d:\d\d(?:\.\d+)?)(?P<offset>[+-]\d\d(?::\d\d){0,2}))?"
    r"(?P<bc> BC)?"
)
_CYCLE = 400
"""The Gregorian calendar repeats every 400 years, weekdays and leap days included."""


def _reading_beyond_python(parse: Any) -> Any:
    """psycopg2's ``parse`` of a date or timestamptz, with what Python cannot hold (infinity,
    years past 9999 or before 1) as :func:`beyond_python` writes it."""

    def read(text: str | None, cursor: Any) -> dt.date | str | None:
        if text is None or text in INFINITIES:
            return INFINITIES.get(text) if text else None
        try:
            return parse(text, cursor)  # type: ignore[no-any-return]
        except ValueError:
            return beyond_python(text)

    return read


_date = _reading_beyond_python(psycopg2.extensions.PYDATE)
_timestamptz = _reading_beyond_python(psycopg2.extensions.PYDATETIMETZ)


def beyond_python(text: str) -> str:
    """ISO 8601 of a date or time whose year Python cannot hold; a time in UTC, as others are.

    The year is signed and at least four digits (``+10000-01-01``; 44 BC is ``-0043``, since
    ISO counts a year 0); a time is moved to UTC in a year of the same place in the 400-year
    cycle, then given its own year back.
    """
    match = _PG_MOMENT.fullmatch(text)
    if match is None:
        return text  # another DateStyle than ISO: PostgreSQL's text as it came
    year = int(match["year"])
    if match["bc"]:
        year = 1 - year
    shift = (year - 2000) // _CYCLE * _CYCLE
    month, day = int(match["month"]), int(match["day"])
    if match["time"] is None:
        return f"{_iso_year(year)}-{month:02d}-{day:02d}"

    offset = match["offset"] + ":00" * (2 - match["offset"].count(":"))
    moment = dt.datetime.fromisoformat(
        f"{year - shift:04d}-{month:02d}-{day:02d}T{match['time']}{offset}"
    ).astimezone(dt.UTC)
    return _iso_year(moment.year + shift) + moment.isoformat()[4:]


def _iso_year(year: int) -> str:
    if 0 <= year <= 9999:
        return f"{year:04d}"
    return f"{'+' if year > 0 else '-'}{abs(year):04d}"


NUMERIC_AS_TEXT = psycopg2.extensions.new_type(
    (NUMERIC_OID,), "LOWCODE_NUMERIC_AS_TEXT", _numeric_text
)
DATE_BEYOND_PYTHON = psycopg2.extensions.new_type((DATE_OID,), "LOWCODE_DATE", _date)
TIMESTAMPTZ_BEYOND_PYTHON = psycopg2.extensions.new_type(
    (TIMESTAMPTZ_OID,), "LOWCODE_TIMESTAMPTZ", _timestamptz
)


def register_typecasters(connection: psycopg2.extensions.connection) -> None:
    """Have ``connection`` hand ``numeric`` values over as PostgreSQL's own text, and dates
    and times Python cannot hold as ISO 8601 text.

    That numeric text is what a row answers (6.6: exact, ``NaN``, ``Infinity`` and
    ``-Infinity`` as PostgreSQL writes them), so no Decimal is built per value only to be
    turned back into a string. Unlike ``str(Decimal)`` it never uses an exponent:
    ``0.0000001``, not ``1E-7``. psycopg2's own date casters fail on a year past 9999 or
    before 1, and turn an infinity into the largest date they know, which a client would
    write back. Registered on one raw psycopg2 connection (aiopg's ``connection.raw``), never
    globally.
    """
    psycopg2.extensions.register_type(NUMERIC_AS_TEXT, connection)
    psycopg2.extensions.register_type(DATE_BEYOND_PYTHON, connection)
    psycopg2.extensions.register_type(TIMESTAMPTZ_BEYOND_PYTHON, connection)
