"""The service's own routes: health, readiness, plugins, metrics (execute is in dispatch)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiohttp import web
from pluggy import HookImpl

from lowcode_runtime import envelope, errors, events, metrics
from lowcode_runtime.error_answer import error_answer
from lowcode_runtime.keys import PLUGIN_MANAGER, TYPE_REGISTRY
from lowcode_runtime.logs import logger

READINESS_TIMEOUT_S = 5.0


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


NOT_READY_ERRORS: dict[str, type[errors.RuntimeBackendError]] = {
    cls.code: cls for cls in (errors.DbUnavailable, errors.SecretsUnavailable)
}
"""The codes ``/ready`` answers with: the contract's 503s; any other code is DB_UNAVAILABLE."""


async def ready(request: web.Request) -> web.Response:
    """200 while every plugin's readiness check passes, else 503 with the first failure's code.

    A check that raises, times out or returns anything but a dict counts as not ready, named
    after its plugin; a code outside :data:`NOT_READY_ERRORS` answers ``DB_UNAVAILABLE`` (the
    check's own code stays in ``details.checks``).
    """
    pm = request.app[PLUGIN_MANAGER]
    outcomes = await asyncio.gather(
        *(
            _run_check(impl, request.app)
            for impl in reversed(pm.hook.runtime_readiness.get_hookimpls())
        )
    )
    checks = [c for c in outcomes if c is not None]

    failed = [c for c in checks if not c.get("ok")]
    if not failed:
        return web.json_response({"status": "ready", "checks": checks})

    first = failed[0]
    error_class = NOT_READY_ERRORS.get(str(first.get("code")), errors.DbUnavailable)
    message = first.get("message")
    error = error_class(
        message if isinstance(message, str) else None, details={"checks": checks}
    )
    return error_answer(request, error)


async def _run_check(impl: HookImpl, app: web.Application) -> dict[str, Any] | None:
    """One plugin's check, bounded; a fault of the check is a failed check, logged."""
    name = impl.plugin_name
    try:
        check = impl.function(**{arg: app for arg in impl.argnames})
        if check is None:
            return None
        result = (
            await asyncio.wait_for(check, READINESS_TIMEOUT_S)
            if inspect.isawaitable(check)
            else check
        )
    except TimeoutError:
        return {"name": name, "ok": False, "message": "readiness check timed out"}
    except Exception as e:
        _log_bad_check(name, f"raised {type(e).__name__}", e)
        return {"name": name, "ok": False, "message": "readiness check failed"}

    if not isinstance(result, dict):
        _log_bad_check(name, f"returned a {type(result).__name__}, not a dict")
        return {"name": name, "ok": False, "message": "readiness check failed"}
    return {"name": name, **result}


def _log_bad_check(plugin: str, what: str, error: BaseException | None = None) -> None:
    logger.bind(event=events.PLUGIN_HOOK_FAILED, plugin=plugin).opt(
        exception=error
    ).error(f"the readiness check of {plugin!r} {what}; /ready counts it as not ready")


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


CATCH_ALL = "not_found"
"""The name of the catch-all resource (``app.add_catch_all``)."""


def make_not_found(app: web.Application) -> Any:
    """The catch-all handler: no route of the path answers this method.

    Whether that is a 405 (another route has the path) or a 404 is told where every method
    the router refuses is answered, the contract middleware, from :func:`methods_of_path`.
    """

    async def not_found(request: web.Request) -> web.Response:
        raise web.HTTPMethodNotAllowed(request.method, ())

    return not_found


async def methods_of_path(request: web.Request) -> set[str]:
    """The methods the routes of the request's path answer, the catch-all's and CORS
    preflights' aside: what an ``Allow`` header lists."""
    catch_all = request.app.router.named_resources().get(CATCH_ALL)
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not catch_all:
            _, methods = await resource.resolve(request)
            allowed |= methods
    allowed.discard("OPTIONS")
    return allowed
