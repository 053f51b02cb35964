"""A loaded db definition as the plugin works with it: the table, its columns and indexes.

Built once per distinct definition (keyed by its checksum) so that the warm path does no work
but binding values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import orjson
from marshmallow import Schema
from psycopg2 import sql

from lowcode_db.values import ValuesLoader, load_value, values_schema

PG_TYPES = {
    "string": "character varying(255)",
    "text": "text",
    "integer": "bigint",
    "float": "double precision",
    "decimal": "numeric",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp with time zone",
    "json": "jsonb",
    "uuid": "uuid",
}
# The cast around each bound value, so PostgreSQL never guesses a parameter's type.
CASTS = {**PG_TYPES, "string": "varchar", "datetime": "timestamptz"}


def placeholder(field_type: str, array: bool = False) -> sql.Composed:
    """``CAST(%s AS <cast>)`` (``[]`` for a list) for one bound value of ``field_type``.

    Not ``%s::<cast>``: psycopg2 writes the value into the text, and ``-9223372036854775808::
    bigint`` parses as ``-(9223372036854775808::bigint)``, which overflows; CAST binds the sign.
    """
    return sql.SQL("CAST(%s AS {}{})").format(
        sql.SQL(CASTS[field_type]), sql.SQL("[]" if array else "")
    )


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    default: Any = None
    has_default: bool = False
    unique: bool = False

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.type]

    @property
    def default_is_expression(self) -> bool:
        """``now`` of a date or datetime, ``uuid`` of a uuid: made by PostgreSQL per row."""
        return (self.default == "now" and self.type in ("date", "datetime")) or (
            self.default == "uuid" and self.type == "uuid"
        )

    @cached_property
    def loaded_default(self) -> Any:
        """The literal default as a value of its type is loaded (a datetime moved to UTC, a
        uuid in its canonical form): what PostgreSQL is given, never the raw text, which
        Python's parsers may read where PostgreSQL's do not."""
        if self.type == "json":
            return self.default
        return load_value(self.type, self.default)


@dataclass(frozen=True)
class Index:
    name: str
    fields: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class Table:
    name: str
    id_type: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    checksum: str
    seeds: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    seeds_checksum: str | None = None
    by_name: dict[str, Column] = field(default_factory=dict, compare=False)

    @property
    def id_column(self) -> Column:
        return Column("id", self.id_type, required=True)

    def column(self, name: str) -> Column | None:
        """A declared column, ``id`` included."""
        return self.id_column if name == "id" else self.by_name.get(name)

    def unique_fields(self, constraint: str | None) -> tuple[str, ...] | None:
        """The fields of the unique constraint PostgreSQL named, None for one unknown here.

        The index may carry the name an earlier version gave it.
        """
        if constraint and constraint.endswith("_pkey"):
            return ("id",)
        for index in self.indexes:
            legacy = legacy_index_name(self.name, index.fields, index.unique)
            if constraint in (index.name, legacy):
                return index.fields
        return None

    def column_type(self, name: str) -> str:
        """The type of a column the params were checked against (KeyError for another)."""
        return self.id_type if name == "id" else self.by_name[name].type

    # Worked out on first use and kept on the table (a warm call reuses its table).
    @cached_property
    def names(self) -> tuple[str, ...]:
        """Every column a row answers with, ``id`` first."""
        return ("id", *(c.name for c in self.columns))

    @cached_property
    def types(self) -> tuple[str, ...]:
        """The type of each of :attr:`names`."""
        return tuple(self.column_type(n) for n in self.names)

    @cached_property
    def literal_defaults(self) -> tuple[Column, ...]:
        """The columns whose default a create binds as a value when it leaves them out."""
        return tuple(
            c for c in self.columns if c.has_default and not c.default_is_expression
        )

    @cached_property
    def has_json(self) -> bool:
        """Whether a value needs adapting to be bound (only ``json`` ones do)."""
        return "json" in self.types

    def values_schema(self, partial: bool) -> Schema:
        return self.values_loader(partial).schema

    def values_loader(self, partial: bool) -> ValuesLoader:
        return self._update_values if partial else self._create_values

    @cached_property
    def _create_values(self) -> ValuesLoader:
        return ValuesLoader(_values_schema(self, False))

    @cached_property
    def _update_values(self) -> ValuesLoader:
        return ValuesLoader(_values_schema(self, True))


def checksum(document: Any) -> str:
    """The SHA-256 of a JSON document in canonical form (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def index_name(table: str, columns: tuple[str, ...], unique: bool) -> str:
    """``<table>_<fields>_key|idx_<h8>``: readable, and unique per schema.

    Joined with ``_`` alone, ``a_b`` + ``c`` and ``a`` + ``b_c`` would both read ``a_b_c_key``;
    ``h8`` (a hash of the table, the fields and the flag) tells them apart. The readable part is
    cut so that the whole fits PostgreSQL's 63 bytes.
    """
    kind = "key" if unique else "idx"
    digest = hashlib.sha256(
        json.dumps([table, list(columns), unique]).encode()
    ).hexdigest()[:8]
    readable = f"{table}_{'_'.join(columns)}_{kind}"[:54]
    return f"{readable}_{digest}"


def legacy_index_name(table: str, columns: tuple[str, ...], unique: bool) -> str:
    """The name earlier versions generated: schemas they created may hold such indexes."""
    name = f"{table}_{'_'.join(columns)}_{'key' if unique else 'idx'}"
    if len(name) > 63:
        name = name[:54] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def build_table(definition: dict[str, Any]) -> Table:
    """The :class:`Table` of a loaded definition, cached by its canonical JSON.

    A warm call serialises the definition once; checksums and columns come from the cache.
    """
    return _build(_definition_json(definition))


MAX_KEPT_DEFINITION = 64 * 1024
"""A definition whose canonical JSON is longer is built again on each call, not kept."""


class TablesByDefinition:
    """Each loaded definition's :class:`Table` by the dict's identity: a warm call builds nothing.

    For the core's loaded definitions only: it hands a handler the same dict for the same
    definition and a new dict for a changed one (``DefinitionCache``), and handlers treat it
    as read-only. An entry holds its dict, so while it lives no other dict can have that id.
    Bounded: past ``size`` entries the oldest goes.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: dict[int, tuple[dict[str, Any], Table]] = {}

    def get(self, definition: dict[str, Any]) -> Table:
        entry = self._entries.get(id(definition))
        if entry is not None and entry[0] is definition:
            return entry[1]

        text = _definition_json(definition)
        table = _build(text)
        if len(text) <= MAX_KEPT_DEFINITION:
            if len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            self._entries[id(definition)] = (definition, table)
        return table


def _definition_json(definition: dict[str, Any]) -> bytes | str:
    document = {
        "shape": {k: definition.get(k, []) for k in ("table", "fields", "indexes")},
        "seeds": definition.get("seeds") or [],
    }
    return _document_json(document)


# Types orjson would write otherwise than ``default=str`` does go to the standard library.
_STDLIB_TYPES = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _document_json(document: dict[str, Any]) -> bytes | str:
    """Canonical JSON of the document; either text reads back as the same document."""
    try:
        return orjson.dumps(document, option=_STDLIB_TYPES)
    except TypeError:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)


@lru_cache(maxsize=512)
def _build(document_json: bytes | str) -> Table:
    document = json.loads(document_json)
    shape, seeds = document["shape"], document["seeds"]
    digest = checksum(shape)
    seeds_digest = checksum(seeds) if seeds else None
    id_type = "integer"
    columns = []
    for f in shape["fields"]:
        if f["name"] == "id":
            id_type = f["type"]
            continue
        columns.append(
            Column(
                f["name"],
                f["type"],
                bool(f.get("required")),
                f.get("default"),
                f.get("default") is not None,
                bool(f.get("unique")),
            )
        )

    indexes = [
        Index(index_name(shape["table"], (c.name,), True), (c.name,), True)
        for c in columns
        if c.unique
    ]
    for i in shape["indexes"]:
        names = tuple(i["fields"])
        indexes.append(
            Index(
                i.get("name") or index_name(shape["table"], names, i["unique"]),
                names,
                bool(i["unique"]),
            )
        )

    return Table(
        name=shape["table"],
        id_type=id_type,
        columns=tuple(columns),
        indexes=tuple(indexes),
        checksum=digest,
        seeds=tuple(seeds),
        seeds_checksum=seeds_digest,
        by_name={c.name: c for c in columns},
    )


def _values_schema(table: Table, partial: bool) -> Schema:
    columns = {
        c.name: (c.type, c.required and not c.has_default, not c.required)
        for c in table.columns
    }
    if table.id_type == "string" and not partial:
        columns = {"id": ("string", True, False), **columns}
    return values_schema(columns, partial)
