"""Whatever a plugin raises or reports, the answer's code and status come from the contract.

API.md section 3 pairs each code with one status: a plugin's own error class, aiohttp's HTTP
errors raised in a plugin's route and a readiness check's code all land on a pair of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from lowcode_runtime import errors, hookimpl
from tests.conftest import AUTH


class Mine(errors.NotFound):
    status, code = 200, "MINE"


class Shifted(errors.Conflict):
    status = 418


RAISED: dict[str, Any] = {
    "mine": Mine("my own"),
    "shifted": Shifted("taken"),
    "http400": web.HTTPBadRequest(text="the id must be a number"),
    "http401": web.HTTPUnauthorized(),
    "http403": web.HTTPForbidden(),
    "http404": web.HTTPNotFound(text="no such thing"),
    "http405": web.HTTPMethodNotAllowed("GET", ["POST"]),
    "http409": web.HTTPConflict(),
    "http413": web.HTTPRequestEntityTooLarge(10, 20),
    "http429": web.HTTPTooManyRequests(headers={"Retry-After": "9"}),
    "http422": web.HTTPUnprocessableEntity(),
    "http500": web.HTTPInternalServerError(text="the plugin's inner text"),
    "http502": web.HTTPBadGateway(),
}


class Raising:
    @hookimpl
    def register_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/raise/{kind}", self.route)

    async def route(self, request: web.Request) -> web.Response:
        raise RAISED[request.match_info["kind"]]


@pytest.fixture
async def client(make_client):
    return await make_client(
        extra_plugins=(("raising", Raising()),), load_entry_points=False
    )


async def answer(client, kind: str) -> tuple[int, dict[str, Any], Any]:
    response = await client.get(f"/v1/raise/{kind}", headers=AUTH)
    return response.status, (await response.json())["error"], response.headers


@pytest.mark.parametrize(
    "kind,status,code",
    [("mine", 404, "NOT_FOUND"), ("shifted", 409, "CONFLICT")],
)
async def test_an_error_class_off_the_table_answers_as_its_contract_base(
    client, logs, kind, status, code
):
    for _ in range(2):
        got_status, error, _ = await answer(client, kind)
        assert (got_status, error["code"]) == (status, code)

    [logged] = logs.events("plugin.bad_error")
    assert type(RAISED[kind]).__name__ in logged["message"]
    assert f"answered as {code} {status}" in logged["message"]


@pytest.mark.parametrize(
    "kind,status,code",
    [
        ("http400", 400, "VALIDATION_FAILED"),
        ("http401", 401, "UNAUTHORIZED"),
        ("http403", 403, "FORBIDDEN"),
        ("http404", 404, "NOT_FOUND"),
        ("http405", 405, "NOT_FOUND"),
        ("http409", 409, "CONFLICT"),
        ("http413", 413, "PAYLOAD_TOO_LARGE"),
        ("http429", 429, "RATE_LIMITED"),
        ("http422", 500, "INTERNAL"),
        ("http500", 500, "INTERNAL"),
        ("http502", 500, "INTERNAL"),
    ],
)
async def test_an_http_error_raised_in_a_plugin_route_answers_its_contract_code(
    client, kind, status, code
):
    got_status, error, headers = await answer(client, kind)

    assert (got_status, error["code"]) == (status, code)
    if kind == "http400":
        assert error["message"] == "the id must be a number"
    if kind == "http405":
        assert headers["Allow"] == "POST"
    if kind == "http429":
        assert headers["retry-after"] == "9"
    if status == 500:
        assert error["message"] == "internal error"


def readiness(result: Any) -> object:
    class Check:
        @hookimpl
        def runtime_readiness(self, app: web.Application) -> Any:
            if isinstance(result, Exception):
                raise result
            if result == "async-raise":

                async def fail() -> dict[str, Any]:
                    raise RuntimeError("pool closed")

                return fail()
            return result

    return Check()


@pytest.mark.parametrize(
    "result,code,named",
    [
        (
            {"name": "nope", "ok": False, "code": "NOPE", "message": "down"},
            "DB_UNAVAILABLE",
            "nope",
        ),
        (
            {"name": "s", "ok": False, "code": "SECRETS_UNAVAILABLE"},
            "SECRETS_UNAVAILABLE",
            "s",
        ),
        ({"name": "t", "ok": False, "code": "TIMEOUT"}, "DB_UNAVAILABLE", "t"),
        (RuntimeError("no config"), "DB_UNAVAILABLE", "check"),
        ("async-raise", "DB_UNAVAILABLE", "check"),
        ("garbage", "DB_UNAVAILABLE", "check"),
    ],
)
async def test_ready_answers_503_with_a_contract_code_whatever_a_check_does(
    make_client, result, code, named
):
    client = await make_client(
        extra_plugins=(("check", readiness(result)),), load_entry_points=False
    )
    response = await client.get("/ready")
    body = await response.json()

    assert response.status == 503
    assert body["error"]["code"] == code
    [check] = body["error"]["details"]["checks"]
    assert check["name"] == named and check["ok"] is False
