"""A secret echoed inside JSON text with escapes is redacted on every path (API.md 5.4).

An upstream may write any character of a string as ``\\uXXXX`` (hex in either case), ``/`` as
``\\/``, and may escape some characters and not others: the text paths (``details.body``,
``responseType: "text"``, a JSON type read as text) must redact each spelling, as the parsed
path does.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowcode_runtime.masking import MASK
from lowcode_runtime.redact import Redactor
from tests.fixtures.upstream import execute

SECRETS = {"ASCII": "s3cr3t-value-1", "WIDE": "pässwörd/é x", "ODD": 'q"\\u/😀\tz'}


def escaped(char: str, upper: bool = False) -> str:
    """``char`` as ``\\uXXXX`` (a surrogate pair past the BMP), hex in lower or upper case."""
    units = json.dumps(char)[1:-1] if ord(char) > 0xFFFF else f"\\u{ord(char):04x}"
    return units.upper().replace("\\U", "\\u") if upper else units


def as_is(char: str) -> bool:
    """Whether JSON text may hold ``char`` unescaped."""
    return json.dumps(char, ensure_ascii=False)[1:-1] == char


def every_other_escaped(secret: str) -> str:
    """Only some characters escaped: an upstream's encoder may escape what it likes."""
    return "".join(
        c if i % 2 == 0 and as_is(c) else escaped(c) for i, c in enumerate(secret)
    )


SPELLINGS = {
    "ensure_ascii": lambda s: json.dumps(s)[1:-1],
    "not_ascii_slashes": lambda s: json.dumps(s, ensure_ascii=False)[1:-1].replace(
        "/", "\\/"
    ),
    "all_upper_hex": lambda s: "".join(escaped(c, upper=True) for c in s),
    "mixed": every_other_escaped,
}


@pytest.fixture
async def client(make_client, secrets_api):
    secrets_api.state.secrets["p1"] = SECRETS
    return await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())


def echoing(
    upstream: Any, name: str, spelling: str, status: int, ct: str
) -> dict[str, Any]:
    """A call naming the secret whose answer is ``{"u": <the secret, spelled>}``."""
    body = '{"u": "' + SPELLINGS[spelling](SECRETS[name]) + '"}'
    assert json.loads(body) == {"u": SECRETS[name]}
    hex_body = body.encode().hex()
    return {
        "url": upstream.url(f"/raw?status={status}&ct={ct}&hex={hex_body}"),
        "query": {"k": f"{{{{ secrets.{name} }}}}"},
    }


def assert_nowhere(secret: str, *outputs: str) -> None:
    """Neither the secret nor any of its spellings in what the service wrote."""
    everything = "\n".join(outputs)
    for spell in SPELLINGS.values():
        assert spell(secret) not in everything
    assert secret not in everything


CASES = [(name, spelling) for name in SECRETS for spelling in SPELLINGS]


@pytest.mark.parametrize(("name", "spelling"), CASES)
@pytest.mark.parametrize("status", [400, 500])
async def test_error_body_echoing_an_escaped_secret(
    client, upstream, logs, name, spelling, status
):
    call = echoing(upstream, name, spelling, status, "application/json")
    response, body = await execute(client, call)

    assert response.status == 502, body
    assert body["error"]["code"] == "UPSTREAM_STATUS"
    assert body["error"]["details"]["body"] == '{"u": "' + MASK + '"}'
    assert body["error"]["details"]["redacted"] is True
    assert body["meta"]["redacted"] is True
    assert_nowhere(SECRETS[name], json.dumps(body), logs.text)


@pytest.mark.parametrize(("name", "spelling"), CASES)
@pytest.mark.parametrize(
    ("response_type", "ct"),
    [("text", "application/json"), ("auto", "text/plain")],
)
async def test_text_body_echoing_an_escaped_secret(
    client, upstream, logs, name, spelling, response_type, ct
):
    call = echoing(upstream, name, spelling, 200, ct)
    response, body = await execute(client, {**call, "responseType": response_type})

    assert response.status == 200, body
    assert body["data"] == '{"u": "' + MASK + '"}'
    assert body["meta"]["redacted"] is True
    assert_nowhere(SECRETS[name], json.dumps(body), logs.text)


@pytest.mark.parametrize(("name", "spelling"), CASES)
@pytest.mark.parametrize("response_type", ["json", "auto"])
async def test_json_body_echoing_an_escaped_secret(
    client, upstream, logs, name, spelling, response_type
):
    call = echoing(upstream, name, spelling, 200, "application/json")
    response, body = await execute(client, {**call, "responseType": response_type})

    assert response.status == 200, body
    assert body["data"] == {"u": MASK}
    assert body["meta"]["redacted"] is True
    assert_nowhere(SECRETS[name], json.dumps(body), logs.text)


# --- any secret, any partial escaping -------------------------------------------------------

secret_texts = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\0"),
    min_size=1,
    max_size=8,
)


@st.composite
def spelled(draw: Any, secret: str) -> str:
    """``secret`` inside a JSON string, each character in a spelling drawn for it."""
    parts = []
    for char in secret:
        ways = [escaped(char), escaped(char, upper=True)]
        short = json.dumps(char)[1:-1]
        if short.startswith("\\") and not short.startswith("\\u"):
            ways.append(short)
        if char == "/":
            ways.append("\\/")
        if as_is(char):
            ways.append(char)
        parts.append(draw(st.sampled_from(ways)))
    return "".join(parts)


@given(st.data(), secret_texts, st.text(max_size=6), st.text(max_size=6))
def test_a_secret_spelled_any_way_inside_json_text_is_redacted(
    data, secret, before, after
):
    text = (
        '["'
        + json.dumps(before, ensure_ascii=data.draw(st.booleans()))[1:-1]
        + data.draw(spelled(secret))
        + json.dumps(after, ensure_ascii=data.draw(st.booleans()))[1:-1]
        + '"]'
    )
    assert secret in json.loads(text)[0]

    redactor = Redactor([secret])
    result = redactor.text(text)

    assert redactor.redacted
    assert secret not in result.replace(MASK, "\0")
    try:
        decoded = json.loads(result)
    except ValueError:
        return  # a match across an escape's edge leaves no valid JSON: nothing to read back
    assert secret not in json.dumps(decoded, ensure_ascii=False).replace(MASK, "\0")
    assert all(secret not in item.replace(MASK, "\0") for item in decoded)


# --- percent-encoded, some characters or all, hex in either case ----------------------------


def percent_encoded(char: str, upper: bool) -> str:
    encoded = "".join(f"%{byte:02x}" for byte in char.encode("utf-8"))
    return encoded.upper() if upper else encoded


@st.composite
def percent_spelled(draw: Any, secret: str) -> str:
    """``secret`` with each character as is or percent-encoded (a space also as ``+``)."""
    parts = []
    for char in secret:
        ways = [char, percent_encoded(char, False), percent_encoded(char, True)]
        if char == " ":
            ways.append("+")
        parts.append(draw(st.sampled_from(ways)))
    return "".join(parts)


@given(st.data(), secret_texts, st.text(max_size=6), st.text(max_size=6))
def test_a_secret_percent_encoded_any_way_is_redacted(data, secret, before, after):
    spelling = data.draw(percent_spelled(secret))
    redactor = Redactor([secret])

    result = redactor.text(before + spelling + after)

    assert redactor.redacted
    assert secret not in unquote(result.replace(MASK, "\0"))


@pytest.mark.parametrize(
    "echo",
    [
        "k3y%2fval%2bue%3f%26%3d",  # every character encoded, lower-case hex
        "k3y/val%2Bue%3F%26%3D",  # "/" decoded by the upstream's URL parser
        "k3y/val%2Bue?%26%3D",  # what aiohttp's str(URL) writes of the query
    ],
)
async def test_an_upstream_echoing_a_secret_percent_encoded_its_own_way(
    make_client, secrets_api, upstream, logs, echo
):
    secret = "k3y/val+ue?&="
    secrets_api.state.secrets["p1"] = {"KEY": secret}
    client = await make_client(egress_allow=("127.0.0.1",), **secrets_api.settings())
    body = f"seen: /items?a={echo}".encode().hex()

    response, answer = await execute(
        client,
        {
            "url": upstream.url(f"/raw?ct=text/plain&hex={body}"),
            "query": {"a": "{{ secrets.KEY }}"},
        },
    )

    assert response.status == 200, answer
    assert answer["data"] == f"seen: /items?a={MASK}"
    assert answer["meta"]["redacted"] is True
    assert echo not in logs.text
