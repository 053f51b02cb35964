"""Database round trips per warm call, counted on the wire by a small proxy.

The proxy sits between a service process and PostgreSQL, forwards every byte, and counts the
frontend messages that make the server answer: ``Q`` (a simple query, what psycopg2 sends for
each statement) and ``S`` (the Sync that ends an extended-protocol exchange). The connection
goes without TLS (``sslmode=disable``) so that the messages can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import psycopg2.extensions

# Startup-phase request codes that the server answers with one byte, before the real startup.
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
ROUND_TRIP_MESSAGES = (b"Q", b"S")


class CountingProxy:
    """A TCP proxy to the PostgreSQL of ``dsn`` that counts round-trip messages."""

    def __init__(self, dsn: str) -> None:
        self.options = psycopg2.extensions.parse_dsn(dsn)
        self.count = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    @property
    def dsn(self) -> str:
        """A DSN that reaches the same database through the proxy."""
        options = {
            **self.options,
            "host": "127.0.0.1",
            "port": str(self.port),
            "sslmode": "disable",
            "gssencmode": "disable",
        }
        return psycopg2.extensions.make_dsn(**options)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, and wait for the open connections to end (their clients closed)."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.handlers:
            await asyncio.wait(self.handlers, timeout=5)

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host = self.options.get("host", "localhost")
        port = int(self.options.get("port", "5432"))
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _handle(
        self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        try:
            server, to_server = await self._connect_upstream()
            tasks = [
                asyncio.create_task(self._frontend(client, to_server)),
                asyncio.create_task(_copy(server, to_client)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (to_client, to_server):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        finally:
            self.handlers.discard(handler)

    async def _frontend(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            # Startup messages have no type byte: a length, then a code or the protocol.
            while True:
                header = await reader.readexactly(8)
                length, code = struct.unpack("!ii", header)
                body = await reader.readexactly(length - 8)
                writer.write(header + body)
                await writer.drain()
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break

            while True:
                header = await reader.readexactly(5)
                kind, length = header[:1], struct.unpack("!i", header[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind in ROUND_TRIP_MESSAGES:
                    self.count += 1
                writer.write(header + body)
                await writer.drain()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
