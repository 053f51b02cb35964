"""Outbound HTTP: one way to build an ``aiohttp.ClientSession`` that carries the trace id.

Every session the service opens towards an upstream or the secrets API comes from
:func:`make_session`, so the caller's ``x-trace-id`` (API.md section 4) reaches every hop,
redirects included: aiohttp runs client middlewares once per request it sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from lowcode_runtime.context import current_trace_id

TRACE_HEADER = "x-trace-id"


async def trace_middleware(
    request: ClientRequest, handler: ClientHandlerType
) -> ClientResponse:
    """Set the current request's trace id, over any a definition wrote: the trace must hold."""
    trace_id = current_trace_id()
    if trace_id:
        request.headers[TRACE_HEADER] = trace_id
    return await handler(request)


def make_session(
    *,
    connector: aiohttp.BaseConnector | None = None,
    middlewares: Sequence[Any] = (),
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """A client session with the trace middleware first; call it inside the running loop.

    ``trust_env`` stays off: a proxy from the environment would bypass the egress checks.
    """
    return aiohttp.ClientSession(
        connector=connector,
        middlewares=(trace_middleware, *middlewares),
        trust_env=False,
        **kwargs,
    )
