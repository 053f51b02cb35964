"""An upstream's answer and the readings every HTTP type shares: text, JSON, non-2xx status.

Public (re-exported from :mod:`lowcode_runtime`): a plugin reads what
:meth:`lowcode_runtime.outbound.OutboundClient.exchange` gave with these, so that a charset, a
JSON body and a failed status read the same in every type.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson
from multidict import CIMultiDictProxy

from lowcode_runtime import errors
from lowcode_runtime.redact import Redactor

__all__ = [
    "ERROR_BODY_CHARS",
    "UpstreamAnswer",
    "decode_text",
    "is_json_type",
    "parse_json",
    "upstream_status",
]

# ``details.body`` of UPSTREAM_STATUS holds at most this many characters.
ERROR_BODY_CHARS = 2048


@dataclass
class UpstreamAnswer:
    """What came back: the status, headers, the body read (bounded) and how long it took."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    charset: str | None
    content_type: str
    duration_ms: float


def decode_text(body: bytes, charset: str | None) -> str:
    """The declared charset, UTF-8 when none or an unknown one; bad bytes become U+FFFD."""
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    return body.decode(encoding, errors="replace")


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


# 19 digits in a row may be an integer past 64 bits, which orjson reads as a float. Found
# by mapping every digit to "0" and anything else to " " (a regex is ten times slower).
_DIGITS_AS_ZEROS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


def parse_json(text: str) -> Any:
    """Strict JSON; raises ValueError (RecursionError when too deep).

    Strict: no NaN or Infinity, and no value that cannot be answered as JSON, that is a
    number past a float (``1e400``, which would read as infinity) or a lone surrogate
    (``"\\ud800"``). The standard library's reading is the one that holds. orjson reads the
    same values several times faster; what it refuses (those values, nesting past 1,024, and
    invalid JSON) and a text that may hold a long integer are read by the standard library,
    which keeps every integer and says what is wrong.
    """
    text = text.removeprefix("\ufeff")
    if _LONG_RUN not in text.encode("utf-8", "surrogatepass").translate(
        _DIGITS_AS_ZEROS
    ):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    value = json.loads(text, parse_constant=_refuse_constant)
    _refuse_unanswerable(value)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_unanswerable(value: Any) -> None:
    """ValueError for an infinite float or a lone surrogate anywhere in ``value`` (keys too).

    Walked without recursing: the standard library reads nesting deeper than Python recurses.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValueError("a lone surrogate is not read")
        elif isinstance(item, float):
            if math.isinf(item):
                raise ValueError("a number past the range of a float is not read")
        elif isinstance(item, dict):
            pending += item
            pending += item.values()
        elif isinstance(item, list):
            pending += item


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def upstream_status(
    answer: UpstreamAnswer, redactor: Redactor
) -> errors.UpstreamStatus:
    """``UPSTREAM_STATUS`` with the status and a bounded, redacted part of the body."""
    text = redactor.text(decode_text(answer.body, answer.charset))
    details: dict[str, Any] = {"status": answer.status, "body": text[:ERROR_BODY_CHARS]}
    if len(text) > ERROR_BODY_CHARS:
        details["truncated"] = True
    if redactor.redacted:
        details["redacted"] = True
    error = errors.UpstreamStatus(
        f"the upstream answered HTTP {answer.status}", details
    )
    if redactor.redacted:
        error.meta = {"redacted": True}
    return error
