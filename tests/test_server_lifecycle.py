"""The service as a real process: draining on SIGTERM, and a database that is not there yet."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import AUTH, TOKEN
from tests.data import service as service_fixtures
from tests.data.service import (
    Service,
    clean_environ,
    db_plugin_installed,
    free_port,
)

slow_plugin_path = service_fixtures.slow_plugin_path
start_service = service_fixtures.start_service


def sleep_call(seconds: float) -> dict:
    return {
        "dataSource": {"type": "sleep", "name": "nap"},
        "operation": "run",
        "params": {"seconds": seconds},
    }


async def refused_within(url: str, seconds: float) -> bool:
    """True once a new connection to ``url`` fails (its listening socket closed) in time."""
    deadline = time.monotonic() + seconds
    # force_close: a new connection for each try, never one kept alive.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True)
    ) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(
                    url, timeout=aiohttp.ClientTimeout(total=1)
                ) as response:
                    await response.read()
            except (aiohttp.ClientConnectionError, TimeoutError):
                return True
            await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_lets_an_in_flight_call_finish_then_exits_0(
    start_service, slow_plugin_path, workers
):
    service = await start_service(
        "--workers", workers, PYTHONPATH=str(slow_plugin_path)
    )
    execute = f"{service.url}/v1/projects/p1/datasources/execute"

    async with aiohttp.ClientSession(headers=AUTH) as session:
        call = asyncio.create_task(session.post(execute, json=sleep_call(3.0)))
        await asyncio.sleep(0.7)
        sent_at = time.monotonic()
        service.terminate()

        # The listening socket closes soon (a worker notices within a second), while the call
        # is still running.
        assert await refused_within(f"{service.url}/health", 2.0)
        assert not call.done()
        async with await asyncio.wait_for(call, 10) as response:
            body = await response.json()

    assert response.status == 200, body
    assert body["data"] == {"slept": 3.0}
    assert await service.wait_exit(timeout=15) == 0
    assert time.monotonic() - sent_at < 10
    stopping = service.events("service.stopping")
    assert len(stopping) == int(workers)
    assert [r["exitCode"] for r in service.events("service.stopped")] == [0]


async def test_a_second_signal_stops_at_once_without_waiting_for_the_drain(
    start_service, slow_plugin_path
):
    service = await start_service(PYTHONPATH=str(slow_plugin_path))
    execute = f"{service.url}/v1/projects/p1/datasources/execute"

    async with aiohttp.ClientSession(headers=AUTH) as session:
        call = asyncio.create_task(session.post(execute, json=sleep_call(20.0)))
        await asyncio.sleep(0.7)
        service.terminate()
        await asyncio.sleep(0.5)
        sent_at = time.monotonic()
        service.terminate()

        assert await service.wait_exit(timeout=10) == 1
        assert time.monotonic() - sent_at < 5
        call.cancel()

    [forced] = [e for e in service.events("service.stopping") if e.get("forced")]
    assert "second signal" in forced["message"]
    assert [r["exitCode"] for r in service.events("service.stopped")] == [1]


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_handler_ignoring_every_cancellation_holds_neither_answer_nor_shutdown(
    start_service, slow_plugin_path, workers
):
    service = await start_service(
        "--workers",
        workers,
        PYTHONPATH=str(slow_plugin_path),
        RUNTIME_BACKEND_REQUEST_TIMEOUT_MS="1000",
    )
    execute = f"{service.url}/v1/projects/p1/datasources/execute"
    call = {**sleep_call(30.0), "operation": "stubborn"}

    async with aiohttp.ClientSession(headers=AUTH) as session:
        sent_at = time.monotonic()
        async with session.post(execute, json=call) as response:
            assert response.status == 504
            assert (await response.json())["error"]["code"] == "TIMEOUT"
        assert time.monotonic() - sent_at < 2

    sent_at = time.monotonic()
    service.terminate()
    assert await service.wait_exit(timeout=20) == 0
    assert time.monotonic() - sent_at < 8
    assert service.events("plugin.handler_outlived_cancellation")


async def test_sigterm_without_calls_in_flight_exits_promptly(start_service):
    service = await start_service()
    sent_at = time.monotonic()
    service.terminate()

    assert await service.wait_exit(timeout=10) == 0
    assert time.monotonic() - sent_at < 3
    assert service.events("service.started") and service.events("service.stopped")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_the_event_loop_is_the_one_asked_for(start_service, loop):
    service = await start_service(RUNTIME_BACKEND_EVENT_LOOP=loop)

    (started,) = service.events("service.started")
    assert started["eventLoop"] == loop  # the running loop's own package
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{service.url}/health") as response:
            assert response.status == 200


class Forwarder:
    """A TCP forwarder on a fixed port, started late: the database "comes back"."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._pipe_both, "127.0.0.1", self.port
        )

    async def _pipe_both(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer)
        )

    @staticmethod
    async def _pipe(reader, writer) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.1)


def todo_call() -> dict:
    return {
        "dataSource": {
            "type": "db",
            "name": "todos",
            "table": "todos",
            "fields": [{"name": "title", "type": "string"}],
        },
        "operation": "list",
        "params": {},
    }


async def test_unreachable_database_starts_not_ready_then_recovers(
    start_service, database_url, project_id
):
    if not db_plugin_installed():
        pytest.skip("the db plugin is not installed")
    real = urlsplit(database_url)
    if not real.hostname or real.hostname.startswith("/"):
        pytest.skip(
            "the test database is reached over a unix socket; a TCP one is needed"
        )

    port = free_port()
    url = real._replace(
        netloc=f"{real.username or 'postgres'}@127.0.0.1:{port}"
    ).geturl()
    service = await start_service(DATABASE_URL=url)
    execute = f"{service.url}/v1/projects/{project_id}/datasources/execute"
    forwarder = Forwarder(port, (real.hostname, real.port or 5432))

    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(f"{service.url}/ready") as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "DB_UNAVAILABLE"
            async with session.post(execute, json=todo_call()) as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "DB_UNAVAILABLE"

            await forwarder.start()
            deadline = time.monotonic() + 20
            while True:
                async with session.get(f"{service.url}/ready") as response:
                    if response.status == 200:
                        break
                assert time.monotonic() < deadline, "never became ready"
                await asyncio.sleep(0.2)
            async with session.post(execute, json=todo_call()) as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["data"] == []
    finally:
        service.kill()
        await forwarder.close()


async def test_embedded_postgres_that_cannot_start_stops_start_up_with_exit_1(tmp_path):
    if not db_plugin_installed():
        pytest.skip("the db plugin is not installed")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = clean_environ(
        RUNTIME_BACKEND_AUTH_TOKEN=TOKEN, LOWCODE_DATA_DIR=str(blocker / "data")
    )
    service = Service(tmp_path, env).start()
    try:
        assert await service.wait_exit(timeout=20) == 1
    finally:
        service.kill()
    assert "set DATABASE_URL" in service.events("service.resource_failed")[0]["message"]


@pytest.mark.parametrize(
    ("host", "written"),
    [
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("0.0.0.0", "0.0.0.0"),
        ("localhost", "localhost"),
    ],
)
def test_the_listening_line_writes_the_host_as_a_url_does(host, written):
    from lowcode_runtime.server import _url_host

    assert _url_host(host) == written
