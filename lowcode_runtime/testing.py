"""pytest fixtures for plugin authors, published as a pytest plugin (entry point ``pytest11``).

Installing lowcode-runtime with its extra ``testing`` (pytest, pytest-aiohttp and
pytest-timeout; ``pip install '<checkout, wheel or git URL>[testing]'``) makes these fixtures
available in any test suite, with no ``conftest.py``:

- ``lowcode_settings(**overrides, secrets=None)``: a :class:`Settings` with a service token;
  ``secrets={"project": {"NAME": "value"}}`` serves those secrets through ``SECRETS_FILE``.
  The overrides are ``Settings`` field names (``egress_allow=("127.0.0.1",)``), listed in
  ``SETTINGS_FIELDS``; another name is a ``TypeError`` that lists them.
- ``lowcode_client(settings=None, extra_plugins=(), **overrides)``: the production app, with
  every installed plugin, behind an aiohttp test client that sends the token.
  ``extra_plugins`` are ``(name, plugin)`` pairs, reported as distribution ``name``.
- ``lowcode_upstream(app)``: an aiohttp application served on loopback; ``.url(path)``.
- ``lowcode_logs``: every log line of the test as the JSON sink writes it (masking included).

Give ``egress_allow=("127.0.0.1",)`` to reach a loopback upstream: the egress policy blocks it
otherwise, as it would in production. Needs ``asyncio_mode = "auto"`` and
``asyncio_default_fixture_loop_scope = "function"`` in the suite's pytest configuration.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from lowcode_runtime.app import create_app
from lowcode_runtime.config import Settings
from lowcode_runtime.logs import flush_logs, setup_logging
from lowcode_runtime.plugins import build_plugin_manager
from lowcode_runtime.types import PluginInfo

__all__ = [
    "EXECUTE_PATH",
    "SETTINGS_FIELDS",
    "TEST_TOKEN",
    "Answer",
    "LogCapture",
    "RuntimeClient",
    "Upstream",
    "lowcode_client",
    "lowcode_logs",
    "lowcode_settings",
    "lowcode_upstream",
]

TEST_TOKEN = "lowcode-test-service-token-0123456789abcdef"
EXECUTE_PATH = "/v1/projects/{project}/datasources/execute"
# What ``lowcode_settings`` and ``lowcode_client`` take as ``**overrides``.
SETTINGS_FIELDS = tuple(f.name for f in fields(Settings))
# The version reported for an ``extra_plugins`` entry, which comes from no distribution.
EXTRA_PLUGIN_VERSION = "unknown"


def _no_headers() -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict())


@dataclass
class Answer:
    """An answer of the service: its HTTP status, the envelope and the response headers."""

    status: int
    body: dict[str, Any]
    headers: CIMultiDictProxy[str] = field(default_factory=_no_headers)

    @property
    def data(self) -> Any:
        assert self.body["ok"] is True, self.body
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        assert self.body["ok"] is False, self.body
        return self.body["error"]


class RuntimeClient:
    """The service under test; every request carries the service token."""

    def __init__(self, http: TestClient[Any, Any], token: str) -> None:
        self.http = http
        self.auth = {"Authorization": f"Bearer {token}"}

    async def execute(
        self,
        data_source: Mapping[str, Any],
        operation: str,
        params: Mapping[str, Any] | None = None,
        project: str = "test-project",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One call of the execute route, answered as :class:`Answer`."""
        body: dict[str, Any] = {"dataSource": dict(data_source), "operation": operation}
        if params is not None:
            body["params"] = dict(params)
        response = await self.http.post(
            EXECUTE_PATH.format(project=project),
            json=body,
            headers={**self.auth, **(headers or {})},
        )
        return Answer(response.status, await response.json(), response.headers)

    async def get(self, path: str) -> Answer:
        response = await self.http.get(path, headers=self.auth)
        return Answer(response.status, await response.json(), response.headers)


class Upstream:
    """A loopback server for a plugin's outbound calls."""

    def __init__(self, server: TestServer) -> None:
        self.server = server

    def url(self, path: str = "/") -> URL:
        return self.server.make_url(path)


class LogCapture:
    """The JSON log lines written while it is installed."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        flush_logs()  # lines of the running event-loop turn are still held by the sink
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]


@pytest.fixture
def lowcode_settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory of settings with the test token; ``secrets=`` writes a ``SECRETS_FILE``."""

    def make(secrets: Mapping[str, Mapping[str, str]] | None = None, **overrides: Any):
        unknown = sorted(set(overrides) - set(SETTINGS_FIELDS))
        if unknown:
            raise TypeError(
                f"unknown Settings field(s) {', '.join(unknown)}; "
                f"the fields are {', '.join(SETTINGS_FIELDS)}"
            )
        if secrets is not None:
            path = tmp_path / "lowcode-secrets.json"
            path.write_text(json.dumps(secrets))
            overrides.setdefault("secrets_file", str(path))
        return Settings(auth_token=TEST_TOKEN, log_level="debug").replace(**overrides)

    return make


@pytest.fixture
def lowcode_client(
    aiohttp_client: Any, lowcode_settings: Callable[..., Settings]
) -> Callable[..., Awaitable[RuntimeClient]]:
    """A factory of :class:`RuntimeClient` over ``create_app`` with the installed plugins."""

    async def make(
        settings: Settings | None = None,
        extra_plugins: tuple[tuple[str, Any], ...] = (),
        **overrides: Any,
    ) -> RuntimeClient:
        settings = settings or lowcode_settings(**overrides)
        pm = build_plugin_manager(extra_plugins=extra_plugins)
        for name, _ in extra_plugins:
            # Named in messages as the test named it, not as part of lowcode-runtime.
            pm.distributions[name] = PluginInfo(name=name, version=EXTRA_PLUGIN_VERSION)
        http = await aiohttp_client(create_app(settings, pm))
        return RuntimeClient(http, settings.auth_token or "")

    return make


@pytest.fixture
def lowcode_upstream(
    aiohttp_server: Any,
) -> Callable[[web.Application], Awaitable[Upstream]]:
    """A factory serving an aiohttp application on 127.0.0.1 for the test's duration."""

    async def make(app: web.Application) -> Upstream:
        return Upstream(await aiohttp_server(app, host="127.0.0.1"))

    return make


@pytest.fixture
def lowcode_logs() -> Iterator[LogCapture]:
    """Every log line of the test; logging returns to warnings on stderr afterwards."""
    capture = LogCapture()
    setup_logging("trace", "json", stream=capture.stream)
    yield capture
    setup_logging("warning", "json")
