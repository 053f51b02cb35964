"""One statement per operation of 6.6, built from a validated call (no SQL is sent here).

Each builder checks the params against the table first and raises VALIDATION_FAILED with
every violation; the statement it returns is the call's only round trip on the warm path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from psycopg2 import sql

from lowcode_db.ddl import default_sql, qualified
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
    names: Sequence[str]
    shape: str  # "list", "row", "deleted"
    limit: int = 0
    offset: int = 0
    with_total: bool = False
    types: Sequence[str] = ()  # of each name; worked out from the table when empty


def _columns(names: Sequence[str]) -> sql.Composable:
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
    loaded = table.values_loader(partial).plainly_valid(values)
    if loaded is not None:  # "id" among them is allowed: its schema holds it
        return loaded
    return _load_refused_values(table, values, partial, problems)


def _load_refused_values(
    table: Table, values: dict[str, Any], partial: bool, problems: Problems
) -> dict[str, Any]:
    """The values as the whole schema loads them, each violation in ``problems``."""
    if "id" in values and (partial or table.id_type in GENERATED_IDS):
        problems.add(
            "params.values.id",
            "the id of a row cannot be changed"
            if partial
            else f"the id is generated ({GENERATED_IDS[table.id_type]}): leave it out",
        )
        values = {k: v for k, v in values.items() if k != "id"}
    schema = table.values_schema(partial)
    try:
        return schema.load(values)
    except ValidationError as e:
        problems.extend(flatten_messages(e.messages, "params.values"))
        return {}


def _id_equals(table: Table) -> sql.Composable:
    return sql.SQL("{} = {}").format(sql.Identifier("id"), placeholder(table.id_type))


# One text per type, not a new one per call (a shape is kept as long as its statement).
_TYPE_NAMES = {str: "str", int: "int", float: "float"}
_BOUND_LIST = "[bound]"  # an in/notIn list: bound as one array, whatever it holds
MAX_CACHED_CONDITIONS = 64
"""A list whose filter holds more conditions is built for its call and not kept."""


def filter_shape(node: Any, bound_list: bool = False) -> Any:
    """What of a filter its SQL depends on: keys, nesting, and which operands are null or bool.

    Any other operand becomes its type's name, and the list of an ``in``/``notIn`` one marker:
    they are bound as parameters, whatever their values or length.
    """
    kind = type(node)
    if kind is dict:
        return tuple(
            (key, filter_shape(value, key in ("in", "notIn")))
            for key, value in node.items()
        )
    if kind is list:  # a tuple led by a text: never equal to an object's tuple of pairs
        if bound_list:
            return _BOUND_LIST
        return ("[]", tuple(filter_shape(item) for item in node))
    if node is None or kind is bool:
        return node
    return _TYPE_NAMES.get(kind) or kind.__name__


def build_list(schema: str, table: Table, params: dict[str, Any]) -> Query:
    filter_ = params.get("filter") or {}
    sort = params.get("sort") or []
    fields = params.get("fields")
    with_total = bool(params.get("withTotal"))
    limit, offset = params.get("limit", 50), params.get("offset", 0)
    key = (
        "list",
        schema,
        table.checksum,
        filter_shape(filter_),
        tuple(sort) if type(sort) is list else repr(sort),
        tuple(fields) if type(fields) is list else repr(fields),
        with_total,
    )

    problems = Problems()
    cached = STATEMENTS.get(key)
    compiler = FilterCompiler(table, problems, build_sql=cached is None)
    where = compiler.compile(filter_)
    if cached is not None:
        problems.raise_any()
        statement, names = cached
    else:
        order = compile_sort(table, sort, problems)
        names = select_names(table, fields, problems)
        problems.raise_any()
        statement = Statement(
            _list_statement(schema, table, where, order, names, with_total)
        )
        if compiler.conditions <= MAX_CACHED_CONDITIONS:  # a few KiB an entry at most
            STATEMENTS.put(key, (statement, names))
    bound = [*compiler.params, *compiler.params] if with_total else compiler.params
    return Query(
        statement, [*bound, limit + 1, offset], names, "list", limit, offset, with_total
    )


def _list_statement(
    schema: str,
    table: Table,
    where: sql.Composable,
    order: sql.Composable,
    names: list[str],
    with_total: bool,
) -> sql.Composable:
    source = qualified(schema, table.name)
    if not with_total:
        return sql.SQL(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s"
        ).format(_columns(names), source, where, order)

    # One round trip: the count and the page, the page numbered so its order survives the join.
    return sql.SQL(
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


def build_get(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    value = _load_id(table, params["id"], problems)
    problems.raise_any()
    statement = _get_statement(schema, table)
    return Query(statement, [value], table.names, "row", types=table.types)


class StatementCache:
    """Statements by the shape of the call that built them; a warm call reuses its shape's.

    Keys start with the operation, the schema and the table's checksum, so a changed table
    gets statements of its own. Bounded: past ``size`` entries it starts over.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        return self._entries.get(key)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = value


STATEMENTS = StatementCache()


def _get_statement(schema: str, table: Table) -> Statement:
    """A warm get sends the text built for the first one; the table's shape is its key."""
    key = ("get", schema, table.checksum)
    statement = STATEMENTS.get(key)
    if statement is None:
        statement = Statement(
            sql.SQL("SELECT {} FROM {} WHERE {}").format(
                _columns(table.names),
                qualified(schema, table.name),
                _id_equals(table),
            )
        )
        STATEMENTS.put(key, statement)
    return statement


def insert_statement(
    schema: str,
    table: Table,
    values: dict[str, Any],
    returning: sql.Composable,
    skip_existing_id: bool = False,
) -> tuple[sql.Composed, list[Any]]:
    """``INSERT ... RETURNING`` of loaded ``values`` (DEFAULT VALUES when empty), and its params.

    The definition's defaults of the fields not given go into the statement too: the column's
    own default may be an older definition's, which a process that finds this definition
    applied in the migrations log never migrates again. A literal one is bound as a value,
    since a ``%`` in its text would read as a placeholder.
    """
    target = qualified(schema, table.name)
    defaulted = [c for c in table.columns if c.has_default and c.name not in values]
    if not values and not defaulted:
        statement = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}")
        return statement.format(target, returning), []

    names = list(values)
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) {}RETURNING {}").format(
        target,
        _columns([*names, *(c.name for c in defaulted)]),
        sql.SQL(", ").join(
            [
                *(placeholder(table.column_type(n)) for n in names),
                *(
                    default_sql(c) if c.default_is_expression else placeholder(c.type)
                    for c in defaulted
                ),
            ]
        ),
        sql.SQL("ON CONFLICT (id) DO NOTHING " if skip_existing_id else ""),
        returning,
    )
    bound = [adapt(table.column_type(n), values[n]) for n in names]
    return statement, bound + _bound_defaults(table, values)


def _bound_defaults(table: Table, values: dict[str, Any]) -> list[Any]:
    """The literal defaults of the fields ``values`` leaves out, in the statement's order."""
    return [
        adapt(c.type, c.loaded_default)
        for c in table.literal_defaults
        if c.name not in values
    ]


def build_create(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    values = _load_values(table, params["values"], False, problems)
    problems.raise_any()

    key = ("create", schema, table.checksum, tuple(values))
    statement = STATEMENTS.get(key)
    if statement is None:
        returning = _columns(table.names)
        composed, bound = insert_statement(schema, table, values, returning)
        statement = Statement(composed)
        STATEMENTS.put(key, statement)
    else:
        bound = _bound(table, values)
        if table.literal_defaults:
            bound += _bound_defaults(table, values)
    return Query(statement, bound, table.names, "row", types=table.types)


def _bound(table: Table, values: dict[str, Any]) -> list[Any]:
    """Loaded values as psycopg2 binds them; only ``json`` ones need adapting."""
    if not table.has_json:
        return list(values.values())
    return [adapt(table.column_type(n), v) for n, v in values.items()]


def build_update(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    id_value = _load_id(table, params["id"], problems)
    values = _load_values(table, params["values"], True, problems)
    problems.raise_any()
    if not values:
        return build_get(schema, table, params)

    key = ("update", schema, table.checksum, tuple(values))
    statement = STATEMENTS.get(key)
    if statement is None:
        assignments = [
            sql.SQL("{} = {}").format(
                sql.Identifier(n), placeholder(table.column_type(n))
            )
            for n in values
        ]
        condition = _id_equals(table)
        statement = Statement(
            sql.SQL("UPDATE {} SET {} WHERE {} RETURNING {}").format(
                qualified(schema, table.name),
                sql.SQL(", ").join(assignments),
                condition,
                _columns(table.names),
            )
        )
        STATEMENTS.put(key, statement)
    bound = [*_bound(table, values), id_value]
    return Query(statement, bound, table.names, "row", types=table.types)


def build_delete(schema: str, table: Table, params: dict[str, Any]) -> Query:
    problems = Problems()
    value = _load_id(table, params["id"], problems)
    problems.raise_any()
    key = ("delete", schema, table.checksum)
    statement = STATEMENTS.get(key)
    if statement is None:
        condition = _id_equals(table)
        statement = Statement(
            sql.SQL("DELETE FROM {} WHERE {} RETURNING {}").format(
                qualified(schema, table.name), condition, sql.Identifier("id")
            )
        )
        STATEMENTS.put(key, statement)
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
    types = query.types or [table.column_type(n) for n in query.names]
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
