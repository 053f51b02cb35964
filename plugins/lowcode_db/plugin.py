"""The hooks of the built-in ``db`` plugin: its type, its pool's life cycle, route and commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
from aiohttp import web
from marshmallow import ValidationError

from lowcode_db import cli
from lowcode_db.migrations import Migrator, Reporter, Target
from lowcode_db.model import Table, TablesByDefinition, build_table
from lowcode_db.pool import Database, check_database_url
from lowcode_db.queries import BUILDERS, read_rows, table_problems
from lowcode_db.schema import DefinitionSchema, operation_schemas
from lowcode_db.status import PreviewStatusSchema, read_status
from lowcode_db.tenancy import schema_name
from lowcode_runtime import (
    Call,
    DataSourceType,
    Result,
    describe_route,
    hookimpl,
    keys,
)
from lowcode_runtime.config import Settings
from lowcode_runtime.envelope import ok_response
from lowcode_runtime.errors import (
    Conflict,
    DbUnavailable,
    NotFound,
    ValidationFailed,
    flatten_messages,
)
from lowcode_runtime.metrics import MIGRATIONS
from lowcode_runtime.requests import empty_project_id_routed, project_id_of

# Errors that mean the tables this process believed in are gone or changed under it (a
# schema, table or column missing; a column of another type than its definition's, which
# params checked against that definition can only meet so): migrate again, once.
STALE_CODES = {"3F000", "42P01", "42703", "42804", "42883", "22P02"}
STATUS_PATH = "/preview/status/{projectId}"
OPERATIONS = operation_schemas()
TABLES = TablesByDefinition()


@dataclass
class DbState:
    """Kept on the app from the time routes are added (the app is frozen at start-up)."""

    migrator: Migrator
    database: Database | None = None


DB_STATE = web.AppKey("lowcode_db", DbState)


def make_reporter(pm: Any) -> Reporter:
    """Counts each migration that ran and tells the ``migration_applied`` hook."""

    def report(target: Target, outcome: str, statements: list[str]) -> None:
        MIGRATIONS.labels(outcome=outcome).inc()
        if pm is not None:
            pm.hook.migration_applied(
                project_id=target.project_id,
                data_source=target.data_source,
                statements=statements,
                outcome=outcome,
            )

    return report


def _database(app: web.Application) -> tuple[Database, Migrator]:
    state = app.get(DB_STATE)
    if state is None or state.database is None:
        raise DbUnavailable("the db plugin has not started")
    return state.database, state.migrator


def _map_error(
    error: psycopg2.Error, table: Table, params: dict[str, Any]
) -> Exception:
    """A contract error for what PostgreSQL rejected; the message names fields, never values."""
    if error.pgcode == "23505":
        fields = table.unique_fields(error.diag.constraint_name)
        what = f" ({', '.join(fields)})" if fields else ""
        return Conflict(
            f"a row of {table.name} with the same unique value{what} already exists"
        )
    if error.pgcode == "23502":
        column = error.diag.column_name or "a field"
        return ValidationFailed(
            f"params.values.{column}: a value is required",
            details=[
                {"path": f"params.values.{column}", "message": "a value is required"}
            ],
        )
    # sequence_generator_limit_exceeded: of class 22, yet no value of the call is at fault.
    if error.pgcode == "2200H":
        return Conflict(
            f"table {table.name} has no id left for a new row: its id sequence reached "
            "the largest bigint"
        )
    if (error.pgcode and error.pgcode.startswith("22")) or error.pgcode == "54000":
        return _rejected_value(error.pgcode, table, params)
    if _beyond_a_limit(error):
        return ValidationFailed(
            f"PostgreSQL found this call on {table.name} beyond one of its limits "
            f"(SQLSTATE {error.pgcode}): make it smaller"
        )
    return error


def _beyond_a_limit(error: psycopg2.Error) -> bool:
    """Class 54, program limit exceeded: psycopg2 makes it an ``OperationalError``, as it does
    a lost connection, yet it is the call's size, not the database, that is at fault."""
    return bool(error.pgcode and error.pgcode.startswith("54"))


INDEX_ROW_MARGIN = 1000
"""Bytes below which a value alone cannot break PostgreSQL's index row limit (2704 bytes)."""


def _large_indexed(table: Table, values: dict[str, Any]) -> list[str]:
    """The written values that can be the one an index row found too large: indexed, and
    long. PostgreSQL names the index at best, never the column."""
    indexed = {name for index in table.indexes for name in index.fields}
    return [
        name
        for name, value in values.items()
        if name in indexed
        and value is not None
        and len(str(value).encode("utf-8", "surrogatepass")) > INDEX_ROW_MARGIN
    ]


# What PostgreSQL found wrong with a value (its class 22, and an index row too large), as the
# end of a message.
DATA_EXCEPTIONS = {
    "22001": "as too long for its column",
    "22003": "as out of range",
    "22008": "as a date or time out of range",
    "22021": "as text that the database's encoding cannot hold",
    "54000": "as too large for an index of its table",
}


def _rejected_value(
    pgcode: str, table: Table, params: dict[str, Any]
) -> ValidationFailed:
    """The value PostgreSQL rejected, named when the call wrote only one.

    PostgreSQL's error names no column (its column may have been changed behind the service),
    and reading compares values without storing them: only a single written value is sure.
    """
    why = DATA_EXCEPTIONS.get(pgcode, "as not valid for its column's type")
    values = params.get("values")
    written = [n for n, v in values.items() if v is not None] if values else []
    if pgcode == "54000" and len(written) > 1:
        written = _large_indexed(table, values or {})
    if len(written) != 1:
        return ValidationFailed(f"PostgreSQL rejected a value of {table.name} {why}")
    message = f"PostgreSQL rejected this value of {table.name} {why}"
    return ValidationFailed.from_details(
        [{"path": f"params.values.{written[0]}", "message": message}]
    )


async def handle(call: Call) -> Result:
    """Run one db call: validate, migrate on first sight, then one statement."""
    database, migrator = _database(call.app)
    schema = schema_name(call.project_id)
    table = TABLES.get(call.definition)
    query = BUILDERS[call.operation](schema, table, call.params)
    target = Target(
        call.project_id,
        schema,
        call.name,
        table,
        call.settings.apply_seeds,
        call.settings.allow_destructive_migrations,
    )

    for attempt in (1, 2):
        async with database.session() as session:
            try:
                await migrator.ensure(session, target)
                rows = await session.execute(query.statement, query.params)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                if not _beyond_a_limit(e):
                    raise  # the connection's fault: the session answers DB_UNAVAILABLE
                raise _map_error(e, table, call.params) from e
            except psycopg2.Error as e:
                if attempt == 1 and e.pgcode in STALE_CODES:
                    migrator.forget(target)
                    continue
                raise _map_error(e, table, call.params) from e
        break

    data, meta = read_rows(query, table, rows)
    if data is None:
        raise NotFound(f"no row of {table.name} has this id")
    return Result(data, meta)


async def status_route(request: web.Request) -> web.Response:
    """``GET /preview/status/{projectId}``."""
    project_id = project_id_of(request)
    async with _database(request.app)[0].session() as session:
        data = await read_status(session, project_id)
    return ok_response(request, data)


def check_params(
    operation: str, definition: dict[str, Any], params: dict[str, Any]
) -> list[dict[str, str]]:
    """What the table finds wrong in params its generic schema refused (the core asks).

    A path the generic schema reported already is not repeated.
    """
    try:
        OPERATIONS[operation].load(params)
        reported: set[str] = set()
    except ValidationError as e:
        reported = {d["path"] for d in flatten_messages(e.messages, "params")}
    found = table_problems(build_table(definition), operation, params)
    return [d for d in found if d["path"] not in reported]


@hookimpl
def register_datasource_types() -> list[DataSourceType]:
    return [
        DataSourceType(
            name="db",
            definition_schema=DefinitionSchema(),
            operations=OPERATIONS,
            handler=handle,
            description="CRUD over a table of the project's preview PostgreSQL schema",
            check_params=check_params,
            # Session.execute re-raises a cancellation at once (the server-side cancel runs
            # in the background); the handler's other waits (pool, migration lock) end too.
            cancels_promptly=True,
        )
    ]


@hookimpl
def register_routes(app: web.Application) -> None:
    app[DB_STATE] = DbState(Migrator(make_reporter(app.get(keys.PLUGIN_MANAGER))))
    app.router.add_get(empty_project_id_routed(STATUS_PATH), status_route)
    describe_route(
        app,
        "GET",
        STATUS_PATH,
        {"summary": "preview database status of a project (db plugin)"},
        data=PreviewStatusSchema,
        error_statuses=(400, 409, 503),
    )


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    cli.add_commands(subparsers)


@hookimpl
def runtime_service_resources(settings: Settings) -> Any:
    """Without ``DATABASE_URL``, one embedded PostgreSQL for the whole service.

    A ``DATABASE_URL`` that does not parse stops start-up here (exit 1, one line naming the
    variable), before any worker starts: a service that could never reach its database must
    not look healthy.
    """
    if settings.database_url:
        check_database_url(settings.database_url)
        return None
    return _embedded_database_url()


@contextmanager
def _embedded_database_url() -> Iterator[dict[str, str]]:
    from lowcode_db.embedded import start_embedded, stop_embedded

    try:
        server, url = start_embedded()
    except Exception as e:
        raise RuntimeError(
            f"the embedded PostgreSQL did not start ({type(e).__name__}); "
            "set DATABASE_URL to use another PostgreSQL"
        ) from e
    try:
        yield {"database_url": url}
    finally:
        stop_embedded(server)


@hookimpl
def runtime_startup(app: web.Application, settings: Settings) -> Any:
    async def start() -> None:
        database = Database(settings.database_url, settings.database_pool_max)
        await database.open()
        app[DB_STATE].database = database

    return start()


@hookimpl
def runtime_shutdown(app: web.Application) -> Any:
    async def stop() -> None:
        state = app.get(DB_STATE)
        if state is not None and state.database is not None:
            await state.database.close()

    return stop()


@hookimpl
def runtime_readiness(app: web.Application) -> Any:
    async def check() -> dict[str, Any]:
        state = app.get(DB_STATE)
        if state is None or state.database is None:
            return {
                "name": "db",
                "ok": False,
                "code": "DB_UNAVAILABLE",
                "message": "the db plugin has not started",
            }
        return await state.database.ping()

    return check()
