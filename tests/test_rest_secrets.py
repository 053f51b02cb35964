"""Secrets stay secret (API.md 5.4): an echoing upstream, then a scan of all the service wrote."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from lowcode_runtime.masking import MASK
from tests.conftest import AUTH
from tests.fixtures.upstream import execute

SECRET = "s3cr3t/V@lue+=&?"
SHORT = "xy"
PLAIN = "s3cr3tTOKENvalue-XYZ"  # what a URL's authority may hold
FORMS = (SECRET, quote(SECRET, safe=""), quote_plus(SECRET), SHORT)


@pytest.fixture
async def client(make_client, tmp_path, secrets_api):
    secrets_api.state.secrets["p1"] = {"TOKEN": SECRET, "SHORT": SHORT, "PLAIN": PLAIN}
    return await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())


def written(*texts: str) -> str:
    return "\n".join(texts)


async def test_echoed_secrets_come_back_redacted_and_nowhere_else(
    client, upstream, logs, secrets_api
):
    outputs = []

    response, body = await execute(
        client,
        {
            "method": "POST",
            "url": upstream.url("/echo/{{ secrets.TOKEN }}"),
            "query": {"k": "{{ secrets.TOKEN }}"},
            "headers": {
                "Authorization": "Bearer {{ secrets.TOKEN }}",
                "X-Link": "/next/{{ secrets.TOKEN }}",
                "X-Short": "{{ secrets.SHORT }}",
            },
            "body": {
                "token": "{{ secrets.TOKEN }}",
                "note": "short={{ secrets.SHORT }}",
            },
        },
    )
    outputs += [json.dumps(body), str(dict(response.headers))]

    # The upstream did get the secret, in every place it was written.
    seen = upstream.requests[-1]
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(seen.body)["token"] == SECRET
    assert seen.query["k"] == SECRET

    assert response.status == 200, body
    assert body["meta"]["redacted"] is True
    data = body["data"]
    assert data["headers"]["Authorization"] == f"Bearer {MASK}"
    assert data["headers"]["X-Short"] == MASK
    assert data["query"]["k"] == MASK
    assert MASK in data["rawPath"] and MASK in data["path"]
    assert json.loads(data["body"].replace(MASK, "R")) == {
        "token": "R",
        "note": "short=R",
    }
    assert body["meta"]["upstream"]["headers"]["link"] == f"</next/{MASK}>; rel=next"
    assert "x-echo-auth" not in body["meta"]["upstream"]["headers"]

    # An error text that echoes the secret.
    response, body = await execute(
        client,
        {
            "url": upstream.url("/status/401"),
            "headers": {"Authorization": "{{ secrets.TOKEN }}"},
        },
    )
    outputs += [json.dumps(body), str(dict(response.headers))]
    assert response.status == 502
    assert body["error"]["code"] == "UPSTREAM_STATUS"
    assert body["error"]["details"]["body"] == MASK
    assert body["meta"]["redacted"] is True

    # A host that is a secret and does not resolve: the error text names it, redacted.
    secrets_api.state.secrets["p2"] = {"HOST": "secret-host.invalid"}
    response, body = await execute(
        client, {"url": "http://{{ secrets.HOST }}/x"}, project="p2"
    )
    outputs += [json.dumps(body), str(dict(response.headers))]
    assert body["error"]["code"] == "UPSTREAM_UNREACHABLE"
    assert "secret-host.invalid" not in body["error"]["message"]
    assert body["meta"]["redacted"] is True

    metrics = await client.get("/metrics", headers=AUTH)
    outputs.append(await metrics.text())
    outputs.append(logs.text)

    everything = written(*outputs)
    for form in (*FORMS[:3], "secret-host.invalid", "svc-secret-do-not-leak-42"):
        assert form not in everything, form
    assert logs.events("dataSource.call.success"), (
        "the scan must have seen the call's logs"
    )


async def test_nothing_is_redacted_when_no_secret_is_echoed(client, upstream):
    response, body = await execute(
        client,
        {"url": upstream.url("/json"), "headers": {"X-Key": "{{ secrets.TOKEN }}"}},
    )

    assert response.status == 200
    assert body["data"] == {"items": [1, 2], "ok": True}
    assert "redacted" not in body["meta"]


@pytest.mark.parametrize(
    "spelt", ["987654", "987654.0", "9.87654e5", "987654E0", "-987654", "-9.87654e5"]
)
async def test_numeric_secret_echoed_as_a_json_number(
    make_client, upstream, secrets_api, spelt
):
    secrets_api.state.secrets["p1"] = {"PIN": "987654"}
    client = await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())
    echoed = f'{{"pin": {spelt}, "other": 12}}'.encode().hex()
    response, body = await execute(
        client,
        {
            "url": upstream.url(f"/raw?ct=application/json&hex={echoed}"),
            "headers": {"X-Pin": "{{ secrets.PIN }}"},
        },
    )

    assert response.status == 200
    assert body["data"] == {"pin": MASK, "other": 12}
    assert body["meta"]["redacted"] is True


@pytest.mark.parametrize("spelt", ["9.87654e5", "98765.4e1", "-987654", "987654.0"])
async def test_numeric_secret_in_an_error_or_text_body_is_redacted_however_spelt(
    make_client, upstream, secrets_api, spelt
):
    """The error body is text: only the secret's own digits were masked there."""
    secrets_api.state.secrets["p1"] = {"PIN": "987654"}
    client = await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())
    definition = {"headers": {"X-Pin": "{{ secrets.PIN }}"}}

    echoed = f'{{"pin": {spelt}, "other": 1987653}}'.encode().hex()
    url = upstream.url(f"/raw?ct=application/json&hex={echoed}&status=500")
    response, body = await execute(client, {**definition, "url": url})
    assert response.status == 502, body
    assert body["error"]["details"]["body"] == '{"pin": [REDACTED], "other": 1987653}'

    text = f"pin {spelt} and 1987653".encode().hex()
    url = upstream.url(f"/raw?ct=text/plain&hex={text}")
    response, body = await execute(client, {**definition, "url": url})
    assert body["data"] == "pin [REDACTED] and 1987653", body


async def test_a_secret_in_the_urls_password_is_redacted_where_its_basic_header_is_echoed(
    client, upstream, logs
):
    url = upstream.url("/echo").replace("http://", "http://user:{{ secrets.PLAIN }}@")

    response, body = await execute(client, {"url": url})

    assert response.status == 200, body
    seen = upstream.requests[-1]
    sent = seen.headers["Authorization"]
    assert sent.startswith("Basic ")  # aiohttp built it from the URL
    assert body["data"]["headers"]["Authorization"] == f"Basic {MASK}"
    assert body["meta"]["redacted"] is True
    assert sent.removeprefix("Basic ") not in json.dumps(body) + logs.text


async def test_an_answer_does_not_tell_a_caller_that_a_guess_is_another_projects_secret(
    client, upstream
):
    # p1's call resolves its TOKEN: from then on the process knows PLAIN and SECRET.
    response, _ = await execute(
        client,
        {"url": upstream.url("/json"), "headers": {"X-T": "{{ secrets.PLAIN }}"}},
    )
    assert response.status == 200
    guess = {"url": upstream.url(f"/json/{{{{ {PLAIN} }}}}")}

    _, theirs = await execute(client, guess, project="p2")
    _, own = await execute(client, guess, project="p1")

    assert theirs["error"]["code"] == own["error"]["code"] == "VALIDATION_FAILED"
    assert PLAIN in json.dumps(theirs), "p2 wrote it: it gets its own text back"
    assert PLAIN not in json.dumps(own) and MASK in json.dumps(own)
