"""Seeds of 6.4: a definition's ``seeds`` rows, inserted once per distinct set, in the
migration's transaction, with one ``__lowcode_seeds_log`` row per set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from lowcode_db.ddl import SEEDS_TABLE, qualified
from lowcode_db.model import Table
from lowcode_db.queries import insert_statement
from lowcode_db.schema import load_seed_rows
from lowcode_runtime.errors import ValidationFailed

if TYPE_CHECKING:
    from lowcode_db.migrations import Target
    from lowcode_db.pool import Session


def load_seeds(table: Table) -> list[dict[str, Any]]:
    """Every seed row loaded against the table (VALIDATION_FAILED at ``dataSource.seeds.N``).

    The definition's schema refused bad seeds already; this turns them into bound values.
    """
    schema = table.values_schema(partial=False)
    loaded, errors = load_seed_rows(enumerate(table.seeds), schema, table.id_type)
    if errors:
        raise ValidationFailed.from_messages(errors, "dataSource.seeds")
    return loaded


async def already_applied(session: Session, target: Target) -> bool:
    """Whether the seeds log holds the table's current seed set."""
    rows = await session.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE table_name = %s AND checksum = %s)"
        ).format(qualified(target.schema, SEEDS_TABLE)),
        (target.table.name, target.table.seeds_checksum),
    )
    return bool(rows[0][0])


async def apply(session: Session, target: Target) -> int:
    """Insert the seed set unless logged; returns the number of rows inserted."""
    table, schema = target.table, target.schema
    if await already_applied(session, target):
        return 0

    inserted = 0
    explicit_ids = False
    for values in load_seeds(table):
        explicit_ids = explicit_ids or "id" in values
        inserted += await _insert(session, schema, table, values)
    if explicit_ids and table.id_type == "integer":
        # Ids given by seeds must not be handed out again by the identity.
        await session.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(format('%%I.%%I', %s, %s), 'id'), "
                "GREATEST((SELECT max(id) FROM {}), 1))"
            ).format(qualified(schema, table.name)),
            (schema, table.name),
        )

    await session.execute(
        sql.SQL(
            "INSERT INTO {} (data_source, table_name, checksum, rows_inserted) "
            "VALUES (%s, %s, %s, %s)"
        ).format(qualified(schema, SEEDS_TABLE)),
        (target.data_source, table.name, table.seeds_checksum, inserted),
    )
    return inserted


async def _insert(
    session: Session, schema: str, table: Table, values: dict[str, Any]
) -> int:
    statement, params = insert_statement(
        schema, table, values, sql.SQL("1"), skip_existing_id="id" in values
    )
    return len(await session.execute(statement, params))
