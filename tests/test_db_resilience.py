"""Deadlines and an absent database: statements cancelled on the server, DB_UNAVAILABLE
instead of a hang, and recovery without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid

import psycopg2
import pytest

from lowcode_db.plugin import DB_STATE
from lowcode_db.tenancy import lock_key, schema_name
from lowcode_runtime.keys import TYPE_REGISTRY
from tests.conftest import AUTH


async def test_deadline_cancels_the_statement_on_the_server(
    make_db_client, database_url
):
    db = await make_db_client(request_timeout_ms=700, database_pool_max=1)
    row = (await db.ok("create", {"values": {"title": "locked"}}))["data"]

    holder = psycopg2.connect(database_url)
    try:
        cursor = holder.cursor()
        cursor.execute(
            f'SELECT * FROM "{schema_name(db.project)}".orders WHERE id = %s FOR UPDATE',
            (row["id"],),
        )
        status, body = await db.call(
            "update", {"id": row["id"], "values": {"status": "x"}}
        )
        assert status == 504
        assert body["error"]["code"] == "TIMEOUT"

        await asyncio.sleep(0.3)
        watcher = psycopg2.connect(database_url)
        watcher.autocommit = True
        with watcher.cursor() as check:
            check.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE 'UPDATE%%' AND query LIKE %s",
                (f"%{schema_name(db.project)}%",),
            )
            assert check.fetchone()[0] == 0
        watcher.close()
    finally:
        holder.rollback()
        holder.close()

    # The pool's only connection came back healthy: the next call works at once.
    got = await db.ok("get", {"id": row["id"]})
    assert got["data"]["status"] == "new"


def active_statements(database_url: str, pattern: str) -> int:
    """How many statements whose text matches ``pattern`` run on the server now."""
    watcher = psycopg2.connect(database_url)
    try:
        with watcher.cursor() as check:
            check.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE %s AND pid <> pg_backend_pid()",
                (pattern,),
            )
            return check.fetchone()[0]
    finally:
        watcher.close()


async def until(condition, what: str, tries: int = 200) -> None:
    """Wait for ``condition()``, looking every 50 ms; fail naming ``what`` if it never holds."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_a_cancelled_statement_ends_before_its_cancel_on_the_server(
    database_url, logs
):
    """The cancellation goes on at once; the server-side cancel runs in the background."""
    from lowcode_db.pool import Database

    database = Database(database_url, 1)
    await database.open()
    tag = f"lowcode-test-{uuid.uuid4().hex}"

    async def sleeper() -> None:
        async with database.session() as session:
            await session.execute(f"SELECT pg_sleep(3600) -- {tag}")

    task = asyncio.create_task(sleeper())
    try:
        await until(lambda: active_statements(database_url, f"%{tag}%") == 1, "sent")
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled()
        assert len(database.cancels) == 1, "the cancel on the server is still under way"
    finally:
        await database.close()

    assert not database.cancels, "close() waited for the cancel"
    [cancelled] = logs.events("db.statement_cancelled")
    assert cancelled["ok"] is True
    await until(lambda: active_statements(database_url, f"%{tag}%") == 0, "cancelled")


async def test_a_migration_waiting_for_its_lock_ends_at_the_deadline(
    make_db_client, database_url, logs
):
    """The db type is awaited in the request's task; its migration path ends promptly too."""
    db = await make_db_client(request_timeout_ms=500, database_pool_max=1)
    assert db.client.app[TYPE_REGISTRY]["db"].type.cancels_promptly
    key = lock_key(schema_name(db.project))
    holder = psycopg2.connect(database_url)
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
        answer = asyncio.create_task(db.call("list"))
        waiting = f"%pg_advisory_xact_lock(%{key})%"  # psycopg2 writes " -1" for -1
        await until(
            lambda: active_statements(database_url, waiting) == 1,
            "the first call's migration waits for the lock",
        )
        status, body = await answer
        assert status == 504 and body["error"]["code"] == "TIMEOUT"

        cancels = db.client.app[DB_STATE].database.cancels
        if cancels:
            await asyncio.wait(set(cancels))
        await until(
            lambda: active_statements(database_url, waiting) == 0,
            "the migration's wait for the lock cancelled on the server",
        )
    finally:
        holder.close()

    # The migration was rolled back whole, and said so: the next call applies it.
    [cut] = [e for e in logs.events("db.migration") if e["outcome"] == "cancelled"]
    assert cut["level"] == "warning" and cut["projectId"] == db.project
    assert "rolled back" in cut["message"]
    assert (await db.ok("list"))["data"] == []


class Proxy:
    """A TCP relay in front of the real PostgreSQL that the test can cut and restore."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}

        async def pipe(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def tcp_target(database_url: str) -> tuple[str, int, str]:
    params = psycopg2.extensions.parse_dsn(database_url)
    host = params.get("host", "")
    if not host or host.startswith("/"):
        pytest.skip("the test database is reached over a unix socket")
    return host, int(params.get("port", 5432)), params.get("dbname", "postgres")


async def test_database_that_goes_away_and_comes_back(make_db_client, database_url):
    host, port, dbname = tcp_target(database_url)
    proxy = Proxy(host, port)
    await proxy.start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{dbname}"
    db = await make_db_client(database_url=url)
    await db.ok("create", {"values": {"title": "before"}})
    assert (await db.client.get("/ready")).status == 200

    await proxy.stop()
    status, body = await asyncio.wait_for(db.call("list"), 15)
    assert status == 503
    assert body["error"]["code"] == "DB_UNAVAILABLE"
    assert "postgres@" not in str(body)
    ready = await db.client.get("/ready")
    assert ready.status == 503

    await proxy.start()
    assert (await db.client.get("/ready")).status == 200
    assert [r["title"] for r in (await db.ok("list"))["data"]] == ["before"]
    await proxy.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_database_still_starts(make_client, project_id, logs):
    port = free_port()
    client = await make_client(database_url=f"postgresql://postgres@127.0.0.1:{port}/x")
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["error"]["code"] == "DB_UNAVAILABLE"

    response = await client.post(
        f"/v1/projects/{project_id}/datasources/execute",
        json={
            "dataSource": {"type": "db", "name": "t", "table": "t"},
            "operation": "list",
        },
        headers=AUTH,
    )
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "DB_UNAVAILABLE"
    status = await client.get(f"/preview/status/{project_id}", headers=AUTH)
    assert status.status == 503
    # The line says why, so that a refused connection reads apart from a refused password.
    unavailable = logs.events("db.unavailable")[0]
    assert "refused" in unavailable["reason"], unavailable
    assert unavailable["database"] == f"postgres@127.0.0.1:{port}/x"
    assert unavailable["reason"] in unavailable["message"]


@pytest.mark.parametrize(
    "url",
    [
        "mysql://lowcode:pw-not-to-leak@db.example/app",
        "postgresql://lowcode:pw-not-to-leak@db.example:notaport/app",
        "postgresql://lowcode:pw-not-to-leak@db.example:99999/app",
        "postgresql://lowcode:pw-not-to-leak%zz@db.example/app",
    ],
)
async def test_a_database_url_that_does_not_parse_stops_start_up(tmp_path, url):
    from tests.data.service import Service, clean_environ

    env = clean_environ(
        RUNTIME_BACKEND_AUTH_TOKEN="t" * 40, DATABASE_URL=url, LOG_LEVEL="debug"
    )
    service = Service(tmp_path, env).start()
    try:
        assert await service.wait_exit(timeout=60) == 1
    finally:
        service.kill()
    output = service.text()
    assert "DATABASE_URL" in output, output
    assert "pw-not-to-leak" not in output, output
    failures = [line for line in output.splitlines() if "DATABASE_URL" in line]
    assert len(failures) == 1, output
    assert "Traceback" not in output, "the message says all"


def test_migrate_with_a_database_url_that_does_not_parse_exits_1(tmp_path):
    import json
    import subprocess
    import sys

    from tests.data.service import clean_environ
    from tests.fixtures.database import ORDERS

    definition = tmp_path / "orders.json"
    definition.write_text(json.dumps(ORDERS))
    env = clean_environ(DATABASE_URL="postgresql://u:pw-not-to-leak@h:notaport/db")
    for command in (["migrate", "p", str(definition)], ["status", "p"]):
        result = subprocess.run(
            [sys.executable, "-m", "lowcode_runtime", *command],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert result.returncode == 1, result
        assert "DATABASE_URL" in result.stderr
        assert "pw-not-to-leak" not in result.stdout + result.stderr


async def test_callers_waiting_for_a_connection_are_served_in_turn(database_url):
    from lowcode_db.pool import Database

    database = Database(database_url, 1)
    await database.open()
    turns: list[str] = []

    async def caller(name: str) -> None:
        async with database.session() as session:
            turns.append(name)
            await session.execute("SELECT 1")

    try:
        async with database.session():
            waiting = [asyncio.create_task(caller(name)) for name in ("b", "c")]
            await asyncio.sleep(0.05)
            # A newcomer that runs while the connection is being handed back.
            waiting.append(asyncio.create_task(caller("late")))
        await asyncio.gather(*waiting)
    finally:
        await database.close()

    assert turns == ["b", "c", "late"]
