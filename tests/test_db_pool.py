"""The connection pool: places are never lost, whatever happens to a caller or a connection."""

from __future__ import annotations

import asyncio
import socket

import psycopg2
import pytest

from lowcode_db import pool
from lowcode_db.pool import Database
from lowcode_runtime.errors import DbUnavailable, Timeout


@pytest.fixture
async def database(database_url):
    database = Database(database_url, 1)
    await database.open()
    yield database
    await database.close()


async def backend_pid(database: Database) -> int:
    async with database.session() as session:
        ((pid,),) = await session.execute("SELECT pg_backend_pid()")
        return pid


async def test_a_released_connection_is_reused(database):
    assert await backend_pid(database) == await backend_pid(database)


async def test_a_waiter_that_gives_up_keeps_no_place(database):
    async with database.session():
        waiter = asyncio.create_task(backend_pid(database))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    # The one place is free again: a call gets the connection without waiting.
    async with asyncio.timeout(2):
        assert await backend_pid(database) > 0


async def test_a_connection_closed_in_use_frees_its_place(database):
    first = await backend_pid(database)
    async with database.session() as session:
        session.connection.close()

    async with asyncio.timeout(5):
        assert await backend_pid(database) != first


async def test_a_connection_killed_by_the_server_is_replaced(database, database_url):
    first = await backend_pid(database)
    killer = psycopg2.connect(database_url)
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (first,))
    killer.close()
    await asyncio.sleep(0.1)

    # aiopg's reader usually sees the close while the connection is idle, and the pool drops
    # it; when it does not, the first call answers DB_UNAVAILABLE and the next one works.
    try:
        pid = await backend_pid(database)
    except DbUnavailable:
        pid = await backend_pid(database)
    assert pid != first


async def test_a_failed_connect_frees_its_place():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    database = Database(f"postgresql://postgres@127.0.0.1:{port}/postgres", 1)
    await database.open()
    try:
        for _ in range(3):  # a lost place would make the second try wait, then time out
            async with asyncio.timeout(5):
                with pytest.raises(DbUnavailable):
                    await backend_pid(database)
    finally:
        await database.close()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(
            probe.getsockname()[1]
        )  # nothing listens here once the probe is closed


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_refused_connects_leave_the_loop_able_to_connect(loop_name, database_url):
    """aiopg#909: after a refused connect, uvloop refused every later socket of that number."""
    uvloop = pytest.importorskip("uvloop")
    new_loop = (
        uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop
    )
    refused = f"postgresql://postgres@127.0.0.1:{unused_port()}/postgres"

    async def refused_then_reached() -> int:
        for _ in range(3):
            with pytest.raises(psycopg2.OperationalError):
                await pool.open_connection(pool.make_dsn(refused), 5)
        database = Database(database_url, 1)
        await database.open()
        try:
            async with asyncio.timeout(10):
                return await backend_pid(database)
        finally:
            await database.close()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        assert runner.run(refused_then_reached()) > 0


async def test_a_transaction_left_open_is_rolled_back_on_release(database):
    async with database.session() as session:
        await session.execute("BEGIN")
        await session.execute("CREATE TEMP TABLE left_open (x int)")

    async with database.session() as session:
        rows = await session.execute("SELECT to_regclass('pg_temp.left_open') IS NULL")
    assert rows == [(True,)]


async def test_a_statement_cancelled_by_the_server_is_a_timeout(database):
    async with database.session() as session:
        await session.execute("SET statement_timeout = 50")
        with pytest.raises(Timeout):
            await session.execute("SELECT pg_sleep(5)")
        await session.execute("SET statement_timeout = 0")
        assert await session.execute("SELECT 1") == [(1,)]


async def test_a_closed_pool_refuses_callers(database):
    await database.close()
    with pytest.raises(DbUnavailable):
        async with database.session():
            pass


async def test_a_caller_that_waits_too_long_answers_db_unavailable_and_leaves_no_trace(
    database, monkeypatch
):
    monkeypatch.setattr(pool, "ACQUIRE_TIMEOUT", 0.1)
    async with database.session():
        with pytest.raises(DbUnavailable):
            async with database.session():
                pass

    # Its place in the queue is gone: the next caller gets the connection at once.
    async with asyncio.timeout(2):
        assert await backend_pid(database) > 0
    assert not database.pool._waiters
