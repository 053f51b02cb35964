"""The JSON of a row (6.6): the fast path equals ``to_json``, and numeric read as its text."""

from __future__ import annotations

import datetime as dt
import decimal

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowcode_db.rows import register_typecasters, row_to_json, to_json

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
    kinds = ["json"] * len(values)
    expected = {n: to_json(k, v) for n, k, v in zip(names, kinds, values, strict=True)}
    assert row_to_json(names, kinds, values) == expected


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
