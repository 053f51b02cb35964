"""An example dataSource type, ``kv``: a small key-value store per project, kept in memory.

It shows every part a plugin author needs: a definition schema, params schemas per operation,
a handler, resources opened at start-up and closed at shutdown, and the core's errors.
"""

from __future__ import annotations

from aiohttp import web
from marshmallow import Schema, fields, validate

from lowcode_runtime import Call, DataSourceType, Result, hookimpl
from lowcode_runtime.errors import NotFound

STORE = web.AppKey("kv_store", dict)


class KvDefinition(Schema):
    """``{"type": "kv", "name": "...", "namespace": "carts"}``."""

    namespace = fields.String(required=True, validate=validate.Length(min=1, max=64))


class KeyParams(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=256))


class PutParams(KeyParams):
    value = fields.Raw(required=True, allow_none=True)


async def handle(call: Call) -> Result:
    store = call.app[STORE].setdefault(
        (call.project_id, call.definition["namespace"]), {}
    )
    key = call.params["key"]

    if call.operation == "put":
        store[key] = call.params["value"]
        return Result({"key": key, "value": store[key]})
    if key not in store:
        raise NotFound(f"no value under key {key!r}")
    return Result({"key": key, "value": store[key]})


@hookimpl
def register_datasource_types() -> list[DataSourceType]:
    return [
        DataSourceType(
            name="kv",
            definition_schema=KvDefinition(),
            operations={"get": KeyParams(), "put": PutParams()},
            handler=handle,
            description="in-memory key-value store per project",
        )
    ]


@hookimpl
def runtime_startup(app: web.Application, settings: object) -> None:
    app[STORE] = {}


@hookimpl
def runtime_shutdown(app: web.Application) -> None:
    app[STORE].clear()
