"""The built-in ``rest`` dataSource type: its hooks and its handler (API.md section 5)."""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
from aiohttp import web
from yarl import URL

from lowcode_rest.request import build_request
from lowcode_rest.response import to_result
from lowcode_rest.schema import (
    RequestParamsSchema,
    RestDefinition,
    RestDefinitionSchema,
)
from lowcode_runtime import Call, DataSourceType, Result, errors, hookimpl
from lowcode_runtime.config import Settings
from lowcode_runtime.outbound import OutboundClient
from lowcode_runtime.redact import Redactor
from lowcode_runtime.templates import Context, secret_names

REST_CLIENT = web.AppKey("lowcode_rest.client", OutboundClient)


async def handle(call: Call) -> Result:
    """Render the definition, send it through the egress policy, answer what came back."""
    definition = call.definition

    # Secrets are fetched only for a definition that names one (section 5.1).
    names = (
        definition.secret_names
        if isinstance(definition, RestDefinition)
        else secret_names(definition)
    )
    project_secrets = await call.secrets.get(call.project_id) if names else {}
    used = {name: project_secrets[name] for name in names if name in project_secrets}
    outbound = build_request(definition, Context(call.params, used))

    budget = call.deadline.remaining()
    if definition["timeoutMs"] is not None:
        budget = min(budget, definition["timeoutMs"] / 1000)

    credentials = basic_credentials(URL(outbound.url), used.values())
    redactor = Redactor([*used.values(), *credentials])
    try:
        answer = await client_for(call).exchange(
            outbound, budget, definition["followRedirects"], redactor=redactor
        )
    except errors.RuntimeBackendError as e:
        e.message = redactor.text(e.message)  # a host name in the text may be a secret
        if redactor.redacted:
            e.meta = {**(e.meta or {}), "redacted": True}
        raise
    return to_result(answer, definition["responseType"], redactor)


def basic_credentials(url: URL, secrets: Iterable[str]) -> list[str]:
    """What aiohttp sends for a URL's user and password (``Authorization: Basic`` and their
    base64), when a secret is part of them: an upstream echoing that header echoes the
    secret, base64-encoded."""
    user, password = url.user or "", url.password or ""
    if not (user or password) or not any(
        value and (value in user or value in password) for value in secrets
    ):
        return []
    auth = aiohttp.BasicAuth.from_url(url)
    if auth is None:
        return []
    try:
        return [auth.encode().removeprefix("Basic ")]
    except UnicodeEncodeError:  # aiohttp cannot send it either; the exchange says so
        return []


def client_for(call: Call) -> OutboundClient:
    client = call.app.get(REST_CLIENT)
    if client is None:
        raise RuntimeError(
            "the rest plugin was not started (runtime_startup did not run)"
        )
    return client


@hookimpl
def register_datasource_types() -> list[DataSourceType]:
    return [
        DataSourceType(
            name="rest",
            definition_schema=RestDefinitionSchema(),
            operations={"request": RequestParamsSchema()},
            handler=handle,
            description="Outbound HTTP to a public API, with project secrets in templates",
        )
    ]


@hookimpl
def runtime_startup(app: web.Application, settings: Settings) -> None:
    app[REST_CLIENT] = OutboundClient(settings)


@hookimpl
async def runtime_shutdown(app: web.Application) -> None:
    client = app.get(REST_CLIENT)
    if client is not None:
        await client.close()
