"""Fuzzing what the core parses: bodies of the execute route never get anything but a 4xx."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from lowcode_runtime import errors
from lowcode_runtime.app import create_app
from lowcode_runtime.config import Settings
from lowcode_runtime.dispatch import _execute_schema, plainly_valid
from lowcode_runtime.plugins import build_plugin_manager
from lowcode_runtime.requests import parse_strict_json
from tests.conftest import TOKEN
from tests.support import EchoPlugin

CONTRACT_CODES = {
    "INVALID_JSON",
    "VALIDATION_FAILED",
    "UNKNOWN_DATASOURCE_TYPE",
    "UNSUPPORTED_OPERATION",
    "PAYLOAD_TOO_LARGE",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "dataSource": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["echo", "nope", ""])
                        | st.text(max_size=5),
                        "name": json_values,
                    },
                    optional={"greeting": json_values},
                ),
            ),
            "operation": st.sampled_from(["echo", "list", "x"]) | json_values,
        },
        optional={"params": json_values},
    ),
)


class ServerThread:
    """The production app on a loopback port, served from its own thread and loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        pm = build_plugin_manager(
            load_entry_points=False, extra_plugins=(("e", EchoPlugin()),)
        )
        app = create_app(Settings(auth_token=TOKEN, rate_limit_max=10**9), pm)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def post(self, raw: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/projects/fuzz/datasources/execute",
            data=raw,
            method="POST",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server():
    thread = ServerThread()
    thread.start()
    yield thread
    thread.stop()


@given(st.binary(max_size=200))
def test_strict_json_parser_only_accepts_or_refuses(raw):
    try:
        parse_strict_json(raw)
    except errors.InvalidJson as e:
        assert e.status == 400


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_execute_answers_every_body_with_a_contract_code(server, body):
    status, answer = server.post(json.dumps(body).encode())
    if status == 200:
        assert answer["ok"] is True
        return
    assert 400 <= status < 500, answer
    assert answer["ok"] is False and answer["error"]["code"] in CONTRACT_CODES
    if answer["error"]["code"] == "VALIDATION_FAILED":
        assert all({"path", "message"} <= set(d) for d in answer["error"]["details"])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100))
def test_execute_answers_raw_bytes_without_a_fault(server, raw):
    status, answer = server.post(raw)
    assert status in (200, 400), answer


def assert_loads_alike(body):
    fast = plainly_valid(body) if isinstance(body, dict) else None
    try:
        expected = _execute_schema.load(body)
    except ValidationError:
        assert fast is None
        return
    assert fast is None or fast == expected


@settings(max_examples=300)
@given(bodies)
def test_a_plainly_valid_body_loads_as_the_schema_loads_it(body):
    assert_loads_alike(body)


@pytest.mark.parametrize(
    "change",
    [
        {"operation": "o" * 100},
        {"operation": "o" * 101},
        {"operation": ""},
        {"dataSource": {"type": "t" * 100, "name": "n" * 200, "extra": [1]}},
        {"dataSource": {"type": "t" * 101, "name": "n"}},
        {"dataSource": {"type": "t", "name": "n" * 201}},
        {"dataSource": {"type": "t"}},
        {"dataSource": None},
        {"params": None},
        {"params": []},
        {"unknown": 1},
    ],
)
def test_plainly_valid_bodies_at_the_edges(change):
    body = {"dataSource": {"type": "t", "name": "n"}, "operation": "o", **change}
    assert_loads_alike(body)
