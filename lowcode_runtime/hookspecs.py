"""Hook specifications of the pluggy project ``lowcode_runtime``.

Hooks are plain functions called synchronously by pluggy. Where a hook has async work to do
(start-up, shutdown, readiness) it returns an awaitable, which the core awaits.
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
    """Called once at start-up; returns the dataSource types this plugin handles.

    Two plugins returning one type name stop start-up.
    """


@hookspec(firstresult=True)
def register_secrets_provider(settings: Settings) -> SecretsProvider | None:
    """Called once at start-up; returns the provider of project secrets, or None to pass.

    ``firstresult``: the first plugin that answers wins; the built-in API/file provider is
    registered last, so any other plugin's provider takes precedence.
    """


@hookspec
def register_routes(app: web.Application) -> None:
    """Called while the app is built; adds the plugin's own routes with ``app.router``.

    The core puts them behind the same authentication, rate limit, CORS and envelope.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Called when the command line is built; adds sub-commands with ``subparsers.add_parser``.

    A command's ``func`` default is called with the parsed arguments and returns an exit code.
    """


# --- life cycle of the service -------------------------------------------------------------


@hookspec
def runtime_service_resources(
    settings: Settings,
) -> AbstractContextManager[dict[str, Any] | None] | None:
    """Called once per service, in the main process before any worker starts (and by commands).

    Returns a context manager for a resource all workers share, such as an embedded database;
    what it yields (a dict of ``Settings`` fields, or None) overrides the settings of every
    worker. It is exited after the last worker stopped.
    """


@hookspec
def runtime_startup(app: web.Application, settings: Settings) -> Awaitable[None] | None:
    """Called as the server starts; open the plugin's resources and keep them under an AppKey."""


@hookspec
def runtime_shutdown(app: web.Application) -> Awaitable[None] | None:
    """Called as the server stops, after in-flight requests ended; close what start-up opened."""


@hookspec
def runtime_readiness(app: web.Application) -> Awaitable[dict[str, Any]] | None:
    """Called by ``GET /ready``; returns an awaitable of ``{"name", "ok", "code"?, "message"?}``.

    Plugins without a dependency worth checking do not implement it.
    """


# --- the call life cycle -------------------------------------------------------------------


@hookspec
def datasource_call_started(call: Call) -> None:
    """Called after a call is validated, just before its handler runs."""


@hookspec
def datasource_call_finished(
    call: Call, outcome: str, error_code: str | None, duration_ms: float
) -> None:
    """Called after a call ended; ``outcome`` is ``success`` or ``error``."""


@hookspec
def migration_applied(
    project_id: str, data_source: str, statements: list[str], outcome: str
) -> None:
    """Called by the db plugin after a migration ran; ``outcome`` is applied/blocked/failed."""
