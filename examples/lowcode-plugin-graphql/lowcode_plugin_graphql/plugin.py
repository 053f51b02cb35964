"""The ``graphql`` type: render the variables and headers, POST them, answer ``data``.

Everything but GraphQL itself comes from the core: templates, secrets, the egress-checked
outbound client (trace id forwarded), redaction and masking, the deadline and the error codes.
A GraphQL ``errors`` list is ``UPSTREAM_STATUS`` (502): the upstream could not do what was
asked, whatever its HTTP status said.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from yarl import URL

from lowcode_plugin_graphql.schema import (
    GraphqlDefinitionSchema,
    QueryParamsSchema,
    graphql_body,
)
from lowcode_runtime import (
    USER_AGENT,
    Call,
    DataSourceType,
    MissingParam,
    Outbound,
    OutboundClient,
    Redactor,
    Result,
    TemplateContext,
    UpstreamAnswer,
    decode_text,
    errors,
    hookimpl,
    mask,
    missing_param,
    parse_json,
    render_headers,
    secret_names,
    upstream_status,
)

GRAPHQL_CLIENT = web.AppKey("lowcode_plugin_graphql.client", OutboundClient)
DEFAULT_HEADERS = {
    "User-Agent": USER_AGENT,
    "Content-Type": "application/json",
    "Accept": "application/graphql-response+json, application/json",
}
# At most this many upstream errors are passed on, each message at most this long.
MAX_ERRORS, MAX_MESSAGE = 20, 500


async def handle(call: Call) -> Result:
    """Send the query with its variables; ``data`` on success, a contract error otherwise."""
    definition = call.definition

    # Secrets are read only for a definition that names one.
    names = secret_names(definition["variables"]) | secret_names(definition["headers"])
    project_secrets = await call.secrets.get(call.project_id) if names else {}
    used = {name: project_secrets[name] for name in names if name in project_secrets}
    context = TemplateContext(call.params, used)

    try:
        variables = context.render_json(definition["variables"])
    except MissingParam as e:
        raise missing_param("dataSource.variables", e) from None
    headers, secret_headers = render_headers(
        definition["headers"], context, DEFAULT_HEADERS
    )
    body = json.dumps(graphql_body(definition, variables), ensure_ascii=False)
    outbound = Outbound(
        "POST", URL(definition["endpoint"]), headers, body.encode(), secret_headers
    )

    budget = call.deadline.remaining()
    if definition["timeoutMs"] is not None:
        budget = min(budget, definition["timeoutMs"] / 1000)

    redactor = Redactor(used.values())
    try:
        answer = await client_for(call).exchange(
            outbound, budget, follow_redirects=False
        )
    except errors.RuntimeBackendError as e:
        e.message = redactor.text(e.message)
        raise
    return to_result(answer, redactor)


def to_result(answer: UpstreamAnswer, redactor: Redactor) -> Result:
    """``data`` of a GraphQL answer; ``errors`` or a non-2xx status is ``UPSTREAM_STATUS``."""
    document = _document(answer)
    if document is not None and document.get("errors"):
        raise _graphql_errors(answer, document["errors"], redactor)
    if not 200 <= answer.status < 300:
        raise upstream_status(answer, redactor)
    if document is None:
        raise errors.UpstreamInvalidJson(
            "the GraphQL endpoint did not answer a JSON object"
        )

    data = redactor.json(document.get("data"))
    meta: dict[str, Any] = {
        "upstream": {"status": answer.status, "durationMs": answer.duration_ms}
    }
    if redactor.redacted:
        meta["redacted"] = True
    return Result(data, meta)


def _document(answer: UpstreamAnswer) -> dict[str, Any] | None:
    try:
        document = parse_json(decode_text(answer.body, answer.charset))
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _graphql_errors(
    answer: UpstreamAnswer, found: Any, redactor: Redactor
) -> errors.UpstreamStatus:
    """The upstream's errors, their messages masked of secrets, in ``details.errors``."""
    listed = found if isinstance(found, list) else [found]
    masked = [_masked_error(item, redactor) for item in listed[:MAX_ERRORS]]

    error = upstream_status(answer, redactor)
    first = masked[0]["message"] if masked else "no message"
    error.message = (
        f"the GraphQL endpoint answered {len(listed)} error(s); the first: {first}"
    )
    error.details = {**error.details, "errors": masked}
    if redactor.redacted:
        error.details["redacted"] = True
        error.meta = {"redacted": True}
    return error


def _masked_error(item: Any, redactor: Redactor) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"message": mask(redactor.text(str(item)))[:MAX_MESSAGE]}
    masked: dict[str, Any] = {
        "message": mask(redactor.text(str(item.get("message", ""))))[:MAX_MESSAGE]
    }
    if isinstance(item.get("path"), list):
        masked["path"] = redactor.json(item["path"])
    code = (item.get("extensions") or {}).get("code")
    if isinstance(code, str):
        masked["code"] = mask(redactor.text(code))
    return masked


def client_for(call: Call) -> OutboundClient:
    client = call.app.get(GRAPHQL_CLIENT)
    if client is None:
        raise RuntimeError("the graphql plugin was not started (runtime_startup)")
    return client


@hookimpl
def register_datasource_types() -> list[DataSourceType]:
    return [
        DataSourceType(
            name="graphql",
            definition_schema=GraphqlDefinitionSchema(),
            operations={"query": QueryParamsSchema()},
            handler=handle,
            description="A GraphQL query or mutation POSTed to an endpoint",
        )
    ]


@hookimpl
def runtime_startup(app: web.Application, settings: Any) -> None:
    app[GRAPHQL_CLIENT] = OutboundClient(settings, type_name="graphql")


@hookimpl
async def runtime_shutdown(app: web.Application) -> None:
    client = app.get(GRAPHQL_CLIENT)
    if client is not None:
        await client.close()
