"""The bench's PostgreSQL: filling the table the service created, and cleaning up after."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from bench.cases import CATEGORIES


def connection_options(dsn: str) -> dict[str, str]:
    """libpq options of ``dsn`` (a URL or ``key=value``), as node-postgres' PG* variables want."""
    return psycopg2.extensions.parse_dsn(dsn)


def libpq_environment(dsn: str) -> dict[str, str]:
    """``PGHOST``, ``PGPORT``... for a client that reads libpq's variables (node-postgres)."""
    options = connection_options(dsn)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
    }
    return {names[k]: v for k, v in options.items() if k in names}


def fill(dsn: str, schema: str, table: str, rows: int) -> None:
    """Insert ``rows`` rows in one statement (ids 1..rows in an empty table), then ANALYZE.

    ``category`` cycles over c0..c9 so that each list filter matches a tenth of the rows.
    """
    target = sql.Identifier(schema, table)
    insert = sql.SQL(
        "INSERT INTO {} (title, category, price) "
        "SELECT 'item ' || g, 'c' || mod(g, %s), round((random() * 100)::numeric, 2) "
        "FROM generate_series(1, %s) AS g"
    ).format(target)
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(insert, (CATEGORIES, rows))
            cursor.execute(sql.SQL("ANALYZE {}").format(target))
    finally:
        connection.close()


def server_version(dsn: str) -> str:
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return str(cursor.fetchone()[0])
    finally:
        connection.close()


def drop_schema(dsn: str, schema: str) -> None:
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)
                )
            )
    finally:
        connection.close()
