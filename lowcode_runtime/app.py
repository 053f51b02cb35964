"""The application factory: routes, middlewares, CORS, plugin resources, shared state."""

from __future__ import annotations

import inspect
from typing import Any

import aiohttp_cors
from aiohttp import hdrs, web

from lowcode_runtime import dispatch, events, keys, openapi, routes
from lowcode_runtime.config import Settings
from lowcode_runtime.handler_tasks import setup_handler_tasks
from lowcode_runtime.logs import logger
from lowcode_runtime.middleware import make_contract_middleware
from lowcode_runtime.plugin_routes import (
    PLUGIN_ROUTES,
    ROUTE_DESCRIPTIONS,
    add_plugin_routes,
    guard_plugin_route,
)
from lowcode_runtime.plugins import (
    PluginError,
    PluginManager,
    build_plugin_manager,
    build_type_registry,
    one_line_reason,
)
from lowcode_runtime.ratelimit import RateLimiter
from lowcode_runtime.requests import empty_project_id_routed
from lowcode_runtime.secrets import SecretsCache
from lowcode_runtime.shared_state import Breaker, make_cache

ALLOWED_HEADERS = ("Authorization", "Content-Type", "x-trace-id")
EXPOSED_HEADERS = (
    "x-trace-id",
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
)


def create_app(settings: Settings, pm: PluginManager | None = None) -> web.Application:
    """Build the service. Plugin types are gathered here, once; a conflict raises."""
    if not settings.auth_token:
        raise ValueError("settings.auth_token must be set before the app is built")
    pm = pm or build_plugin_manager()
    registry = build_type_registry(pm)

    app = web.Application(
        middlewares=[
            make_contract_middleware(settings.trusted_proxies, guard_plugin_route)
        ],
        client_max_size=settings.body_limit_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.PLUGIN_MANAGER] = pm
    app[keys.TYPE_REGISTRY] = registry
    app[dispatch.DEFINITIONS] = dispatch.DefinitionCache()
    redis = Breaker()  # one Redis: what one of its users learns, the other acts on
    app[keys.RATE_LIMITER] = RateLimiter(
        make_cache(settings.redis_url, "lowcode:ratelimit")
        if settings.redis_url
        else None,
        settings.rate_limit_max,
        settings.rate_limit_window_ms,
        redis,
    )
    provider = pm.hook.register_secrets_provider(settings=settings)
    app[keys.SECRETS] = SecretsCache(provider, settings, redis)

    setup_routes(app, pm)
    app[openapi.OPENAPI_KEY] = openapi.build_spec(
        registry, app[PLUGIN_ROUTES].values(), app[ROUTE_DESCRIPTIONS]
    )
    add_catch_all(app)
    setup_cors(app, settings)

    app.on_startup.append(_start_plugins)
    app.on_cleanup.append(_stop_plugins)
    setup_handler_tasks(app)  # first to clean up: orphans may still use a plugin's pool
    return app


def setup_routes(app: web.Application, pm: PluginManager) -> None:
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ready", routes.ready)
    app.router.add_get("/openapi.json", openapi.openapi_document)
    app.router.add_get("/metrics", routes.metrics_text)
    app.router.add_get("/v1/plugins", routes.list_plugins)
    app.router.add_post(
        empty_project_id_routed(dispatch.EXECUTE_PATH), dispatch.execute
    )
    add_plugin_routes(app, pm)


def add_catch_all(app: web.Application) -> None:
    """Unknown paths reach a route of ours, so they get auth, CORS and the envelope too."""
    resource = app.router.add_resource("/{tail:.*}", name=routes.CATCH_ALL)
    handler = routes.make_not_found(app)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
        resource.add_route(method, handler)


def setup_cors(app: web.Application, settings: Settings) -> None:
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        expose_headers=EXPOSED_HEADERS,
        allow_headers=ALLOWED_HEADERS,
        allow_methods="*",
        max_age=600,
    )
    hooks_before = len(app.on_response_prepare)
    cors = aiohttp_cors.setup(
        app, defaults={origin: options for origin in settings.cors_origins}
    )
    _only_for_cross_origin(app, hooks_before)
    for resource in list(app.router.resources()):
        if any(route.method == hdrs.METH_ANY for route in resource):
            # aiohttp-cors refuses a "*" route (it would have to own OPTIONS): the route
            # answers every method itself, preflights included, without CORS headers.
            logger.bind(event=events.CORS_SKIPPED, path=resource.canonical).debug(
                f"no CORS for {resource.canonical}: it has a route for every method"
            )
            continue
        cors.add(resource)


def _only_for_cross_origin(app: web.Application, first: int) -> None:
    """Run aiohttp-cors's response hook only for a request that names an ``Origin``.

    Without one (every server-to-server call) the hook returns before touching the answer,
    but only after looking up its route's CORS config: about 3 % of a warm call.
    """
    for position in range(first, len(app.on_response_prepare)):
        hook = app.on_response_prepare[position]

        async def cross_origin_only(
            request: web.Request, response: web.StreamResponse, hook: Any = hook
        ) -> None:
            if hdrs.ORIGIN in request.headers:
                await hook(request, response)

        app.on_response_prepare[position] = cross_origin_only


async def _await_all(results: list[Any]) -> None:
    for result in results:
        if inspect.isawaitable(result):
            await result


async def _start_plugins(app: web.Application) -> None:
    """Each plugin's ``runtime_startup``, in pluggy's order; one that raises stops start-up.

    A plugin that cannot open its resources must not serve half-working: the error names
    it (``PluginError``, exit 1), its traceback is logged at debug level.
    """
    pm = app[keys.PLUGIN_MANAGER]
    started: list[object] = []
    for impl in reversed(pm.hook.runtime_startup.get_hookimpls()):
        try:
            await _await_all(
                _only(pm, "runtime_startup", impl.plugin)(
                    app=app, settings=app[keys.SETTINGS]
                )
            )
        except (Exception, SystemExit, KeyboardInterrupt) as e:
            # A plugin's own exit or interrupt is its failure too: raised on, it would end
            # one process with its code, and a worker's would be started again forever.
            info = pm.info_for(impl.plugin)
            logger.opt(exception=e).debug("traceback of the failed start-up")
            await _stop_started(pm, app, started)
            raise PluginError(
                f"plugin {impl.plugin_name!r} ({info.name} {info.version}) failed to start, "
                f"so the service does not serve: {one_line_reason(e)}"
            ) from e
        started.append(impl.plugin)


def _only(pm: PluginManager, hook: str, plugin: object) -> Any:
    """The hook's caller for ``plugin`` alone."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)


async def _stop_started(
    pm: PluginManager, app: web.Application, started: list[object]
) -> None:
    """The shutdown of the plugins that started before one failed to, newest first: what
    they opened is closed although the service never serves."""
    for plugin in reversed(started):
        try:
            await _await_all(_only(pm, "runtime_shutdown", plugin)(app=app))
        except Exception as e:
            info = pm.info_for(plugin)
            logger.bind(
                event=events.PLUGIN_HOOK_FAILED,
                plugin=info.name,
                hook="runtime_shutdown",
            ).opt(exception=e).error(
                f"plugin {info.name} {info.version} failed to shut down after start-up "
                f"stopped: {one_line_reason(e)}"
            )


async def _stop_plugins(app: web.Application) -> None:
    pm = app[keys.PLUGIN_MANAGER]
    try:
        await _await_all(pm.hook.runtime_shutdown(app=app))
    finally:
        await app[keys.SECRETS].close()
        await app[keys.RATE_LIMITER].close()
