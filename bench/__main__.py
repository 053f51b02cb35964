"""Benchmark of warm calls through the execute route, as ratios against in-run baselines.

    python -m bench [--rounds N]

Everything runs on this machine in one process: the service (production app factory), a JSON
upstream on loopback and the PostgreSQL of ``DATABASE_URL`` (else 127.0.0.1:5432, else an
embedded one). Each call is timed against a baseline measured in the same run, so the ratios
say what the service adds, whatever the machine:

- ``http floor``: ``GET /v1/plugins`` through the same service (auth, rate limit, envelope);
- ``sql floor``: the same kind of statement sent straight through aiopg;
- ``upstream floor``: the upstream fetched straight with aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import aiopg
import psycopg2
from aiohttp import web

from lowcode_db.tenancy import schema_name
from lowcode_runtime.app import create_app
from lowcode_runtime.config import Settings
from lowcode_runtime.logs import setup_logging
from tests.fixtures.database import available_database

TOKEN = "bench-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TABLE = {
    "type": "db",
    "name": "items",
    "table": "items",
    "fields": [
        {"name": "title", "type": "string", "required": True},
        {"name": "price", "type": "decimal", "default": 0},
    ],
}


async def timed(fn: Callable[[], Awaitable[None]], rounds: int) -> float:
    """Median seconds of ``fn`` over ``rounds`` runs, after a warm-up of a tenth of them."""
    for _ in range(max(3, rounds // 10)):
        await fn()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def start_upstream() -> tuple[web.AppRunner, str]:
    async def items(request: web.Request) -> web.Response:
        return web.json_response([{"id": i, "title": f"item {i}"} for i in range(20)])

    app = web.Application()
    app.router.add_get("/items", items)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/items"


async def start_service(db_url: str, secrets_file: str) -> tuple[web.AppRunner, str]:
    settings = Settings(
        auth_token=TOKEN,
        database_url=db_url,
        rate_limit_max=10**9,
        egress_allow=("127.0.0.1",),
        secrets_file=secrets_file,
        log_level="error",
    )
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def run(rounds: int, db_url: str) -> None:
    setup_logging("error", "json")
    project = f"bench-{uuid.uuid4().hex[:8]}"
    secrets_path = Path(tempfile.mkdtemp()) / "secrets.json"
    secrets_path.write_text(json.dumps({project: {"API_TOKEN": "bench-secret-value"}}))

    upstream, upstream_url = await start_upstream()
    service, base = await start_service(db_url, str(secrets_path))
    execute = f"{base}/v1/projects/{project}/datasources/execute"
    rest = {
        "type": "rest",
        "name": "items",
        "method": "GET",
        "url": upstream_url,
        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
    }

    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def call(ds: dict, operation: str, params: dict) -> None:
            body = {"dataSource": ds, "operation": operation, "params": params}
            async with http.post(execute, json=body) as response:
                assert response.status == 200, await response.text()
                await response.read()

        for i in range(50):
            await call(TABLE, "create", {"values": {"title": f"t{i}", "price": "1.50"}})

        async def plugins() -> None:
            async with http.get(f"{base}/v1/plugins") as response:
                await response.read()

        async def upstream_direct() -> None:
            async with http.get(upstream_url) as response:
                await response.read()

        pool = await aiopg.create_pool(db_url, minsize=1, maxsize=2)
        schema = schema_name(project)

        async def sql_direct() -> None:
            async with pool.acquire() as conn, conn.cursor() as cursor:
                await cursor.execute(
                    f'SELECT * FROM "{schema}"."items" ORDER BY "id" LIMIT 51'
                )
                await cursor.fetchall()

        http_floor = await timed(plugins, rounds)
        sql_floor = await timed(sql_direct, rounds)
        upstream_floor = await timed(upstream_direct, rounds)
        measured = {
            "db list (50 rows)": await timed(
                lambda: call(TABLE, "list", {"limit": 50}), rounds
            ),
            "db get": await timed(lambda: call(TABLE, "get", {"id": 1}), rounds),
            "db create": await timed(
                lambda: call(TABLE, "create", {"values": {"title": "x"}}), rounds
            ),
            "rest GET (secret)": await timed(lambda: call(rest, "request", {}), rounds),
        }
        pool.close()
        await pool.wait_closed()

    print(
        f"baselines (median of {rounds}): http floor {http_floor * 1000:.3f} ms, "
        f"sql floor {sql_floor * 1000:.3f} ms, upstream floor {upstream_floor * 1000:.3f} ms"
    )
    print(
        f"{'call':<20} {'median ms':>10} {'/ http floor':>13} {'/ (http + backend)':>19}"
    )
    for name, seconds in measured.items():
        backend = upstream_floor if name.startswith("rest") else sql_floor
        print(
            f"{name:<20} {seconds * 1000:>10.3f} {seconds / http_floor:>13.2f} "
            f"{seconds / (http_floor + backend):>19.2f}"
        )

    await service.cleanup()
    await upstream.cleanup()
    _drop(db_url, schema)


def _drop(db_url: str, schema: str) -> None:
    connection = psycopg2.connect(db_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per case")
    rounds = parser.parse_args().rounds
    with available_database("lowcode-bench-") as db_url:
        asyncio.run(run(rounds, db_url))


if __name__ == "__main__":
    main()
