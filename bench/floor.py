"""The floor of our stack: a bare aiohttp + aiopg handler running the service's SQL.

    python -m bench.floor --port P    (the bench starts it; settings in BENCH_* variables)

It answers the same path and body as the service's execute route, parses the body with the
standard ``json`` module, runs the statement the service would run (``BENCH_STATEMENTS``) on a
pool of the service's size, and answers a similar envelope. No auth, no validation, no logs,
no metrics: what is left is the cost of aiohttp, aiopg and json themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from decimal import Decimal
from typing import Any

import aiopg
from aiohttp import web

POOL = web.AppKey("pool", aiopg.Pool)
STATEMENTS = web.AppKey("statements", dict)


def arguments(operation: str, params: dict[str, Any]) -> list[Any]:
    """The bound values of one call, in the order of the service's statement."""
    if operation == "get":
        return [params["id"]]
    if operation == "list":
        return [
            params["filter"]["category"],
            params.get("limit", 50) + 1,
            params.get("offset", 0),
        ]
    values = params["values"]
    return [values["title"], values["category"], values["price"]]


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


async def execute(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    operation, params = body["operation"], body.get("params") or {}
    statement = request.app[STATEMENTS][operation]

    async with request.app[POOL].acquire() as connection, connection.cursor() as cursor:
        await cursor.execute(statement, arguments(operation, params))
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    meta: dict[str, Any] = {"requestId": uuid.uuid4().hex, "operation": operation}
    if operation == "list":
        limit = params.get("limit", 50)
        meta["page"] = {"limit": limit, "offset": 0, "hasMore": len(rows) > limit}
        data: Any = rows[:limit]
    elif not rows:
        answer = {"ok": False, "error": {"code": "NOT_FOUND", "message": "no such row"}}
        return web.json_response(answer, status=404)
    else:
        data = rows[0]
    text = json.dumps({"ok": True, "data": data, "meta": meta}, default=_json_value)
    return web.Response(text=text, content_type="application/json")


async def open_pool(app: web.Application) -> Any:
    app[POOL] = await aiopg.create_pool(
        os.environ["BENCH_DSN"], minsize=0, maxsize=int(os.environ["BENCH_POOL_MAX"])
    )
    yield
    app[POOL].close()
    await app[POOL].wait_closed()


def make_app() -> web.Application:
    app = web.Application()
    app[STATEMENTS] = json.loads(os.environ["BENCH_STATEMENTS"])
    app.cleanup_ctx.append(open_pool)
    app.router.add_post("/v1/projects/{projectId}/datasources/execute", execute)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    web.run_app(make_app(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
