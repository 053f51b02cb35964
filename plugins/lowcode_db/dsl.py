"""The filter, sort and fields of ``list`` (6.6), checked against the table and turned into SQL.

Every violation is collected with its path before anything is sent, so one answer lists them
all. Values are loaded with the column's marshmallow field and bound as parameters; names are
always known columns, quoted.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError
from psycopg2 import sql

from lowcode_db.model import Column, Table, placeholder
from lowcode_db.rows import adapt
from lowcode_db.schema import MAX_LIST
from lowcode_db.values import check_text, load_value
from lowcode_runtime.errors import ValidationFailed

OPERATORS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "notIn",
    "contains",
    "startsWith",
    "isNull",
)
UNORDERED = ("boolean", "json")
TEXTUAL = ("string", "text")
MAX_DEPTH = 8
MAX_CONDITIONS = 1000


class Problems:
    """Violations found so far, as ``{"path", "message"}``."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.details.append({"path": path, "message": message})

    def extend(self, details: list[dict[str, str]]) -> None:
        self.details.extend(details)

    def raise_any(self) -> None:
        if self.details:
            raise ValidationFailed.from_details(self.details)


class _Unbuilt:
    """Stands for SQL that need not be built: a statement of the same shape is cached."""

    def format(self, *parts: Any, **named: Any) -> _Unbuilt:
        return self

    def join(self, parts: Any) -> _Unbuilt:
        for _ in parts:  # a generator of parts still runs, so its params are bound
            pass
        return self


_UNBUILT = _Unbuilt()


def _unbuilt(*args: Any, **kwargs: Any) -> Any:
    return _UNBUILT


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FilterCompiler:
    """Turns one ``filter`` object into a WHERE condition and its parameters.

    With ``build_sql`` false it checks the filter and binds its parameters alike, in the same
    order, but builds no SQL: the caller has the statement of this filter's shape already.
    """

    def __init__(
        self, table: Table, problems: Problems, build_sql: bool = True
    ) -> None:
        self.table = table
        self.problems = problems
        self.params: list[Any] = []
        self.conditions = 0
        self._sql: Any = sql.SQL if build_sql else _unbuilt
        self._name: Any = sql.Identifier if build_sql else _unbuilt
        self._placeholder: Any = placeholder if build_sql else _unbuilt

    def compile(
        self, node: Any, path: str = "params.filter", depth: int = 0
    ) -> sql.Composable:
        if not isinstance(node, dict):
            self.problems.add(path, "expected an object of field conditions")
            return self._sql("FALSE")
        if depth > MAX_DEPTH:
            self.problems.add(path, f"'or' is nested deeper than {MAX_DEPTH} levels")
            return self._sql("FALSE")

        parts = []
        for key, value in node.items():
            self.conditions += 1
            if self.conditions == MAX_CONDITIONS + 1:
                self.problems.add(
                    "params.filter", f"more than {MAX_CONDITIONS} conditions"
                )
            if self.conditions > MAX_CONDITIONS:
                return self._sql("FALSE")
            # A field may be named ``or`` too: a list is the OR of filters, any other
            # value that field's condition.
            if key == "or" and (
                isinstance(value, list) or self.table.column(key) is None
            ):
                parts.append(self._or(value, f"{path}.or", depth))
            else:
                parts.append(self._field(key, value, f"{path}.{key}"))
        return self._sql(" AND ").join(parts) if parts else self._sql("TRUE")

    def _or(self, value: Any, path: str, depth: int) -> sql.Composable:
        if not isinstance(value, list):
            self.problems.add(path, "expected a list of filters")
            return self._sql("FALSE")
        if not value:
            return self._sql("FALSE")
        branches = [
            self.compile(item, f"{path}.{i}", depth + 1) for i, item in enumerate(value)
        ]
        return self._sql("({})").format(
            self._sql(" OR ").join(self._sql("({})").format(b) for b in branches)
        )

    def _field(self, name: str, value: Any, path: str) -> sql.Composable:
        column = self.table.column(name) if isinstance(name, str) else None
        if column is None:
            self.problems.add(path, "unknown field")
            return self._sql("FALSE")
        if isinstance(value, dict):
            if not value:
                self.problems.add(path, "expected at least one operator")
                return self._sql("FALSE")
            parts = [
                self._operator(column, op, operand, f"{path}.{op}")
                for op, operand in value.items()
            ]
            return self._sql(" AND ").join(parts)
        if isinstance(value, list):
            self.problems.add(path, 'to match one of several values use {"in": [...]}')
            return self._sql("FALSE")
        return self._operator(column, "eq", value, path)

    def _load(self, column: Column, value: Any, path: str) -> Any:
        try:
            return adapt(column.type, load_value(column.type, value))
        except ValidationError as e:
            for message in (
                e.messages if isinstance(e.messages, list) else [str(e.messages)]
            ):
                self.problems.add(path, str(message))
            return None

    def _bind(self, column: Column, value: Any, path: str) -> sql.Composable:
        self.params.append(self._load(column, value, path))
        return self._placeholder(column.type)

    def _operator(
        self, column: Column, op: str, operand: Any, path: str
    ) -> sql.Composable:
        name = self._name(column.name)
        if op not in OPERATORS:
            self.problems.add(
                path, f"unknown operator; expected one of {', '.join(OPERATORS)}"
            )
            return self._sql("FALSE")

        if op in ("eq", "ne") and operand is None:
            return self._sql("{} IS {}NULL").format(
                name, self._sql("" if op == "eq" else "NOT ")
            )
        if op == "isNull":
            if not isinstance(operand, bool):
                self.problems.add(path, "expected true or false")
                return self._sql("FALSE")
            return self._sql("{} IS {}NULL").format(
                name, self._sql("" if operand else "NOT ")
            )
        if operand is None:
            self.problems.add(
                path, f"null is only allowed with eq and ne, not with {op}"
            )
            return self._sql("FALSE")
        if op == "eq":
            return self._sql("{} = {}").format(name, self._bind(column, operand, path))
        if op == "ne":
            return self._sql("{} IS DISTINCT FROM {}").format(
                name, self._bind(column, operand, path)
            )
        if op in ("in", "notIn"):
            return self._list(column, op, operand, path)
        if op in ("contains", "startsWith"):
            return self._like(column, op, operand, path)

        if column.type in UNORDERED:
            self.problems.add(path, f"{op} does not apply to a {column.type} field")
            return self._sql("FALSE")
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return self._sql("{} {} {}").format(
            name, self._sql(symbol), self._bind(column, operand, path)
        )

    def _list(self, column: Column, op: str, operand: Any, path: str) -> sql.Composable:
        if not isinstance(operand, list):
            self.problems.add(path, "expected a list of values")
            return self._sql("FALSE")
        if len(operand) > MAX_LIST:
            self.problems.add(path, f"a list holds at most {MAX_LIST} values")
            return self._sql("FALSE")
        if column.type == "json":
            self.problems.add(path, f"{op} does not apply to a json field")
            return self._sql("FALSE")
        values = []
        for i, item in enumerate(operand):
            if item is None:
                self.problems.add(f"{path}.{i}", "null is not allowed in a list")
            else:
                values.append(self._load(column, item, f"{path}.{i}"))
        self.params.append(values)
        name = self._name(column.name)
        if op == "in":
            return self._sql("{} = ANY({})").format(
                name, self._placeholder(column.type, array=True)
            )
        return self._sql("({} IS NULL OR {} <> ALL({}))").format(
            name, name, self._placeholder(column.type, array=True)
        )

    def _like(self, column: Column, op: str, operand: Any, path: str) -> sql.Composable:
        if column.type not in TEXTUAL:
            self.problems.add(path, f"{op} applies to string and text fields only")
            return self._sql("FALSE")
        if not isinstance(operand, str):
            self.problems.add(path, "expected a string")
            return self._sql("FALSE")
        try:
            check_text(operand)
        except ValidationError as e:
            self.problems.add(path, " ".join(map(str, e.messages)))
            return self._sql("FALSE")
        pattern = _escape_like(operand) + "%"
        self.params.append(pattern if op == "startsWith" else "%" + pattern)
        return self._sql("{} ILIKE %s ESCAPE '\\'").format(self._name(column.name))


def compile_sort(table: Table, sort: list[str], problems: Problems) -> sql.Composable:
    """ORDER BY keys, ``id`` ascending appended unless sorted on already."""
    keys, seen = [], set()
    for i, item in enumerate(sort):
        if not isinstance(item, str):
            problems.add(f"params.sort.{i}", "expected a field name")
            continue
        name = item[1:] if item.startswith("-") else item
        if table.column(name) is None:
            problems.add(f"params.sort.{i}", "unknown field")
            continue
        if name in seen:
            problems.add(f"params.sort.{i}", "field sorted on twice")
            continue
        seen.add(name)
        direction = sql.SQL("DESC" if item.startswith("-") else "ASC")
        keys.append(sql.SQL("{} {}").format(sql.Identifier(name), direction))
    if "id" not in seen:
        keys.append(sql.SQL("{} ASC").format(sql.Identifier("id")))
    return sql.SQL(", ").join(keys)


def select_names(
    table: Table, wanted: list[str] | None, problems: Problems
) -> list[str]:
    """The columns a list answers with: ``fields`` (``id`` always first), else all."""
    if wanted is None:
        return list(table.names)
    names = ["id"]
    for i, name in enumerate(wanted):
        if not isinstance(name, str) or table.column(name) is None:
            problems.add(f"params.fields.{i}", "unknown field")
        elif name not in names:
            names.append(name)
    return names
