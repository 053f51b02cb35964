"""rest results (API.md 5.2): bodies, upstream meta, error codes, time and size limits."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from aiohttp import web

from lowcode_runtime import events
from tests.fixtures.upstream import execute


async def test_json_body_with_safe_upstream_headers(rest_client, upstream):
    response, body = await execute(rest_client, {"url": upstream.url("/json")})

    assert response.status == 200
    assert body["ok"] is True
    assert body["data"] == {"items": [1, 2], "ok": True}
    upstream_meta = body["meta"]["upstream"]
    assert upstream_meta["status"] == 200
    assert isinstance(upstream_meta["durationMs"], int | float)
    assert upstream_meta["headers"] == {
        "content-type": "application/json; charset=utf-8",
        "cache-control": "no-store",
        "x-total-count": "2",
    }
    assert "redacted" not in body["meta"]
    assert body["meta"]["type"] == "rest" and body["meta"]["operation"] == "request"


@pytest.mark.parametrize(
    ("path", "response_type", "expected"),
    [
        ("/json", "text", '{"items": [1, 2], "ok": true}'),
        ("/text", "auto", "hello"),
        ("/text", "text", "hello"),
        ("/raw?ct=text/plain&hex=5b315d", "json", [1]),
        ("/raw?ct=text/plain&hex=5b315d", "auto", "[1]"),
        ("/raw?ct=application/json&hex=7b7b", "auto", "{{"),
        ("/raw?ct=application/problem%2Bjson&hex=7b7d", "auto", {}),
    ],
)
async def test_body_kind_follows_content_type_and_response_type(
    rest_client, upstream, path, response_type, expected
):
    response, body = await execute(
        rest_client, {"url": upstream.url(path), "responseType": response_type}
    )

    assert response.status == 200, body
    assert body["data"] == expected


@pytest.mark.parametrize("hex_body", ["7b7b", "4e614e", "496e66696e697479"])
async def test_json_response_type_with_an_invalid_body(rest_client, upstream, hex_body):
    response, body = await execute(
        rest_client,
        {
            "url": upstream.url(f"/raw?ct=application/json&hex={hex_body}"),
            "responseType": "json",
        },
    )

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_INVALID_JSON"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ct=text/plain%3B%20charset%3Dlatin-1&hex=e9", "é"),
        ("ct=text/plain%3B%20charset%3Dx-unknown&hex=c3a9", "é"),
        ("ct=text/plain&hex=c3a9ff", "é\ufffd"),
        ("ct=application/json%3B%20charset%3Diso-8859-1&hex=22e922", "é"),
        ("hex=c3a9", "é"),
    ],
)
async def test_charset_rules(rest_client, upstream, query, expected):
    response, body = await execute(rest_client, {"url": upstream.url(f"/raw?{query}")})

    assert response.status == 200, body
    assert body["data"] == expected


@pytest.mark.parametrize(
    ("path", "response_type"),
    [("/empty", "json"), ("/empty?status=200", "json"), ("/empty?status=201", "auto")],
)
async def test_empty_body_is_null(rest_client, upstream, path, response_type):
    response, body = await execute(
        rest_client, {"url": upstream.url(path), "responseType": response_type}
    )

    assert response.status == 200, body
    assert body["data"] is None


async def test_head_request_gives_null(rest_client, upstream):
    response, body = await execute(
        rest_client, {"url": upstream.url("/json"), "method": "HEAD"}
    )

    assert response.status == 200, body
    assert body["data"] is None
    assert body["meta"]["upstream"]["headers"]["x-total-count"] == "2"


async def test_head_of_a_large_resource_is_not_too_large(make_client, upstream):
    client = await make_client(egress_allow=("127.0.0.1",), rest_max_response_bytes=5)
    response, body = await execute(
        client, {"url": upstream.url("/json"), "method": "HEAD"}
    )

    assert response.status == 200, body
    assert body["data"] is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_bodies_are_decoded(rest_client, upstream, encoding):
    response, body = await execute(
        rest_client, {"url": upstream.url(f"/gzip?encoding={encoding}")}
    )

    assert response.status == 200, body
    assert body["data"] == {"compressed": True}


async def test_upstream_status_carries_status_and_bounded_body(rest_client, upstream):
    response, body = await execute(
        rest_client, {"url": upstream.url("/status/503?text=overloaded%20&repeat=2000")}
    )

    assert response.status == 502
    error = body["error"]
    assert error["code"] == "UPSTREAM_STATUS"
    assert error["details"]["status"] == 503
    assert error["details"]["body"].startswith("overloaded overloaded")
    assert len(error["details"]["body"]) == 2048
    assert error["details"]["truncated"] is True


async def test_unreachable_upstream(rest_client, unused_tcp_port):
    response, body = await execute(
        rest_client, {"url": f"http://127.0.0.1:{unused_tcp_port}/x"}
    )

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"


async def test_timeout_ms_bounds_the_whole_exchange_and_aborts_it(
    rest_client, upstream
):
    started = time.monotonic()
    # The upstream sends a byte every 50 ms: an idle timeout would never fire.
    response, body = await execute(
        rest_client, {"url": upstream.url("/slow?seconds=5"), "timeoutMs": 300}
    )

    assert response.status == 504
    assert body["error"]["code"] == "TIMEOUT"
    assert time.monotonic() - started < 2
    await asyncio.wait_for(upstream.recorder.aborted.wait(), 3)


async def test_request_deadline_aborts_the_upstream_request(make_client, upstream):
    client = await make_client(egress_allow=("127.0.0.1",), request_timeout_ms=400)
    started = time.monotonic()
    response, body = await execute(
        client, {"url": upstream.url("/slow?seconds=5"), "timeoutMs": 60000}
    )

    assert response.status == 504
    assert body["error"]["code"] == "TIMEOUT"
    assert time.monotonic() - started < 2
    await asyncio.wait_for(upstream.recorder.aborted.wait(), 3)


async def test_a_body_cut_off_mid_way_is_an_unreachable_upstream(rest_client, upstream):
    response, body = await execute(rest_client, {"url": upstream.url("/cut")})

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "hung up before its body was complete" in body["error"]["message"]


async def test_a_body_that_does_not_decode_as_its_encoding_says_is_unreachable(
    rest_client, upstream
):
    response, body = await execute(rest_client, {"url": upstream.url("/not-gzip")})

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "does not decode as its Content-Encoding says" in body["error"]["message"]


async def test_endless_chunked_body_stops_at_the_limit(make_client, upstream):
    client = await make_client(
        egress_allow=("127.0.0.1",), rest_max_response_bytes=1 << 20
    )
    response, body = await execute(client, {"url": upstream.url("/endless")})

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_RESPONSE_TOO_LARGE"
    await asyncio.wait_for(upstream.recorder.aborted.wait(), 3)


async def test_compressed_bomb_stops_at_the_limit_with_bounded_memory(
    make_client, upstream
):
    client = await make_client(
        egress_allow=("127.0.0.1",), rest_max_response_bytes=1 << 20
    )
    await execute(
        client, {"url": upstream.url("/bomb?mib=96")}
    )  # build and cache the bomb

    tracemalloc.start()
    try:
        response, body = await execute(client, {"url": upstream.url("/bomb?mib=96")})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_RESPONSE_TOO_LARGE"
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB"


async def test_body_at_the_limit_is_read_whole(make_client, upstream):
    client = await make_client(egress_allow=("127.0.0.1",), rest_max_response_bytes=2)
    response, body = await execute(
        client, {"url": upstream.url("/raw?ct=text/plain&hex=6869")}
    )
    assert response.status == 200 and body["data"] == "hi"

    response, body = await execute(
        client, {"url": upstream.url("/raw?ct=text/plain&hex=686921")}
    )
    assert body["error"]["code"] == "UPSTREAM_RESPONSE_TOO_LARGE"


async def test_five_redirects_are_followed(rest_client, upstream):
    response, body = await execute(rest_client, {"url": upstream.url("/redirect/5")})

    assert response.status == 200, body
    assert body["data"]["path"] == "/echo/final"
    assert len(upstream.requests) == 6


async def test_a_sixth_redirect_is_unreachable(rest_client, upstream):
    response, body = await execute(rest_client, {"url": upstream.url("/redirect/6")})

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "redirect" in body["error"]["message"]
    assert len(upstream.requests) == 6


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:99999/echo", "http://a..b/echo", "http://①②⑦.0.0.1/"]
)
async def test_a_redirect_to_an_invalid_url_is_unreachable(
    rest_client, upstream, logs, location
):
    response, body = await execute(
        rest_client, {"url": upstream.url("/redirect-to"), "query": {"url": location}}
    )

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "invalid URL" in body["error"]["message"]
    assert len(upstream.requests) == 1
    assert logs.events(events.HTTP_UNHANDLED) == []


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "mailto:a@example.test"]
)
async def test_a_redirect_to_another_scheme_says_only_http_is_followed(
    rest_client, upstream, location
):
    response, body = await execute(
        rest_client, {"url": upstream.url("/redirect-to"), "query": {"url": location}}
    )

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "only http and https redirects are followed" in body["error"]["message"]
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_a_body_in_an_encoding_the_service_cannot_decode_is_named(
    rest_client, aiohttp_server, encoding
):
    """Brotli and zstd decode only when their packages are installed; neither is here."""

    async def encoded(request: web.Request) -> web.Response:
        return web.Response(
            body=b"\x1b\x03\x00compressed", headers={"Content-Encoding": encoding}
        )

    app = web.Application()
    app.router.add_get("/encoded", encoded)
    server = await aiohttp_server(app, host="127.0.0.1")
    response, body = await execute(
        rest_client, {"url": f"http://127.0.0.1:{server.port}/encoded"}
    )

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert (
        f"its body uses a content encoding the service cannot decode ({encoding})"
        in body["error"]["message"]
    )


async def test_redirects_not_followed_when_switched_off(rest_client, upstream):
    response, body = await execute(
        rest_client, {"url": upstream.url("/redirect/1"), "followRedirects": False}
    )

    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_STATUS"
    assert body["error"]["details"]["status"] == 302
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("code", "method", "body"), [(303, "GET", ""), (307, "POST", '{"a":1}')]
)
async def test_redirect_method_rules(rest_client, upstream, code, method, body):
    response, answer = await execute(
        rest_client,
        {
            "url": upstream.url(f"/redirect/1?code={code}"),
            "method": "POST",
            "body": {"a": 1},
        },
    )

    assert response.status == 200, answer
    assert answer["data"]["method"] == method
    assert answer["data"]["body"].replace(" ", "") == body


async def test_trace_id_reaches_every_hop(rest_client, upstream):
    response, _ = await execute(
        rest_client,
        {"url": upstream.url("/redirect/2")},
        headers={"x-trace-id": "trace-abc.1"},
    )

    assert response.status == 200
    assert [r.headers.get("x-trace-id") for r in upstream.requests] == [
        "trace-abc.1"
    ] * 3


@pytest.mark.parametrize(("response_type", "code"), [("json", 502), ("auto", 200)])
async def test_json_nested_past_what_python_parses(
    rest_client, upstream, response_type, code
):
    response, body = await execute(
        rest_client,
        {"url": upstream.url("/deep?levels=5000"), "responseType": response_type},
    )

    assert response.status == code, body
    if code == 502:
        assert body["error"]["code"] == "UPSTREAM_INVALID_JSON"
    else:
        assert body["data"].startswith("[[[")


# Each parses with the standard library as a value no JSON answer can carry: infinity, or a
# string with a lone surrogate. orjson refuses them all.
UNANSWERABLE_JSON = [
    '{"a": 1e400}',
    '{"a": -1e400}',
    "[1.7976931348623157e309]",
    '"\\ud800"',
    '{"\\ud800x": 1}',
    '["\\udc00\\ud800"]',
]


@pytest.mark.parametrize("text", UNANSWERABLE_JSON)
async def test_json_body_that_no_answer_can_carry_is_invalid_json(
    rest_client, upstream, text
):
    response, body = await execute(
        rest_client,
        {
            "url": upstream.url(f"/raw?ct=application/json&hex={text.encode().hex()}"),
            "responseType": "json",
        },
    )

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_INVALID_JSON"


@pytest.mark.parametrize("text", UNANSWERABLE_JSON)
async def test_auto_reads_a_json_body_that_no_answer_can_carry_as_text(
    rest_client, upstream, text
):
    response, body = await execute(
        rest_client,
        {"url": upstream.url(f"/raw?ct=application/json&hex={text.encode().hex()}")},
    )

    assert response.status == 200, body
    assert body["data"] == text


async def test_json_body_with_a_surrogate_pair_and_a_float_near_the_limit_reads(
    rest_client, upstream
):
    text = '{"e": "\\ud83d\\ude00", "n": 1.7976931348623157e308, "i": 123456789012345678901}'
    response, body = await execute(
        rest_client,
        {
            "url": upstream.url(f"/raw?ct=application/json&hex={text.encode().hex()}"),
            "responseType": "json",
        },
    )

    assert response.status == 200, body
    assert body["data"] == {
        "e": "😀",
        "n": 1.7976931348623157e308,
        "i": 123456789012345678901,
    }
