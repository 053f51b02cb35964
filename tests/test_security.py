"""Inbound security of API.md section 2: auth, CORS, rate limit, body limit, JSON."""

from __future__ import annotations

import pytest

from tests.conftest import AUTH, TOKEN
from tests.support import EchoPlugin

EXECUTE = "/v1/projects/p1/datasources/execute"
ECHO_CALL = {
    "dataSource": {"type": "echo", "name": "e"},
    "operation": "echo",
    "params": {"value": 1},
}


async def test_missing_token_is_401_with_www_authenticate(make_client):
    client = await make_client(load_entry_points=False)
    for headers in (
        {},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ):
        response = await client.get("/v1/plugins", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert body["ok"] is False and body["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (f"Basic {TOKEN}", "a scheme other than Bearer"),
        (TOKEN, "a scheme other than Bearer"),
        ("Bearer ", "missing bearer token"),
    ],
)
async def test_a_401_says_what_is_wrong_with_the_header_without_echoing_it(
    make_client, header, says
):
    client = await make_client(load_entry_points=False)
    response = await client.get("/v1/plugins", headers={"Authorization": header})
    body = await response.json()

    assert says in body["error"]["message"]
    assert TOKEN not in str(body)


async def test_wrong_token_is_403(make_client):
    client = await make_client(load_entry_points=False)
    response = await client.get(
        "/v1/plugins", headers={"Authorization": "Bearer wrong-token"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "FORBIDDEN"


async def test_scheme_is_case_insensitive(make_client):
    client = await make_client(load_entry_points=False)
    response = await client.get(
        "/v1/plugins", headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status == 200


async def test_auth_comes_before_routing(make_client):
    client = await make_client(load_entry_points=False)
    assert (await client.get("/no/such/path")).status == 401
    assert (
        await client.post("/no/such/path", headers={"Authorization": "Bearer x"})
    ).status == 403
    response = await client.get("/no/such/path", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json"])
async def test_open_routes_need_no_token(make_client, path):
    client = await make_client(load_entry_points=False)
    assert (await client.get(path)).status == 200


async def test_metrics_needs_a_token(make_client):
    client = await make_client(load_entry_points=False)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 200


async def test_preflight_answers_without_token_and_runs_nothing(make_client):
    plugin = EchoPlugin()
    client = await make_client(
        extra_plugins=(("echo", plugin),), load_entry_points=False
    )
    response = await client.options(
        EXECUTE,
        headers={
            "Origin": "https://app.example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-trace-id",
        },
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] in (
        "*",
        "https://app.example.test",
    )
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "x-trace-id"):
        assert header in allowed
    assert plugin.calls == []
    assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize(
    "headers,status", [({}, 401), ({"Authorization": "Bearer nope"}, 403)]
)
async def test_error_answers_carry_cors_headers(make_client, headers, status):
    client = await make_client(load_entry_points=False)
    origin = {"Origin": "https://app.example.test"}
    for path in ("/v1/plugins", "/unknown/path"):
        response = await client.get(path, headers={**headers, **origin})
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] in (
            "*",
            origin["Origin"],
        )
        exposed = response.headers["Access-Control-Expose-Headers"].lower()
        assert "x-trace-id" in exposed and "x-ratelimit-remaining" in exposed
        for header in (
            "x-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-reset",
            "retry-after",
        ):
            assert header in exposed


async def test_cors_origins_are_restricted_when_configured(make_client):
    client = await make_client(
        load_entry_points=False, cors_origins=("https://allowed.example.test",)
    )
    good = await client.get(
        "/health", headers={"Origin": "https://allowed.example.test"}
    )
    bad = await client.get("/health", headers={"Origin": "https://evil.example.test"})
    assert good.headers["Access-Control-Allow-Origin"] == "https://allowed.example.test"
    assert "Access-Control-Allow-Origin" not in bad.headers


async def test_rate_limit_per_project_with_headers(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),),
        load_entry_points=False,
        rate_limit_max=3,
    )
    statuses = []
    for _ in range(4):
        response = await client.post(EXECUTE, json=ECHO_CALL, headers=AUTH)
        statuses.append(response.status)
        assert response.headers["x-ratelimit-limit"] == "3"
        assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 60
    assert statuses == [200, 200, 200, 429]
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["retry-after"]) >= 1
    assert (await response.json())["error"]["code"] == "RATE_LIMITED"

    other = await client.post(
        "/v1/projects/p2/datasources/execute", json=ECHO_CALL, headers=AUTH
    )
    assert other.status == 200, "another project has its own window"


async def test_health_and_ready_are_not_limited(make_client):
    client = await make_client(load_entry_points=False, rate_limit_max=1)
    for _ in range(3):
        response = await client.get("/health")
        assert response.status == 200
        assert "x-ratelimit-limit" not in response.headers


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json"])
async def test_a_head_of_an_open_route_needs_no_token(make_client, path):
    client = await make_client(load_entry_points=False, rate_limit_max=2)
    for _ in range(2):
        response = await client.head(path)
        assert response.status == 200, path
    # /health and /ready are not limited; /openapi.json is open but limited, as its GET is.
    assert ("x-ratelimit-limit" in response.headers) == (path == "/openapi.json")


async def test_failed_auth_counts_against_client_address_only(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),),
        load_entry_points=False,
        rate_limit_max=2,
    )
    for _ in range(2):
        await client.post(
            EXECUTE, json=ECHO_CALL, headers={"Authorization": "Bearer bad"}
        )
    blocked = await client.post(
        EXECUTE, json=ECHO_CALL, headers={"Authorization": "Bearer bad"}
    )
    assert blocked.status == 429
    # The project's own window is untouched by the failed attempts.
    assert (await client.post(EXECUTE, json=ECHO_CALL, headers=AUTH)).status == 200


async def test_forwarded_for_only_from_trusted_proxies(make_client):
    untrusted = await make_client(load_entry_points=False, rate_limit_max=1)
    await untrusted.get(
        "/v1/plugins", headers={**AUTH, "X-Forwarded-For": "203.0.113.1"}
    )
    spoofed = await untrusted.get(
        "/v1/plugins", headers={**AUTH, "X-Forwarded-For": "203.0.113.2"}
    )
    assert spoofed.status == 429, "X-Forwarded-For from an untrusted peer is ignored"

    trusted = await make_client(
        load_entry_points=False,
        rate_limit_max=1,
        trusted_proxies=("127.0.0.0/8", "::1"),
    )
    first = await trusted.get(
        "/v1/plugins", headers={**AUTH, "X-Forwarded-For": "203.0.113.1"}
    )
    second = await trusted.get(
        "/v1/plugins", headers={**AUTH, "X-Forwarded-For": "203.0.113.2"}
    )
    again = await trusted.get(
        "/v1/plugins", headers={**AUTH, "X-Forwarded-For": "203.0.113.1"}
    )
    assert (first.status, second.status, again.status) == (200, 200, 429)


async def test_body_over_limit_is_413(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),),
        load_entry_points=False,
        body_limit_bytes=200,
    )
    big = {**ECHO_CALL, "params": {"value": "x" * 500}}
    response = await client.post(EXECUTE, json=big, headers=AUTH)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks():
        yield b'{"dataSource": {"type": "echo", "name": "e"}, "operation": "echo", '
        yield b'"params": {"value": "' + b"y" * 500 + b'"}}'

    streamed = await client.post(EXECUTE, data=chunks(), headers=AUTH)
    assert streamed.status == 413


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe",
        b"",
    ],
)
async def test_invalid_json_is_400(make_client, raw):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    response = await client.post(
        EXECUTE, data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "INVALID_JSON"


async def test_an_integer_of_too_many_digits_is_named_so(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    raw = b'{"params": {"n": ' + b"7" * 5000 + b"}}"
    response = await client.post(
        EXECUTE, data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "INVALID_JSON"
    assert "integer of more than 4300 digits" in body["error"]["message"]
    assert "sys." not in body["error"]["message"]


@pytest.mark.parametrize(
    "raw,number",
    [
        (b'{"params": {"values": {"d": 1e400}}}', "1e400"),
        (b'{"a": 1e999}', "1e999"),
        (b'{"a": [-12345678901234567890.5e400]}', "-12345678901234567890.5e400"),
    ],
)
async def test_a_number_past_a_float_is_refused_naming_it(make_client, raw, number):
    """Valid JSON, but no float holds it: the caller is told to send it as a string, not
    that it sent Infinity."""
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    response = await client.post(
        EXECUTE, data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "INVALID_JSON"
    assert f"the number {number} is beyond" in body["error"]["message"]
    assert "send it as a string" in body["error"]["message"]
    assert "Infinity" not in body["error"]["message"]


async def test_a_body_that_does_not_decompress_is_invalid_json(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    response = await client.post(
        EXECUTE,
        data=b"this is not gzip",
        headers={
            **AUTH,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "INVALID_JSON"
    assert "Content-Encoding: gzip" in body["error"]["message"]


async def test_a_refused_preflight_is_forbidden_not_internal(make_client):
    client = await make_client(
        load_entry_points=False, cors_origins=("http://app.test",)
    )
    response = await client.options(
        "/v1/plugins",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"},
    )
    body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"\xef\xbb\xbf{}", "INVALID_JSON"),
        (b'{"dataSource": {"type": "echo", "name": "\\ud800"}}', "INVALID_JSON"),
        (b"[" * 65 + b"]" * 65, "VALIDATION_FAILED"),
        (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "VALIDATION_FAILED"),
    ],
)
async def test_bodies_no_dataSource_could_use_are_refused(make_client, raw, code):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    response = await client.post(
        EXECUTE, data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == code


async def test_a_project_id_with_control_characters_is_refused(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    response = await client.post(
        "/v1/projects/zz%00q/datasources/execute", json=ECHO_CALL, headers=AUTH
    )
    assert response.status == 400
    assert (await response.json())["error"]["details"][0]["path"] == "projectId"


async def test_invented_types_do_not_grow_the_metrics(make_client):
    client = await make_client(
        extra_plugins=(("echo", EchoPlugin()),), load_entry_points=False
    )
    for i in range(3):
        body = {"dataSource": {"type": f"rand{i}", "name": "x"}, "operation": f"op{i}"}
        await client.post(EXECUTE, json=body, headers=AUTH)
    text = await (await client.get("/metrics", headers=AUTH)).text()
    assert "rand" not in text and "op1" not in text
    assert 'type="unknown"' in text
