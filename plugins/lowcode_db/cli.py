"""The ``migrate`` and ``status`` commands (API.md section 10).

Both use ``DATABASE_URL``, or the embedded PostgreSQL of the data folder that ``serve`` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from lowcode_runtime.errors import RuntimeBackendError, ValidationFailed

EXIT_OK, EXIT_FAILED = 0, 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    migrate = subparsers.add_parser(
        "migrate",
        help="plan and apply a db dataSource's migration",
        description=(
            "Plan the migration of a db dataSource's table in a project's preview schema, "
            "and apply it as the first call would (one transaction, logged). The database "
            "is DATABASE_URL, else the embedded one of LOWCODE_DATA_DIR. Exit 0 when applied "
            "or nothing to do; 1 when blocked (a destructive change without "
            "PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS=true), failed, or when the definition or "
            "the database is refused; 2 for a bad command line."
        ),
    )
    migrate.add_argument(
        "project_id", metavar="PROJECT_ID", help="the project, as in the execute route"
    )
    migrate.add_argument(
        "definition",
        metavar="DEFINITION.json",
        type=Path,
        help="a file holding the dataSource object, as sent in an execute call",
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="run the plan in a transaction that is rolled back: change nothing",
    )
    migrate.add_argument("--json", action="store_true", help="print a JSON document")
    migrate.set_defaults(func=run_migrate)

    status = subparsers.add_parser(
        "status",
        help="print a project's preview status",
        description=(
            "Print a project's preview status, as GET /preview/status/{projectId} answers "
            "it: its schema, each dataSource's last migration and the seeds applied. "
            "Exit 0, or 1 when the database cannot be reached."
        ),
    )
    status.add_argument(
        "project_id", metavar="PROJECT_ID", help="the project, as in the execute route"
    )
    status.add_argument("--json", action="store_true", help="print a JSON document")
    status.set_defaults(func=run_status)


def load_definition(path: Path) -> tuple[str, dict[str, Any]]:
    """The dataSource name and its loaded definition, from a file as in the execute body."""
    from lowcode_db.schema import DefinitionSchema
    from lowcode_runtime.requests import MAX_NAME_LENGTH, is_printable_name

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValidationFailed(f"{path}: cannot read a JSON document ({e})") from e
    if not isinstance(document, dict) or document.get("type", "db") != "db":
        raise ValidationFailed(f"{path}: expected one dataSource object of type db")

    name = document.pop("name", None)
    document.pop("type", None)
    if not isinstance(name, str) or not name:
        raise ValidationFailed(f"{path}: the dataSource needs a name")
    if not is_printable_name(name):
        raise ValidationFailed(
            f"{path}: the dataSource name must be at most {MAX_NAME_LENGTH} characters, "
            "without control or bidirectional formatting characters"
        )
    try:
        return name, DefinitionSchema().load(document)
    except ValidationError as e:
        raise ValidationFailed.from_messages(e.messages, "dataSource") from e


def _with_database(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]
) -> int:
    from lowcode_db.embedded import embedded_database
    from lowcode_db.pool import Database, InvalidDatabaseUrl, check_database_url

    async def main(url: str) -> int:
        database = Database(url, 2)
        await database.open()
        try:
            return await work(database)
        finally:
            await database.close()

    if args.settings.database_url:
        try:
            check_database_url(args.settings.database_url)
        except InvalidDatabaseUrl as e:
            print(e, file=sys.stderr)
            return EXIT_FAILED
        return asyncio.run(main(args.settings.database_url))
    with embedded_database() as url:
        return asyncio.run(main(url))


def _fail(error: RuntimeBackendError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": error.to_dict()}, indent=2))
    else:
        print(f"{error.code}: {error.message}", file=sys.stderr)
    return EXIT_FAILED


def run_migrate(args: argparse.Namespace) -> int:
    from lowcode_db.migrations import (
        MigrationStopped,
        Migrator,
        Outcome,
        Target,
        migrate,
    )
    from lowcode_db.model import build_table
    from lowcode_db.plugin import make_reporter
    from lowcode_db.tenancy import schema_name

    try:
        name, definition = load_definition(args.definition)
        table = build_table(definition)
        target = Target(
            args.project_id,
            schema_name(args.project_id),
            name,
            table,
            args.settings.apply_seeds,
            args.settings.allow_destructive_migrations,
        )
    except RuntimeBackendError as e:
        return _fail(e, args.json)

    async def work(database: Any) -> int:
        report: dict[str, Any] = {
            "projectId": args.project_id,
            "schema": target.schema,
            "dataSource": name,
            "dryRun": args.dry_run,
        }
        try:
            async with database.session() as session:
                if args.dry_run:
                    outcome = await migrate(session, target, dry_run=True)
                else:
                    migrator = Migrator(
                        make_reporter(getattr(args, "plugin_manager", None))
                    )
                    outcome = await migrator.ensure(session, target) or Outcome(
                        "unchanged"
                    )
            report.update(
                outcome=outcome.outcome,
                statements=outcome.statements,
                changes=outcome.changes,
            )
            if outcome.seeds_inserted:
                report["seedsInserted"] = outcome.seeds_inserted
            code = EXIT_FAILED if outcome.outcome in ("blocked", "failed") else EXIT_OK
        except RuntimeBackendError as e:
            stopped = (
                e.outcome if isinstance(e, MigrationStopped) else Outcome("failed")
            )
            report.update(
                outcome=stopped.outcome,
                statements=stopped.statements,
                error=e.to_dict(),
            )
            code = EXIT_FAILED

        _print_plan(report, args.json)
        return code

    try:
        return _with_database(args, work)
    except RuntimeBackendError as e:
        return _fail(e, args.json)


def _print_plan(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for statement in report["statements"]:
        print(" ".join(statement.split()))
    where = f"{report['schema']} ({report['dataSource']})"
    if report.get("dryRun"):
        print(_dry_run_summary(where, report), file=sys.stderr)
    else:
        inserted = report.get("seedsInserted")
        seeds = f", {inserted} seed row(s) inserted" if inserted else ""
        print(f"-- {report['outcome']}: {where}{seeds}", file=sys.stderr)
    if "error" in report:
        print(
            f"{report['error']['code']}: {report['error']['message']}", file=sys.stderr
        )


def _dry_run_summary(where: str, report: dict[str, Any]) -> str:
    """What the plan would do: a dry run applies nothing, so it never says "applied"."""
    count = len(report["statements"])
    size = f"{count} statement{'' if count == 1 else 's'}" if count else "nothing to do"
    verdict = {"blocked": " would be blocked", "failed": " would fail"}.get(
        report["outcome"], ""
    )
    changes = report.get("changes", [])
    if verdict and not count:
        size = verdict.strip()
    elif verdict:
        size += verdict
    elif changes and not count:
        size = "no statement"  # seeds alone: the changes below say which
    lines = [f"-- {report['outcome']}: {where}, {size}; dry run, nothing changed"]
    # A verdict's reasons, or what the statements above do not show (seeds to insert).
    lines += [f"--   {change}" for change in (changes if verdict else changes[count:])]
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    from lowcode_db.status import read_status
    from lowcode_runtime.requests import checked_project_id

    async def work(database: Any) -> int:
        async with database.session() as session:
            status = await read_status(session, args.project_id)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            for key in ("status", "lastAppliedAt", "lastError"):
                print(f"{key}: {status[key] if status[key] is not None else '-'}")
        return EXIT_OK

    try:
        checked_project_id(args.project_id)
        return _with_database(args, work)
    except RuntimeBackendError as e:
        return _fail(e, args.json)
