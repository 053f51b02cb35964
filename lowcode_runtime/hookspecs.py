"""Hook specifications of the pluggy project ``lowcode_runtime``.

Hooks are plain functions called synchronously by pluggy. Where a hook has async work to do
(start-up, shutdown, readiness) it returns an awaitable, which the core awaits.

Each docstring is the hook's reference: ``docs/plugins.md`` repeats it under the hook's heading,
and ``tests/test_hook_usage.py`` fails when the two part, or when a hook has no plugin outside
the core that uses it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from lowcode_runtime.config import Settings
    from lowcode_runtime.secrets import SecretsProvider
    from lowcode_runtime.types import Call, DataSourceType

PROJECT_NAME = "lowcode_runtime"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- start-up: gathered once, never called on the hot path ---------------------------------


@hookspec
def register_datasource_types() -> list[DataSourceType]:
    """Called at start-up, more than once (each process checks the types, then serves them);
    returns the dataSource types this plugin handles: build them, open nothing here.

    The types are kept in a registry, so no hook runs to find a type on a call. Two plugins
    returning one type name stop start-up.
    """


@hookspec(firstresult=True)
def register_secrets_provider(settings: Settings) -> SecretsProvider | None:
    """Called once at start-up; returns the provider of project secrets, or None to pass.

    ``firstresult``: the first plugin that answers wins; the built-in API/file provider is
    registered last, so any other plugin's provider takes precedence. A provider has
    ``async fetch(project_id) -> Mapping[str, str]`` (raise when secrets cannot be had, return
    an empty mapping when the project has none) and ``async close()``; the core puts its cache
    in front of it.
    """


@hookspec
def register_routes(app: web.Application) -> None:
    """Called while the app is built; adds the plugin's own routes with ``app.router``.

    The core puts them behind the same authentication, rate limit, deadline, CORS and envelope,
    and lists each in ``GET /openapi.json``: describe one with
    ``lowcode_runtime.describe_route`` right after adding it. Answer with
    ``lowcode_runtime.ok_response(request, data)``.

    If it raises, the plugin is skipped (`plugin.load_failed`, listed as failed by the
    `plugins` command) with its types, and the routes it added before answer `NOT_FOUND`:
    aiohttp cannot remove a route, so they stay in the router, fenced off.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Called when the command line is built; adds sub-commands with ``subparsers.add_parser``.

    A command's ``func`` default is called with the parsed arguments, on which the core has set
    ``settings`` and ``plugin_manager``, and returns an exit code.

    If it raises, the plugin is skipped (`plugin.load_failed`, listed as failed by the
    `plugins` command) and the commands it added are removed; every other command works.
    """


# --- life cycle of the service -------------------------------------------------------------


@hookspec
def runtime_service_resources(
    settings: Settings,
) -> AbstractContextManager[dict[str, Any] | None] | None:
    """Called once per service, in the main process before any worker starts (and by commands).

    Returns a context manager for a resource all workers share, such as an embedded database;
    what it yields (a dict of ``Settings`` fields, or None) overrides the settings of every
    worker. It is exited after the last worker stopped. The db plugin starts its embedded
    PostgreSQL here when ``DATABASE_URL`` is unset and yields its URL.
    """


@hookspec
def runtime_startup(app: web.Application, settings: Settings) -> Awaitable[None] | None:
    """Called as the server starts; open the plugin's resources and keep them under an AppKey.

    Pools and clients belong here (the graphql example opens its ``OutboundClient``).

    If it raises, start-up stops with exit code 1 and one line (`plugin.refused`) naming the
    plugin and the reason: a plugin that cannot open its resources must not serve half-working.
    """


@hookspec
def runtime_shutdown(app: web.Application) -> Awaitable[None] | None:
    """Called as the server stops, after in-flight requests ended; close what start-up opened."""


@hookspec
def runtime_readiness(app: web.Application) -> Awaitable[dict[str, Any]] | None:
    """Called by ``GET /ready``; returns an awaitable of ``{"name", "ok", "code"?, "message"?}``.

    When one check is not ok, ``/ready`` answers 503 with its ``code``. Plugins without a
    dependency worth checking do not implement it.

    A check that raises, times out or returns anything but a dict counts as not ready (503),
    named after its plugin and logged (`plugin.hook_failed`). A `code` other than
    `DB_UNAVAILABLE` or `SECRETS_UNAVAILABLE` (the contract's 503 codes) answers
    `DB_UNAVAILABLE`; the check keeps its own code in `details.checks`.
    """


# --- the call life cycle -------------------------------------------------------------------


@hookspec
def datasource_call_started(call: Call) -> None:
    """Called after a call is validated, just before its handler runs.

    Synchronous and on the hot path: record, do not wait. An exception here is logged
    (``plugin.hook_failed``) and the call goes on; this holds for every call-life-cycle hook.
    A call refused before its handler (invalid, or of an unknown type or operation) calls no
    call-life-cycle hook; it is still logged and counted in ``/metrics``.
    """


@hookspec
def datasource_call_finished(
    call: Call, outcome: str, error_code: str | None, duration_ms: float
) -> None:
    """Called after a call ended; ``outcome`` is ``success`` or ``error``.

    ``error_code`` is the contract code of a failed call (None on success), ``duration_ms``
    the time from validation to the answer.
    """


@hookspec
def migration_applied(
    project_id: str, data_source: str, statements: list[str], outcome: str
) -> None:
    """Called by the db plugin after a migration ran; ``outcome`` is applied/blocked/failed.

    ``statements`` are the DDL statements of the plan, in order; a warm call that finds the
    schema up to date runs no migration and calls no hook.
    """
