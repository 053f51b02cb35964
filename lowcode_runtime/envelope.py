"""The response envelope of API.md section 3, built in one place for every answer."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import orjson
from aiohttp import web

from lowcode_runtime.errors import RuntimeBackendError

# Keys the core keeps on each request (aiohttp requests are mutable mappings).
STARTED_AT = web.RequestKey("started_at", float)
TRACE_ID = web.RequestKey("trace_id", str)
REQUEST_ID = web.RequestKey("request_id", str)
CALL_META = web.RequestKey("call_meta", dict)


_STDLIB_TYPES_ONLY = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _stdlib_dumps(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode()


def encode(value: Any) -> bytes:
    """The body of an answer: compact UTF-8 JSON, with the standard library's rules.

    orjson writes it about ten times faster, but where the two differ the standard library's
    answer stands: an integer past 64 bits or a lone surrogate (orjson refuses them), and a
    NaN or infinite float, which orjson would write as ``null`` and the standard library
    refuses (a plugin's fault, answered 500). Only a body holding ``null`` can hide one.
    Subclasses, dates and dataclasses go to the standard library too (which refuses the
    last two); a uuid or an enum member is the one thing orjson writes that it would refuse.
    """
    try:
        body = orjson.dumps(value, option=_STDLIB_TYPES_ONLY)
    except TypeError:
        return _stdlib_dumps(value)
    if b"null" in body and _holds_non_finite(value):
        return _stdlib_dumps(value)
    return body


def _holds_non_finite(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return True
    return False


def json_answer(value: Any, status: int) -> web.Response:
    return web.Response(
        body=encode(value),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


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
    return json_answer(body, status)


def error_response(request: web.Request, error: RuntimeBackendError) -> web.Response:
    # An error may add to meta (the rest plugin sets ``redacted`` on an echoed secret).
    body = {
        "ok": False,
        "error": error.to_dict(),
        "meta": _merged_meta(request, error.meta),
    }
    return json_answer(body, error.status)
