"""Marshmallow schemas of a db dataSource definition and of each operation's params (6, 6.6).

The core loads the definition and params with these before the handler runs. What depends on
the definition (the values, the filter) is checked later, in :mod:`lowcode_db.dsl`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    validate,
    validates,
    validates_schema,
)
from marshmallow import fields as mf

from lowcode_db.values import INT64_MAX, load_value, values_schema
from lowcode_runtime.fields import StrictBoolean, StrictInteger
from lowcode_runtime.plain_schema import PlainFirst

FIELD_TYPES = (
    "string",
    "text",
    "integer",
    "float",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "json",
    "uuid",
)
ID_TYPES = ("integer", "uuid", "string")
MAX_FIELDS = 200
MAX_INDEXES = 50
MAX_SEEDS = 1000
MAX_LIST = 1000
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def check_identifier(value: Any) -> None:
    """Names of tables, fields and indexes: ``[a-z_][a-z0-9_]*``, 63 bytes, no ``__lowcode_``."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValidationError("expected a name of the form [a-z_][a-z0-9_]*")
    if len(value) > 63:
        raise ValidationError("a name holds at most 63 bytes")
    if value.startswith("__lowcode_"):
        raise ValidationError("names starting with __lowcode_ are reserved")


SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
"""Every PostgreSQL table has these columns already: a field cannot take their names."""


def check_field_name(value: Any) -> None:
    check_identifier(value)
    if value in SYSTEM_COLUMNS:
        raise ValidationError(
            f"{value} is a system column of every PostgreSQL table: choose another name"
        )


class FieldSchema(Schema):
    name = mf.String(required=True, validate=check_field_name)
    type = mf.String(required=True, validate=validate.OneOf(FIELD_TYPES))
    required = StrictBoolean(load_default=False)
    default = mf.Raw(allow_none=True)
    unique = StrictBoolean(load_default=False)

    # Runs even when a key failed: a bad name must not hide a bad default.
    @validates_schema(skip_on_field_errors=False)
    def check_default(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "default" not in data or data["default"] is None or "type" not in data:
            return
        default, field_type = data["default"], data["type"]
        if default == "now" and field_type in ("date", "datetime"):
            return
        if default == "uuid" and field_type == "uuid":
            return
        try:
            load_value(field_type, default)
        except ValidationError as e:
            raise ValidationError(e.messages, "default") from e


class IndexSchema(Schema):
    name = mf.String(validate=check_identifier)
    # ``fields`` would shadow Schema.fields: the attribute is renamed, the keys stay ``fields``.
    fields_ = mf.List(
        mf.String(validate=check_identifier),
        data_key="fields",
        attribute="fields",
        required=True,
        validate=validate.Length(min=1, max=32),
    )
    unique = StrictBoolean(load_default=False)


class DefinitionSchema(Schema):
    """The ``dataSource`` object of a db call, ``type`` and ``name`` removed by the core."""

    table = mf.String(required=True, validate=check_identifier)
    fields_ = mf.List(
        mf.Nested(FieldSchema),
        data_key="fields",
        attribute="fields",
        load_default=list,
        validate=validate.Length(max=MAX_FIELDS),
    )
    indexes = mf.List(
        mf.Nested(IndexSchema),
        load_default=list,
        validate=validate.Length(max=MAX_INDEXES),
    )
    seeds = mf.List(
        mf.Dict(), load_default=list, validate=validate.Length(max=MAX_SEEDS)
    )

    # Runs on what loaded even when other keys failed: API.md section 3 wants every violation.
    # A list with a bad item still holds the others, each object with its valid keys.
    @validates_schema(skip_on_field_errors=False)
    def check_names(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        names = [f.get("name") for f in data.get("fields", [])]
        for position, field in enumerate(data.get("fields", [])):
            name = field.get("name")
            if name is not None and names.count(name) > 1:
                errors.setdefault("fields", {})[position] = {"name": ["declared twice"]}
            if name == "id" and field.get("type", "integer") not in ID_TYPES:
                errors.setdefault("fields", {})[position] = {
                    "type": [
                        "id is the primary key: its type is integer (the default bigint "
                        "identity), uuid (generated) or string (given by the caller)"
                    ]
                }

        # Without ``fields`` (refused whole), no index field can be called unknown.
        known = set(names) | {"id"} if "fields" in data else None
        index_names = [i.get("name") for i in data.get("indexes", [])]
        for position, index in enumerate(data.get("indexes", [])):
            problems = _index_problems(index, known)
            name = index.get("name")
            if name is not None and index_names.index(name) < position:
                problems["name"] = ["declared twice"]
            if problems:
                errors.setdefault("indexes", {})[position] = problems
        if errors:
            raise ValidationError(errors)

    # Whatever PREVIEW_APPLY_SEEDS says: a bad seed set is bad input even while unused. The
    # core caches loaded definitions, so this runs when a definition is first seen, not per call.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def check_seeds(
        self, data: dict[str, Any], original_data: Any, **kwargs: Any
    ) -> None:
        seeds = original_data.get("seeds") if isinstance(original_data, dict) else None
        if not isinstance(seeds, list) or not seeds or len(seeds) > MAX_SEEDS:
            return  # none, or refused whole by the field
        if "fields" not in data:
            return  # ``fields`` refused whole: no seed key can be judged

        columns, id_type = _seed_columns(data["fields"])
        # Positions of the raw list: the loaded one leaves out items that are no objects.
        rows = [(p, row) for p, row in enumerate(seeds) if isinstance(row, dict)]
        _, errors = load_seed_rows(rows, values_schema(columns, False), id_type)
        # A key naming a field that failed to load is not unknown: its field is reported.
        judged = {*columns, "id"} if id_type is not None else set(columns)
        failed = _declared_names(original_data.get("fields")) - judged
        for position in list(errors):
            kept = {k: v for k, v in errors[position].items() if k not in failed}
            errors[position] = kept
            if not kept:
                del errors[position]
        if errors:
            raise ValidationError({"seeds": errors})

    def handle_error(
        self, error: ValidationError, data: Any, *, many: bool, **kwargs: Any
    ) -> None:
        # The field's errors come before the schema checks' ones: list items in their order.
        if isinstance(error.messages, dict):
            for key, value in error.messages.items():
                if isinstance(value, dict) and all(type(k) is int for k in value):
                    error.messages[key] = dict(sorted(value.items()))


def load_seed_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], schema: Schema, id_type: str | None
) -> tuple[list[dict[str, Any]], dict[int, Any]]:
    """Each seed row loaded like ``create`` values, and the messages of each refused one
    by its position. A seed may give an ``integer`` or ``uuid`` id (``id_type`` None: an id
    whose type is unknown, left unchecked); a ``string`` id is in ``schema``."""
    loaded, errors = [], {}
    for position, row in rows:
        row = dict(row)
        seed_id = row.pop("id", None) if id_type != "string" else None
        problems: dict[str, Any] = {}
        try:
            values = schema.load(row)
        except ValidationError as e:
            problems.update(e.messages_dict)
        if seed_id is not None and id_type is not None:
            try:
                seed_id = load_value(id_type, seed_id)
            except ValidationError as e:
                problems["id"] = e.messages
            else:
                if id_type == "integer" and seed_id >= INT64_MAX:
                    # The identity moves past the largest seed id: none would be left.
                    problems["id"] = [
                        f"a seed's integer id is at most {INT64_MAX - 1}, so that new "
                        "rows have ids after it"
                    ]
        if problems:
            errors[position] = problems
            continue
        if seed_id is not None:
            values["id"] = seed_id
        loaded.append(values)
    return loaded, errors


def _seed_columns(
    fields: list[dict[str, Any]],
) -> tuple[dict[str, tuple[str, bool, bool]], str | None]:
    """The columns seeds can be loaded against, from the fields that loaded with a type,
    and the id's type (None when ``id`` is declared without a valid one)."""
    columns: dict[str, tuple[str, bool, bool]] = {}
    id_type: str | None = "integer"
    for field in fields:
        name, field_type = field.get("name"), field.get("type")
        if name == "id":
            id_type = field_type if field_type in ID_TYPES else None
        elif name is not None and field_type is not None:
            # A ``required`` that did not load counts as optional: nothing is called missing.
            required = field.get("required") is True
            mandatory = required and field.get("default") is None
            columns.setdefault(name, (field_type, mandatory, not required))
    if id_type == "string":
        columns = {"id": ("string", True, False), **columns}
    return columns, id_type


def _declared_names(fields: Any) -> set[Any]:
    """Every name the raw ``fields`` give, loaded or not."""
    if not isinstance(fields, list):
        return set()
    return {
        f["name"] for f in fields if isinstance(f, dict) and type(f.get("name")) is str
    }


def _index_problems(
    index: dict[str, Any], known: set[str] | None
) -> dict[str, list[str]]:
    """An index's fields that are unknown or named twice (an index over ``(a, a)`` is a slip)."""
    fields = index.get("fields", [])
    messages = [
        f"unknown field {name}"
        for name in fields
        if known is not None and name not in known
    ]
    repeated = sorted({name for name in fields if fields.count(name) > 1})
    messages += [f"field {name} named twice" for name in repeated]
    return {"fields": messages} if messages else {}


def _plain_name(value: Any) -> bool:
    """What :func:`check_identifier` accepts, as a yes or no."""
    return (
        type(value) is str
        and len(value) <= 63
        and _IDENTIFIER.fullmatch(value) is not None
        and not value.startswith("__lowcode_")
    )


_LIST_KEYS = frozenset({"filter", "sort", "limit", "offset", "fields", "withTotal"})


def _plain_list(data: Any) -> dict[str, Any] | None:
    if type(data) is not dict or not data.keys() <= _LIST_KEYS:
        return None
    filter_ = data.get("filter", {})
    sort = data.get("sort", [])
    limit = data.get("limit", 50)
    offset = data.get("offset", 0)
    with_total = data.get("withTotal", False)
    if (
        type(filter_) is not dict
        or type(sort) is not list
        or len(sort) > 32
        or not all(
            type(item) is str and _plain_name(item.removeprefix("-")) for item in sort
        )
        or type(limit) is not int
        or not 1 <= limit <= 1000
        or type(offset) is not int
        or not 0 <= offset <= INT64_MAX
        or type(with_total) is not bool
    ):
        return None
    loaded = {
        "filter": dict(filter_),
        "sort": list(sort),
        "limit": limit,
        "offset": offset,
        "withTotal": with_total,
    }
    if "fields" in data:
        names = data["fields"]
        if type(names) is not list or not 1 <= len(names) <= MAX_FIELDS:
            return None
        if not all(_plain_name(name) for name in names):
            return None
        loaded["fields"] = list(names)
    return loaded


class ListParams(PlainFirst):
    filter = mf.Dict(load_default=dict)
    sort = mf.List(mf.String(), load_default=list, validate=validate.Length(max=32))
    limit = StrictInteger(load_default=50, validate=validate.Range(min=1, max=1000))
    offset = StrictInteger(
        load_default=0, validate=validate.Range(min=0, max=INT64_MAX)
    )
    fields_ = mf.List(
        mf.String(),
        data_key="fields",
        attribute="fields",
        validate=validate.Length(min=1, max=MAX_FIELDS),
    )
    withTotal = StrictBoolean(load_default=False)

    @validates("sort")
    def check_sort(self, value: list[str], **kwargs: Any) -> None:
        _check_names([item[1:] if item.startswith("-") else item for item in value])

    @validates("fields_")
    def check_fields(self, value: list[str], **kwargs: Any) -> None:
        _check_names(value)

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        return _plain_list(data)


def _check_names(names: list[str]) -> None:
    """Each name of a list checked, its problem at its index (``params.sort.1``)."""
    errors: dict[int, list[str]] = {}
    for position, name in enumerate(names):
        try:
            check_identifier(name)
        except ValidationError as e:
            errors[position] = [str(m) for m in e.messages]
    if errors:
        raise ValidationError(errors)


class IdParams(PlainFirst):
    id = mf.Raw(required=True, allow_none=False)

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        if type(data) is dict and len(data) == 1 and data.get("id") is not None:
            return {"id": data["id"]}
        return None


class CreateParams(PlainFirst):
    values = mf.Dict(required=True)

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        if type(data) is dict and len(data) == 1 and type(data.get("values")) is dict:
            return {"values": dict(data["values"])}
        return None


class UpdateParams(PlainFirst):
    id = mf.Raw(required=True, allow_none=False)
    values = mf.Dict(required=True)

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        if (
            type(data) is dict
            and len(data) == 2
            and data.get("id") is not None
            and type(data.get("values")) is dict
        ):
            return {"id": data["id"], "values": dict(data["values"])}
        return None


def operation_schemas() -> dict[str, Schema]:
    """The params schema of each operation of 6.6."""
    return {
        "list": ListParams(),
        "get": IdParams(),
        "create": CreateParams(),
        "update": UpdateParams(),
        "delete": IdParams(),
    }
