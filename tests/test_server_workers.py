"""Several processes, one service: shared token, one rate limit over Redis, one database."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import aiohttp
import psycopg2
import pytest
from aiohttp import web
from psycopg2 import sql

from tests.conftest import AUTH
from tests.data import service as service_fixtures
from tests.data.service import db_plugin_installed

start_service = service_fixtures.start_service

REDIS_URL = "redis://127.0.0.1:6379/0"


def unknown_type_call() -> dict:
    """A call that reaches the rate limit and fails after it, cheaply."""
    return {
        "dataSource": {"type": "no-such-type", "name": "x"},
        "operation": "x",
        "params": {},
    }


async def get_status(url: str, headers: dict[str, str]) -> int:
    # A session per request: a new connection, so the kernel may hand it to any worker.
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url) as response:
            return response.status


async def test_workers_share_the_token_made_once_and_warn_without_redis(start_service):
    service = await start_service("--workers", "2", RUNTIME_BACKEND_AUTH_TOKEN="")

    generated = service.events("service.token_generated")
    assert len(generated) == 1
    token = generated[0]["message"].rsplit(" ", 1)[1]
    statuses = await asyncio.gather(
        *(
            get_status(
                f"{service.url}/v1/plugins", {"Authorization": f"Bearer {token}"}
            )
            for _ in range(16)
        )
    )
    assert set(statuses) == {200}
    warnings = service.events("service.config_warning")
    assert any("REDIS_URL is not set" in w["message"] for w in warnings)


async def test_processes_on_one_redis_enforce_one_limit(start_service):
    # A window of an hour: the burst below cannot straddle two windows.
    limits = {
        "REDIS_URL": REDIS_URL,
        "RUNTIME_BACKEND_RATE_LIMIT_MAX": "5",
        "RUNTIME_BACKEND_RATE_LIMIT_WINDOW_MS": "3600000",
    }
    first = await start_service("--workers", "2", **limits)
    second = await start_service(**limits)
    assert not second.events("service.config_warning")
    project = f"rl-{uuid.uuid4().hex[:12]}"

    statuses = []
    for i in range(12):
        service = (first, second)[i % 2]
        async with aiohttp.ClientSession(headers=AUTH) as session:
            url = f"{service.url}/v1/projects/{project}/datasources/execute"
            async with session.post(url, json=unknown_type_call()) as response:
                statuses.append(response.status)
                remaining = response.headers["x-ratelimit-remaining"]

    assert statuses.count(429) == 12 - 5, statuses
    assert set(statuses[:5]) == {400}
    assert remaining == "0"


def todo_definition(table: str) -> dict:
    return {
        "type": "db",
        "name": "todos",
        "table": table,
        "fields": [
            {"name": "title", "type": "string", "required": True},
            {"name": "done", "type": "boolean", "default": False},
        ],
        "indexes": [{"fields": ["done"]}],
    }


@pytest.fixture
def data_dir():
    """A data folder outside pytest's private tmp: as root, the server runs as another user."""
    folder = Path(tempfile.mkdtemp(prefix="lowcode-ops-data-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_embedded_postgres_is_started_once_for_all_workers(
    start_service, data_dir
):
    if not db_plugin_installed():
        pytest.skip("the db plugin is not installed")
    service = await start_service(
        "--workers", "2", DATABASE_URL="", LOWCODE_DATA_DIR=str(data_dir)
    )
    execute = f"{service.url}/v1/projects/embedded-once/datasources/execute"
    create = {
        "dataSource": todo_definition("todos"),
        "operation": "create",
        "params": {"values": {"title": "one"}},
    }
    listing = {
        "dataSource": todo_definition("todos"),
        "operation": "list",
        "params": {},
    }

    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(execute, json=create) as response:
            assert response.status == 200, await response.text()
    # Fresh connections reach either worker: each sees the row, so they share one server.
    for _ in range(6):
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.post(execute, json=listing) as response:
                body = await response.json()
                assert [row["title"] for row in body["data"]] == ["one"], body

    service.terminate()
    assert await service.wait_exit(timeout=30) == 0
    assert len(service.events("db.embedded_started")) == 1
    assert len(service.events("db.embedded_stopped")) == 1
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


async def test_processes_migrating_one_new_project_at_once_apply_it_once(
    start_service, database_url, project_id
):
    if not db_plugin_installed():
        pytest.skip("the db plugin is not installed")
    from lowcode_db.tenancy import schema_name

    services = [await start_service(), await start_service("--workers", "2")]
    call = {"dataSource": todo_definition("todos"), "operation": "list", "params": {}}

    async def execute(service) -> int:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            url = f"{service.url}/v1/projects/{project_id}/datasources/execute"
            async with session.post(url, json=call) as response:
                return response.status

    statuses = await asyncio.gather(*(execute(services[i % 2]) for i in range(8)))
    assert set(statuses) == {200}, statuses

    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT statement, count(*) FROM {}.__lowcode_migrations_log "
                    "WHERE outcome = 'applied' GROUP BY statement"
                ).format(sql.Identifier(schema_name(project_id)))
            )
            counts = dict(cursor.fetchall())
    finally:
        connection.close()
    assert counts, "no migration was logged"
    assert set(counts.values()) == {1}, counts


async def test_processes_on_one_redis_fetch_a_projects_secrets_once(
    start_service, aiohttp_server
):
    fetched: list[str] = []

    async def secrets_api(request: web.Request) -> web.Response:
        fetched.append(request.match_info["project"])
        return web.json_response({"secrets": {"ORDERS_TOKEN": "orders-token-5f1c2b9e"}})

    async def upstream(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "authorized": request.headers.get("Authorization")
                == "Bearer orders-token-5f1c2b9e"
            }
        )

    app = web.Application()
    app.router.add_get("/internal/projects/{project}/secrets/runtime", secrets_api)
    app.router.add_get("/orders", upstream)
    server = await aiohttp_server(app)
    env = {
        "REDIS_URL": REDIS_URL,
        "API_BASE_URL": f"http://127.0.0.1:{server.port}",
        "API_SERVICE_ID": "runtime-backend",
        "API_SERVICE_SECRET": "service-secret-0a9d",
        "RUNTIME_BACKEND_EGRESS_ALLOW": "127.0.0.1",
    }
    services = [await start_service(**env), await start_service(**env)]
    project = f"sec-{uuid.uuid4().hex[:12]}"
    call = {
        "dataSource": {
            "type": "rest",
            "name": "orders",
            "method": "GET",
            "url": f"http://127.0.0.1:{server.port}/orders",
            "headers": {"Authorization": "Bearer {{ secrets.ORDERS_TOKEN }}"},
        },
        "operation": "request",
        "params": {},
    }

    for i in range(4):
        async with aiohttp.ClientSession(headers=AUTH) as session:
            url = f"{services[i % 2].url}/v1/projects/{project}/datasources/execute"
            async with session.post(url, json=call) as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["data"] == {"authorized": True}

    assert fetched == [project]


async def test_metrics_of_every_worker_are_summed_in_any_scrape(start_service):
    service = await start_service("--workers", "2")
    calls = 12
    for _ in range(calls):
        # A new connection each time, so the kernel spreads them over the workers.
        await get_status(f"{service.url}/v1/plugins", AUTH)

    marker = (
        'lowcode_http_requests_total{method="GET",route="/v1/plugins",status="200"}'
    )
    for _ in range(4):
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(f"{service.url}/metrics") as response:
                text = await response.text()
        line = next(line for line in text.splitlines() if line.startswith(marker))
        assert float(line.rsplit(" ", 1)[1]) == calls
