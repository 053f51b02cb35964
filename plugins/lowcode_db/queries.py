"""One statement per operation of 6.6, built from a validated call (no SQL is sent here).

Each builder checks the params against the table first and raises VALIDATION_FAILED with
every violation; the statement it returns is the call's only round trip on the warm path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from psycopg2 import sql

from lowcode_db.ddl import qualified
from lowcode_db.dsl import FilterCompiler, Problems, compile_sort, select_names
from lowcode_db.model import Table, placeholder
from lowcode_db.rows import adapt, row_to_json, to_json
from lowcode_db.values import load_value
from lowcode_runtime.errors import flatten_messages

TOTAL = "__lowcode_total"
ROW_NUMBER = "__lowcode_n"


class Statement(sql.Composable):
    """A statement sent again and again: rendered to text once, on its first execute.

    psycopg2 renders a composed statement on every execute (quoting each identifier through
    the connection); the pool's connections all quote alike, so the first text is kept.
    """

    def __init__(self, composed: sql.Composable) -> None:
        super().__init__(composed)
        self._text: str | None = None

    def as_string(self, context: Any) -> str:
        if self._text is None:
            self._text = self._wrapped.as_string(context)
        return self._text


@dataclass
class Query:
    """A statement, its parameters, and how to read its rows into the call's answer."""

    statement: sql.Composable
    params: list[Any]
    names: list[str]
    shape: str  # "list", "row", "deleted"
    limit: int = 0
    offset: int = 0
    with_total: bool = False


def _columns(names: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _load_id(table: Table, value: Any, problems: Problems) -> Any:
    try:
        return load_value(table.id_type, value)
    except ValidationError as e:
        problems.extend(flatten_messages({"id": e.messages}, "params"))
        return None


GENERATED_IDS = {"integer": "a bigint identity", "uuid": "a random uuid"}


def _load_values(
    table: Table, values: dict[str, Any], partial: bool, problems: Problems
) -> dict[str, Any]:
    if "id" in values and (partial or table.id_type in GENERATED_IDS):
        problems.add(
            "params.values.id",
            "the id of a row cannot be changed"
            if partial
            else f"the id is generated ({GENERATED_IDS[table.id_type]}): leave it out",
        )
        values = {k: v for k, v in values.items() if k != "id"}
    try:
        return table.values_schema(partial).load(values)
    except ValidationError as e:
        problems.extend(flatten_messages(e.messages, "params.values"))
        return {}


def _id_condition(
    table: Table, value: Any, problems: Problems
) -> tuple[sql.Composable, Any]:
    condition = sql.SQL("{} = {}").format(
        sql.Identifier("id"), placeholder(table.id_type)
    )
    return condition, _load_id(table, value, problems)


def build_list(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    compiler = FilterCompiler(table, problems)
    where = compiler.compile(params.get("filter") or {})
    order = compile_sort(table, params.get("sort") or [], problems)
    names = select_names(table, params.get("fields"), problems)
    problems.raise_any()

    limit, offset = params.get("limit", 50), params.get("offset", 0)
    source = qualified(schema, table.name)
    if not params.get("withTotal"):
        statement = sql.SQL(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s"
        ).format(_columns(names), source, where, order)
        params_ = [*compiler.params, limit + 1, offset]
        return Query(statement, params_, names, "list", limit, offset)

    # One round trip: the count and the page, the page numbered so its order survives the join.
    statement = sql.SQL(
        "SELECT c.{total}, p.* FROM (SELECT count(*) AS {total} FROM {source} WHERE {where}) c "
        "LEFT JOIN LATERAL (SELECT {columns}, row_number() OVER (ORDER BY {order}) AS {n} "
        "FROM {source} WHERE {where} ORDER BY {order} LIMIT %s OFFSET %s) p ON true "
        "ORDER BY p.{n}"
    ).format(
        total=sql.Identifier(TOTAL),
        source=source,
        where=where,
        columns=_columns(names),
        order=order,
        n=sql.Identifier(ROW_NUMBER),
    )
    params_ = [*compiler.params, *compiler.params, limit + 1, offset]
    return Query(statement, params_, names, "list", limit, offset, with_total=True)


def build_get(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    value = _load_id(table, params["id"], problems)
    problems.raise_any()
    return Query(_get_statement(schema, table), [value], list(table.names), "row")


_GET_STATEMENTS: dict[tuple[str, str], Statement] = {}
MAX_CACHED_STATEMENTS = 4096


def _get_statement(schema: str, table: Table) -> Statement:
    """A warm get sends the text built for the first one; the table's shape is its key."""
    key = (schema, table.checksum)
    statement = _GET_STATEMENTS.get(key)
    if statement is None:
        condition = sql.SQL("{} = {}").format(
            sql.Identifier("id"), placeholder(table.id_type)
        )
        statement = Statement(
            sql.SQL("SELECT {} FROM {} WHERE {}").format(
                _columns(list(table.names)), qualified(schema, table.name), condition
            )
        )
        if len(_GET_STATEMENTS) >= MAX_CACHED_STATEMENTS:
            _GET_STATEMENTS.clear()
        _GET_STATEMENTS[key] = statement
    return statement


def insert_statement(
    schema: str,
    table: Table,
    values: dict[str, Any],
    returning: sql.Composable,
    skip_existing_id: bool = False,
) -> tuple[sql.Composed, list[Any]]:
    """``INSERT ... RETURNING`` of loaded ``values`` (DEFAULT VALUES when empty), and its params."""
    target = qualified(schema, table.name)
    if not values:
        statement = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}")
        return statement.format(target, returning), []

    names = list(values)
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) {}RETURNING {}").format(
        target,
        _columns(names),
        sql.SQL(", ").join(placeholder(table.column_type(n)) for n in names),
        sql.SQL("ON CONFLICT (id) DO NOTHING " if skip_existing_id else ""),
        returning,
    )
    return statement, [adapt(table.column_type(n), values[n]) for n in names]


def build_create(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    values = _load_values(table, params["values"], False, problems)
    problems.raise_any()

    names = list(table.names)
    statement, bound = insert_statement(schema, table, values, _columns(names))
    return Query(statement, bound, names, "row")


def build_update(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    condition, id_value = _id_condition(table, params["id"], problems)
    values = _load_values(table, params["values"], True, problems)
    problems.raise_any()
    if not values:
        return build_get(schema, table, params)

    names = list(table.names)
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(n), placeholder(table.column_type(n)))
        for n in values
    ]
    statement = sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
        qualified(schema, table.name),
        sql.SQL(", ").join(assignments),
        condition,
        _columns(names),
    )
    bound = [adapt(table.column_type(n), v) for n, v in values.items()]
    return Query(statement, [*bound, id_value], names, "row")


def build_delete(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    condition, value = _id_condition(table, params["id"], problems)
    problems.raise_any()
    statement = sql.SQL("DELETE FROM {} WHERE {} RETURNING {}").format(
        qualified(schema, table.name), condition, sql.Identifier("id")
    )
    return Query(statement, [value], ["id"], "deleted")


BUILDERS: dict[str, Callable[[str, Table, dict[str, Any]], Query]] = {
    "list": build_list,
    "get": build_get,
    "create": build_create,
    "update": build_update,
    "delete": build_delete,
}


def table_problems(
    table: Table, operation: str, params: dict[str, Any]
) -> list[dict[str, str]]:
    """The table-aware violations of raw ``params`` whose generic schema failed.

    The builders stop at the first layer that fails, so a wrong ``limit`` would hide an unknown
    filter field. This checks, against the table, every part that has the right shape, so one
    answer lists every violation; the generic schema reports the rest.
    """
    problems = Problems()
    if operation == "list":
        if isinstance(params.get("filter"), dict):
            FilterCompiler(table, problems).compile(params["filter"])
        if isinstance(params.get("sort"), list):
            compile_sort(table, params["sort"], problems)
        if isinstance(params.get("fields"), list):
            select_names(table, params["fields"], problems)
        return problems.details

    if operation != "create" and params.get("id") is not None:
        _load_id(table, params["id"], problems)
    if operation in ("create", "update") and isinstance(params.get("values"), dict):
        _load_values(table, params["values"], operation == "update", problems)
    return problems.details


def read_rows(
    query: Query, table: Table, rows: list[tuple[Any, ...]]
) -> tuple[Any, dict]:
    """The call's ``data`` and ``meta`` from the statement's rows (None data: no such row)."""
    types = [table.column_type(n) for n in query.names]
    if query.shape == "row":
        return (row_to_json(query.names, types, rows[0]) if rows else None), {}
    if query.shape == "deleted":
        if not rows:
            return None, {}
        return {"id": to_json(table.id_type, rows[0][0]), "deleted": True}, {}

    total = None
    if query.with_total:
        total = rows[0][0] if rows else 0
        rows = [row[1:-1] for row in rows if row[-1] is not None]
    page = {
        "limit": query.limit,
        "offset": query.offset,
        "hasMore": len(rows) > query.limit,
    }
    if total is not None:
        page["total"] = total
    data = [row_to_json(query.names, types, row) for row in rows[: query.limit]]
    return data, {"page": page}
