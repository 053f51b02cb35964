"""The response envelope of API.md section 3, built in one place for every answer."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from lowcode_runtime.errors import RuntimeBackendError

# Keys the core keeps on each request (aiohttp requests are mutable mappings).
STARTED_AT = web.RequestKey("started_at", float)
TRACE_ID = web.RequestKey("trace_id", str)
REQUEST_ID = web.RequestKey("request_id", str)
CALL_META = web.RequestKey("call_meta", dict)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def base_meta(request: web.Request) -> dict[str, Any]:
    """``traceId``, ``requestId``, ``durationMs`` and, for calls, the dataSource fields."""
    started = request.get(STARTED_AT, time.monotonic())
    meta: dict[str, Any] = {
        "traceId": request.get(TRACE_ID),
        "requestId": request.get(REQUEST_ID),
        "durationMs": round((time.monotonic() - started) * 1000, 3),
    }
    meta.update(request.get(CALL_META, {}))
    return meta


def _merged_meta(request: web.Request, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The core's fields, then a plugin's; a plugin cannot replace ``traceId`` and the rest."""
    meta = base_meta(request)
    for key, value in (extra or {}).items():
        meta.setdefault(key, value)
    return meta


def ok_response(
    request: web.Request,
    data: Any,
    meta: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    body = {"ok": True, "data": data, "meta": _merged_meta(request, meta)}
    return web.json_response(body, status=status, dumps=_dumps)


def error_response(request: web.Request, error: RuntimeBackendError) -> web.Response:
    # An error may add to meta (the rest plugin sets ``redacted`` on an echoed secret).
    body = {
        "ok": False,
        "error": error.to_dict(),
        "meta": _merged_meta(request, error.meta),
    }
    return web.json_response(body, status=error.status, dumps=_dumps)
