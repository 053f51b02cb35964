"""The db params' plain-input fast paths load exactly what marshmallow loads."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from lowcode_db.model import PG_TYPES, build_table
from lowcode_db.schema import (
    MAX_FIELDS,
    CreateParams,
    DefinitionSchema,
    IdParams,
    ListParams,
    UpdateParams,
)
from lowcode_db.values import (
    INT64_MAX,
    DecimalValue,
    _loader,
    checked_decimal,
    load_value,
)

_names = st.sampled_from(
    [
        "id",
        "title",
        "-id",
        "__lowcode_x",
        "-__lowcode_x",
        "Bad",
        "a" * 63,
        "a" * 64,
        "",
        "-",
    ]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner)
    ),
    max_leaves=5,
)
_odd = st.sampled_from([True, False, None, 5.0, "5", [], {}])
_limits = st.one_of(st.sampled_from([0, 1, 50, 1000, 1001, -1]), st.integers(), _odd)
_offsets = st.one_of(
    st.sampled_from([0, -1, INT64_MAX, INT64_MAX + 1]), st.integers(), _odd
)


def _names_of(sizes: list[int]) -> st.SearchStrategy[list[str]]:
    """Lists of names, some of them at the length limits, where mistakes hide."""
    repeated = st.builds(lambda name, n: [name] * n, _names, st.sampled_from(sizes))
    return st.one_of(st.lists(_names, max_size=3), repeated, _json)


_list_params = st.fixed_dictionaries(
    {},
    optional={
        "filter": st.one_of(
            st.dictionaries(st.text(max_size=5), _json, max_size=3), _json
        ),
        "sort": _names_of([0, 32, 33]),
        "limit": _limits,
        "offset": _offsets,
        "fields": _names_of([0, 1, MAX_FIELDS, MAX_FIELDS + 1]),
        "withTotal": st.one_of(st.booleans(), _odd, st.integers(0, 1)),
        "other": _json,
    },
)


def _marshmallow(schema: Schema, data: Any) -> Any:
    try:
        return Schema.load(schema, data)
    except ValidationError:
        return "refused"


@settings(max_examples=500)
@given(_list_params)
def test_plain_list_params_load_as_marshmallow_loads_them(data):
    schema = ListParams()
    fast = schema.plainly_valid(data)

    if fast is not None:
        assert fast == _marshmallow(schema, data)


@given(st.one_of(st.dictionaries(st.sampled_from(["id", "values"]), _json), _json))
def test_plain_id_params_load_as_marshmallow_loads_them(data):
    schema = IdParams()
    fast = schema.plainly_valid(data)

    if fast is not None:
        assert fast == _marshmallow(schema, data)


_values = st.one_of(st.dictionaries(st.text(max_size=5), _json, max_size=3), _json)


@settings(max_examples=300)
@given(
    st.one_of(
        st.fixed_dictionaries(
            {}, optional={"id": _json, "values": _values, "other": _json}
        ),
        _json,
    )
)
def test_plain_create_and_update_params_load_as_marshmallow_loads_them(data):
    for schema in (CreateParams(), UpdateParams()):
        fast = schema.plainly_valid(data)
        if fast is not None:
            assert fast == _marshmallow(schema, data)


def test_the_usual_calls_take_the_fast_path():
    usual = {
        "filter": {"category": "c3"},
        "sort": ["-id"],
        "limit": 50,
        "fields": ["id"],
    }

    assert ListParams().plainly_valid(usual) == _marshmallow(ListParams(), usual)
    assert ListParams().plainly_valid({}) is not None
    assert IdParams().plainly_valid({"id": 42}) == {"id": 42}
    created = {"values": {"title": "a", "price": "1.50"}}
    assert CreateParams().plainly_valid(created) == _marshmallow(
        CreateParams(), created
    )
    updated = {"id": 7, "values": {"title": "b"}}
    assert UpdateParams().plainly_valid(updated) == _marshmallow(
        UpdateParams(), updated
    )


_TYPED = build_table(
    DefinitionSchema().load(
        {
            "table": "typed",
            "fields": [
                {"name": "label", "type": "string", "required": True},
                {"name": "body", "type": "text"},
                {"name": "count", "type": "integer", "default": 0},
                {"name": "ratio", "type": "float"},
                {"name": "price", "type": "decimal"},
                {"name": "flag", "type": "boolean", "required": True, "default": False},
                {"name": "day", "type": "date"},
                {"name": "at", "type": "datetime"},
                {"name": "meta", "type": "json"},
                {"name": "ref", "type": "uuid"},
            ],
        }
    )
)
_value = st.one_of(
    _json,
    st.sampled_from(
        [
            "2024-05-01",
            "2024-05-01T12:00:00Z",
            "1.50",
            "NaN",
            "a" * 256,
            "\x00",
            2**63,
            2**53 + 1,
        ]
    ),
    st.just("6f1c3c1e-8a4b-4a3c-9c2d-2b1e0f3a4d5c"),
)


def load_plainly_valid(schema: Schema, values: dict[str, Any]) -> dict[str, Any] | None:
    """The reference for ValuesLoader: each value through its own field's ``deserialize``."""
    fields = schema.fields
    if not values.keys() <= fields.keys():
        return None
    loaded = {}
    try:
        for name, field in fields.items():
            if name in values:
                loaded[name] = field.deserialize(values[name])
            elif field.required:
                return None
    except ValidationError:
        return None
    return loaded


@settings(max_examples=500)
@given(
    st.dictionaries(st.sampled_from([*_TYPED.names, "nope"]), _value, max_size=6),
    st.booleans(),
)
def test_plain_values_load_as_marshmallow_loads_them(values, partial):
    schema = _TYPED.values_schema(partial)
    fast = load_plainly_valid(schema, values)
    laid_out = _TYPED.values_loader(partial).plainly_valid(values)
    assert laid_out == fast
    assert list(laid_out or ()) == list(fast or ())

    if fast is not None:
        assert fast == _marshmallow(schema, values)
        assert list(fast) == list(
            _marshmallow(schema, values)
        )  # the columns' order too


def _field_loads(field_type: str, value: Any) -> Any:
    try:
        return _loader(field_type).deserialize(value)
    except ValidationError as e:
        return ("refused", e.messages)


@settings(max_examples=500)
@given(st.sampled_from(sorted(PG_TYPES)), st.one_of(_value, st.none()))
def test_one_value_loads_as_its_field_loads_it(field_type, value):
    try:
        loaded = load_value(field_type, value)
    except ValidationError as e:
        loaded = ("refused", e.messages)
    assert loaded == _field_loads(field_type, value)


def _outcome(load: Any, value: Any) -> Any:
    """What a load gives, written exactly (``1.50`` is not ``1.5``), or its refusal."""
    try:
        return str(load(value))
    except ValidationError as e:
        return ("refused", e.messages)


_decimal_texts = st.one_of(
    st.text(alphabet="0123456789+-.eE _\u0661 ", max_size=12),
    st.tuples(st.integers(1, 1002), st.integers(0, 1002), st.booleans()).map(
        lambda n: "7" * n[0] + ("." + "0" * n[1] if n[2] else "")
    ),
    st.decimals(allow_nan=False).map(str),
    st.sampled_from(["NaN", "Infinity", "-0", "1.", ".5", "+1.50", " 1"]),
)


@settings(max_examples=1000)
@given(_decimal_texts)
def test_a_plain_decimal_text_loads_as_every_check_loads_it(text):
    field = DecimalValue()
    fast = _outcome(lambda v: field._deserialize(v, None, None), text)
    assert fast == _outcome(checked_decimal, text)
