"""Reading request bodies: strict JSON (RFC 8259) within the body limit."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from marshmallow import ValidationError

from lowcode_runtime import errors
from lowcode_runtime.keys import SETTINGS

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a body may have; no dataSource needs more."""


_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""19 digits in a row may be an integer orjson cannot hold (past 64 bits)."""
_DIGITS = b"0123456789"


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc): C0, tab included, DEL and C1."""
_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
"""Control characters (C0, DEL, C1) and the bidirectional controls, which can make a log line
read otherwise than it is written (U+202E turns the rest of a line around)."""
MAX_PROJECT_ID_LENGTH = 256
MAX_NAME_LENGTH = 200
"""Longest dataSource name."""


def is_printable_name(value: Any) -> bool:
    """A dataSource name fit to stand in an answer's meta and a log line."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_LENGTH
        and not UNPRINTABLE.search(value)
    )


def checked_project_id(project_id: object) -> str:
    """The projectId itself, or VALIDATION_FAILED when it is empty, blank, longer than
    :data:`MAX_PROJECT_ID_LENGTH` or holds a control or bidirectional formatting character:
    the rule of every route that takes one (the execute route, a plugin's own)."""
    if isinstance(project_id, str) and UNPRINTABLE.search(project_id):
        # It stands in log lines, as a dataSource's name does.
        message = "must not hold control or bidirectional formatting characters"
        raise errors.ValidationFailed(
            f"projectId {message}", [{"path": "projectId", "message": message}]
        )
    if isinstance(project_id, str) and len(project_id) > MAX_PROJECT_ID_LENGTH:
        message = f"must be at most {MAX_PROJECT_ID_LENGTH} characters"
        raise errors.ValidationFailed(
            f"projectId {message}", [{"path": "projectId", "message": message}]
        )
    if not isinstance(project_id, str) or not project_id.strip():
        raise errors.ValidationFailed(
            "projectId must not be empty or blank",
            [{"path": "projectId", "message": "must not be empty or blank"}],
        )
    return project_id


def empty_project_id_routed(path: str) -> str:
    """``path`` with its ``{projectId}`` matching an empty segment too, so that
    :func:`project_id_of` refuses it as VALIDATION_FAILED (6.1) rather than the router 404.
    The resource's canonical path stays ``path``."""
    return path.replace("{projectId}", "{projectId:[^{}/]*}")


def project_id_of(request: web.Request) -> str:
    """The path's projectId, checked; VALIDATION_FAILED where its percent-encoding is not
    UTF-8 (``%FF``) or not an escape at all (``%G1``, a lone ``%``): the router would keep
    such a text as it is, the same projectId as the one spelt ``%25FF``."""
    raw = request.raw_path.partition("?")[0]
    # Most paths hold no escape at all, and are not decoded here.
    if "%" in raw and not _percent_encoded_utf8(raw):
        message = "must be percent-encoded UTF-8"
        raise errors.ValidationFailed(
            f"projectId {message}", [{"path": "projectId", "message": message}]
        )
    return checked_project_id(request.match_info["projectId"])


def _percent_encoded_utf8(raw: str) -> bool:
    if _MALFORMED_ESCAPE.search(raw):
        return False
    try:
        unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def unprintable_name(value: str) -> None:
    """A marshmallow validator: :data:`UNPRINTABLE` has no place in a name."""
    if UNPRINTABLE.search(value):
        raise ValidationError(
            "must not hold control or bidirectional formatting characters"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A number such as ``1e400`` is valid JSON, but a float holds it only as infinity."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 40 else f"{text[:30]}…{text[-8:]}"
        raise errors.InvalidJson(
            f"the number {shown} is beyond what this service reads as a JSON number "
            "(a 64-bit float); send it as a string"
        )
    return value


def parse_strict_json(raw: bytes) -> Any:
    """Parse ``raw`` as RFC 8259 JSON; refuse what only a lenient parser would take.

    ``NaN``/``Infinity``, bad UTF-8, a byte-order mark, lone surrogate escapes (``"\\ud800"``,
    which no database or upstream can store), nesting past :data:`MAX_DEPTH` and numbers no
    float holds (``1e400``: named, not read as infinity) are refused.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raise errors.InvalidJson(
            "request body starts with a byte-order mark; send plain UTF-8"
        )

    # orjson first: it refuses everything the standard library is told to refuse here, and
    # more (numbers that overflow a float), and it turns integers past 64 bits into floats.
    # Such a body (and any it refuses) goes to the standard library, which says exactly
    # what is wrong and keeps every integer.
    if len(raw.translate(None, _DIGITS)) > len(raw) - 19 or not _LONG_NUMBER.search(
        raw
    ):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            _check_parsed(value, raw.count(b"[") + raw.count(b"{"), b"\\u" in raw)
            return value
    return _parse_with_stdlib(raw)


def _parse_with_stdlib(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.InvalidJson(
            f"request body is not UTF-8: invalid byte at position {e.start}"
        ) from e
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as e:
        raise errors.InvalidJson(
            f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    except ValueError as e:
        if "integer string conversion" in str(e):  # Python's limit on digits of an int
            raise errors.InvalidJson(
                f"request body holds an integer of more than {sys.get_int_max_str_digits()} "
                "digits; send such a number as a string"
            ) from e
        raise errors.InvalidJson(f"request body is not valid JSON: {e}") from e
    except RecursionError as e:
        raise _too_deep() from e

    _check_parsed(value, text.count("[") + text.count("{"), "\\u" in text)
    return value


def _check_parsed(value: Any, brackets: int, escapes: bool) -> None:
    # Both checks walk the value, so they run only where the text shows they may be needed.
    deep = brackets > MAX_DEPTH
    if deep or escapes:
        _check_value(value, deep)


def _too_deep() -> errors.ValidationFailed:
    return errors.ValidationFailed(
        f"request body is nested deeper than {MAX_DEPTH} levels",
        [{"path": "$", "message": f"nested deeper than {MAX_DEPTH} levels"}],
    )


def _check_value(value: Any, check_depth: bool) -> None:
    """Refuse nesting past the limit and strings with a lone UTF-16 surrogate.

    A lone surrogate is a legal JSON escape but no Unicode character: no database or upstream
    can take it.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as e:
                raise errors.InvalidJson(
                    "request body holds a lone surrogate escape (\\ud800-\\udfff), "
                    "which is no Unicode character"
                ) from e
            continue
        if isinstance(item, (dict, list)) and check_depth and depth >= MAX_DEPTH:
            raise _too_deep()
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past the limit, 400 for anything that is not JSON."""
    limit = request.app[SETTINGS].body_limit_bytes
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise errors.PayloadTooLarge(
            f"request body is over the limit of {limit} bytes"
        ) from e
    except web.RequestPayloadError as e:
        # A compressed body that does not decompress (gzip that is not gzip, say).
        encoding = request.headers.get("Content-Encoding", "none")[:40]
        raise errors.InvalidJson(
            f"request body could not be read as sent (Content-Encoding: {encoding}); "
            "send it uncompressed or correctly compressed"
        ) from e
    if len(raw) > limit:
        raise errors.PayloadTooLarge(f"request body is over the limit of {limit} bytes")

    body = parse_strict_json(raw)
    if not isinstance(body, dict):
        raise errors.ValidationFailed(
            "request body must be a JSON object",
            [{"path": "$", "message": "expected an object"}],
        )
    return body
