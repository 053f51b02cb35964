"""Migrations of 6.2-6.4: plan against the catalog, apply under an advisory lock, log each step.

The process keeps the (projectId, schema, checksum) of each definition it has seen applied, so
the warm path sends no DDL and no catalog query; a per-key asyncio lock makes concurrent first
calls of one process wait for one migration, and the advisory lock does the same across
processes. When a migration changes a table, the process doubts the other definitions it knew
of that table; a doubted definition, or one whose statements failed as if its table had gone
or changed (``forget``), is planned against the catalog again instead of the migration log.

Known gap: a process trusts a definition it already applied until one of its statements fails;
a type changed by another process (only with PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS) that makes no
statement fail (a write into a column now of text) goes unnoticed until then or a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql

from lowcode_db import seeds as seeding
from lowcode_db.ddl import (
    LOG_TABLE,
    OWNER_TABLE,
    Catalog,
    IndexShape,
    Step,
    bootstrap,
    default_sql,
    plan,
    qualified,
)
from lowcode_db.model import Table
from lowcode_db.pool import Session
from lowcode_db.tenancy import lock_key
from lowcode_runtime import events
from lowcode_runtime.errors import (
    MigrationBlocked,
    MigrationFailed,
    RuntimeBackendError,
    SchemaConflict,
)
from lowcode_runtime.logs import logger

CATALOG_QUERY = """
SELECT
  (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid)))
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind IN ('r', 'p')
      AND a.attnum > 0 AND NOT a.attisdropped)
"""
# Every index of the table and every relation of the schema holding a wanted name (the table's
# own, or an index's): relation names are unique per schema, and a name is only "there" with
# the same table and columns. A sequence comes with the column that owns it, if any.
RELATIONS_QUERY = """
SELECT r.relname, r.relkind, t.relname, i.indisunique,
       i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
         AND i.indnatts = i.indnkeyatts AND am.amname = 'btree',
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(num, pos)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
              ORDER BY k.pos),
       i.indisprimary,
       (SELECT format('%%s.%%s', ot.relname, oa.attname)
          FROM pg_depend dep JOIN pg_class ot ON ot.oid = dep.refobjid
          JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
         WHERE r.relkind = 'S' AND dep.classid = 'pg_class'::regclass AND dep.objid = r.oid
           AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
         LIMIT 1)
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
  LEFT JOIN pg_index i ON i.indexrelid = r.oid
  LEFT JOIN pg_class t ON t.oid = i.indrelid
  LEFT JOIN pg_am am ON am.oid = r.relam
 WHERE n.nspname = %(schema)s
   AND (r.relname = ANY(%(names)s) OR (r.relkind IN ('i', 'I') AND t.relname = %(table)s))
"""


@dataclass
class Outcome:
    """What a migration did: ``applied``, ``blocked``, ``failed`` or ``unchanged``.

    A dry run, which applies nothing, says ``planned`` where it would have applied; its
    ``blocked`` and ``failed`` say what applying would meet.
    """

    outcome: str
    statements: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    seeds_inserted: int = 0


class MigrationStopped(RuntimeBackendError):
    """A migration that was blocked or failed, with its :class:`Outcome` (the statements).

    Mixed in before the contract error, whose code and status the core answers with.
    """

    def __init__(self, message: str, outcome: Outcome, details: Any = None) -> None:
        super().__init__(message, details)
        self.outcome = outcome


class Blocked(MigrationStopped, MigrationBlocked):
    pass


class Failed(MigrationStopped, MigrationFailed):
    pass


@dataclass(frozen=True)
class Target:
    project_id: str
    schema: str
    data_source: str
    table: Table
    apply_seeds: bool
    allow_destructive: bool

    @property
    def key(self) -> tuple[Any, ...]:
        seeds = self.table.seeds_checksum if self.apply_seeds else None
        return (self.project_id, self.schema, self.table.checksum, seeds)

    @property
    def table_id(self) -> tuple[str, str, str]:
        return (self.project_id, self.schema, self.table.name)


Reporter = Callable[[Target, str, list[str]], None]


class Migrator:
    """Brings tenant tables up to their definitions; one per process.

    ``report`` is called with each migration that ran (applied, blocked or failed).
    """

    def __init__(self, report: Reporter | None = None) -> None:
        self.applied: set[tuple[Any, ...]] = set()
        self.report = report or (lambda target, outcome, statements: None)
        self._locks: dict[tuple[Any, ...], tuple[asyncio.Lock, int]] = {}
        self._keys_of_table: dict[tuple[str, str, str], set[tuple[Any, ...]]] = {}
        self._doubted: set[tuple[Any, ...]] = set()

    def is_known(self, target: Target) -> bool:
        return target.key in self.applied

    def forget(self, target: Target) -> None:
        """Drop what the process knows of ``target`` (its table went away or changed)."""
        self.applied.discard(target.key)
        self._doubted.add(target.key)

    async def ensure(self, session: Session, target: Target) -> Outcome | None:
        """Migrate ``target`` unless known applied; None on the warm path."""
        if target.key in self.applied:
            return None
        # One lock per target while anyone holds or awaits it; dropped by the last user.
        lock, users = self._locks.get(target.key, (asyncio.Lock(), 0))
        self._locks[target.key] = (lock, users + 1)
        try:
            async with lock:
                if target.key in self.applied:
                    return None
                trust_log = target.key not in self._doubted
                try:
                    outcome = await migrate(
                        session, target, dry_run=False, trust_log=trust_log
                    )
                except MigrationStopped as e:
                    self.report(target, e.outcome.outcome, e.outcome.statements)
                    self._unsettle(target)
                    raise
                if outcome.outcome == "applied":
                    self.report(target, "applied", outcome.statements)
                self._believe(target, changed=bool(outcome.statements))
        finally:
            lock, users = self._locks[target.key]
            if users == 1:
                del self._locks[target.key]
            else:
                self._locks[target.key] = (lock, users - 1)
        return outcome

    def _unsettle(self, target: Target) -> None:
        """After a blocked or failed migration, the table's applied definitions are checked
        against the log at their next call, which records that they are in use again."""
        for other in self._keys_of_table.get(target.table_id, ()):
            self.applied.discard(other)

    def _believe(self, target: Target, changed: bool) -> None:
        """Know ``target`` applied; a change to its table puts the table's other
        definitions in doubt: checked against the old table, they are planned again against
        the catalog (not the log) at their next call."""
        keys = self._keys_of_table.setdefault(target.table_id, set())
        if changed:
            for other in keys - {target.key}:
                self.applied.discard(other)
                self._doubted.add(other)
        keys.add(target.key)
        self.applied.add(target.key)
        self._doubted.discard(target.key)


async def read_owner(session: Session, schema: str) -> str | None:
    """The projectId recorded in ``schema``, or None when it has none (or does not exist)."""
    rows = await session.execute(
        "SELECT to_regclass(format('%%I.%%I', %s, %s)) IS NOT NULL",
        (schema, OWNER_TABLE),
    )
    if not rows[0][0]:
        return None
    rows = await session.execute(
        sql.SQL("SELECT project_id FROM {}").format(qualified(schema, OWNER_TABLE))
    )
    return rows[0][0] if rows else None


async def read_catalog(session: Session, schema: str, table: Table) -> Catalog:
    names = {"schema": schema, "table": table.name}
    rows = await session.execute(CATALOG_QUERY, names)
    found_columns = rows[0][0] or []
    columns = {
        name: (kind, bool(not_null)) for name, kind, not_null, _ in found_columns
    }
    defaults = {name: text for name, _, _, text in found_columns if text is not None}
    wanted = [table.name, *(index.name for index in table.indexes)]
    relations = await session.execute(RELATIONS_QUERY, {**names, "names": wanted})
    holder = next(
        (
            _holder(row)
            for row in relations
            if row[0] == table.name and row[1] not in _TABLE_KINDS
        ),
        None,
    )
    if holder is not None:  # an index, a sequence, a view: the migration fails
        return Catalog({}, held_by=holder)
    own = {
        name: IndexShape(owner, tuple(fields), bool(unique), bool(plain))
        for name, kind, owner, unique, plain, fields, *_ in relations
        if kind in ("i", "I") and owner == table.name
    }
    taken = _taken(table, own, relations)
    if not columns:
        return Catalog(columns, own, False, taken)

    found = await session.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
            qualified(schema, table.name)
        )
    )
    same = await _same_defaults(session, table, columns, defaults)
    return Catalog(columns, own, bool(found[0][0]), taken, defaults, same)


async def _same_defaults(
    session: Session,
    table: Table,
    columns: dict[str, tuple[str, bool]],
    defaults: dict[str, str],
) -> frozenset[str]:
    """The fields whose default in the table is the one the definition gives.

    PostgreSQL writes a default back in its own words (``'new'::character varying`` for
    ``CAST('new' AS character varying(255))``), so constant ones are compared by value, in
    one statement; one that is made anew each time (``now``, ``uuid``) matches another such.
    """
    same: set[str] = set()
    compared: list[tuple[str, sql.Composable]] = []
    for column in table.columns:
        present = defaults.get(column.name)
        if present is None or not column.has_default:
            continue
        if columns[column.name][0] != column.pg_type:
            continue  # retyped: the step sets the default anew
        if column.default_is_expression or _made_anew(present):
            if column.default_is_expression and _made_anew(present):
                same.add(column.name)
            continue
        equal = sql.SQL("({}) IS NOT DISTINCT FROM ({})").format(
            sql.SQL(present), default_sql(column)
        )
        compared.append((column.name, equal))
    if compared:
        rows = await session.execute(
            sql.SQL("SELECT ARRAY[{}]").format(
                sql.SQL(", ").join(e for _, e in compared)
            )
        )
        same.update(
            name for (name, _), equal in zip(compared, rows[0][0], strict=True) if equal
        )
    return frozenset(same)


def _made_anew(default: str) -> bool:
    return "now()" in default or "gen_random_uuid()" in default


def _taken(
    table: Table, own: dict[str, IndexShape], relations: list[Any]
) -> dict[str, str]:
    """What holds each wanted name already, described for the MIGRATION_FAILED message."""
    wanted = {index.name for index in table.indexes}
    taken = {}
    for row in relations:
        name, kind, owner, _, _, _, primary, _ = row
        if name not in wanted:
            continue
        if kind in ("i", "I") and owner == table.name and not primary:
            taken[name] = f"an index of {owner} on ({', '.join(own[name].fields)})"
        else:
            taken[name] = _holder(row)
    return taken


_TABLE_KINDS = ("r", "p")
_KINDS = {
    "S": "a sequence",
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "c": "a composite type",
}


def _holder(row: Any) -> str:
    """The relation of a RELATIONS_QUERY row, described for a MIGRATION_FAILED message."""
    name, kind, owner, _, _, _, primary, sequence_of = row
    if kind in _TABLE_KINDS:
        return f"table {name}"
    if kind in ("i", "I"):
        return (
            f"the primary key index of table {owner}"
            if primary
            else f"an index of table {owner}"
        )
    if kind == "S" and sequence_of is not None:
        return f"the sequence of {sequence_of}"
    return _KINDS.get(kind, "another relation")


async def migrate(
    session: Session, target: Target, dry_run: bool, trust_log: bool = True
) -> Outcome:
    """Plan and (unless ``dry_run``) apply one definition, in one transaction.

    With ``trust_log`` a definition the log shows applied is not planned again.
    """
    schema, table = target.schema, target.table
    await session.execute("BEGIN")
    try:
        outcome = await _migrate_in_transaction(session, target, dry_run, trust_log)
    except MigrationStopped:
        raise  # its log rows are committed already
    except asyncio.CancelledError:
        await _rollback(session)
        _migration_line(target, "cancelled").warning(
            f"migration for {schema}.{table.name} cut off (the request's deadline passed, or "
            "the service is stopping) and rolled back; the next call tries again"
        )
        raise
    except BaseException:
        await _rollback(session)
        raise
    await session.execute("ROLLBACK" if dry_run else "COMMIT")

    if outcome.outcome != "unchanged" and not dry_run:
        _migration_line(target, outcome.outcome, len(outcome.statements)).info(
            f"migration {outcome.outcome} for {schema}.{table.name}"
        )
    return outcome


def _migration_line(target: Target, outcome: str, statements: int = 0) -> Any:
    return logger.bind(
        event=events.DB_MIGRATION,
        projectId=target.project_id,
        schema=target.schema,
        dataSource=target.data_source,
        table=target.table.name,
        outcome=outcome,
        statements=statements,
    )


async def _rollback(session: Session) -> None:
    """Roll back after a failure; a connection closed by a cancellation cannot, and need not.

    A cancellation arriving during the ROLLBACK goes on: swallowed, the handler would carry
    on past the deadline (the db type is awaited in the request's task).
    """
    try:
        await session.execute("ROLLBACK")
    except psycopg2.Error:
        pass


async def _migrate_in_transaction(
    session: Session, target: Target, dry_run: bool, trust_log: bool
) -> Outcome:
    schema, table = target.schema, target.table
    await session.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))

    owner = await read_owner(session, schema)
    if owner is not None and owner != target.project_id:
        raise SchemaConflict(
            f"the preview schema {schema} belongs to another project; use another projectId"
        )
    if owner is not None and trust_log and await _already_applied(session, target):
        if not dry_run:
            await _mark_in_use_again(session, target)
        return Outcome("unchanged")

    catalog = await read_catalog(session, schema, table)
    steps = plan(schema, table, catalog)
    shown = list(
        steps
    )  # the plan as logged and printed: CREATE SCHEMA runs with the bootstrap
    if owner is None:
        shown.insert(0, Step(_create_schema(schema), f"create schema {schema}"))
    statements = [step.statement.as_string(session.connection.raw) for step in shown]
    destructive = [step.change for step in shown if step.destructive]
    errors = [step.error for step in shown if step.error]
    outcome = Outcome("applied", statements, [s.change for s in shown])

    if dry_run:
        if errors:
            outcome.outcome, outcome.changes = "failed", errors
            return outcome
        if await _seeds_pending(session, target, owner):
            outcome.changes.append(
                f"insert the {len(table.seeds)} seed row(s) of table {table.name}"
            )
        outcome.outcome = (
            "blocked"
            if destructive and not target.allow_destructive
            else ("planned" if outcome.changes else "unchanged")
        )
        outcome.changes = destructive or outcome.changes
        if outcome.outcome != "planned":
            return outcome

    if owner is None:
        await _bootstrap(session, target)

    if errors:
        message = "; ".join(errors)
        await _log(session, target, statements, "failed", message)
        await session.execute("COMMIT")
        raise Failed(message, Outcome("failed", statements, errors))

    if destructive and not target.allow_destructive:
        message = "the migration holds destructive changes: " + "; ".join(destructive)
        await _log(session, target, statements, "blocked", message)
        await session.execute("COMMIT")
        raise Blocked(
            message + " (set PREVIEW_ALLOW_DESTRUCTIVE_MIGRATIONS=true to allow them)",
            Outcome("blocked", statements, destructive),
            details=[{"change": change} for change in destructive],
        )

    if dry_run:  # run the plan to learn whether PostgreSQL takes it; migrate rolls back
        try:
            # Seeds too where the table is new: its sequence goes with the rollback.
            seeds = not catalog.exists
            await _apply(session, target, steps, outcome, dry_run=True, dry_seeds=seeds)
        except Failed as e:
            return Outcome("failed", statements, [e.message])
        return outcome

    await _apply(session, target, steps, outcome)
    await _log(session, target, statements or ["-- no change"], "applied", None)
    return outcome


async def _seeds_pending(session: Session, target: Target, owner: str | None) -> bool:
    """Whether applying would insert the definition's seed set (a dry run says so)."""
    if not (target.apply_seeds and target.table.seeds):
        return False
    return owner is None or not await seeding.already_applied(session, target)


def _create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


async def _bootstrap(session: Session, target: Target) -> None:
    """Create the schema, its own tables, and record the projectId that owns it."""
    await session.execute(_create_schema(target.schema))
    for statement in bootstrap(target.schema):
        await session.execute(statement)
    await session.execute(
        sql.SQL("INSERT INTO {} (project_id) VALUES (%s)").format(
            qualified(target.schema, OWNER_TABLE)
        ),
        (target.project_id,),
    )


async def _apply(
    session: Session,
    target: Target,
    steps: list[Step],
    outcome: Outcome,
    dry_run: bool = False,
    dry_seeds: bool = False,
) -> None:
    """Run the steps and the seeds (in a dry run only with ``dry_seeds``); on a rejection
    keep only the log rows (none in a dry run), then MIGRATION_FAILED."""
    await session.execute("SAVEPOINT lowcode_migration")
    failing: Step | None = None
    try:
        for step in steps:
            failing = step
            await session.execute(step.statement)
        failing = None
        # A dry run inserts them only into a table it creates: an existing table's id
        # sequence, moved by inserted rows, stays moved after the rollback (PostgreSQL never
        # takes a sequence back), and its next ids would skip.
        if target.apply_seeds and target.table.seeds and (dry_seeds or not dry_run):
            outcome.seeds_inserted = await seeding.apply(session, target)
    except psycopg2.Error as e:
        await session.execute("ROLLBACK TO SAVEPOINT lowcode_migration")
        message = _failure_message(target.table, failing, e)
        if not dry_run:
            # Seeds alone have no statement of their own, and the log must hold the failure.
            logged = outcome.statements or [f"-- seeds of table {target.table.name}"]
            await _log(session, target, logged, "failed", message)
            await session.execute("COMMIT")
        failed = Outcome("failed", outcome.statements, outcome.changes)
        raise Failed(message, failed) from e


async def _already_applied(session: Session, target: Target) -> bool:
    log = qualified(target.schema, LOG_TABLE)
    rows = await session.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE checksum = %s AND outcome = 'applied')"
        ).format(log),
        (target.table.checksum,),
    )
    if not rows[0][0]:
        return False
    if not (target.apply_seeds and target.table.seeds):
        return True
    return await seeding.already_applied(session, target)


async def _mark_in_use_again(session: Session, target: Target) -> None:
    """Log that an applied definition is in use again after its dataSource's latest migration
    was blocked or failed: the status reads each dataSource's latest row, and would say
    ``blocked`` or ``failed`` of a dataSource that works."""
    log = qualified(target.schema, LOG_TABLE)
    rows = await session.execute(
        sql.SQL(
            "SELECT outcome FROM {} WHERE data_source = %s ORDER BY id DESC LIMIT 1"
        ).format(log),
        (target.data_source,),
    )
    if rows and rows[0][0] in ("blocked", "failed"):
        checksum = target.table.checksum[:12]
        note = f"-- definition {checksum} (applied before) in use again"
        await _log(session, target, [note], "applied", None)


async def _log(
    session: Session,
    target: Target,
    statements: list[str],
    outcome: str,
    error: str | None,
) -> None:
    log = qualified(target.schema, LOG_TABLE)
    for statement in statements:
        await session.execute(
            sql.SQL(
                "INSERT INTO {} (data_source, statement, checksum, outcome, error) "
                "VALUES (%s, %s, %s, %s, %s)"
            ).format(log),
            (target.data_source, statement, target.table.checksum, outcome, error),
        )


def _failure_message(table: Table, step: Step | None, error: psycopg2.Error) -> str:
    """A message that names the table and what failed, never a row's value."""
    if step is not None and step.index is not None and error.pgcode == "23505":
        index = next(i for i in table.indexes if i.name == step.index)
        return (
            f"table {table.name}: unique index {index.name} ({', '.join(index.fields)}) "
            "cannot be created: existing rows hold duplicate values"
        )
    what = step.change if step is not None else f"seeds of table {table.name}"
    hint = _what_to_do(table, step, error.pgcode)
    if error.pgcode == "23505" and hint is None:
        what = f"seeds of table {table.name} break a unique index"
        hint = _duplicate_seeds(table, error.diag.constraint_name)
    reason = error.diag.message_primary if error.pgcode in {"23502", "42804"} else None
    detail = f": {hint or reason}" if hint or reason else f" (SQLSTATE {error.pgcode})"
    return (
        f"table {table.name}: PostgreSQL rejected the migration step '{what}'{detail}"
    )


def _duplicate_seeds(table: Table, constraint: str | None) -> str:
    """What to change when seeds hold a value that a unique index already has."""
    fields = table.unique_fields(constraint)
    which = f"({', '.join(fields)})" if fields else "a unique index's fields"
    return (
        f"two seeds, or a seed and a row already there, hold the same value of {which}: "
        "make the seeds' values distinct"
    )


# What PostgreSQL raises when a cast meets a value it cannot convert (text that is no number,
# date or uuid; a json object; a numeric NaN).
_CONVERSION_CODES = {"22P02", "22007", "22008", "22023", "0A000"}
_RENAME = "keep the field's type, or add a field of the new type under another name"


def _what_to_do(table: Table, step: Step | None, code: str | None) -> str | None:
    """What the caller can do about a column step PostgreSQL rejected, by its SQLSTATE;
    None where the SQLSTATE says nothing a caller can act on. Never a row's value."""
    if step is None or step.field is None:
        return None
    where, kind = f"{table.name}.{step.field}", table.column_type(step.field)
    if step.action == "retype":
        if code in _CONVERSION_CODES:
            return (
                f"existing values of {where} cannot be converted to {kind}: correct or "
                f"clear them first, or {_RENAME}"
            )
        if code == "22003":
            return (
                f"existing values of {where} are out of range for {kind}: correct or "
                f"clear them first, or {_RENAME}"
            )
        if code == "23505":
            return (
                f"existing values of {where} become duplicates as {kind}, which its "
                f"unique index refuses: make them distinct first, or {_RENAME}"
            )
        if code == "42804":
            return (
                f"the default of {where} cannot be converted to {kind}: give the field a "
                f"default of the new type, or {_RENAME}"
            )
        if code == "42846":
            return f"PostgreSQL cannot convert {where} to {kind}: {_RENAME}"
    if code == "23502" and step.action == "require":
        return (
            f"rows of {table.name} have no value for {step.field}: fill them in first, "
            "or keep the field optional"
        )
    if code == "23502" and step.action == "add":
        return (
            f"{table.name} has rows, which would have no value for the new required "
            f"field {step.field}: give it a default, or make it optional"
        )
    return None
