"""Reading request bodies: strict JSON (RFC 8259) within the body limit."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lowcode_runtime import errors
from lowcode_runtime.keys import SETTINGS


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_strict_json(raw: bytes) -> Any:
    """Parse ``raw`` as RFC 8259 JSON: ``NaN``/``Infinity`` and bad UTF-8 are rejected."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise errors.InvalidJson("request body is not UTF-8 encoded JSON") from e
    except (ValueError, RecursionError) as e:
        reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise errors.InvalidJson(f"request body is not valid JSON: {reason}") from e


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past the limit, 400 for anything that is not JSON."""
    limit = request.app[SETTINGS].body_limit_bytes
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise errors.PayloadTooLarge(
            f"request body is over the limit of {limit} bytes"
        ) from e
    if len(raw) > limit:
        raise errors.PayloadTooLarge(f"request body is over the limit of {limit} bytes")

    body = parse_strict_json(raw)
    if not isinstance(body, dict):
        raise errors.ValidationFailed(
            "request body must be a JSON object",
            [{"path": "$", "message": "expected an object"}],
        )
    return body
