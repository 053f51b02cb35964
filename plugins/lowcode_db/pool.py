"""The process's aiopg pool: acquiring, running statements, cancelling them on the server.

aiopg gives up on a cancelled statement by closing its socket, while PostgreSQL keeps running
it. So when the caller is cancelled mid-statement (the request's deadline reached the handler's
task), ``pg_cancel_backend`` is sent from another connection and the statement ends on the
server; the pool opens a new connection in place of the closed one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions

from lowcode_runtime import events
from lowcode_runtime.errors import DbUnavailable, Timeout
from lowcode_runtime.logs import logger

ACQUIRE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 3600.0
CANCEL_WAIT = 5.0


class StatementCounter:
    """Counts the statements this process sends; tests prove the one-round-trip rule with it."""

    def __init__(self) -> None:
        self.count = 0


STATEMENTS = StatementCounter()


class InvalidDatabaseUrl(ValueError):
    """``DATABASE_URL`` does not parse; the message names the variable, never its value."""


def check_database_url(url: str) -> dict[str, str]:
    """The libpq options of ``url``, a ``postgresql://`` URL or a ``key=value`` string.

    libpq's own messages quote the string, password included, so none of them is kept (the
    cause is dropped too, so no traceback shows it). A port is checked here: libpq accepts any
    text at parse time and only fails at the first connection, long after start-up.
    """
    scheme, separator, _ = url.partition("://")
    if separator and scheme.lower() not in ("postgresql", "postgres"):
        raise InvalidDatabaseUrl(
            f"DATABASE_URL must be a postgresql:// URL, not a {scheme[:20]}:// one"
        )
    try:
        options = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError:
        raise InvalidDatabaseUrl(
            "DATABASE_URL does not parse as a PostgreSQL URL "
            "(expected postgresql://user:password@host:port/database; "
            "percent-encode special characters of the user and password)"
        ) from None
    for port in (options.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidDatabaseUrl(
                "DATABASE_URL holds a port that is not a number from 1 to 65535"
            )
    return options


def make_dsn(url: str) -> str:
    """``url`` with a connect timeout; raises InvalidDatabaseUrl when it does not parse."""
    check_database_url(url)
    return psycopg2.extensions.make_dsn(url, connect_timeout=CONNECT_TIMEOUT)


class Session:
    """One acquired connection; ``execute`` is the only way statements reach the server."""

    def __init__(self, database: Database, connection: aiopg.Connection) -> None:
        self.database = database
        self.connection = connection
        self.pid = connection.raw.info.backend_pid

    async def execute(
        self, query: Any, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement; rows when it returns some, else an empty list.

        It runs in the caller's task (a handler's own task in a request): no task of its own
        per statement. When that task is cancelled mid-statement, aiopg closes the socket and
        the statement is cancelled on the server before the cancellation goes on.
        """
        STATEMENTS.count += 1
        try:
            async with self.connection.cursor(timeout=STATEMENT_TIMEOUT) as cursor:
                await cursor.execute(query, params)
                if cursor.description is not None:
                    return list(await cursor.fetchall())
                return []
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                # aiopg reports a statement cancelled by the server as CancelledError.
                raise Timeout("the database cancelled the statement") from None
            if self.connection.closed:
                await self.database.cancel_backend(self.pid)
            raise


class Database:
    """The pool of one process (``DATABASE_POOL_MAX`` connections), opened lazily per connection."""

    def __init__(self, url: str | None, pool_max: int) -> None:
        self.dsn = make_dsn(url) if url else None
        self.pool_max = pool_max
        self.pool: aiopg.Pool | None = None
        # First come, first served: aiopg's pool lets a newcomer take a connection that was
        # released for a waiter, who waits again at the back (a p99 of 10x the median under
        # load). Past this gate no caller ever waits inside the pool.
        self._turns = asyncio.Semaphore(pool_max)

    async def open(self) -> None:
        """Create the pool; it connects on demand, so start-up never waits for the database."""
        if self.dsn is not None:
            self.pool = await aiopg.create_pool(
                self.dsn,
                minsize=0,
                maxsize=self.pool_max,
                timeout=ACQUIRE_TIMEOUT,
                enable_hstore=False,
                enable_uuid=False,
            )

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()
            self.pool = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An acquired connection; DB_UNAVAILABLE when none can be had."""
        if self.pool is None:
            raise DbUnavailable("no preview database is configured (set DATABASE_URL)")
        try:
            await self._take_turn()
        except TimeoutError as e:
            self._unavailable(e)
            raise DbUnavailable() from e

        try:
            connection = await self._acquire()
            try:
                yield Session(self, connection)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                connection.close()
                await self.pool.clear()
                self._unavailable(e)
                raise DbUnavailable() from e
            finally:
                await self._release(connection)
        finally:
            self._turns.release()

    async def _take_turn(self) -> None:
        if not self._turns.locked():
            await self._turns.acquire()  # free: returns without suspending
            return
        async with asyncio.timeout(ACQUIRE_TIMEOUT):
            await self._turns.acquire()

    async def _acquire(self) -> aiopg.Connection:
        assert self.pool is not None
        try:
            return await self.pool.acquire()
        except (TimeoutError, psycopg2.Error, OSError) as e:
            self._unavailable(e)
            raise DbUnavailable() from e

    async def _release(self, connection: aiopg.Connection) -> None:
        if not connection.closed:
            status = connection.raw.get_transaction_status()
            if status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                try:
                    async with connection.cursor(timeout=CANCEL_WAIT) as cursor:
                        await cursor.execute("ROLLBACK")
                except BaseException:
                    connection.close()
        assert self.pool is not None
        await self.pool.release(connection)

    async def cancel_backend(self, pid: int) -> None:
        """Cancel the statement running on backend ``pid``, from another connection."""
        assert self.dsn is not None
        try:
            async with asyncio.timeout(CANCEL_WAIT):
                connection = await aiopg.connect(self.dsn, enable_hstore=False)
                try:
                    async with connection.cursor() as cursor:
                        await cursor.execute("SELECT pg_cancel_backend(%s)", (pid,))
                finally:
                    await connection.close()
        except (TimeoutError, psycopg2.Error, OSError) as e:
            logger.bind(event=events.DB_STATEMENT_CANCELLED, ok=False).warning(
                f"could not cancel a statement on the server: {type(e).__name__}"
            )
            return
        logger.bind(event=events.DB_STATEMENT_CANCELLED, ok=True).info(
            "statement cancelled on the server after the deadline"
        )

    async def ping(self) -> dict[str, Any]:
        """The readiness answer of ``/ready``."""
        try:
            async with asyncio.timeout(3.0), self.session() as session:
                await session.execute("SELECT 1")
        except (TimeoutError, DbUnavailable) as e:
            message = getattr(
                e, "message", "the preview database did not answer in time"
            )
            return {
                "name": "db",
                "ok": False,
                "code": "DB_UNAVAILABLE",
                "message": message,
            }
        return {"name": "db", "ok": True}

    def _unavailable(self, error: BaseException) -> None:
        logger.bind(event=events.DB_UNAVAILABLE, error=type(error).__name__).warning(
            "the preview database cannot be reached"
        )
