"""The JSON of a row (6.6): the fast path equals ``to_json``, and numeric read as its text."""

from __future__ import annotations

import datetime as dt
import decimal

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowcode_db.rows import beyond_python, register_typecasters, row_to_json, to_json

column_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.decimals(allow_nan=False),  # PostgreSQL has no signalling NaN
    st.sampled_from([decimal.Decimal("NaN"), decimal.Decimal("-Infinity")]),
    st.text(max_size=8),
    st.dates(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@given(st.lists(column_values, max_size=6))
def test_a_row_is_to_json_of_each_value(values):
    names = [f"c{i}" for i in range(len(values))]
    # The conversion goes by the value's class (a json field's aside).
    kinds = ["text"] * len(values)
    expected = {n: to_json(k, v) for n, k, v in zip(names, kinds, values, strict=True)}
    assert row_to_json(names, kinds, values) == expected


@given(st.integers(min_value=-(2**64), max_value=2**64))
def test_a_json_integer_is_answered_as_a_number_however_large(value):
    assert row_to_json(["j"], ["json"], [value]) == {"j": value}


@pytest.fixture(scope="module")
def numeric_cursors(database_url):
    """Two cursors on connections that differ only in how ``numeric`` is read."""
    plain = psycopg2.connect(database_url)
    as_text = psycopg2.connect(database_url)
    register_typecasters(as_text)
    yield plain.cursor(), as_text.cursor()
    plain.close()
    as_text.close()


finite_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=None
).filter(lambda d: abs(d.as_tuple().exponent) < 200 and len(d.as_tuple().digits) < 200)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(finite_decimals)
def test_numeric_text_is_the_decimal_without_an_exponent(numeric_cursors, value):
    """The text holds the same digits and scale as the Decimal psycopg2 would build.

    Where ``str(Decimal)`` needs no exponent the two texts are equal; where it does (a value
    below 10^-6, a zero with a scale past 6) PostgreSQL writes the plain digits instead.
    """
    plain, as_text = numeric_cursors
    plain.execute("SELECT %s::numeric", (value,))
    as_text.execute("SELECT %s::numeric", (value,))
    built, text = plain.fetchone()[0], as_text.fetchone()[0]

    assert isinstance(built, decimal.Decimal) and isinstance(text, str)
    assert decimal.Decimal(text).as_tuple() == built.as_tuple()
    if "E" not in str(built):
        assert text == to_json("decimal", built)
    else:
        assert "E" not in text and "e" not in text


def test_numeric_text_of_the_boundaries(numeric_cursors):
    _, as_text = numeric_cursors
    as_text.execute(
        "SELECT 'NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric, NULL::numeric, "
        "0.0000001::numeric, 0.00000000::numeric, 12345678901234567890.123456789::numeric, "
        "'9.90'::numeric, 1.5::float8, now()"
    )
    row = as_text.fetchone()
    assert list(row[:8]) == [
        "NaN", "Infinity", "-Infinity", None, "0.0000001", "0.00000000",
        "12345678901234567890.123456789", "9.90",
    ]  # fmt: skip
    assert row[8] == 1.5 and isinstance(row[9], dt.datetime)  # other types as before


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'infinity'::timestamptz", "Infinity"),
        ("'-infinity'::timestamptz", "-Infinity"),
        ("'infinity'::date", "Infinity"),
        ("'-infinity'::date", "-Infinity"),
        ("'10000-01-01T00:00:00Z'::timestamptz", "+10000-01-01T00:00:00+00:00"),
        ("'10000-01-01'::date", "+10000-01-01"),
        (
            "'0044-03-15 12:00:00.25+02 BC'::timestamptz",
            "-0043-03-15T10:00:00.250000+00:00",
        ),
        ("'0044-03-15 BC'::date", "-0043-03-15"),
        ("'0001-01-01 BC'::date", "0000-01-01"),
        ("'0001-01-01 01:00:00+05'::timestamptz", "0000-12-31T20:00:00+00:00"),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_dates_and_times_python_cannot_hold_are_iso_8601(
    numeric_cursors, literal, expected, zone
):
    """psycopg2 fails on them (every read of the table would) or reads an infinity as a date
    a client would write back; whatever the session's time zone, a row answers them so."""
    _, cursor = numeric_cursors
    cursor.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    cursor.execute(f"SELECT {literal}")
    [value] = cursor.fetchone()
    assert to_json("datetime", value) == expected
    cursor.execute("RESET TimeZone")


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
        timezones=st.timezones(),
    ),
    st.sampled_from(["UTC", "America/St_Johns", "Asia/Kathmandu", "Europe/Paris"]),
)  # fmt: skip
def test_the_way_beyond_python_agrees_with_python_where_both_can_go(
    numeric_cursors, moment, zone
):
    """Its move to UTC in a year of the same place in the 400-year cycle, checked on the
    years where Python's own can be compared."""
    _, cursor = numeric_cursors
    cursor.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    cursor.execute("SELECT %s::timestamptz, %s::timestamptz::text", (moment, moment))
    value, text = cursor.fetchone()
    cursor.execute("RESET TimeZone")
    assert beyond_python(text) == to_json("datetime", value)
