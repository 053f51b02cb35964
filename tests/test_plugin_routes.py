"""Routes a plugin adds: listed in the OpenAPI document, and guarded like a type's handler.

The plugin is a real distribution (entry-point metadata on ``sys.path``), so that the document
and the log can name it as a third party's would be named.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time

import pytest
from aiohttp import web
from marshmallow import Schema, fields
from openapi_spec_validator import validate

from lowcode_runtime import describe_route, hookimpl, ok_response
from tests.conftest import AUTH
from tests.support import write_distribution

ROUTES_PLUGIN = """
import asyncio
import gc

from marshmallow import Schema, fields
from lowcode_runtime import describe_route, hookimpl, ok_response

ESCAPES = {
    "interrupt": KeyboardInterrupt,
    "exit": SystemExit,
    "cancel": asyncio.CancelledError,
    "generator_exit": GeneratorExit,
    "error": RuntimeError,
}
CANCELLED = asyncio.Event()


class CounterSchema(Schema):
    name = fields.String(required=True)
    value = fields.Integer(required=True)


async def counter(request):
    return ok_response(request, {"name": request.match_info["name"], "value": 1})


async def escape(request):
    raise ESCAPES[request.match_info["kind"]]("secret-looking text from the plugin")


async def hang(request):
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise


async def swallow(request):
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(2)
    return ok_response(request, "too late")


async def off_table(request):
    from lowcode_runtime import errors

    class Weird(errors.NotFound):
        code = "WEIRD"
        status = 418

    raise Weird("from a route")


async def raised(request):
    from aiohttp import web

    kind = request.match_info["kind"]
    if kind == "found":
        raise web.HTTPFound("/v1/counters/c")
    if kind == "created":
        raise web.HTTPCreated(text="made")
    raise web.HTTPException(text="a bare one")


async def not_a_response(request):
    return {"none": None, "dict": {"x": 1}, "text": "plain"}[request.match_info["kind"]]


@hookimpl
def register_routes(app):
    app.router.add_get("/v1/counters/{name}", counter)
    app.router.add_get("/v1/returns/{kind}", not_a_response)
    app.router.add_get("/v1/raises/{kind}", raised)
    app.router.add_get("/v1/off-table", off_table)
    describe_route(
        app,
        "GET",
        "/v1/counters/{name}",
        {"summary": "one counter", "description": "read without counting"},
        data=CounterSchema,
        error_statuses=[404],
    )
    app.router.add_post("/v1/escape/{kind}", escape)
    app.router.add_get("/v1/hang", hang)
    app.router.add_get("/v1/swallow", swallow)
"""

TRACE = "trace-of-a-plugin-route"


@pytest.fixture
async def client(tmp_path, monkeypatch, make_client):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_distribution(
        tmp_path, "lowcode-routes", "routes_plugin", ROUTES_PLUGIN, "routes"
    )
    yield await make_client(request_timeout_ms=300)
    sys.modules.pop("routes_plugin", None)


async def openapi(client) -> dict:
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    return document


async def test_a_described_plugin_route_is_in_the_document_as_described(client):
    document = await openapi(client)

    operation = document["paths"]["/v1/counters/{name}"]["get"]
    assert operation["summary"] == "one counter"
    assert operation["description"] == "read without counting"
    assert operation["tags"] == ["lowcode-routes"]
    assert operation["security"] == [{"bearer": []}]
    assert operation["parameters"] == [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["allOf"][1]["properties"]["data"] == {
        "$ref": "#/components/schemas/Counter"
    }
    counter = document["components"]["schemas"]["Counter"]
    assert counter["properties"]["value"]["type"] == "integer"
    assert set(operation["responses"]) == {
        "200",
        "401",
        "403",
        "404",
        "429",
        "500",
        "504",
    }


async def test_an_undescribed_plugin_route_is_in_the_document_with_what_every_route_has(
    client,
):
    document = await openapi(client)

    operation = document["paths"]["/v1/escape/{kind}"]["post"]
    assert operation["tags"] == ["lowcode-routes"]
    assert "lowcode-routes" in operation["summary"]
    assert operation["security"] == [{"bearer": []}]
    assert [p["name"] for p in operation["parameters"]] == ["kind"]
    assert set(operation["responses"]) == {"200", "401", "403", "429", "500", "504"}
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    # aiohttp's HEAD twin of a GET is not a route of its own.
    assert set(document["paths"]["/v1/hang"]) == {"get"}


async def test_the_db_status_route_is_described_by_the_db_plugin(make_client):
    document = await openapi(await make_client())

    operation = document["paths"]["/preview/status/{projectId}"]["get"]
    assert "db plugin" in operation["summary"]
    assert {"400", "409", "503"} <= set(operation["responses"])
    status = document["components"]["schemas"]["PreviewStatus"]
    assert status["properties"]["status"]["enum"] == [
        "absent",
        "ready",
        "blocked",
        "failed",
    ]


async def test_without_the_db_plugin_its_route_is_not_in_the_document(make_client):
    document = await openapi(await make_client(load_entry_points=False))
    assert "/preview/status/{projectId}" not in document["paths"]


@pytest.mark.parametrize(
    "kind,raised",
    [
        ("interrupt", "KeyboardInterrupt"),
        ("exit", "SystemExit"),
        ("cancel", "CancelledError"),
        ("generator_exit", "GeneratorExit"),
        ("error", "RuntimeError"),
    ],
)
async def test_a_plugin_route_raising_any_exception_gets_internal_naming_the_plugin(
    client, logs, kind, raised
):
    response = await client.post(
        f"/v1/escape/{kind}", headers={**AUTH, "x-trace-id": TRACE}
    )
    body = await response.json()

    assert response.status == 500
    assert body["error"] == {"code": "INTERNAL", "message": "internal error"}
    assert body["meta"]["traceId"] == TRACE
    assert "secret-looking" not in json.dumps(body)
    [logged] = [r for r in logs.records() if "exception" in r]
    assert logged["traceId"] == TRACE and logged["plugin"] == "lowcode-routes"
    assert "lowcode-routes 1.2.3 (route POST /v1/escape/{kind})" in logged["message"]
    assert raised in logged["exception"] and "in escape" in logged["exception"]

    following = await client.get("/v1/counters/c", headers=AUTH)
    assert following.status == 200
    assert (await following.json())["data"] == {"name": "c", "value": 1}


async def test_a_plugin_route_past_the_deadline_is_still_cancelled(client):
    response = await client.get("/v1/hang", headers=AUTH)

    assert response.status == 504
    assert (await response.json())["error"]["code"] == "TIMEOUT"
    cancelled = sys.modules["routes_plugin"].CANCELLED
    await asyncio.wait_for(cancelled.wait(), 2)


async def test_a_plugin_route_swallowing_its_cancellation_gets_504_at_the_deadline(
    client,
):
    sent = time.monotonic()
    response = await client.get("/v1/swallow", headers=AUTH)

    assert response.status == 504
    assert time.monotonic() - sent < 1.5, (
        "answered at the deadline, not after the handler"
    )


class BadlyDescribed:
    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/bad", self.route)
        describe_route(app, "GET", "/v1/bad", {"parameters": 7})

    async def route(self, request: web.Request) -> web.Response:
        return web.json_response({})


async def test_a_bad_description_lists_the_route_undescribed_and_is_logged(
    make_client, logs
):
    client = await make_client(
        extra_plugins=(("bad", BadlyDescribed()),), load_entry_points=False
    )
    document = await openapi(client)

    assert set(document["paths"]["/v1/bad"]["get"]["responses"]) >= {"200", "401"}
    [logged] = logs.events("plugin.bad_openapi")
    assert "route GET /v1/bad" in logged["message"]


def test_describing_a_route_that_was_not_added_says_what_to_do():
    app = web.Application()
    app.router.add_get("/v1/things/{id:[0-9]+}", BadlyDescribed().route)
    describe_route(app, "get", "/v1/things/{id}", {"summary": "a thing"})

    with pytest.raises(ValueError, match="no route POST /v1/things/{id}; add it"):
        describe_route(app, "POST", "/v1/things/{id}")
    with pytest.raises(TypeError, match="operation is a list"):
        describe_route(app, "GET", "/v1/things/{id}", ["summary"])  # type: ignore[arg-type]


class AnyMethod:
    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/v1/probe/{kind}", self.route)

    async def route(self, request: web.Request) -> web.Response:
        return ok_response(request, request.method)


async def test_a_route_for_every_method_is_served_without_cors(make_client, logs):
    client = await make_client(
        extra_plugins=(("any", AnyMethod()),), load_entry_points=False
    )

    for method in ("GET", "POST", "DELETE"):
        response = await client.request(method, "/v1/probe/x", headers=AUTH)
        assert response.status == 200
        assert (await response.json())["data"] == method
    [skipped] = logs.events("cors.skipped")
    assert "/v1/probe/{kind}" in skipped["message"]


@pytest.mark.parametrize(
    "kind,returned", [("none", "None"), ("dict", "a dict"), ("text", "a str")]
)
async def test_a_plugin_route_returning_no_response_gets_internal_and_is_logged(
    client, logs, kind, returned
):
    response = await client.get(
        f"/v1/returns/{kind}", headers={**AUTH, "x-trace-id": TRACE}
    )
    body = await response.json()

    assert response.status == 500
    assert body["error"]["code"] == "INTERNAL"
    assert body["meta"]["traceId"] == TRACE
    [logged] = logs.events("plugin.bad_result")
    assert logged["plugin"] == "lowcode-routes"
    assert logged["message"] == (
        f"the handler of lowcode-routes 1.2.3 (route GET /v1/returns/{{kind}}) returned "
        f"{returned}, not a response; answer with ok_response(request, data)"
    )


@pytest.mark.parametrize(
    "operation,data,raised,message",
    [
        ({"summary": {1, 2}}, None, ValueError, "operation.summary is a set"),
        ({"summary": float("nan")}, None, ValueError, "operation.summary is nan"),
        ({"x": {1: object()}}, None, ValueError, "operation.x.1 is a object"),
        (None, dict, TypeError, "data is the class dict; give a marshmallow Schema"),
        (None, object(), TypeError, "data is a object; give a marshmallow Schema"),
    ],
)
def test_describing_a_route_with_what_the_document_cannot_hold_says_what(
    operation, data, raised, message
):
    app = web.Application()
    app.router.add_get("/v1/things", BadlyDescribed().route)

    with pytest.raises(raised, match=f"^describe_route GET /v1/things: {message}"):
        describe_route(app, "GET", "/v1/things", operation, data=data)


class SchemaWithNan(Schema):
    value = fields.Float(metadata={"example": float("nan")})


class OddlyDescribed:
    """Descriptions that pass ``describe_route`` but break the document as apispec writes it."""

    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        dangling = {"schema": {"$ref": "#/components/schemas/Nowhere"}}
        no_description = {"content": {"application/json": {"schema": SchemaWithNan}}}
        described = {
            "/v1/dangling": {
                "responses": {
                    "200": {
                        "description": "x",
                        "content": {"application/json": dangling},
                    }
                }
            },
            "/v1/nan": {"responses": {"200": no_description}},
            "/v1/fine": {
                "responses": {
                    "200": {
                        "content": {"application/json": {"schema": {"type": "string"}}}
                    }
                }
            },
        }
        for path, operation in described.items():
            app.router.add_get(path, self.route)
            describe_route(app, "GET", path, operation)

    async def route(self, request: web.Request) -> web.Response:
        return ok_response(request, "fine")


async def test_a_description_that_breaks_the_document_is_left_out_of_it_alone(
    make_client, logs
):
    client = await make_client(
        extra_plugins=(("odd", OddlyDescribed()),), load_entry_points=False
    )
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert "NaN" not in await response.text()
    document = await openapi(client)

    paths = document["paths"]
    assert paths["/v1/fine"]["get"]["responses"]["200"]["description"]
    for undescribed in ("/v1/dangling", "/v1/nan"):
        assert "lowcode-runtime" in paths[undescribed]["get"]["summary"]
    logged = [r["message"] for r in logs.events("plugin.bad_openapi")]
    assert len(logged) == 2
    assert any("route GET /v1/dangling" in m and "Nowhere" in m for m in logged)
    assert any("route GET /v1/nan" in m and "NaN" in m for m in logged)


class Forever:
    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/forever", self.route)

    async def route(self, request: web.Request) -> web.Response:
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass


async def test_shutdown_closing_a_handler_that_never_ends_logs_no_asyncio_error(
    make_client, logs
):
    client = await make_client(
        extra_plugins=(("forever", Forever()),),
        load_entry_points=False,
        request_timeout_ms=200,
    )
    assert (await client.get("/v1/forever", headers=AUTH)).status == 504

    await client.close()
    gc.collect()

    assert logs.events("plugin.handler_outlived_cancellation")
    errors = [r["message"] for r in logs.records() if r["level"] == "error"]
    assert not [m for m in errors if "never retrieved" in m], errors


async def test_a_raised_redirect_or_success_is_answered_logged_and_counted(
    client, logs
):
    """They passed by the middleware: no http.request line, no sample of the metric."""
    found = await client.get("/v1/raises/found", headers=AUTH, allow_redirects=False)
    assert (found.status, found.headers["Location"]) == (302, "/v1/counters/c")
    created = await client.get("/v1/raises/created", headers=AUTH)
    assert (created.status, await created.text()) == (201, "made")

    answered = [(e["path"], e["httpStatus"]) for e in logs.events("http.request")]
    assert ("/v1/raises/found", 302) in answered and (
        "/v1/raises/created",
        201,
    ) in answered
    metrics = await (await client.get("/metrics", headers=AUTH)).text()
    assert 'route="/v1/raises/{kind}",status="302"' in metrics


@pytest.mark.parametrize(
    ("path", "status", "code", "blamed"),
    [
        # A bare HTTPException has no status: the connection was dropped.
        ("/v1/raises/bare", 500, "INTERNAL", "lowcode-routes"),
        # A contract class with its own code: its plugin.bad_error line named no plugin.
        (
            "/v1/off-table",
            404,
            "NOT_FOUND",
            "lowcode-routes 1.2.3 (route GET /v1/off-table)",
        ),
    ],
)
async def test_an_error_of_a_plugin_route_off_the_contract_is_answered_and_blamed(
    client, logs, path, status, code, blamed
):
    response = await client.get(path, headers=AUTH)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    [bad] = logs.events("plugin.bad_error")
    assert bad["plugin"] == "lowcode-routes"
    assert blamed in bad["message"]
