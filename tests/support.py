"""Small in-process plugins for core tests: an echo type and a type whose handler sleeps."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields

from lowcode_runtime import Call, DataSourceType, Result, hookimpl
from lowcode_runtime.logs import logger
from lowcode_runtime.masking import register_secret


class EchoDefinition(Schema):
    greeting = fields.String(load_default="hello")


class EchoParams(Schema):
    value = fields.Raw(required=True)
    count = fields.Integer(load_default=1)


class SleepParams(Schema):
    seconds = fields.Float(required=True)


class NoParams(Schema):
    pass


class EchoPlugin:
    """``echo``: returns its params; ``sleep``: sleeps, recording whether it was cancelled."""

    def __init__(self, cancels_promptly: bool = False) -> None:
        self.definition_schema: Schema = EchoDefinition()
        self.cancels_promptly = cancels_promptly
        self.cancelled = asyncio.Event()
        self.remaining_seen: list[float] = []
        self.calls: list[Call] = []
        self.tasks: list[asyncio.Task[object] | None] = []

    @hookimpl
    def register_datasource_types(self) -> list[DataSourceType]:
        return [
            DataSourceType(
                name="echo",
                definition_schema=self.definition_schema,
                operations={
                    "echo": EchoParams(),
                    "sleep": SleepParams(),
                    "leak": EchoParams(),
                    "crash": NoParams(),
                    "stubborn": SleepParams(),
                    "spoof": NoParams(),
                },
                handler=self.handle,
                cancels_promptly=self.cancels_promptly,
            )
        ]

    async def handle(self, call: Call) -> Result:
        self.calls.append(call)
        self.tasks.append(asyncio.current_task())
        self.remaining_seen.append(call.deadline.remaining())
        if call.operation == "sleep":
            try:
                await asyncio.sleep(call.params["seconds"])
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return Result({"slept": call.params["seconds"]})
        if call.operation == "leak":
            # A plugin that logs and fails with a secret in every text it can reach.
            secret = str(call.params["value"])
            register_secret(secret)
            logger.bind(event="test.leak", secretField=secret).info(
                f"got secret {secret}"
            )
            raise RuntimeError(f"failure carrying {secret}")
        if call.operation == "crash":
            raise ZeroDivisionError("boom")
        if call.operation == "stubborn":
            # Swallows its cancellation and answers late: the deadline must still hold.
            try:
                await asyncio.sleep(call.params["seconds"])
            except asyncio.CancelledError:
                self.cancelled.set()
            return Result({"late": True})
        if call.operation == "spoof":
            return Result(
                None, meta={"traceId": "spoofed", "durationMs": "abc", "extra": 1}
            )
        return Result(
            {"greeting": call.definition["greeting"], "value": call.params["value"]},
            meta={"redacted": False},
        )


class DuplicateEcho:
    @hookimpl
    def register_datasource_types(self) -> list[DataSourceType]:
        return [
            DataSourceType(
                name="echo",
                definition_schema=EchoDefinition(),
                operations={},
                handler=EchoPlugin().handle,
            )
        ]


def write_distribution(
    site: Path, dist_name: str, module: str, source: str, entry_name: str | None = None
) -> None:
    """Install a one-module distribution into ``site`` the way pip lays it out: module + dist-info.

    Its entry point in ``lowcode_runtime.plugins`` is real metadata that importlib finds.
    """
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist_name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.2.3\n"
    )
    (info / "entry_points.txt").write_text(
        f"[lowcode_runtime.plugins]\n{entry_name or module} = {module}\n"
    )
    (info / "RECORD").write_text("")


def envelope_ok(body: dict[str, Any]) -> Any:
    assert body["ok"] is True, body
    return body["data"]


class SilentRedis:
    """Accepts connections and reads every byte, never answers: a Redis behind a black hole."""

    def __init__(self) -> None:
        self.received = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _swallow(self, reader, writer) -> None:
        while chunk := await reader.read(4096):
            self.received += len(chunk)
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
