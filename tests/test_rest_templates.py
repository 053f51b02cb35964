"""rest definitions (API.md 5): validation, and templates (5.1) as the upstream receives them."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from lowcode_rest.schema import RequestParamsSchema, RestDefinitionSchema
from lowcode_runtime import errors, events
from lowcode_runtime.templates import (
    Context,
    check_templates,
    iter_strings,
    json_depth,
    render_headers,
    secret_names,
)
from tests.fixtures.upstream import execute


@pytest.fixture
async def client(make_client, tmp_path):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(
        json.dumps(
            {
                "p1": {
                    "TOKEN": "tok-a/b?c#d%e+f",
                    "KEY": "k3y-value",
                    "HOST": "127.0.0.1",
                }
            }
        )
    )
    return await make_client(
        egress_allow=("127.0.0.1",), secrets_file=str(secrets_file)
    )


async def test_definition_errors_are_listed_together(client, upstream):
    response, body = await execute(
        client,
        {
            "url": upstream.url("/echo"),
            "method": "FETCH",
            "timeoutMs": 0,
            "bodyType": "xml",
            "responseType": "html",
            "followRedirects": "maybe",
            "extra": 1,
        },
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    paths = {d["path"] for d in body["error"]["details"]}
    assert {
        "dataSource.method",
        "dataSource.timeoutMs",
        "dataSource.bodyType",
        "dataSource.responseType",
        "dataSource.followRedirects",
        "dataSource.extra",
    } <= paths
    assert upstream.requests == []


async def test_every_violation_of_a_definition_is_listed_at_once(client, upstream):
    response, body = await execute(
        client,
        {
            "url": upstream.url("/echo"),
            "method": "POST",
            "headers": {
                "Host": "evil",
                "content-length": "5",
                "Bad Name": "v",
                "X-A": "{{ nope }}",
                "X-B": "{{ env.HOME }} {{ params }}",
            },
            "query": {"q": "{{ what }}"},
            "bodyType": "form",
            "body": ["a", "b"],
            "timeoutMs": "500",
        },
    )

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    details = {d["path"]: d["message"] for d in body["error"]["details"]}
    assert set(details) == {
        "dataSource.headers.Host",
        "dataSource.headers.content-length",
        "dataSource.headers.Bad Name",
        "dataSource.headers.X-A",
        "dataSource.headers.X-B",
        "dataSource.query.q",
        "dataSource.body",
        "dataSource.timeoutMs",
    }
    assert "'{{ env.HOME }}', '{{ params }}'" in details["dataSource.headers.X-B"]
    assert "form" in details["dataSource.body"]
    assert upstream.requests == []


BAD_HEADERS = {"Host": "x", "Content-Length": "5", "Bad Name": "x", "X-Ctl": "a\nb"}


@pytest.mark.parametrize(
    "headers", [BAD_HEADERS, {**BAD_HEADERS, "X-Obj": {"a": 1}, "X-Null": None}]
)
async def test_every_header_problem_is_listed_at_once(client, upstream, headers):
    # A value of the wrong type used to hide the rest, and a control character came alone.
    response, body = await execute(
        client, {"url": upstream.url("/echo"), "headers": headers}
    )

    assert response.status == 400, body
    paths = [d["path"] for d in body["error"]["details"]]
    assert sorted(paths) == sorted(f"dataSource.headers.{name}" for name in headers)
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("followRedirects", "yes"),
        ("followRedirects", 1),
        ("followRedirects", "true"),
        ("timeoutMs", "500"),
        ("timeoutMs", 500.5),
        ("timeoutMs", True),
    ],
)
async def test_a_value_of_the_wrong_json_type_is_refused(client, upstream, key, value):
    response, body = await execute(client, {"url": upstream.url("/echo"), key: value})

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert [d["path"] for d in body["error"]["details"]] == [f"dataSource.{key}"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "javascript:alert(1)",
        "/relative/path",
        "http://",
        "http://127.0.0.1/has space",
    ],
)
async def test_url_other_than_absolute_http_is_refused(client, upstream, url):
    response, body = await execute(client, {"url": url})

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.url"


@pytest.mark.parametrize(
    "port", ["99999", "65536", "-1", "abc", "0", "{{ params.port }}"]
)
async def test_a_url_with_an_invalid_port_is_refused(client, upstream, logs, port):
    response, body = await execute(
        client, {"url": f"http://127.0.0.1:{port}/echo"}, params={"port": "70000"}
    )

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"] == [
        {
            "path": "dataSource.url",
            "message": "the URL's port must be a number from 1 to 65535",
        }
    ]
    assert logs.events(events.HTTP_UNHANDLED) == []


@pytest.mark.parametrize("host", ["a..b", "a" * 300, ".a", "x." * 130])
async def test_a_param_forming_an_invalid_host_name_is_refused(
    client, upstream, logs, host
):
    response, body = await execute(
        client, {"url": "http://{{ params.h }}/echo"}, params={"h": host}
    )

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.url"
    assert "host" in body["error"]["details"][0]["message"]
    assert logs.events(events.HTTP_UNHANDLED) == []


@pytest.mark.parametrize("host", ["①②⑦.0.0.1", "127.0.0.１", "１２７.１"])
async def test_an_address_spelt_in_non_ascii_digits_is_refused(client, upstream, host):
    # 127.0.0.1 is allowed here: the spelling itself is refused, the upstream never hears.
    response, body = await execute(client, {"url": upstream.url("/echo", host=host)})

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.url"
    assert "non-ASCII" in body["error"]["details"][0]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    "host", ["4294967296", "1.2.3.4.5", "256.1.1.1", "99999999999"]
)
async def test_a_host_in_digits_that_is_no_address_is_refused(client, upstream, host):
    """aiohttp took it for an address and refused it as one: an UPSTREAM_UNREACHABLE that
    named its own exception class."""
    response, body = await execute(
        client, {"url": "http://{{ params.h }}/echo"}, params={"h": host}
    )

    assert response.status == 400, body
    problem = "the URL's host is written in digits but is not an IPv4 address"
    assert body["error"]["details"] == [{"path": "dataSource.url", "message": problem}]


@pytest.mark.parametrize("host", ["[zz::1]", "[::1", "[::1]x", "::1]"])
async def test_an_invalid_ipv6_host_is_refused(client, host):
    response, body = await execute(client, {"url": f"http://{host}/echo"})

    assert response.status == 400, body
    problem = "the URL's host is not a valid IPv6 address"
    assert body["error"]["details"] == [{"path": "dataSource.url", "message": problem}]
    assert (
        body["error"]["message"]
        == f"url does not form a valid URL once rendered: {problem}"
    )


@pytest.mark.parametrize(
    ("url", "opening"),
    [
        ("http://127.0.0.1:3132/{{ params.file", "{{ params.file"),
        ("http://127.0.0.1/{{params.file", "{{params.file"),
        ("http://127.0.0.1/{{ params.a }}/{{ params.b?x=1", "{{ params.b?x=1"),
        ("http://{{ secrets.HOST/x", "{{ secrets.HOST/x"),
    ],
)
async def test_an_unclosed_template_in_the_url_is_named(client, upstream, url, opening):
    response, body = await execute(client, {"url": url}, params={"a": 1})

    assert response.status == 400, body
    assert body["error"]["details"] == [
        {
            "path": "dataSource.url",
            "message": f"the template {opening!r} is not closed; end it with '}}}}'",
        }
    ]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("part", "path"),
    [
        ({"query": {"q": "a {{ params.q"}}, "dataSource.query.q"),
        ({"headers": {"X-Key": "Bearer {{ secrets.KEY"}}, "dataSource.headers.X-Key"),
        ({"method": "POST", "body": {"deep": ["{{ params.q"]}}, "dataSource.body.deep"),
        (
            {"method": "POST", "bodyType": "text", "body": "hi {{params.q"},
            "dataSource.body",
        ),
    ],
)
async def test_an_unclosed_template_anywhere_is_named_and_nothing_is_sent(
    client, upstream, part, path
):
    """Sent as text, a typo would reach the upstream; every part refuses it as the url does."""
    definition = {"url": upstream.url("/echo"), **part}
    response, body = await execute(client, definition, params={"q": "v"})

    assert response.status == 400, body
    [detail] = body["error"]["details"]
    assert detail["path"] == path
    assert detail["message"].startswith("the template '{{"), detail
    assert detail["message"].endswith("is not closed; end it with '}}'"), detail
    assert upstream.requests == []


async def test_a_query_value_of_the_wrong_type_does_not_hide_another_entrys_template(
    client, upstream
):
    definition = {
        "url": upstream.url("/echo"),
        "query": {"a": {"b": 1}, "c": "{{ nope }}", "d": "{{ params.x"},
    }
    response, body = await execute(client, definition)

    assert response.status == 400, body
    assert sorted(d["path"] for d in body["error"]["details"]) == [
        "dataSource.query.a",
        "dataSource.query.c",
        "dataSource.query.d",
    ]
    assert upstream.requests == []


def test_an_unclosed_and_an_unknown_template_are_both_named():
    with pytest.raises(ValidationError) as raised:
        check_templates({"x": ["{{ nope }} and {{ params.a"]})
    assert raised.value.messages == {
        "x": "the template '{{ params.a' is not closed; end it with '}}'; unknown template "
        "'{{ nope }}': use {{ params.a.b }} or {{ secrets.NAME }}"
    }


@pytest.mark.parametrize(
    "definition",
    [
        {"url": "http://127.0.0.1/{{ env.HOME }}"},
        {"url": "http://127.0.0.1/x", "query": {"a": "{{ params }}"}},
        {"url": "http://127.0.0.1/x", "headers": {"X": "{{ secrets.A.B }}"}},
        {"url": "http://127.0.0.1/x", "body": {"deep": ["{{ nope }}"]}},
        {"url": "http://127.0.0.1/x", "headers": {"Bad Name": "v"}},
        {"url": "http://127.0.0.1/x", "headers": {"Content-Length": "1"}},
        {"url": "http://127.0.0.1/x", "bodyType": "text", "body": {"a": 1}},
        {"url": "http://127.0.0.1/x", "bodyType": "form", "body": {"a": {"b": 1}}},
        {"url": "http://127.0.0.1/x", "bodyType": "none", "body": "text"},
        {"url": "http://127.0.0.1/x", "query": {"a": {"b": 1}}},
    ],
)
async def test_malformed_definitions_are_refused(client, upstream, definition):
    response, body = await execute(client, definition)

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"


async def test_params_and_secrets_reach_url_query_headers_and_body(client, upstream):
    response, body = await execute(
        client,
        {
            "method": "post",
            "url": upstream.url(
                "/echo/{{ params.order.id }}/items?src={{ params.src }}"
            ),
            "query": {
                "status": "{{ params.status }}",
                "tag": ["a", "{{ params.tag }}"],
                "n": 3,
            },
            "headers": {"Authorization": "Bearer {{ secrets.KEY }}", "X-Count": 2},
            "body": {
                "id": "{{ params.order.id }}",
                "note": "order {{ params.order.id }}",
            },
        },
        params={
            "order": {"id": 42},
            "src": "a b",
            "status": "open/closed",
            "tag": "x&y",
        },
    )

    assert response.status == 200, body
    seen = upstream.requests[-1]
    assert seen.method == "POST"
    assert (
        seen.raw_path
        == "/echo/42/items?src=a%20b&status=open%2Fclosed&tag=a&tag=x%26y&n=3"
    )
    assert seen.headers["Authorization"] == "Bearer k3y-value"
    assert seen.headers["X-Count"] == "2"
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"id": 42, "note": "order 42"}


async def test_url_values_are_encoded_outside_the_unreserved_set(client, upstream):
    response, body = await execute(
        client,
        {"url": upstream.url("/echo/{{ params.v }}/{{ secrets.TOKEN }}")},
        params={"v": "a/b?c#d%e+f g~._-é"},
    )

    assert response.status == 200, body
    assert upstream.requests[-1].raw_path == (
        "/echo/a%2Fb%3Fc%23d%25e%2Bf%20g~._-%C3%A9/tok-a%2Fb%3Fc%23d%25e%2Bf"
    )


async def test_literal_parts_of_the_url_are_sent_as_written(client, upstream):
    response, body = await execute(
        client,
        {"url": upstream.url("/echo/a%2Fb/./c?x=%41&y={{ params.y }}")},
        params={"y": "."},
    )

    assert response.status == 200, body
    assert upstream.requests[-1].raw_path == "/echo/a%2Fb/./c?x=%41&y=."


@pytest.mark.parametrize("value", [".", ".."])
async def test_a_param_forming_a_dot_segment_is_refused(client, upstream, value):
    response, body = await execute(
        client, {"url": upstream.url("/echo/{{ params.p }}/admin")}, params={"p": value}
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.url"
    assert upstream.requests == []


async def test_a_dot_inside_a_segment_is_fine(client, upstream):
    response, _ = await execute(
        client, {"url": upstream.url("/echo/{{ params.p }}")}, params={"p": "..x"}
    )

    assert response.status == 200
    assert upstream.requests[-1].raw_path == "/echo/..x"


async def test_whole_template_json_values_keep_their_type(client, upstream):
    params = {"n": 7, "f": 1.5, "b": False, "z": None, "l": [1, "two"], "o": {"k": "v"}}
    response, body = await execute(
        client,
        {
            "method": "PUT",
            "url": upstream.url("/echo"),
            "body": {
                "n": "{{ params.n }}",
                "f": "{{params.f}}",
                "b": " {{ params.b }} ",
                "z": "{{ params.z }}",
                "l": "{{ params.l }}",
                "o": "{{ params.o }}",
                "first": "{{ params.l.1 }}",
                "mixed": "n={{ params.n }} o={{ params.o }}",
                "secret": "{{ secrets.KEY }}",
            },
        },
        params=params,
    )

    assert response.status == 200, body
    assert json.loads(upstream.requests[-1].body) == {
        **params,
        "first": "two",
        "mixed": 'n=7 o={"k":"v"}',
        "secret": "k3y-value",
    }


async def test_absent_params_leave_query_and_header_entries_out(client, upstream):
    response, body = await execute(
        client,
        {
            "url": upstream.url("/echo"),
            "query": {"q": "{{ params.q }}", "nil": "{{ params.nil }}", "kept": "yes"},
            "headers": {"X-Opt": "{{ params.opt }}", "X-Kept": "yes"},
        },
        params={"nil": None},
    )

    assert response.status == 200, body
    seen = upstream.requests[-1]
    assert seen.query == {"kept": "yes"}
    assert "X-Opt" not in seen.headers
    assert seen.headers["X-Kept"] == "yes"


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ({"url": "http://127.0.0.1:1/echo/{{ params.id }}"}, "dataSource.url"),
        (
            {"url": "http://127.0.0.1:1/x", "query": {"q": "a-{{ params.q }}"}},
            "dataSource.query.q",
        ),
        (
            {"url": "http://127.0.0.1:1/x", "headers": {"X-A": "v {{ params.a.x }}"}},
            "dataSource.headers.X-A",
        ),
        (
            {"url": "http://127.0.0.1:1/x", "body": {"a": "{{ params.a.x }}"}},
            "dataSource.body",
        ),
        (
            {"url": "http://127.0.0.1:1/x", "body": "text {{ params.a.b }}"},
            "dataSource.body",
        ),
    ],
)
async def test_absent_params_elsewhere_are_validation_failed(client, definition, path):
    response, body = await execute(client, definition, params={"a": {}})

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == path
    assert "params." in body["error"]["message"]


NULL_IN_URL = (
    "params.o is null; the URL cannot hold it: give it a value (a query entry that is "
    "this param alone is left out instead)"
)
NOT_GIVEN = "is not given: give it in params or remove it from the template"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/echo/{{ params.o }}",
        "http://127.0.0.1:1/echo/a-{{ params.o }}",
        "http://127.0.0.1:1/echo?x={{ params.o }}",
        "http://{{ params.o }}/echo",
    ],
)
async def test_a_null_param_in_the_url_is_refused(client, upstream, url):
    # It was sent as the text 'null', as if that were its value.
    response, body = await execute(client, {"url": url}, params={"o": None})

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"] == [
        {"path": "dataSource.url", "message": NULL_IN_URL}
    ]


async def test_every_absent_param_is_listed_at_once(client, upstream):
    response, body = await execute(
        client,
        {
            "method": "POST",
            "url": upstream.url(
                "/{{ params.a }}/{{params.b.c}}/{{ params.o }}?x={{ params.q }}"
            ),
            "query": {"opt": "{{ params.opt }}", "tag": ["t", "t-{{ params.t }}"]},
            "headers": {"X-Opt": "{{ params.h }}", "X-V": "v {{ params.v }}"},
            "body": {"z": "{{ params.z }}", "text": "{{ params.y }} {{ params.z }}"},
        },
        params={"b": {}, "o": None},
    )

    assert response.status == 400, body
    assert body["error"]["details"] == [
        {"path": path, "message": message}
        for path, message in [
            ("dataSource.url", f"params.a {NOT_GIVEN}"),
            ("dataSource.url", f"params.b.c {NOT_GIVEN}"),
            ("dataSource.url", NULL_IN_URL),
            ("dataSource.url", f"params.q {NOT_GIVEN}"),
            ("dataSource.query.tag", f"params.t {NOT_GIVEN}"),
            ("dataSource.headers.X-V", f"params.v {NOT_GIVEN}"),
            ("dataSource.body", f"params.z {NOT_GIVEN}"),
            ("dataSource.body", f"params.y {NOT_GIVEN}"),
        ]
    ]
    assert upstream.requests == []


# Every character of Unicode category Cc: C0, DEL and C1 (NEL U+0085, CSI U+009B ...).
CONTROL_VALUES = [
    "a\r\nX-Injected: 1",
    "a\nb",
    "a\x00b",
    "a\x7f",
    "a\tb",
    "a\u0080b",
    "a\u0085b",
    "a\u009bb",
    "a\u009f",
]


@pytest.mark.parametrize("value", CONTROL_VALUES)
async def test_control_characters_in_header_values_are_refused(client, upstream, value):
    response, body = await execute(
        client,
        {"url": upstream.url("/echo"), "headers": {"X-V": "{{ params.v }}"}},
        {"v": value},
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.headers.X-V"
    assert "'X-V'" in body["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize("value", CONTROL_VALUES)
async def test_control_characters_written_in_a_header_value_are_refused(
    client, upstream, value
):
    response, body = await execute(
        client, {"url": upstream.url("/echo"), "headers": {"X-Literal": value}}
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.headers.X-Literal"
    assert "'X-Literal'" in body["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize("name", ["X-\u0085", "X-\x00", "X\r\nY"])
async def test_control_characters_in_a_header_name_are_refused(client, upstream, name):
    response, body = await execute(
        client, {"url": upstream.url("/echo"), "headers": {name: "v"}}
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert upstream.requests == []


def test_every_unicode_control_character_is_refused_in_a_header_and_nothing_else():
    controls = [chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for char in controls:
        with pytest.raises(errors.ValidationFailed):
            render_headers({"X-V": f"a{char}b"}, Context({}, {}))

    # Just past each end of the C0 and C1 ranges, and separators that are not Cc.
    for char in (" ", "~", "\u00a0", "\u00e9", "\u2028", "\ufeff"):
        headers, _ = render_headers({"X-V": f"a{char}b"}, Context({}, {}))
        assert headers["X-V"] == f"a{char}b"


async def test_missing_secret_is_secret_not_found(client, upstream):
    response, body = await execute(
        client,
        {"url": upstream.url("/echo"), "headers": {"X-Key": "{{ secrets.NOPE }}"}},
    )

    assert response.status == 422
    assert body["error"]["code"] == "SECRET_NOT_FOUND"
    assert "NOPE" in body["error"]["message"]
    assert upstream.requests == []


async def test_form_and_text_bodies(client, upstream):
    response, _ = await execute(
        client,
        {
            "method": "POST",
            "url": upstream.url("/echo"),
            "bodyType": "form",
            "body": {"name": "{{ params.name }}", "n": 2, "flag": True},
        },
        params={"name": "a b&c"},
    )
    assert response.status == 200
    seen = upstream.requests[-1]
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.body == b"name=a+b%26c&n=2&flag=true"

    response, _ = await execute(
        client,
        {
            "method": "POST",
            "url": upstream.url("/echo"),
            "body": "hello {{ params.name }}",
            "headers": {"content-type": "text/x-custom"},
        },
        params={"name": "wörld"},
    )
    assert response.status == 200
    seen = upstream.requests[-1]
    assert seen.headers["Content-Type"] == "text/x-custom"
    assert seen.body == "hello wörld".encode()


async def test_a_secret_may_form_the_host(client, upstream):
    response, body = await execute(
        client, {"url": f"http://{{{{ secrets.HOST }}}}:{upstream.port}/json"}
    )

    assert response.status == 200, body
    assert body["data"] == {"items": [1, 2], "ok": True}


async def test_a_param_may_not_smuggle_into_the_host(client, upstream):
    response, body = await execute(
        client,
        {"url": "http://{{ params.h }}/json"},
        params={"h": f"127.0.0.1:{upstream.port}@evil"},
    )

    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert upstream.requests == []


def nested(depth: int, leaf: object) -> object:
    """``leaf`` inside ``depth`` levels of alternating objects and arrays."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


async def test_a_param_may_not_deepen_the_body_past_the_limit(client, upstream):
    # Each part is within the service's request depth; together they pass the body's limit.
    response, body = await execute(
        client,
        {
            "method": "POST",
            "url": upstream.url("/echo"),
            "body": nested(40, "{{ params.x }}"),
        },
        params={"x": nested(40, 1)},
    )

    assert response.status == 400, body
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["error"]["details"][0]["path"] == "dataSource.body"
    assert "64 levels" in body["error"]["details"][0]["message"]
    assert upstream.requests == []


async def test_a_body_at_the_depth_limit_is_sent(client, upstream):
    deep = nested(30, "{{ params.x }}")
    response, body = await execute(
        client,
        {"method": "POST", "url": upstream.url("/echo"), "body": deep},
        params={"x": nested(34, "end")},
    )

    assert response.status == 200, body
    sent = json.loads(upstream.requests[-1].body)
    assert json_depth(sent) == 64
    assert sent == nested(30, nested(34, "end"))


def test_rendering_and_validation_do_not_recurse():
    # Far past Python's recursion limit: a definition that reaches the plugin by another way
    # than the service's JSON reading (which caps depth) still fails cleanly.
    deep = nested(5000, "{{ params.n }}")

    assert list(iter_strings(deep)) == ["{{ params.n }}"]
    rendered = Context({"n": 7}, {}).render_json(deep)
    assert json_depth(rendered) == 5000
    while isinstance(rendered, dict | list):  # == would recurse too
        rendered = rendered["k"] if isinstance(rendered, dict) else rendered[0]
    assert rendered == 7
    with pytest.raises(ValidationError) as caught:
        RestDefinitionSchema().load({"url": "http://127.0.0.1/x", "body": deep})
    assert "64 levels" in caught.value.messages["body"][0]


def test_a_loaded_definition_names_its_secrets_as_the_templates_do():
    raw = {
        "url": "https://{{ secrets.HOST }}/x",
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        "query": {"q": "{{ params.q }}"},
        "body": {"k": ["{{ secrets.KEY }}"]},
    }
    loaded = RestDefinitionSchema().load(raw)
    assert loaded.secret_names == secret_names(dict(loaded)) == {"HOST", "TOKEN", "KEY"}
    assert dict(loaded) == loaded


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5) | json_values)
def test_request_params_load_as_marshmallow_loads_them(params):
    schema = RequestParamsSchema()
    try:
        expected = Schema.load(schema, params)
    except ValidationError as e:
        with pytest.raises(ValidationError) as refused:
            schema.load(params)
        assert refused.value.messages == e.messages
        return
    loaded = schema.load(params)
    # marshmallow lists unknown keys in a set's order; the copy keeps the caller's order
    # (templates read params by name, so the order of the top level is never seen).
    assert loaded == expected and loaded is not params
    assert list(loaded) == list(params)
