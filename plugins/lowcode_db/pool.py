"""The process's connections to PostgreSQL: a pool, running statements, cancelling them.

Connections are aiopg's; the pool and the waiting for a statement's answer are kept here,
because aiopg's cost about 60 µs a statement more (a condition lock and a task per release,
a cursor wrapper, ``wait_for`` and a timer per statement) on a call that is mostly that.

A statement cancelled mid-way (the request's deadline reached the handler) closes its
connection, and ``pg_cancel_backend`` is sent from another connection, in a task the
:class:`Database` holds, so that the statement ends on the server too while the cancellation
goes on at once; the pool opens a new connection in place of the closed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions

from lowcode_db.rows import register_typecasters
from lowcode_runtime import events
from lowcode_runtime.config import ConfigError
from lowcode_runtime.errors import DbUnavailable, Timeout
from lowcode_runtime.logs import logger

ACQUIRE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 3600.0
CANCEL_WAIT = 5.0
IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class StatementCounter:
    """Counts the statements this process sends; tests prove the one-round-trip rule with it."""

    def __init__(self) -> None:
        self.count = 0


STATEMENTS = StatementCounter()


class InvalidDatabaseUrl(ConfigError, ValueError):
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


def describe_database(dsn: str) -> str:
    """``user@host:port/database`` of a checked DSN, for log lines: never its password."""
    options = psycopg2.extensions.parse_dsn(dsn)
    user = options.get("user", "")
    host = options.get("host") or "localhost"
    port = options.get("port") or "5432"
    return f"{user + '@' if user else ''}{host}:{port}/{options.get('dbname', '')}"


def make_dsn(url: str) -> str:
    """``url`` with a connect timeout; raises InvalidDatabaseUrl when it does not parse."""
    check_database_url(url)
    return psycopg2.extensions.make_dsn(url, connect_timeout=CONNECT_TIMEOUT)


class Session:
    """One acquired connection; ``execute`` is the only way statements reach the server."""

    def __init__(self, database: Database, connection: aiopg.Connection) -> None:
        self.database = database
        self.connection = connection

    async def execute(
        self, query: Any, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement; rows when it returns some, else an empty list.

        psycopg2 sends it and aiopg's reader callback polls the socket, as in aiopg's own
        ``Cursor.execute``; only the waiting is ours: one future awaited in the caller's task,
        where aiopg adds a cursor wrapper, ``wait_for`` and a timer (about 35 µs a statement).
        When the caller is cancelled mid-statement, the connection is closed, the statement's
        cancel on the server is started in the background, and the cancellation goes on at
        once: the db type's handler is awaited in the request's task (``cancels_promptly``).
        """
        STATEMENTS.count += 1
        connection = self.connection
        cursor = connection.raw.cursor()
        try:
            try:
                await _send(connection, cursor, query, params)
            finally:
                connection._waiter = None
            if cursor.description is not None:
                return cursor.fetchall()  # type: ignore[no-any-return]
            return []
        except psycopg2.extensions.QueryCanceledError:
            raise Timeout("the database cancelled the statement") from None
        except asyncio.CancelledError:
            pid = connection.raw.get_backend_pid()
            connection.close()
            self.database.cancel_in_background(pid)
            raise
        finally:
            cursor.close()


def _send(
    connection: aiopg.Connection, cursor: Any, query: Any, params: Any
) -> asyncio.Future[None]:
    """Send one statement on ``connection``; the future is done once its answer is read.

    aiopg 1.4 (pinned) wakes ``connection._waiter`` from the reader it registered for the
    socket; this is the protocol of its ``Cursor.execute`` without the cursor wrapper. A
    future, not a coroutine: a level awaited costs on every resume. The caller clears
    ``connection._waiter`` once it has awaited it.
    """
    if connection.closed:
        raise psycopg2.InterfaceError("connection already closed")
    # Its loop, not get_running_loop(): on Python 3.11 that asks the kernel for the pid.
    waiter: asyncio.Future[None] = connection._loop.create_future()
    connection._waiter = waiter
    try:
        cursor.execute(query, params)
        connection._ready(connection._weakref)
    except BaseException:
        connection._waiter = None
        raise
    return waiter


class _Connection(aiopg.Connection):
    """aiopg's connection, which also lets go of its socket when a connect fails.

    On a failed connect libpq closes the socket; aiopg 1.4 then forgets it with its writer
    still registered, and uvloop refuses every later socket given the same number
    (``RuntimeError: the handler is closed``, aio-libs/aiopg#909).
    """

    @staticmethod
    def _ready(weak_self: weakref.ref[Any]) -> None:
        self = weak_self()
        if self is None:
            return
        fileno, writing = self._fileno, self._writing

        aiopg.Connection._ready(weak_self)

        if writing and fileno is not None and self._fileno is None:
            with contextlib.suppress(OSError, RuntimeError):
                self._loop.remove_writer(fileno)


async def open_connection(dsn: str, timeout: float) -> aiopg.Connection:
    """A new connection, as ``aiopg.connect`` makes it (no hstore, no uuid casters)."""
    connection = _Connection(dsn, timeout, enable_hstore=False, enable_uuid=False)
    return await connection._connect()


class ConnectionPool:
    """Up to ``size`` aiopg connections, opened on demand, handed out first come first served.

    aiopg's own pool lets a newcomer take a connection released for a waiter (a p99 of 10x the
    median under load) and starts a task on every release; here a released connection goes
    straight to the oldest waiter.
    """

    def __init__(self, dsn: str, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.dsn = dsn
        self.size = size
        # The loop it serves, kept: on Python 3.11 get_running_loop() is a getpid call.
        self.loop = loop
        self._idle: deque[aiopg.Connection] = deque()
        self._waiters: deque[asyncio.Future[aiopg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._closing = False

    async def acquire(self) -> aiopg.Connection:
        """A connection; ``TimeoutError`` after ACQUIRE_TIMEOUT, psycopg2/OS errors on connect."""
        if self._closing:
            raise DbUnavailable("the service is shutting down")
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open -= 1
        if self._open < self.size:
            self._open += 1
            return await self._connect()

        waiter: asyncio.Future[aiopg.Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        # A timer that fails the waiter, not an asyncio.timeout scope around the await: under
        # load most calls wait here, and the scope cost about 4 µs more (bench.costs).
        timer = self.loop.call_later(ACQUIRE_TIMEOUT, _give_up, waiter)
        try:
            handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over as the wait ended
            else:
                waiter.cancel()
            raise
        finally:
            timer.cancel()
        return handed if handed is not None else await self._connect()

    def release(self, connection: aiopg.Connection | None) -> None:
        """Give ``connection`` to the oldest waiter, or keep it; ``None`` frees its place."""
        if connection is not None and (connection.closed or self._closing):
            connection.close()
            connection = None
        if connection is None:
            self._open -= 1
        self._hand_over(connection)

    def clear(self) -> None:
        """Close the idle connections (after one of them turned out dead)."""
        while self._idle:
            self._idle.pop().close()
            self._open -= 1

    def close(self) -> None:
        self._closing = True
        self.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(DbUnavailable("the service is shutting down"))

    def _hand_over(self, connection: aiopg.Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if connection is None:
                    self._open += 1  # the waiter opens one in the freed place
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)

    async def _connect(self) -> aiopg.Connection:
        """A new connection in a place already counted in ``_open``; the place is freed on error."""
        try:
            connection = await open_connection(self.dsn, ACQUIRE_TIMEOUT)
        except BaseException:
            self.release(None)
            raise
        # numeric arrives as the text a row answers (rows.py), no Decimal built on the way
        register_typecasters(connection.raw)
        return connection


def _give_up(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class SessionScope:
    """``async with database.session() as session``: acquire, map connection faults, release."""

    def __init__(self, database: Database, pool: ConnectionPool) -> None:
        self.database = database
        self.pool = pool
        self.connection: aiopg.Connection | None = None

    async def __aenter__(self) -> Session:
        try:
            self.connection = await self.pool.acquire()
        except (TimeoutError, psycopg2.Error, OSError) as e:
            self.database.unavailable(e)
            raise DbUnavailable() from e
        return Session(self.database, self.connection)

    async def __aexit__(
        self, kind: object, error: BaseException | None, trace: object
    ) -> None:
        connection = self.connection
        assert connection is not None
        if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
            connection.close()
            self.pool.release(connection)
            self.pool.clear()  # the others most likely died with it
            self.database.unavailable(error)
            raise DbUnavailable() from error
        try:
            if (
                not connection.closed
                and connection.raw.get_transaction_status() != IDLE
            ):
                await _roll_back(connection)
        finally:
            self.pool.release(connection)


async def _roll_back(connection: aiopg.Connection) -> None:
    """End a transaction a caller left open; a connection that cannot is closed instead."""
    cursor = connection.raw.cursor()
    try:
        async with asyncio.timeout(CANCEL_WAIT):
            try:
                await _send(connection, cursor, "ROLLBACK", None)
            finally:
                connection._waiter = None
    except asyncio.CancelledError:
        connection.close()
        raise
    except Exception:
        connection.close()
    finally:
        cursor.close()


class Database:
    """The pool of one process (``DATABASE_POOL_MAX`` connections), opened lazily per connection."""

    def __init__(self, url: str | None, pool_max: int) -> None:
        self.dsn = make_dsn(url) if url else None
        self.where = describe_database(self.dsn) if self.dsn else "(none)"
        self.pool_max = pool_max
        self.pool: ConnectionPool | None = None
        self.cancels: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Create the pool; it connects on demand, so start-up never waits for the database."""
        if self.dsn is not None:
            self.pool = ConnectionPool(
                self.dsn, self.pool_max, asyncio.get_running_loop()
            )

    async def close(self) -> None:
        """Close the pool; the cancels still under way get CANCEL_WAIT, then are cancelled."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        await self._finish_cancels()

    async def _finish_cancels(self) -> None:
        if not self.cancels:
            return
        _, pending = await asyncio.wait(set(self.cancels), timeout=CANCEL_WAIT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    def session(self) -> SessionScope:
        """An acquired connection, as ``async with``; DB_UNAVAILABLE when none can be had."""
        if self.pool is None:
            raise DbUnavailable("no preview database is configured (set DATABASE_URL)")
        return SessionScope(self, self.pool)

    def cancel_in_background(self, pid: int) -> None:
        """Start :meth:`cancel_backend` in a task held until it ends (the loop holds weakly)."""
        task = asyncio.get_running_loop().create_task(self.cancel_backend(pid))
        self.cancels.add(task)
        task.add_done_callback(self.cancels.discard)

    async def cancel_backend(self, pid: int) -> None:
        """Cancel the statement running on backend ``pid``, from another connection."""
        assert self.dsn is not None
        try:
            async with asyncio.timeout(CANCEL_WAIT):
                connection = await open_connection(self.dsn, CANCEL_WAIT)
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

    def unavailable(self, error: BaseException) -> None:
        """One line saying why: a refused connection, a missing database and a refused
        password need different fixes. libpq's first line names host, port, database or
        user, never a password; masked like any line."""
        lines = str(error).strip().splitlines()
        reason = lines[0].strip() if lines else type(error).__name__
        logger.bind(
            event=events.DB_UNAVAILABLE,
            error=type(error).__name__,
            reason=reason,
            database=self.where,
        ).warning(f"the preview database {self.where} cannot be reached: {reason}")
