"""Property tests of what parses input: any JSON as a filter, values or id gives either a
statement that PostgreSQL runs, or VALIDATION_FAILED; never another error."""

from __future__ import annotations

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowcode_db.ddl import Catalog, plan
from lowcode_db.model import build_table
from lowcode_db.queries import build_create, build_get, build_list, build_update
from lowcode_db.schema import DefinitionSchema
from lowcode_db.tenancy import schema_name
from lowcode_runtime.errors import ValidationFailed
from tests.test_db_operations import TYPED

NAMES = ["label", "body", "count", "ratio", "price", "flag", "day", "at", "meta", "ref", "id",
         "or", "nope", "eq", "in"]  # fmt: skip
OPS = ["eq", "ne", "lt", "lte", "gt", "gte", "in", "notIn", "contains", "startsWith", "isNull",
       "like", "or"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["2024-01-02", "2024-01-02T03:04:05Z", "7", "-1.5", "%", "_", "\\", "\x00",
                     "00000000-0000-0000-0000-000000000000", "NaN", "1e400"]),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NAMES + OPS), st.text(max_size=4)), inner,
                        max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip
operators = st.dictionaries(st.sampled_from(OPS), json_values, max_size=3)
filters = st.recursive(
    st.dictionaries(st.sampled_from(NAMES), st.one_of(scalars, operators), max_size=3),
    lambda inner: st.dictionaries(
        st.sampled_from(["or", *NAMES]), st.lists(inner, max_size=3), max_size=2
    ),
    max_leaves=8,
)

TABLE = build_table(DefinitionSchema().load({k: v for k, v in TYPED.items()
                                             if k not in ("type", "name")}))  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_db(database_url):
    """A connection on a schema holding the ``things`` table, dropped afterwards."""
    schema = schema_name("fuzz-db-tests")
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cursor.execute(f'CREATE SCHEMA "{schema}"')
        for step in plan(schema, TABLE, Catalog({})):
            cursor.execute(step.statement)
    connection.autocommit = False
    yield connection, schema
    connection.rollback()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    connection.close()


def run(fuzz_db, builder, params):
    connection, schema = fuzz_db
    try:
        query = builder(schema, TABLE, params)
    except ValidationFailed as e:
        assert e.details and all({"path", "message"} <= set(d) for d in e.details)
        return
    with connection.cursor() as cursor:
        cursor.execute(query.statement, query.params)
    connection.rollback()


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@SETTINGS
@given(
    filter_=filters,
    sort=st.lists(st.sampled_from(NAMES + ["-count", "-id"]), max_size=3),
)
def test_any_filter_runs_or_is_validation_failed(fuzz_db, filter_, sort):
    run(fuzz_db, build_list, {"filter": filter_, "sort": sort, "limit": 5, "offset": 0,
                              "withTotal": True})  # fmt: skip


@SETTINGS
@given(values=st.dictionaries(st.sampled_from(NAMES), json_values, max_size=5))
def test_any_values_run_or_are_validation_failed(fuzz_db, values):
    run(fuzz_db, build_create, {"values": values})
    run(fuzz_db, build_update, {"id": 1, "values": values})


@SETTINGS
@given(row_id=json_values)
def test_any_id_runs_or_is_validation_failed(fuzz_db, row_id):
    if row_id is not None:
        run(fuzz_db, build_get, {"id": row_id})
