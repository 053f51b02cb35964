"""Cached statements: a warm call sends exactly what a fresh build of it would send."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowcode_db import dsl, queries
from lowcode_db.model import build_table
from lowcode_db.schema import DefinitionSchema
from lowcode_runtime.errors import ValidationFailed

DEFINITION = {
    "table": "items",
    "fields": [
        {"name": "title", "type": "string"},
        {"name": "body", "type": "text"},
        {"name": "count", "type": "integer"},
        {"name": "price", "type": "decimal"},
        {"name": "flag", "type": "boolean"},
        {"name": "meta", "type": "json"},
        {"name": "at", "type": "datetime"},
    ],
}
TABLE = build_table(DefinitionSchema().load(DEFINITION))
NAMES = ["id", "title", "body", "count", "price", "flag", "meta", "at", "nope"]
OPERATORS = list(dsl.OPERATORS)

_operand = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["a", "b%_", "2024-05-01T12:00:00", "1.5", ""]),
    st.lists(
        st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["a", "x"])), max_size=3
    ),
)
_conditions = st.one_of(
    st.dictionaries(st.sampled_from([*OPERATORS, "bogus"]), _operand, max_size=2),
    # Where the SQL turns on the operand itself: IS [NOT] NULL.
    st.fixed_dictionaries({"isNull": st.booleans()}),
    st.dictionaries(st.sampled_from(["eq", "ne"]), st.none(), min_size=1, max_size=1),
)
_filter = st.recursive(
    st.dictionaries(
        st.sampled_from(NAMES), st.one_of(_operand, _conditions), max_size=3
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["or", *NAMES]), st.lists(inner, max_size=2), max_size=2
    ),
    max_leaves=6,
)
# Valid conditions only (a refused filter sends nothing, so it hides a wrong statement).
_VALUES = {
    "id": st.integers(1, 9),
    "title": st.sampled_from(["a", "b%_"]),
    "count": st.integers(-3, 3),
    "price": st.sampled_from(["1.5", "-2"]),
    "flag": st.booleans(),
}
_valid_condition = st.sampled_from(sorted(_VALUES)).flatmap(
    lambda name: st.one_of(
        _VALUES[name].map(lambda v: {name: v}),
        st.none().map(lambda v: {name: v}),
        st.booleans().map(lambda v: {name: {"isNull": v}}),
        st.sampled_from(["eq", "ne"]).map(lambda op: {name: {op: None}}),
        st.lists(_VALUES[name], max_size=2).map(lambda v: {name: {"in": v}}),
    )
)
_valid_filter = st.recursive(
    st.lists(_valid_condition, max_size=3).map(
        lambda parts: {k: v for p in parts for k, v in p.items()}
    ),
    lambda inner: st.lists(inner, min_size=1, max_size=2).map(
        lambda branches: {"or": branches}
    ),
    max_leaves=5,
)


_list_params = st.fixed_dictionaries(
    {
        "filter": _filter,
        "sort": st.lists(
            st.sampled_from(["id", "-title", "count", "-nope"]), max_size=2
        ),
        "limit": st.integers(1, 5),
        "offset": st.integers(0, 3),
        "withTotal": st.booleans(),
    },
    optional={"fields": st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)},
)
_values = st.dictionaries(
    st.sampled_from(NAMES[1:]),
    st.one_of(st.none(), st.integers(0, 9), st.sampled_from(["x", "1.5", "true"])),
    max_size=4,
)


@pytest.fixture(scope="module")
def connection(database_url):
    connection = psycopg2.connect(database_url)
    yield connection
    connection.close()


def sent(connection: Any, operation: str, params: dict[str, Any]) -> Any:
    """What a call would send (the statement's text and its params), or the refusal."""
    try:
        query = queries.BUILDERS[operation]("preview_x", TABLE, params)
    except ValidationFailed as e:
        return ("refused", e.details)
    with connection.cursor() as cursor:
        return cursor.mogrify(query.statement, query.params), query.names


def fresh_and_warm(connection, operation, first, second):
    queries.STATEMENTS = queries.StatementCache()
    fresh = sent(connection, operation, second)
    queries.STATEMENTS = queries.StatementCache()
    sent(connection, operation, first)  # fills the cache with the first call's shape
    return fresh, sent(connection, operation, second)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_list_params, _list_params)
def test_a_list_sends_what_a_fresh_build_sends(connection, first, second):
    fresh, warm = fresh_and_warm(connection, "list", first, second)
    assert warm == fresh


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_list_params, st.data())
def test_a_list_with_its_values_changed_sends_its_own_statement(
    connection, params, data
):
    """Its twin keeps every key and nesting; each value may stay, change, or turn null/bool."""
    twin = {**params, "filter": _changed(params["filter"], data)}
    fresh, warm = fresh_and_warm(connection, "list", params, twin)
    assert warm == fresh


def _changed(node: Any, data: st.DataObject) -> Any:
    """``node`` with one leaf replaced: the likeliest way for two calls to share a shape."""
    leaves = _leaf_count(node)
    if not leaves:
        return node
    chosen = data.draw(st.integers(0, leaves - 1))
    other = data.draw(st.sampled_from([None, True, False, 7, 0.5, "b", []]))
    return _replaced(node, [chosen], other)


def _leaf_count(node: Any) -> int:
    if isinstance(node, dict):
        return sum(_leaf_count(value) for value in node.values())
    if isinstance(node, list) and node:
        return sum(_leaf_count(item) for item in node)
    return 1


def _replaced(node: Any, countdown: list[int], other: Any) -> Any:
    if isinstance(node, dict):
        return {key: _replaced(value, countdown, other) for key, value in node.items()}
    if isinstance(node, list) and node:
        return [_replaced(item, countdown, other) for item in node]
    countdown[0] -= 1
    return other if countdown[0] == -1 else node


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["create", "update"]),
    st.integers(0, 3),
    _values,
    _values,
)
def test_a_create_or_update_sends_what_a_fresh_build_sends(
    connection, operation, row_id, first, second
):
    fresh, warm = fresh_and_warm(
        connection,
        operation,
        {"id": row_id, "values": first},
        {"id": row_id + 1, "values": second},
    )
    assert warm == fresh


@pytest.mark.parametrize("operation", ["get", "delete"])
def test_a_get_or_delete_sends_what_a_fresh_build_sends(connection, operation):
    fresh, warm = fresh_and_warm(connection, operation, {"id": 1}, {"id": 2})
    assert warm == fresh
    fresh, warm = fresh_and_warm(connection, operation, {"id": 1}, {"id": "x"})
    assert warm == fresh and warm[0] == "refused"


def test_the_filter_shape_keeps_what_the_sql_depends_on():
    shape = queries.filter_shape
    assert shape({"a": 1}) == shape({"a": 2})
    assert shape({"a": None}) != shape({"a": 1})  # IS NULL
    assert shape({"a": {"isNull": True}}) != shape({"a": {"isNull": False}})
    assert shape({"a": 1, "b": 2}) != shape(
        {"b": 2, "a": 1}
    )  # the order of the conditions
    assert shape({"a": [1]}) != shape({"a": {"": 1}})
    assert shape({"or": [{}]}) != shape({"or": [{}, {}]})


def test_in_lists_of_any_length_share_one_statement_and_big_filters_are_not_kept():
    """The cache's memory stays small whatever filters callers send."""
    queries.STATEMENTS = queries.StatementCache()
    page = {"sort": [], "limit": 5, "offset": 0, "withTotal": False}
    for n in range(1, 50):
        queries.build_list(
            "preview_x", TABLE, {**page, "filter": {"count": {"in": list(range(n))}}}
        )
    assert len(queries.STATEMENTS._entries) == 1

    many = {"or": [{"count": i} for i in range(queries.MAX_CACHED_CONDITIONS + 1)]}
    queries.build_list("preview_x", TABLE, {**page, "filter": many})
    assert len(queries.STATEMENTS._entries) == 1
