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

    for path, method, operation in _operations(paths):
        spec.path(path=path, operations={method: operation})
    return spec.to_dict()


def _operation(
    summary: str, ok: dict[str, Any], *errors: int, secured: bool = True, **extra: Any
) -> dict[str, Any]:
    """One operation object: its 200 answer, its error envelopes, bearer security if any."""
    responses: dict[str, Any] = {"200": ok}
    for status in errors:
        responses[str(status)] = {
            "description": "error envelope",
            "content": {"application/json": {"schema": "ErrorEnvelope"}},
        }
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if secured:
        operation["security"] = [{"bearer": []}]
    return operation


def _json(description: str, schema: str = "OkEnvelope") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _operations(paths: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
    project = [
        {
            "name": "projectId",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        }
    ]
    found = [
        (
            "/health",
            "get",
            _operation(
                "liveness", _json("the process serves", "Health"), secured=False
            ),
        ),
        (
            "/ready",
            "get",
            _operation(
                "readiness: every plugin's dependency answers",
                {"description": "ready"},
                503,
                secured=False,
            ),
        ),
        (
            "/openapi.json",
            "get",
            _operation("this document", {"description": "OpenAPI 3"}, secured=False),
        ),
        (
            "/metrics",
            "get",
            _operation(
                "Prometheus metrics",
                {"description": "Prometheus text format"},
                401,
                403,
                429,
            ),
        ),
        (
            "/v1/plugins",
            "get",
            _operation(
                "installed dataSource types",
                _json("list of {type, operations, plugin}"),
                401,
                403,
                429,
            ),
        ),
        (
            EXECUTE_PATH,
            "post",
            _operation(
                "run one dataSource call",
                _json("the call's data"),
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
                parameters=project,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": "ExecuteRequest"}},
                },
            ),
        ),
        (
            "/preview/status/{projectId}",
            "get",
            _operation(
                "preview database status of a project (db plugin)",
                _json("{status, lastAppliedAt, lastError}"),
                400,
                401,
                403,
                429,
                503,
                parameters=project,
            ),
        ),
    ]
    # Routes of plugins are documented only where the plugin that adds them is installed.
    core = {
        "/health",
        "/ready",
        "/openapi.json",
        "/metrics",
        "/v1/plugins",
        EXECUTE_PATH,
    }
    return [entry for entry in found if entry[0] in core or entry[0] in paths]


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])
