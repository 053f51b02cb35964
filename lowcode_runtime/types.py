"""The shapes a dataSource plugin deals in: the type it contributes, the call it gets, the result.

A plugin builds a :class:`DataSourceType` in ``register_datasource_types``; the core validates
the definition and params with the schemas it names, then awaits ``handler(call)`` with a
:class:`Call` and wraps the :class:`Result` in the response envelope.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from marshmallow import Schema

if TYPE_CHECKING:
    from aiohttp import web

    from lowcode_runtime.config import Settings


@dataclass(frozen=True)
class Deadline:
    """The end of the request's time budget, on the monotonic clock."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


class SecretsSource(Protocol):
    """What a handler uses to read the calling project's secrets (section 8)."""

    async def get(self, project_id: str) -> Mapping[str, str]: ...


@dataclass
class Call:
    """One dataSource call, validated, as a plugin's handler receives it."""

    project_id: str
    name: str
    type: str
    operation: str
    definition: dict[str, Any]
    params: dict[str, Any]
    deadline: Deadline
    trace_id: str
    request_id: str
    settings: Settings
    app: web.Application
    secrets: SecretsSource


@dataclass
class Result:
    """What a handler returns: ``data`` for the envelope, ``meta`` merged into its ``meta``.

    ``meta`` may hold ``page``, ``upstream`` and ``redacted`` (API.md section 3).
    """

    data: Any
    meta: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Result]]
ParamsCheck = Callable[[str, dict[str, Any], dict[str, Any]], list[dict[str, str]]]


@dataclass(frozen=True)
class DataSourceType:
    """A dataSource type a plugin contributes.

    ``definition_schema`` loads the ``dataSource`` object (``type`` and ``name`` removed);
    ``operations`` maps each operation name to the schema of its ``params``.
    ``check_params(operation, definition, params)``, when given, returns the violations of the
    raw params that only the loaded definition can tell (e.g. unknown field names). The core
    calls it when the definition loaded but the params schema refused the params, so one
    answer lists both; on the success path the handler checks those itself.

    ``cancels_promptly``: the handler ends at once when cancelled and never swallows a
    cancellation, so the core awaits it in the request's task instead of a task of its own
    (about 13 µs a call less). Leave it off unless every await of the handler is sure of it.
    """

    name: str
    definition_schema: Schema
    operations: Mapping[str, Schema]
    handler: Handler
    description: str = ""
    check_params: ParamsCheck | None = None
    cancels_promptly: bool = False


@dataclass(frozen=True)
class PluginInfo:
    """The distribution that provides a plugin, as ``/v1/plugins`` lists it."""

    name: str
    version: str
