"""What each per-call extra costs, in microseconds: each piece timed alone, in a loop.

    python -m bench.costs [--loops N]

The pieces are the production functions, called as a warm ``db`` call calls them (the same
body, definition and rows as a get by id and a list of 50), then the ``rest`` call's own work
around its exchange (the bench's definition and 20-item answer). Each is run ``loops`` times, five
times over; the fastest of the five is kept, since other work on the machine only ever adds.
Where a piece has a fast path and a fallback, both are timed (``before`` is the standard
library's way, which the fast path replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import decimal
import hashlib
import io
import json
import re
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from aiocache import Cache
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from marshmallow import Schema
from multidict import CIMultiDict, CIMultiDictProxy

from lowcode_db import queries
from lowcode_db.model import TablesByDefinition, build_table
from lowcode_db.queries import BUILDERS, Query, read_rows
from lowcode_db.schema import DefinitionSchema, operation_schemas
from lowcode_db.values import (
    _loader,
    checked_decimal,
    load_value,
)
from lowcode_rest.request import build_request
from lowcode_rest.response import to_result
from lowcode_rest.schema import RequestParamsSchema, RestDefinitionSchema
from lowcode_runtime import (
    context,
    dispatch,
    envelope,
    masking,
    metrics,
    middleware,
    redact,
    upstream,
)
from lowcode_runtime.config import Settings
from lowcode_runtime.egress import EgressPolicy
from lowcode_runtime.handler_tasks import run_handler, setup_handler_tasks
from lowcode_runtime.logs import flush_logs, logger, setup_logging
from lowcode_runtime.masking import MAX_REGISTERED, mask
from lowcode_runtime.plugins import RegisteredType, build_plugin_manager
from lowcode_runtime.ratelimit import RateLimiter
from lowcode_runtime.redact import Redactor
from lowcode_runtime.requests import _parse_with_stdlib, parse_strict_json
from lowcode_runtime.secrets import SecretsCache
from lowcode_runtime.shared_state import make_cache
from lowcode_runtime.templates import Context, secret_names
from lowcode_runtime.types import DataSourceType, Deadline, PluginInfo, Result
from lowcode_runtime.upstream import UpstreamAnswer
from tests.test_db_params import load_plainly_valid  # the way before ValuesLoader

TOKEN = "costs-token-0123456789abcdefghijkl"
DEFINITION = {
    "type": "db",
    "name": "items",
    "table": "items",
    "fields": [
        {"name": "title", "type": "string", "required": True},
        {"name": "price", "type": "decimal", "default": 0},
    ],
}
GET_BODY = {"dataSource": DEFINITION, "operation": "get", "params": {"id": 42}}
LIST_BODY = {"dataSource": DEFINITION, "operation": "list", "params": {"limit": 50}}
ROWS = [
    (i, f"item {i}", decimal.Decimal(i) * decimal.Decimal("1.5")) for i in range(51)
]
# The same rows as a connection of ``register_typecasters`` reads them (numeric as its text).
TEXT_ROWS = [(i, title, str(price)) for i, title, price in ROWS]
META = {"dataSource": "items", "type": "db", "operation": "get"}
SECRET = "API_TOKEN"
# The bench upstream's answer (bench/upstream.py).
UPSTREAM_BODY = json.dumps(
    [{"id": i, "title": f"item {i}", "price": f"{i}.50"} for i in range(20)]
).encode()


def timed(fn: Callable[[], Any], loops: int) -> float:
    """Microseconds per call of ``fn``: the fastest of five runs of ``loops`` calls."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / loops * 1e6


async def timed_async(fn: Callable[[], Awaitable[Any]], loops: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(loops):
            await fn()
        best = min(best, time.perf_counter() - started)
    return best / loops * 1e6


def _old_log_line(record_extra: dict[str, Any]) -> str:
    """The line as it was written before: each string masked, then the standard library."""

    def masked(value: Any) -> Any:
        if isinstance(value, str):
            return mask(value)
        if isinstance(value, dict):
            return {mask(str(k)): masked(v) for k, v in value.items()}
        return value

    return json.dumps(masked(record_extra), default=str, ensure_ascii=False)


async def measure(loops: int) -> list[tuple[str, float, str]]:
    results: list[tuple[str, float, str]] = []

    def add(name: str, micros: float, note: str = "") -> None:
        results.append((name, micros, note))

    # Ids and auth, as the tracing and security middlewares do them.
    add(
        "trace: accept x-trace-id + new request id",
        timed(lambda: (context.accept_trace_id("abc-123"), context.new_id()), loops),
    )
    request = make_mocked_request(
        "POST",
        "/v1/projects/bench/datasources/execute",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    add(
        "auth: bearer check",
        timed(lambda: middleware._authenticate(request, TOKEN), loops),
    )

    limiter = RateLimiter(None, 10**9, 60_000)
    add(
        "rate limit: one hit (in memory)",
        await timed_async(lambda: limiter.hit("project:bench"), loops),
    )
    through_aiocache = RateLimiter(make_cache(None, "costs"), 10**9, 60_000)
    add(
        "rate limit: one hit (aiocache's memory backend)",
        await timed_async(lambda: through_aiocache.hit("project:bench"), loops),
        "before",
    )
    timed_out = RateLimiter(Cache(Cache.MEMORY, namespace="old"), 10**9, 60_000)
    add(
        "rate limit: one hit (aiocache's 5 s timeout)",
        await timed_async(lambda: timed_out.hit("project:bench"), loops),
        "before",
    )

    async def nothing() -> None:
        return None

    async def bounded() -> None:
        deadline = Deadline.after(30.0)
        when = asyncio.get_running_loop().time() + deadline.remaining()
        async with asyncio.timeout_at(when):
            await nothing()

    task = asyncio.current_task()
    assert task is not None

    async def bounded_by_timer() -> None:
        # deadline_middleware's steps, with the task aiohttp hands it as request.task
        deadline = Deadline.after(30.0)
        task.cancelling()
        timer = middleware._DeadlineTimer(task, deadline)
        try:
            await nothing()
        finally:
            timer.cancel()

    add(
        "deadline: timer around the call",
        await timed_async(bounded_by_timer, loops),
    )
    add(
        "deadline: asyncio.timeout_at scope around the call",
        await timed_async(bounded, loops),
        "before",
    )

    async def statement() -> None:
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        loop.call_soon(answered.set_result, None)
        await answered

    async def statement_in_its_task() -> None:
        await asyncio.shield(asyncio.ensure_future(statement()))

    add(
        "db: a statement awaited in the caller's task",
        await timed_async(statement, loops),
    )
    add(
        "db: the same in a shielded task of its own",
        await timed_async(statement_in_its_task, loops),
        "before",
    )
    await _handler_costs(add, statement, loops)

    # Reading and validating the body.
    raw = json.dumps(GET_BODY).encode()
    add("body: parse (orjson)", timed(lambda: parse_strict_json(raw), loops))
    add(
        "body: parse (standard library)",
        timed(lambda: _parse_with_stdlib(raw), loops),
        "before",
    )
    add(
        "body: request shape (plainly valid)",
        timed(lambda: dispatch.plainly_valid(GET_BODY), loops),
    )
    add(
        "body: request shape (marshmallow schema)",
        timed(lambda: dispatch._execute_schema.load(GET_BODY), loops),
        "before",
    )

    cache = dispatch.DefinitionCache()
    ds_type = DataSourceType("db", DefinitionSchema(), operation_schemas(), _no_handler)
    definition = {k: v for k, v in DEFINITION.items() if k not in ("type", "name")}
    cache.load("db", ds_type, definition, [])
    add(
        "definition: warm cache lookup",
        timed(lambda: cache.load("db", ds_type, definition, []), loops),
    )
    schemas = operation_schemas()
    add(
        "params: get schema load", timed(lambda: schemas["get"].load({"id": 42}), loops)
    )
    list_params = {"filter": {"category": "c3"}, "sort": ["-id"], "limit": 50}
    add(
        "params: list schema load",
        timed(lambda: schemas["list"].load(list_params), loops),
    )
    add(
        "params: get schema load, marshmallow",
        timed(lambda: Schema.load(schemas["get"], {"id": 42}), loops),
        "before",
    )
    add(
        "params: list schema load, marshmallow",
        timed(lambda: Schema.load(schemas["list"], list_params), loops),
        "before",
    )

    # The db plugin's own work around its one statement.
    loaded = cache.load("db", ds_type, definition, [])
    tables = TablesByDefinition()
    add(
        "db: table + get statement",
        timed(
            lambda: BUILDERS["get"]("preview_bench", tables.get(loaded), {"id": 42}),
            loops,
        ),
    )
    add(
        "db: table (kept per definition dict)",
        timed(lambda: tables.get(loaded), loops),
    )
    add(
        "db: table (from its canonical JSON)",
        timed(lambda: build_table(loaded), loops),
        "before",
    )
    table = build_table(loaded)
    loaded_list = schemas["list"].load(
        {"filter": {"title": "item 3"}, "sort": ["-id"], "limit": 50}
    )
    create_params = {"values": {"title": "a", "price": "9.50"}}
    for operation, params in (("list", loaded_list), ("create", create_params)):
        add(
            f"db: {operation} statement (its shape's, cached)",
            timed(
                lambda o=operation, p=params: BUILDERS[o]("preview_bench", table, p),
                loops,
            ),
        )
        add(
            f"db: {operation} statement (built for the call)",
            timed(lambda o=operation, p=params: _built(o, table, p), loops),
            "before",
        )
    create_values = create_params["values"]
    add(
        "db: create values (steps laid out per table)",
        timed(lambda: table.values_loader(False).plainly_valid(create_values), loops),
    )
    add(
        "db: create values (each field's deserialize)",
        timed(
            lambda: load_plainly_valid(table.values_schema(False), create_values), loops
        ),
        "before",
    )
    add(
        "db: decimal value (plain digits)",
        timed(lambda: load_value("decimal", "9.50"), loops),
    )
    add(
        "db: decimal value (every check)",
        timed(lambda: checked_decimal("9.50"), loops),
        "before",
    )
    add(
        "db: get id (its field's own load)",
        timed(lambda: load_value("integer", 42), loops),
    )
    add(
        "db: get id (its field's deserialize)",
        timed(lambda: _loader("integer").deserialize(42), loops),
        "before",
    )
    list_query = BUILDERS["list"]("preview_bench", table, schemas["list"].load({}))
    get_query: Query = BUILDERS["get"]("preview_bench", table, {"id": 42})
    add(
        "db: rows to JSON (get, 1 row)",
        timed(lambda: read_rows(get_query, table, ROWS[:1]), loops),
    )
    add(
        "db: rows to JSON (list, 50 rows)",
        timed(lambda: read_rows(list_query, table, ROWS), loops),
    )
    add(
        "db: rows to JSON (list, 50 rows, numeric as text)",
        timed(lambda: read_rows(list_query, table, TEXT_ROWS), loops),
    )

    # The answer.
    get_data = read_rows(get_query, table, ROWS[:1])[0]
    list_data, list_meta = read_rows(list_query, table, ROWS)
    meta = {"traceId": "a" * 32, "requestId": "b" * 32, "durationMs": 1.234, **META}
    get_answer = {"ok": True, "data": get_data, "meta": meta}
    list_answer = {"ok": True, "data": list_data, "meta": {**meta, **list_meta}}
    for name, answer in (("get", get_answer), ("list", list_answer)):
        add(
            f"envelope: encode {name} (orjson)",
            timed(lambda answer=answer: envelope.encode(answer), loops),
        )
        add(
            f"envelope: encode {name} (standard library)",
            timed(lambda answer=answer: envelope._stdlib_dumps(answer), loops),
            "before",
        )

    # The call hooks, which no built-in plugin implements.
    pm = build_plugin_manager(load_entry_points=False)
    started_hook = pm.hook.datasource_call_started
    add(
        "hooks: a call hook no plugin implements, checked",
        timed(lambda: pm.implemented(started_hook) and started_hook(call=None), loops),
    )
    add(
        "hooks: the same, called",
        timed(lambda: started_hook(call=None), loops),
        "before",
    )

    # The call's metrics and its success line.
    labels = ("db", "get", "success")
    add(
        "metrics: call counter + duration + http counter",
        timed(
            lambda: (
                metrics.child(metrics.CALLS, *labels).inc(),
                metrics.child(metrics.CALL_DURATION, *labels).observe(0.0012),
                metrics.child(
                    metrics.HTTP_REQUESTS, "POST", dispatch.EXECUTE_PATH, 200
                ).inc(),
            ),
            loops,
        ),
    )

    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    tokens = context.trace_id_var.set("a" * 32), context.request_id_var.set("b" * 32)

    def log_line() -> None:
        dispatch._record({}, "bench", META, None, time.monotonic())
        flush_logs()  # in a loop's turn lines wait for its end: write this one now
        stream.seek(0)
        stream.truncate()

    add(
        "log: dataSource.call.success line (loguru + sink)",
        timed(log_line, loops),
        "metrics included",
    )
    extra = json.loads(stream.getvalue() or "{}")
    dispatch._record({}, "bench", META, None, time.monotonic())
    flush_logs()
    line = json.loads(stream.getvalue())
    add(
        "log: the same line's masking + encoding, before",
        timed(lambda: _old_log_line(line), loops),
        "before",
    )
    del extra

    # Values as secrets are: random, no common prefix for a pattern to start from.
    many = [
        base64.urlsafe_b64encode(
            hashlib.blake2b(b"%d" % n, digest_size=18).digest()
        ).decode()
        for n in range(MAX_REGISTERED)
    ]
    masking.register_secret(*many)
    add(
        f"log: the same line, {MAX_REGISTERED:,} secrets registered",
        timed(log_line, loops),
        "an automaton of them all",
    )
    everything = re.compile("|".join(re.escape(v) for v in sorted(many, key=len)[::-1]))
    text = "\n".join(str(value) for value in (*line, *line.values()))
    add(
        f"log: its scan for {MAX_REGISTERED:,} secrets as one pattern, before",
        timed(lambda: everything.search(text), max(loops // 200, 5)),
        "before",
    )
    masking.secrets.clear()

    add(
        "log: debug line skipped (debug off)",
        timed(lambda: logger.debug("skipped"), loops),
    )
    context.trace_id_var.reset(tokens[0])
    context.request_id_var.reset(tokens[1])
    setup_logging("warning", "json")
    await limiter.close()
    await timed_out.close()
    await through_aiocache.close()
    await _rest_costs(add, loops)
    return results


def _built(operation: str, table: Any, params: dict[str, Any]) -> Query:
    """A statement built as before the shape cache: from nothing, for every call."""
    queries.STATEMENTS = queries.StatementCache()
    return BUILDERS[operation]("preview_bench", table, params)


async def _rest_costs(add: Callable[..., None], loops: int) -> None:
    """The ``rest`` call's own work around its exchange, on the bench's 20-item answer."""
    definition = RestDefinitionSchema().load(
        {
            "url": "http://127.0.0.1:8080/items",
            "headers": {"Authorization": f"Bearer {{{{ secrets.{SECRET} }}}}"},
        }
    )
    used = {SECRET: "s3cr3t-0123456789abcdef"}
    add(
        "rest: secret names, walking the definition",
        timed(lambda: secret_names(definition), loops),
        "before",
    )
    params_schema = RequestParamsSchema()
    add("rest: params load (a copy)", timed(lambda: params_schema.load({}), loops))
    add(
        "rest: params load, marshmallow",
        timed(lambda: Schema.load(params_schema, {}), loops),
        "before",
    )
    add(
        "rest: build the request",
        timed(lambda: build_request(definition, Context({}, used)), loops),
    )
    add(
        "rest: redactor for the call's secrets (kept per set)",
        timed(lambda: Redactor(used.values()), loops),
    )
    add(
        "rest: the same, built each call",
        timed(lambda: redact._compiled.__wrapped__(frozenset(used.values())), loops),
        "before",
    )
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
    answer = UpstreamAnswer(200, headers, UPSTREAM_BODY, None, "application/json", 1.0)
    add(
        "rest: answer to result (parse, scan for secrets)",
        timed(lambda: to_result(answer, "auto", Redactor(used.values())), loops),
    )
    text = UPSTREAM_BODY.decode()
    add(
        "upstream: parse JSON (orjson)", timed(lambda: upstream.parse_json(text), loops)
    )
    add(
        "upstream: parse JSON (standard library)",
        timed(
            lambda: json.loads(text, parse_constant=upstream._refuse_constant), loops
        ),
        "before",
    )
    parsed = json.loads(text)
    add(
        "rest: redact by walking every string and number",
        timed(lambda: Redactor(used.values()).json(parsed), loops),
        "before",
    )
    policy = EgressPolicy(["127.0.0.1"])
    add(
        "egress: literal host check (kept per host)",
        timed(lambda: policy.check_literal("127.0.0.1"), loops),
    )
    add(
        "egress: literal host check, worked out",
        timed(lambda: policy._literal_verdict("127.0.0.1"), loops),
        "before",
    )

    class Provider:
        async def fetch(self, project_id: str) -> dict[str, str]:
            return used

        async def close(self) -> None:
            return None

    cache = SecretsCache(Provider(), Settings())
    await cache.get("bench")
    add(
        "secrets: warm read (kept entry)",
        await timed_async(lambda: cache.get("bench"), loops),
    )
    through = SecretsCache(Provider(), Settings())
    through._written = None  # as with Redis: every read goes through aiocache
    await through.get("bench")
    add(
        "secrets: warm read through aiocache",
        await timed_async(lambda: through.get("bench"), loops),
        "before",
    )
    await through.close()
    await cache.close()


async def _handler_costs(
    add: Callable[..., None], statement: Callable[[], Awaitable[None]], loops: int
) -> None:
    """``run_handler`` around a handler that awaits one statement, with and without the flag."""

    async def handler(call: Any) -> Result:
        await statement()
        return Result(None)

    app = web.Application()
    setup_handler_tasks(app)
    call: Any = SimpleNamespace(app=app)
    plugin = PluginInfo("lowcode-runtime", "bench")
    for prompt, name, note in (
        (True, "handler: awaited in the request's task (cancels_promptly)", ""),
        (False, "handler: in a shielded task of its own (the default)", "before"),
    ):
        ds_type = DataSourceType(
            "db", DefinitionSchema(), {}, handler, cancels_promptly=prompt
        )
        owner = RegisteredType(ds_type, plugin)
        add(name, await timed_async(_awaiting(run_handler, call, owner), loops), note)


def _awaiting(start: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Any]:
    """A coroutine function awaiting ``start(*args)``, as the execute route awaits it."""

    async def awaiting() -> None:
        await start(*args)

    return awaiting


async def _no_handler(call: Any) -> Result:
    return Result(None)


def report(results: list[tuple[str, float, str]]) -> str:
    width = max(len(name) for name, _, _ in results)
    lines = [f"{'piece':<{width}}  {'us/call':>8}  note"]
    for name, micros, note in results:
        lines.append(f"{name:<{width}}  {micros:8.2f}  {note}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=2000)
    args = parser.parse_args()
    print(report(asyncio.run(measure(args.loops))))


if __name__ == "__main__":
    main()
