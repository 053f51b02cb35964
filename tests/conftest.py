"""Fixtures shared by every test: settings, an app client built by the production factory, logs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lowcode_runtime.app import create_app
from lowcode_runtime.config import Settings
from lowcode_runtime.logs import setup_logging
from lowcode_runtime.plugins import build_plugin_manager
from lowcode_runtime.testing import LogCapture

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.upstream"]

TOKEN = "test-service-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return Settings(auth_token=TOKEN, log_level="debug").replace(**overrides)

    return make


@pytest.fixture
def make_client(aiohttp_client, make_settings) -> Callable[..., Awaitable[Any]]:
    """An aiohttp test client of ``create_app``; extra plugins are ``(name, plugin)`` pairs."""

    async def make(
        settings: Settings | None = None,
        extra_plugins: tuple[tuple[str, Any], ...] = (),
        load_entry_points: bool = True,
        **overrides: Any,
    ):
        settings = settings or make_settings(**overrides)
        pm = build_plugin_manager(
            load_entry_points=load_entry_points, extra_plugins=extra_plugins
        )
        return await aiohttp_client(create_app(settings, pm))

    return make


@pytest.fixture(autouse=True, scope="session")
def quiet_logs():
    """Outside the ``logs`` fixture, only warnings and errors reach the test output."""
    setup_logging("warning", "json")


@pytest.fixture
def logs() -> LogCapture:
    """Every log line of the test, as the JSON sink writes it (masking included)."""
    capture = LogCapture()
    setup_logging("trace", "json", stream=capture.stream)
    yield capture
    setup_logging("warning", "json")
