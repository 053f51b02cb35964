"""Marshmallow fields for the values of each db field type (API.md section 6.6).

Each field turns one JSON value into the Python value bound for PostgreSQL, or raises a
ValidationError that tells the caller what the type expects. They check what the database
would reject later with a less helpful message: the 64-bit range, finiteness, U+0000, lengths.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import uuid
from functools import cache
from typing import Any

import psycopg2.extensions
from marshmallow import Schema, ValidationError, fields

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
STRING_MAX = 255
SAFE_INTEGER = 2**53 - 1
JSON_MAX_DEPTH = 64
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}.*")


class IntegerValue(fields.Field):
    """A signed 64-bit integer, as a JSON number.

    A string of digits is accepted only for a value past ±(2^53−1): rows give exactly those as
    strings (6.6), and a client must be able to send back what it read. ``"10"`` is a string
    where a number belongs, so it is refused like any other wrong type.
    """

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            number = int(value)
            if abs(number) <= SAFE_INTEGER:
                raise ValidationError(
                    "expected an integer as a JSON number (strings only past ±(2^53-1))"
                )
            value = number
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("expected an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError("expected an integer within the signed 64-bit range")
        return value


class FloatValue(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(
            value, (int, float, decimal.Decimal)
        ):
            raise ValidationError("expected a number")
        try:
            number = float(value)
        except OverflowError as e:
            raise ValidationError("expected a finite number") from e
        if not math.isfinite(number):
            raise ValidationError("expected a finite number")
        if number == 0 and math.copysign(1, number) < 0:
            return NegativeZero(number)
        return number


class NegativeZero(float):
    """-0.0, which psycopg2 writes as ``-0.0``: a numeric constant to PostgreSQL, where zero
    has no sign, so the column got 0. Bound as a float8 text instead (adapted by its type,
    so that no other float pays for the check)."""


psycopg2.extensions.register_adapter(
    NegativeZero, lambda _: psycopg2.extensions.AsIs("'-0'::float8")
)


PLAIN_DECIMAL_MAX = 1000
"""A text of plain digits this long or shorter holds at most 1000 digits, exponent >= -1000."""


class DecimalValue(fields.Field):
    """An exact decimal, from a string (exact) or a JSON number."""

    def _deserialize(
        self, value: Any, attr: Any, data: Any, **kwargs: Any
    ) -> decimal.Decimal:
        if (
            type(value) is str
            and len(value) <= PLAIN_DECIMAL_MAX
            and "e" not in value
            and "E" not in value
            and _DECIMAL_TEXT.fullmatch(value)
        ):
            return decimal.Decimal(value)  # finite, and within every limit below
        return checked_decimal(value)


def checked_decimal(value: Any) -> decimal.Decimal:
    """Any value a decimal field is sent, with every check in the order its message needs."""
    if isinstance(value, bool) or not isinstance(
        value, (str, int, float, decimal.Decimal)
    ):
        raise ValidationError("expected a decimal number or a string holding one")
    try:
        number = decimal.Decimal(
            str(value).strip() if isinstance(value, str) else str(value)
        )
    except decimal.InvalidOperation as e:
        raise ValidationError(
            "expected a decimal number or a string holding one"
        ) from e
    if not number.is_finite():
        raise ValidationError("expected a finite decimal number")
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value.strip()):
        # Decimal also reads "1_000" and digits of other scripts ("١٢"); JSON and SQL don't.
        raise ValidationError(
            "expected a decimal number written with the digits 0-9, such as -12.50 or 1e-3"
        )
    _, digits, exponent = number.as_tuple()  # finite: the exponent is an int
    if len(digits) > 1000 or (isinstance(exponent, int) and abs(exponent) > 16000):
        raise ValidationError(
            "decimal number has more than 1000 digits or an exponent past ±16000"
        )
    return number


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: str) -> str:
    """Refuse what PostgreSQL cannot store in text: U+0000, and a lone UTF-16 surrogate.

    JSON's ``"\\ud800"`` parses to such a code point; it has no UTF-8 form, so binding it would
    fail deep in the driver (UnicodeEncodeError) instead of naming the value's path.
    """
    if "\x00" in value:
        raise ValidationError("text must not hold the character U+0000")
    if _SURROGATE.search(value):
        raise ValidationError(
            "text must not hold a lone UTF-16 surrogate (U+D800 to U+DFFF)"
        )
    return value


class StringValue(fields.Field):
    def __init__(self, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("expected a string")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(f"expected at most {self.max_length} characters")
        return check_text(value)


class BooleanValue(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("expected true or false")
        return value


class DateValue(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
            raise ValidationError("expected a date as YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as e:
            raise ValidationError("expected a valid date as YYYY-MM-DD") from e


class DateTimeValue(fields.Field):
    """An ISO 8601 date and time; one without an offset is read as UTC."""

    def _deserialize(
        self, value: Any, attr: Any, data: Any, **kwargs: Any
    ) -> dt.datetime:
        message = "expected an ISO 8601 date and time, such as 2024-05-01T12:00:00Z"
        if not isinstance(value, str) or not _DATETIME_TEXT.fullmatch(value):
            raise ValidationError(message)
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError as e:
            raise ValidationError(message) from e
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        try:
            # In UTC: PostgreSQL takes no offset past ±15:59 nor one with a fraction of a
            # second, which Python reads; the instant is the same.
            return moment.astimezone(dt.UTC)
        except OverflowError as e:
            raise ValidationError(
                "expected a date and time from 0001-01-01 to 9999-12-31 in UTC"
            ) from e


def check_json(value: Any, depth: int = 0) -> None:
    """Reject U+0000 in any string or key, non-finite numbers, and absurd nesting."""
    if depth > JSON_MAX_DEPTH:
        raise ValidationError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("JSON numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError("JSON object keys must be strings")
            check_text(key)
            check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)
    elif value is not None and not isinstance(
        value, (bool, int, float, decimal.Decimal)
    ):
        raise ValidationError("expected a JSON value")


class JsonValue(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        check_json(value)
        return value


class UuidValue(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("expected a UUID string")
        try:
            return str(uuid.UUID(value))
        except ValueError as e:
            raise ValidationError("expected a UUID string") from e


def value_field(field_type: str, **kwargs: Any) -> fields.Field:
    """The marshmallow field that loads a value of ``field_type``."""
    if field_type == "string":
        return StringValue(max_length=STRING_MAX, **kwargs)
    factory = {
        "text": StringValue,
        "integer": IntegerValue,
        "float": FloatValue,
        "decimal": DecimalValue,
        "boolean": BooleanValue,
        "date": DateValue,
        "datetime": DateTimeValue,
        "json": JsonValue,
        "uuid": UuidValue,
    }[field_type]
    return factory(**kwargs)


def load_value(field_type: str, value: Any) -> Any:
    """Load one value of ``field_type`` (raises ValidationError)."""
    if value is None:
        return _loader(field_type).deserialize(value)
    return _load_step(field_type)(value, None, None)


@cache
def _loader(field_type: str) -> fields.Field:
    """One field per type: a field holds no state between loads."""
    return value_field(field_type)


@cache
def _load_step(field_type: str) -> Any:
    return _deserializer(_loader(field_type))


def values_schema(columns: dict[str, tuple[str, bool, bool]], partial: bool) -> Schema:
    """A schema for ``values``: ``columns`` maps a name to (type, mandatory, nullable)."""
    declared = {}
    for name, (field_type, mandatory, nullable) in columns.items():
        declared[name] = value_field(
            field_type, required=mandatory and not partial, allow_none=nullable
        )
    return Schema.from_dict(declared, name="Values")()


class ValuesLoader:
    """What one schema of :func:`values_schema` loads from plainly valid values, without its
    machinery (about half of a create's own work), the fields' steps laid out once; any
    doubt, and the schema runs to say what is wrong (``tests/test_db_params.py`` holds the
    two to the same result).

    A field's ``deserialize`` wraps its ``_deserialize`` in checks that, for these fields (no
    validators, no pre- or post-load steps), come down to the null one; it cost about 1 µs a
    value. Any other field keeps its ``deserialize``.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._names = frozenset(schema.fields)
        self._steps = tuple(
            (name, _deserializer(field), field.allow_none, field.required)
            for name, field in schema.fields.items()
        )

    def plainly_valid(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """What the schema loads from plainly valid ``values``, else None."""
        if not values.keys() <= self._names:
            return None
        loaded: dict[str, Any] = {}
        try:
            for name, deserialize, allow_none, required in self._steps:
                if name not in values:
                    if required:
                        return None
                    continue
                value = values[name]
                if value is None:
                    if not allow_none:
                        return None
                    loaded[name] = None
                else:
                    loaded[name] = deserialize(value, name, values)
        except ValidationError:
            return None
        return loaded


def _deserializer(field: fields.Field) -> Any:
    if field.validators or field.pre_load or field.post_load:
        return lambda value, attr, data: field.deserialize(value, attr, data)
    return field._deserialize
