"""``GET /openapi.json``: an OpenAPI 3 document generated from the marshmallow schemas."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from lowcode_runtime import __version__, events
from lowcode_runtime.dispatch import EXECUTE_PATH, ExecuteRequestSchema
from lowcode_runtime.logs import logger
from lowcode_runtime.plugin_routes import PluginRoute, RouteDescription
from lowcode_runtime.plugins import RegisteredType
from lowcode_runtime.requests import MAX_PROJECT_ID_LENGTH

OPENAPI_KEY = web.AppKey("openapi", dict)

PLUGIN_ROUTE_ERRORS = (401, 403, 429, 500, 504)
"""What the core answers on every plugin route: auth, rate limit, INTERNAL, the deadline."""

OPENAPI_METHODS = frozenset(
    {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH"}
)
SCHEMA_REF = "#/components/schemas/"
PATH_VARIABLE = re.compile(r"\{([^}/]+)\}")


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


def build_spec(
    registry: dict[str, RegisteredType],
    plugin_routes: Iterable[PluginRoute] = (),
    descriptions: Mapping[tuple[str, str], RouteDescription] | None = None,
) -> dict[str, Any]:
    """The document of the core's routes, the installed types and every plugin route."""
    spec = _core_spec(registry)
    _add_plugin_routes(spec, registry, list(plugin_routes), descriptions or {})
    return spec.to_dict()


def _core_spec(registry: dict[str, RegisteredType]) -> APISpec:
    """The core's components and routes, and the schemas of the installed types."""
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
    added: dict[type, str] = {}
    types: dict[str, Any] = {}
    for type_name, registered in sorted(registry.items()):
        named = [(f"{type_name}Definition", registered.type.definition_schema)]
        named += [
            (f"{type_name}_{op}Params", p)
            for op, p in registered.type.operations.items()
        ]
        for name, instance in named:
            if type(instance) not in added:
                added[type(instance)] = name
                spec.components.schema(name, schema=type(instance))
        types[type_name] = _type_schemas(registered, added)

    for path, method, operation in _operations():
        if path == EXECUTE_PATH:
            operation[TYPES_EXTENSION] = types
        spec.path(path=path, operations={method: operation})
    return spec


TYPES_EXTENSION = "x-lowcode-datasource-types"
"""On the execute route: for each installed type, the schema of the rest of its
``dataSource`` and of each operation's ``params`` (the request body's own schema cannot say
which goes with which type)."""


def _type_schemas(
    registered: RegisteredType, names: Mapping[type, str]
) -> dict[str, Any]:
    def ref(instance: Any) -> dict[str, str]:
        return {"$ref": SCHEMA_REF + names[type(instance)]}

    return {
        "definition": ref(registered.type.definition_schema),
        "operations": {
            op: {"params": ref(schema)}
            for op, schema in registered.type.operations.items()
        },
    }


def _add_plugin_routes(
    spec: APISpec,
    registry: dict[str, RegisteredType],
    routes: list[PluginRoute],
    descriptions: Mapping[tuple[str, str], RouteDescription],
) -> None:
    """Each plugin route, as its plugin described it or, at least, by path and method.

    A description is first tried in a document of its own: one that apispec cannot read, or
    that would leave a value JSON cannot hold (NaN) or a ``$ref`` to nothing, would break the
    document for every route; that route is listed undescribed instead.
    """
    gets = {r.path for r in routes if r.method == "GET"}
    for route in routes:
        # aiohttp adds HEAD to every GET; only a HEAD of its own is worth a line.
        if route.method not in OPENAPI_METHODS or (
            route.method == "HEAD" and route.path in gets
        ):
            continue
        description = descriptions.get((route.method, route.path))
        problem = None if description is None else _trial(registry, route, description)
        if problem is not None:
            logger.bind(
                event=events.PLUGIN_BAD_OPENAPI, plugin=route.plugin.name
            ).error(
                f"the OpenAPI description of {route.owner()} is not usable ({problem}); "
                "the route is listed undescribed"
            )
            description = None
        operation = plugin_operation(route, description)
        spec.path(path=route.path, operations={route.method.lower(): operation})


def _trial(
    registry: dict[str, RegisteredType],
    route: PluginRoute,
    description: RouteDescription,
) -> str | None:
    """What is wrong with the document holding this one description, or None."""
    spec = _core_spec(registry)
    try:
        operation = plugin_operation(route, description)
        spec.path(path=route.path, operations={route.method.lower(): operation})
        document = spec.to_dict()
        json.dumps(document, allow_nan=False)
    except Exception as e:
        return f"{type(e).__name__}: {e}".replace(
            "Out of range float values", "NaN or inf"
        )
    schemas = document.get("components", {}).get("schemas", {})
    for ref in _refs(document):
        if ref.removeprefix(SCHEMA_REF) not in schemas:
            return f"$ref {ref!r} names no schema of the document"
    return None


def _refs(value: Any) -> list[str]:
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.append(ref)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def plugin_operation(
    route: PluginRoute, description: RouteDescription | None
) -> dict[str, Any]:
    """The plugin's operation object, completed with what the core knows of every route."""
    operation = copy.deepcopy(dict(description.operation)) if description else {}
    operation.setdefault("summary", f"a route of the plugin {route.plugin.name}")
    operation.setdefault("tags", [route.plugin.name])
    operation.setdefault("security", [{"bearer": []}])

    parameters = list(operation.get("parameters", []))
    declared = {p.get("name") for p in parameters if p.get("in") == "path"}
    for name in PATH_VARIABLE.findall(route.path):
        if name not in declared:
            parameters.append(_path_parameter(name))
    if parameters:
        operation["parameters"] = parameters

    responses = {str(k): v for k, v in operation.get("responses", {}).items()}
    if not any(status.startswith("2") for status in responses):
        responses["200"] = _plugin_answer(description.data if description else None)
    for code, response in responses.items():
        if isinstance(response, dict) and "$ref" not in response:
            # OpenAPI requires it; a plugin giving only the content is easily forgiven.
            responses[code] = {"description": f"{code} answer", **response}
    statuses = (
        *(description.error_statuses if description else ()),
        *PLUGIN_ROUTE_ERRORS,
    )
    for status in sorted(set(statuses)):
        responses.setdefault(str(status), _error_envelope())
    operation["responses"] = responses
    return operation


def _plugin_answer(data: type[Schema] | Schema | None) -> dict[str, Any]:
    if data is None:
        return {"description": "the plugin's answer; it describes no schema"}
    envelope = {
        "allOf": [OkEnvelopeSchema, {"type": "object", "properties": {"data": data}}]
    }
    return {
        "description": "the envelope, with the plugin's data",
        "content": {"application/json": {"schema": envelope}},
    }


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _project_id_parameter() -> dict[str, Any]:
    """The core's projectId: what :func:`checked_project_id` refuses is out of its schema
    too (control and bidirectional characters aside, which a pattern would only obscure)."""
    parameter = _path_parameter("projectId")
    parameter["schema"].update(
        minLength=1, maxLength=MAX_PROJECT_ID_LENGTH, pattern=r"\S"
    )
    parameter["description"] = (
        "the project; not blank, no control or bidirectional formatting characters"
    )
    return parameter


def _error_envelope() -> dict[str, Any]:
    return {
        "description": "error envelope",
        "content": {"application/json": {"schema": "ErrorEnvelope"}},
    }


def _operation(
    summary: str, ok: dict[str, Any], *errors: int, secured: bool = True, **extra: Any
) -> dict[str, Any]:
    """One operation object: its 200 answer, its error envelopes, bearer security if any."""
    responses: dict[str, Any] = {"200": ok}
    for status in errors:
        responses[str(status)] = _error_envelope()
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if secured:
        operation["security"] = [{"bearer": []}]
    return operation


def _json(description: str, schema: str = "OkEnvelope") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    """The core's own routes."""
    project = [_project_id_parameter()]
    return [
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
    ]


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])
