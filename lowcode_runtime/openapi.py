"""``GET /openapi.json``: an OpenAPI 3 document generated from the marshmallow schemas."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from lowcode_runtime import __version__
from lowcode_runtime.dispatch import EXECUTE_PATH, ExecuteRequestSchema
from lowcode_runtime.plugins import RegisteredType

OPENAPI_KEY = web.AppKey("openapi", dict)


class MetaSchema(Schema):
    traceId = fields.String(required=True)
    requestId = fields.String(required=True)
    durationMs = fields.Float(required=True)
    dataSource = fields.String()
    type = fields.String()
    operation = fields.String()
    page = fields.Dict()
    upstream = fields.Dict()
    redacted = fields.Boolean()


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "contract error code"})
    message = fields.String(required=True)
    details = fields.Raw(
        metadata={
            "description": "machine-readable; for validation a list of {path, message}"
        }
    )


class OkEnvelopeSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"enum": [True]})
    data = fields.Raw(allow_none=True)
    meta = fields.Nested(MetaSchema, required=True)


class ErrorEnvelopeSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"enum": [False]})
    error = fields.Nested(ErrorSchema, required=True)
    meta = fields.Nested(MetaSchema, required=True)


class HealthSchema(Schema):
    status = fields.String(required=True)


def _answers(ok_description: str, *error_statuses: int) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "200": {
            "description": ok_description,
            "content": {"application/json": {"schema": "OkEnvelope"}},
        },
    }
    for status in error_statuses:
        answers[str(status)] = {
            "description": "error envelope",
            "content": {"application/json": {"schema": "ErrorEnvelope"}},
        }
    return answers


def build_spec(registry: dict[str, RegisteredType], paths: set[str]) -> dict[str, Any]:
    """The document for the installed types; ``paths`` are the routes the app really has."""
    spec = APISpec(
        title="lowcode-runtime",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Runs a low-code app's dataSources on the server, in preview mode."
        },
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in (
        ("Meta", MetaSchema),
        ("Error", ErrorSchema),
        ("OkEnvelope", OkEnvelopeSchema),
        ("ErrorEnvelope", ErrorEnvelopeSchema),
        ("Health", HealthSchema),
        ("ExecuteRequest", ExecuteRequestSchema),
    ):
        spec.components.schema(name, schema=schema)

    # Each type's definition and params schemas, so callers can see what a type accepts.
    # A schema class shared by several operations is added once (apispec refs it by class).
    added: set[type] = set()
    for type_name, registered in sorted(registry.items()):
        named = [(f"{type_name}Definition", registered.type.definition_schema)]
        named += [
            (f"{type_name}_{op}Params", p)
            for op, p in registered.type.operations.items()
        ]
        for name, instance in named:
            if type(instance) not in added:
                added.add(type(instance))
                spec.components.schema(name, schema=type(instance))

    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    spec.path(
        path="/health",
        operations={
            "get": {
                "summary": "liveness",
                "responses": {
                    "200": {
                        "description": "the process serves",
                        "content": {"application/json": {"schema": "Health"}},
                    }
                },
            }
        },
    )
    spec.path(
        path="/ready",
        operations={
            "get": {
                "summary": "readiness: every plugin's dependency answers",
                "responses": {
                    "200": {"description": "ready"},
                    "503": _answers("", 503)["503"],
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "this document",
                "responses": {"200": {"description": "OpenAPI 3"}},
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "summary": "Prometheus metrics",
                "security": secured,
                "responses": {
                    "200": {"description": "Prometheus text format"},
                    **{k: v for k, v in _answers("", 401, 403).items() if k != "200"},
                },
            }
        },
    )
    spec.path(
        path="/v1/plugins",
        operations={
            "get": {
                "summary": "installed dataSource types",
                "security": secured,
                "responses": _answers(
                    "list of {type, operations, plugin}", 401, 403, 429
                ),
            }
        },
    )
    spec.path(
        path=EXECUTE_PATH,
        operations={
            "post": {
                "summary": "run one dataSource call",
                "security": secured,
                "parameters": [
                    {
                        "name": "projectId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "ExecuteRequest"}},
                },
                "responses": _answers(
                    "the call's data",
                    400,
                    401,
                    403,
                    404,
                    409,
                    413,
                    422,
                    429,
                    500,
                    502,
                    503,
                    504,
                ),
            }
        },
    )
    if "/preview/status/{projectId}" not in paths:
        return spec.to_dict()
    spec.path(
        path="/preview/status/{projectId}",
        operations={
            "get": {
                "summary": "preview database status of a project (db plugin)",
                "security": secured,
                "parameters": [
                    {
                        "name": "projectId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": _answers(
                    "{status, lastAppliedAt, lastError}", 400, 401, 403, 429, 503
                ),
            }
        },
    )
    return spec.to_dict()


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])
