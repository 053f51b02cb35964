"""Outbound HTTP: one way to build an ``aiohttp.ClientSession`` that carries the trace id.

Every session the service opens towards an upstream or the secrets API comes from
:func:`make_session`, so the caller's ``x-trace-id`` (API.md section 4) reaches every hop,
redirects included: aiohttp runs client middlewares once per request it sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from lowcode_runtime.context import current_trace_id

TRACE_HEADER = "x-trace-id"


async def trace_middleware(
    request: ClientRequest, handler: ClientHandlerType
) -> ClientResponse:
    """Set the current request's trace id, over any a definition wrote: the trace must hold."""
    _set_trace_header(request)
    return await handler(request)


def _set_trace_header(request: ClientRequest) -> None:
    trace_id = current_trace_id()
    if trace_id:
        request.headers[TRACE_HEADER] = trace_id


RequestCheck = Callable[[ClientRequest], None]
"""Runs before each request a session sends (every redirect hop too); raises to refuse it."""


def make_session(
    *,
    connector: aiohttp.BaseConnector | None = None,
    middlewares: Sequence[Any] = (),
    checks: Sequence[RequestCheck] = (),
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """A client session with the trace middleware first; call it inside the running loop.

    ``checks`` run in that same middleware, after the trace id is set: a check needs no
    middleware level of its own, which is awaited again each time the request resumes.
    ``trust_env`` stays off: a proxy from the environment would bypass the egress checks.
    """
    first = trace_middleware if not checks else _checked_trace_middleware(tuple(checks))
    return aiohttp.ClientSession(
        connector=connector,
        middlewares=(first, *middlewares),
        trust_env=False,
        **kwargs,
    )


def _checked_trace_middleware(checks: tuple[RequestCheck, ...]) -> Any:
    async def checked_trace_middleware(
        request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        _set_trace_header(request)
        for check in checks:
            check(request)
        return await handler(request)

    return checked_trace_middleware
