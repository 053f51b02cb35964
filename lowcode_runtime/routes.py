"""The service's own routes: health, readiness, plugins, metrics (execute is in dispatch)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiohttp import web

from lowcode_runtime import envelope, errors, metrics
from lowcode_runtime.error_answer import error_answer
from lowcode_runtime.keys import PLUGIN_MANAGER, TYPE_REGISTRY

READINESS_TIMEOUT_S = 5.0


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 while every plugin's readiness check passes, else 503 with the first failure's code."""
    pending = [
        r
        for r in request.app[PLUGIN_MANAGER].hook.runtime_readiness(app=request.app)
        if r
    ]
    checks: list[dict[str, Any]] = []
    for outcome in await asyncio.gather(*(_bounded(p) for p in pending)):
        checks.append(outcome)

    failed = [c for c in checks if not c.get("ok")]
    if not failed:
        return web.json_response({"status": "ready", "checks": checks})

    first = failed[0]
    error = errors.DbUnavailable(first.get("message"), details={"checks": checks})
    error.code = first.get("code", error.code)
    return error_answer(request, error)


async def _bounded(check: Any) -> dict[str, Any]:
    try:
        result = (
            await asyncio.wait_for(check, READINESS_TIMEOUT_S)
            if inspect.isawaitable(check)
            else check
        )
    except TimeoutError:
        return {"name": "unknown", "ok": False, "message": "readiness check timed out"}
    return dict(result)


async def list_plugins(request: web.Request) -> web.Response:
    data = [
        {
            "type": name,
            "operations": list(registered.type.operations),
            "plugin": {
                "name": registered.plugin.name,
                "version": registered.plugin.version,
            },
        }
        for name, registered in sorted(request.app[TYPE_REGISTRY].items())
    ]
    return envelope.ok_response(request, data)


async def metrics_text(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def make_not_found(app: web.Application) -> Any:
    """The catch-all handler: 405 where another route has the path, else 404."""

    async def not_found(request: web.Request) -> web.Response:
        allowed: set[str] = set()
        for resource in app.router.resources():
            if resource is request.match_info.route.resource:
                continue
            match, methods = await resource.resolve(request)
            allowed |= methods
        allowed.discard("OPTIONS")
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise errors.NotFound(f"no route {request.method} {request.path}")

    return not_found
