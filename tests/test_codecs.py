"""The fast JSON paths (orjson) answer exactly what the standard library's would."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lowcode_runtime import envelope, errors, upstream
from lowcode_runtime.logs import logger, setup_logging
from lowcode_runtime.masking import MASK, mask, needs_masking, secrets
from lowcode_runtime.redact import Redactor
from lowcode_runtime.requests import _parse_with_stdlib, parse_strict_json

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**80)
    | st.floats()
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def typed(value: Any) -> Any:
    """``value`` with the type of every scalar kept, so 1 and 1.0 (and NaNs) compare unequal."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)


def outcome(parse: Any, raw: bytes) -> Any:
    try:
        return typed(parse(raw))
    except errors.RuntimeBackendError as e:
        return (e.code, e.message)


def as_body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@given(values)
def test_request_bodies_parse_as_the_standard_library_parses_them(value):
    raw = as_body(value)
    assert outcome(parse_strict_json, raw) == outcome(_parse_with_stdlib, raw)


@given(st.binary(max_size=60))
def test_any_bytes_parse_as_the_standard_library_parses_them(raw):
    assume(not raw.startswith(b"\xef\xbb\xbf"))  # refused before either parser runs
    assert outcome(parse_strict_json, raw) == outcome(_parse_with_stdlib, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"18446744073709551616",
        b'{"id": -9223372036854775809}',
        b"[1e400]",
        b'"\\ud800"',
        b'"\\ud83d\\ude00"',
        b'{"a": 1, "a": 2}',
        b"[" * 70 + b"]" * 70,
        b"[" * 1100 + b"]" * 1100,
        b'"\xed\xa0\x80"',
        b"NaN",
    ],
)
def test_where_orjson_differs_the_standard_library_answers(raw):
    assert outcome(parse_strict_json, raw) == outcome(_parse_with_stdlib, raw)


def stdlib_body(value: Any) -> Any:
    try:
        return ("body", json.loads(envelope._stdlib_dumps(value)))
    except (ValueError, TypeError) as e:
        return ("refused", type(e))


def encoded(value: Any) -> Any:
    try:
        return ("body", json.loads(envelope.encode(value)))
    except (ValueError, TypeError) as e:
        return ("refused", type(e))


@given(values)
def test_answers_encode_as_the_standard_library_encodes_them(value):
    expected = stdlib_body(value)
    got = encoded(value)
    assert typed(got) == typed(expected)


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**70},
        {"x": [1.0, None, float("nan")]},
        {"x": {"y": float("inf")}},
        {"s": "\ud800"},
        {1: "int key"},
        {"t": (1, 2)},
        {"e": "é \u2028"},
    ],
)
def test_where_orjson_differs_answers_are_the_standard_librarys(value):
    assert typed(encoded(value)) == typed(stdlib_body(value))


@pytest.fixture
def stream():
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    yield stream
    setup_logging("warning", "json")
    secrets.clear()


def test_a_line_with_nothing_to_mask_is_written_as_it_is(stream):
    logger.bind(event="demo", projectId="p-1", durationMs=1.5, n=2**70).info("plain é")
    line = json.loads(stream.getvalue())
    assert (line["projectId"], line["durationMs"], line["n"]) == ("p-1", 1.5, 2**70)
    assert line["message"] == "plain é"


@pytest.mark.parametrize(
    "fields",
    [
        {"projectId": "Bearer abc.def"},
        {"path": "/x/password=abc"},
        {"dsn": "postgres://u:abc@h/db"},
        {"nested": {"deep": ["ok", "password=abc"]}},
        {"password=abc": "a key"},
        {"object": ValueError("password=abc")},
    ],
)
def test_a_secret_anywhere_in_a_line_is_masked(stream, fields):
    logger.bind(event="demo", **fields).info("a line")
    assert "abc" not in stream.getvalue()
    assert MASK in stream.getvalue()
    json.loads(stream.getvalue())


def test_a_registered_secret_is_masked_percent_encoded_too(stream):
    secrets.register("k3y/val+ue?&= x")
    logger.bind(
        event="demo",
        upper="https://api.example/?k=k3y%2Fval%2Bue%3F%26%3D%20x",
        lower="https://api.example/?k=k3y%2fval%2bue%3f%26%3d%20x",
        form="k=k3y%2Fval%2Bue%3F%26%3D+x",
    ).info("x")
    line = json.loads(stream.getvalue())
    assert line["upper"] == line["lower"] == f"https://api.example/?k={MASK}"
    assert line["form"] == f"k={MASK}"


def test_a_registered_secret_is_masked_in_every_field(stream):
    secrets.register('s3cr"et\\value')
    logger.bind(event="demo", value='it is s3cr"et\\value').info("x")
    line = json.loads(stream.getvalue())
    assert line["value"] == f"it is {MASK}"


pieces = st.sampled_from(
    [
        "Bearer",
        "bearer ",
        "password",
        "paſſword",
        "=",
        " ",
        "x",
        "pg://",
        ":",
        "@",
        "'",
        "\n",
    ]
)
texts = st.lists(pieces, max_size=8).map("".join) | st.text(max_size=20)


@given(st.lists(texts, min_size=1, max_size=5))
def test_scanning_texts_joined_misses_nothing_that_masking_each_would_change(texts):
    if any(mask(t) != t for t in texts):
        assert needs_masking("\n".join(texts))


def upstream_outcome(parse: Any, text: str) -> Any:
    try:
        return ("value", typed(parse(text)))
    except RecursionError:
        return ("too deep",)
    except ValueError:
        return ("refused",)


def stdlib_upstream(text: str) -> Any:
    """The standard library's reading, refused where no JSON answer can carry the value."""
    value = json.loads(
        text.removeprefix("\ufeff"), parse_constant=upstream._refuse_constant
    )
    # Infinity (a number past a float) or a lone surrogate: ValueError, UnicodeEncodeError.
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    return value


@given(values)
def test_upstream_bodies_parse_as_the_standard_library_parses_them(value):
    text = json.dumps(value, ensure_ascii=False)
    assert upstream_outcome(upstream.parse_json, text) == upstream_outcome(
        stdlib_upstream, text
    )


@given(st.text(max_size=60))
def test_any_upstream_text_parses_as_the_standard_library_parses_it(text):
    assert upstream_outcome(upstream.parse_json, text) == upstream_outcome(
        stdlib_upstream, text
    )


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",
        '{"id": -9223372036854775809, "n": 1234567890123456789012}',
        "[1e400, -1e400]",
        '"\\ud800"',
        '{"\\ud800x": 1}',
        '["\\udc00\\ud800"]',
        "1.7976931348623157e309",
        '"\\ud83d\\ude00"',
        '{"a": 1, "a": 2}',
        "[" * 1100 + "]" * 1100,
        "\ufeff[1]",
        "NaN",
        "[Infinity]",
        '"\ud800"',
    ],
)
def test_where_orjson_differs_upstream_bodies_are_the_standard_librarys(text):
    assert upstream_outcome(upstream.parse_json, text) == upstream_outcome(
        stdlib_upstream, text
    )


secret_values = st.text(alphabet='ab1/ +"\\é', min_size=1, max_size=4)


def redacted(secrets_given: list[str], walk: Any) -> Any:
    redactor = Redactor(secrets_given)
    try:
        return typed(walk(redactor)), redactor.redacted
    except RecursionError:
        return ("too deep",)


@given(st.lists(secret_values, max_size=3), values)
def test_a_parsed_body_is_redacted_as_walking_it_redacts_it(secrets_given, value):
    text = json.dumps(value, ensure_ascii=False)
    assume("\ud800" not in text)  # an upstream's text is decoded: no lone surrogates
    parsed = json.loads(text)
    assert redacted(secrets_given, lambda r: r.parsed_json(parsed, text)) == redacted(
        secrets_given, lambda r: r.json(parsed)
    )


@pytest.mark.parametrize(
    ("secret", "text"),
    [
        ("abc", '{"k": "\\u0061bc"}'),
        ("a/b", '["a\\/b"]'),
        ("12", '{"n": 12}'),
        ("1.5", "[1.50]"),
        ("abc", '{"abc": 1}'),
        ("abc", "[" * 600 + '"x"' + "]" * 600),
    ],
)
def test_what_a_text_hides_from_a_scan_is_still_redacted(secret, text):
    parsed = json.loads(text)
    assert redacted([secret], lambda r: r.parsed_json(parsed, text)) == redacted(
        [secret], lambda r: r.json(parsed)
    )
