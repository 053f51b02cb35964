"""The client's CPU per statement: aiopg's own pool and cursor against the service's pool.

    python -m bench.driver [--statements N] [--callers N] [--rounds N]

Both send the same get by id over a small table on the bench's PostgreSQL (``DATABASE_URL``,
else 127.0.0.1:5432, else an embedded one), from ``callers`` tasks sharing a pool of
``DATABASE_POOL_MAX``'s default size, as a loaded service would. CPU is this process's own
(user + system) over the statements sent, so the server's work is not in it. The two ways
alternate, round after round; the report gives each round and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiopg

from lowcode_db.pool import Database
from lowcode_runtime.config import Settings
from tests.fixtures.database import available_database

TABLE = "lowcode_bench_driver"
ROWS = 1000
STATEMENT = f"SELECT id, title, price FROM {TABLE} WHERE id = %s"

Statement = Callable[[int], Awaitable[None]]


async def create_table(dsn: str) -> None:
    async with aiopg.connect(dsn) as connection, connection.cursor() as cursor:
        await cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await cursor.execute(
            f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, title text, price numeric)"
        )
        await cursor.execute(
            f"INSERT INTO {TABLE} (title, price) "
            f"SELECT 'item ' || g, g * 1.5 FROM generate_series(1, {ROWS}) g"
        )


async def drop_table(dsn: str) -> None:
    async with aiopg.connect(dsn) as connection, connection.cursor() as cursor:
        await cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


async def cpu_per_statement(send: Statement, statements: int, callers: int) -> float:
    """Microseconds of this process's CPU per statement, ``callers`` sending at once."""
    sent = 0

    async def caller(first: int) -> None:
        nonlocal sent
        row_id = first
        while sent < statements:
            sent += 1
            await send(row_id % ROWS + 1)
            row_id += 7

    started = time.process_time()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    return (time.process_time() - started) / sent * 1e6


async def measure(dsn: str, statements: int, callers: int, rounds: int) -> None:
    size = Settings().database_pool_max
    aiopg_pool = await aiopg.create_pool(
        dsn, minsize=0, maxsize=size, enable_hstore=False, enable_uuid=False
    )
    database = Database(dsn, size)
    await database.open()

    async def through_aiopg(row_id: int) -> None:
        async with aiopg_pool.acquire() as connection, connection.cursor() as cursor:
            await cursor.execute(STATEMENT, [row_id])
            await cursor.fetchall()

    async def through_the_service(row_id: int) -> None:
        async with database.session() as session:
            await session.execute(STATEMENT, [row_id])

    ways: dict[str, Statement] = {
        "aiopg pool + cursor (the floor's way)": through_aiopg,
        "the service's pool and session": through_the_service,
    }
    runs: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for send in ways.values():  # warm: every connection opened, caches filled
            await cpu_per_statement(send, statements // 4, callers)
        for _ in range(rounds):
            for name, send in ways.items():
                runs[name].append(await cpu_per_statement(send, statements, callers))
    finally:
        aiopg_pool.close()
        await aiopg_pool.wait_closed()
        await database.close()

    print(f"{statements} statements per run, {callers} callers, pool of {size}")
    print("| way | median µs/statement | runs |")
    print("| --- | ---: | --- |")
    for name, values in runs.items():
        each = " ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {each} |")


async def run(statements: int, callers: int, rounds: int) -> None:
    with available_database("lowcode-bench-driver-") as dsn:
        await create_table(dsn)
        try:
            await measure(dsn, statements, callers, rounds)
        finally:
            await drop_table(dsn)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.driver")
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(run(options.statements, options.callers, options.rounds))


if __name__ == "__main__":
    main()
