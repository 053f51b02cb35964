"""The routes plugins add: which plugin added each, what it says of it, the guard around it.

``register_routes`` is called one plugin at a time, so each route is known by its plugin: the
OpenAPI document lists every one, described with :func:`describe_route` or not, and its
handler runs in a task of its own (``handler_tasks``), so that nothing it raises stops the
service or drops the connection.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from marshmallow import Schema

from lowcode_runtime import errors, events
from lowcode_runtime.handler_tasks import await_contained
from lowcode_runtime.json_check import first_non_json
from lowcode_runtime.keys import PLUGIN_ROUTES, TYPE_REGISTRY
from lowcode_runtime.logs import logger
from lowcode_runtime.middleware import EXTRA_HEADERS, Handler
from lowcode_runtime.plugins import PluginManager, one_line_reason, skip_plugin
from lowcode_runtime.types import PluginInfo


@dataclass(frozen=True)
class RouteDescription:
    """What a plugin said of one of its routes, for the OpenAPI document."""

    operation: Mapping[str, Any]
    data: type[Schema] | Schema | None
    error_statuses: tuple[int, ...]


@dataclass(frozen=True)
class PluginRoute:
    """A route a plugin added: its method, its path as the router writes it, its plugin."""

    method: str
    path: str
    plugin: PluginInfo

    def owner(self) -> str:
        """``lowcode-kv 1.0 (route GET /kv/stats)``: who to blame in a log line."""
        return f"{self.plugin.name} {self.plugin.version} (route {self.method} {self.path})"


MAX_OPERATION_DEPTH = 64
"""Deeper parts of an operation are not checked: no OpenAPI operation nests that far."""


FENCED_ROUTES = web.AppKey("fenced_routes", set)
"""Routes added by a plugin whose ``register_routes`` then raised: they answer NOT_FOUND.

aiohttp's router has no public way to remove a route, so they stay in it, fenced off.
"""

ROUTE_DESCRIPTIONS = web.AppKey("route_descriptions", dict)
"""``(method, path)`` -> the :class:`RouteDescription` a plugin gave."""


def describe_route(
    app: web.Application,
    method: str,
    path: str,
    operation: Mapping[str, Any] | None = None,
    *,
    data: type[Schema] | Schema | None = None,
    error_statuses: Iterable[int] = (),
) -> None:
    """Describe, in ``register_routes``, a route just added, for ``GET /openapi.json``.

    ``operation`` is an OpenAPI operation object (``summary``, ``parameters``, ...), in which
    marshmallow schemas may stand for schema objects; ``data`` the schema of the envelope's
    ``data`` in the 200 answer; ``error_statuses`` the statuses the route answers in the error
    envelope beyond those of every route. A route not described is still listed.
    """
    method = method.upper()
    if not any(
        route.method == method
        and route.resource is not None
        and route.resource.canonical == path
        for route in app.router.routes()
    ):
        raise ValueError(
            f"describe_route: the app has no route {method} {path}; add it with app.router "
            "first, and write the path as the router does ({name} for each variable)"
        )
    if operation is not None and not isinstance(operation, Mapping):
        raise TypeError(
            f"describe_route: operation is a {type(operation).__name__}; give a dict"
        )

    where = f"describe_route {method} {path}"
    problem = first_non_json(_schemas_as_null(operation or {}, 0), "operation")
    if problem is not None:
        raise ValueError(
            f"{where}: {problem}; the operation must hold only JSON (finite numbers, "
            "string keys) and marshmallow schemas"
        )
    if data is not None and not _is_schema(data):
        what = (
            f"the class {data.__name__}"
            if isinstance(data, type)
            else (f"a {type(data).__name__}")
        )
        raise TypeError(
            f"{where}: data is {what}; give a marshmallow Schema class or instance"
        )
    statuses = tuple(error_statuses)
    if not all(_is_error_status(s) for s in statuses):
        raise ValueError(
            f"{where}: error_statuses {statuses!r} must be HTTP statuses from 400 to 599"
        )

    description = RouteDescription(dict(operation or {}), data, statuses)
    app.setdefault(ROUTE_DESCRIPTIONS, {})[(method, path)] = description


def _is_schema(value: Any) -> bool:
    return isinstance(value, Schema) or (
        isinstance(value, type) and issubclass(value, Schema)
    )


def _is_error_status(status: Any) -> bool:
    return (
        isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 600
    )


def _schemas_as_null(value: Any, depth: int) -> Any:
    """``value`` with each marshmallow schema as None, for the JSON check; bounded depth."""
    if _is_schema(value) or depth > MAX_OPERATION_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {k: _schemas_as_null(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_schemas_as_null(v, depth + 1) for v in value]
    return value


def add_plugin_routes(app: web.Application, pm: PluginManager) -> None:
    """Call each plugin's ``register_routes`` in pluggy's order; note the routes each added."""
    owned: dict[web.AbstractRoute, PluginRoute] = {}
    app[PLUGIN_ROUTES] = owned
    app.setdefault(ROUTE_DESCRIPTIONS, {})

    fenced: set[web.AbstractRoute] = set()
    app[FENCED_ROUTES] = fenced

    for impl in reversed(pm.hook.register_routes.get_hookimpls()):
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        before = set(app.router.routes())
        info = pm.info_for(impl.plugin)
        try:
            pm.subset_hook_caller("register_routes", remove_plugins=others)(app=app)
        except Exception as e:
            fenced.update(set(app.router.routes()) - before)
            _drop_types(app, impl.plugin_name)
            skip_plugin(pm, impl.plugin_name, info, one_line_reason(e), e)
            continue

        for route in app.router.routes():
            if route not in before and route.resource is not None:
                owned[route] = PluginRoute(route.method, route.resource.canonical, info)


def _drop_types(app: web.Application, entry_point: str) -> None:
    """A plugin skipped after its types were gathered serves none of them."""
    registry = app.get(TYPE_REGISTRY, {})
    for name in [n for n, r in registry.items() if r.entry_point == entry_point]:
        del registry[name]


def guard_plugin_route(request: web.Request, handler: Handler) -> Handler:
    """The handler to run: a plugin's route guarded, as a dataSource handler is; the core's
    as is. A fenced route answers NOT_FOUND."""
    route = request.app[PLUGIN_ROUTES].get(request.match_info.route)
    if route is not None:
        return functools.partial(_guarded, handler=handler, route=route)
    if request.match_info.route in request.app[FENCED_ROUTES]:
        raise errors.NotFound(f"no route {request.method} {request.path}")
    return handler


async def _guarded(
    request: web.Request, handler: Handler, route: PluginRoute
) -> web.StreamResponse:
    try:
        answer = await await_contained(
            request.app, lambda: handler(request), route.owner(), route.plugin.name
        )
    except web.HTTPException as e:
        if 200 <= e.status < 400:
            raise  # a success or a redirect: the contract's middleware answers it as raised
        raise contract_error(request, e, route) from None
    except errors.RuntimeBackendError:
        raise
    except Exception as e:
        logger.bind(
            event=events.HTTP_UNHANDLED, path=request.path, plugin=route.plugin.name
        ).opt(exception=e).error(
            f"unhandled {type(e).__name__} in the route of {route.owner()} while serving "
            f"{request.method} {request.path}"
        )
        raise errors.Internal() from None
    if not isinstance(answer, web.StreamResponse):
        returned = "None" if answer is None else f"a {type(answer).__name__}"
        logger.bind(event=events.PLUGIN_BAD_RESULT, plugin=route.plugin.name).error(
            f"the handler of {route.owner()} returned {returned}, not a response; "
            "answer with ok_response(request, data)"
        )
        raise errors.Internal()
    return answer


HTTP_ERRORS: dict[int, type[errors.RuntimeBackendError]] = {
    400: errors.ValidationFailed,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    429: errors.RateLimited,
}
"""aiohttp's HTTP errors a plugin route raises, as the contract's; any other is INTERNAL."""


def contract_error(
    request: web.Request, error: web.HTTPException, route: PluginRoute
) -> errors.RuntimeBackendError:
    """The contract's error for an aiohttp HTTP error raised in a plugin's route.

    The plugin's own text is kept as the message of a 4xx (it is meant for the caller), not
    aiohttp's default ``404: Not Found``; a status the table has no code for is INTERNAL.
    """
    error_class = HTTP_ERRORS.get(error.status)
    if error_class is None:
        logger.bind(event=events.PLUGIN_BAD_ERROR, plugin=route.plugin.name).error(
            f"the handler of {route.owner()} raised {type(error).__name__} "
            f"({error.status}), which has no contract code; answered INTERNAL"
        )
        return errors.Internal()

    own_text = error.text if error.text != f"{error.status}: {error.reason}" else None
    if isinstance(error, web.HTTPMethodNotAllowed):
        request[EXTRA_HEADERS]["Allow"] = ",".join(sorted(error.allowed_methods))
    if error_class is errors.RateLimited:
        return errors.RateLimited(own_text, retry_after=_seconds(error.headers))
    return error_class(own_text)


def _seconds(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None
