"""What the bench measures: the table, the four calls, and the SQL the service runs for each.

The floor and the Fastify baseline are handed the statement texts built here by the service's
own query builders, so they run exactly the service's SQL (psycopg2 ``%s`` placeholders).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from lowcode_db.model import build_table
from lowcode_db.queries import BUILDERS
from lowcode_db.schema import DefinitionSchema

LUA = Path(__file__).parent / "lua"
ROWS = 100_000
CATEGORIES = 10
SECRET_NAME = "API_TOKEN"

TABLE = {
    "type": "db",
    "name": "items",
    "table": "items",
    "fields": [
        {"name": "title", "type": "string", "required": True},
        {"name": "category", "type": "string", "required": True},
        {"name": "price", "type": "decimal", "default": 0},
    ],
    "indexes": [{"fields": ["category"]}],
}

# One sample of each db call, as the Lua scripts send them (they vary the values only).
SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "get": {"id": 1},
    "list": {"filter": {"category": "c3"}, "sort": ["-id"], "limit": 50},
    "create": {"values": {"title": "bench 0", "category": "c1", "price": "9.99"}},
}


@dataclass(frozen=True)
class Case:
    """One measured call: its wrk script, and which baselines answer the same script.

    The ``direct`` baseline is the upstream itself, so it gets its own script: the request
    the service sends to the upstream.
    """

    name: str
    script: str
    baselines: tuple[str, ...]

    def script_for(self, target: str) -> Path:
        return LUA / ("direct.lua" if target == "direct" else self.script)


CASES = (
    Case("get", "get.lua", ("floor", "fastify")),
    Case("list", "list.lua", ("floor", "fastify")),
    Case("create", "create.lua", ("floor", "fastify")),
    Case("rest", "rest.lua", ("direct",)),
)
DB_CASES = tuple(case.name for case in CASES if case.name != "rest")


def rest_definition(upstream_url: str) -> dict[str, Any]:
    """A rest dataSource that GETs the upstream with a project secret in a header."""
    return {
        "type": "rest",
        "name": "items",
        "method": "GET",
        "url": upstream_url,
        "headers": {"Authorization": f"Bearer {{{{ secrets.{SECRET_NAME} }}}}"},
    }


def service_statements(schema: str, dsn: str) -> dict[str, str]:
    """The statement text the service sends for each db case, placeholders left as ``%s``."""
    definition = {k: v for k, v in TABLE.items() if k not in ("type", "name")}
    table = build_table(DefinitionSchema().load(definition))
    connection = psycopg2.connect(dsn)
    try:
        return {
            name: BUILDERS[name](
                schema, table, SAMPLE_PARAMS[name]
            ).statement.as_string(connection)
            for name in DB_CASES
        }
    finally:
        connection.close()
