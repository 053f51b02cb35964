"""From the upstream's answer to the call's result (API.md 5.2), secrets redacted (5.4)."""

from __future__ import annotations

import codecs
import json
from typing import Any

from lowcode_rest.client import UpstreamAnswer
from lowcode_rest.redact import Redactor
from lowcode_runtime import errors
from lowcode_runtime.types import Result

SAFE_HEADERS = (
    "content-type",
    "etag",
    "cache-control",
    "link",
    "last-modified",
    "x-total-count",
)
# ``details.body`` of UPSTREAM_STATUS holds at most this many characters.
ERROR_BODY_CHARS = 2048


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


def parse_json(text: str) -> Any:
    """Strict JSON (no NaN or Infinity); raises ValueError."""
    return json.loads(text.removeprefix("\ufeff"), parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def to_result(answer: UpstreamAnswer, response_type: str, redactor: Redactor) -> Result:
    """A 2xx answer as ``Result``; any other status raises ``UPSTREAM_STATUS``."""
    if not 200 <= answer.status < 300:
        raise upstream_status(answer, redactor)

    data = _data(answer, response_type, redactor)
    meta: dict[str, Any] = {
        "upstream": {
            "status": answer.status,
            "headers": safe_headers(answer, redactor),
            "durationMs": answer.duration_ms,
        }
    }
    if redactor.redacted:
        meta["redacted"] = True
    return Result(data, meta)


def _data(answer: UpstreamAnswer, response_type: str, redactor: Redactor) -> Any:
    if not answer.body:
        return None
    text = decode_text(answer.body, answer.charset)

    if response_type == "json" or (
        response_type == "auto" and is_json_type(answer.content_type)
    ):
        try:
            return redactor.json(parse_json(text))
        except RecursionError:
            # Nested past what Python parses (or answers) without recursing too deep.
            if response_type == "json":
                raise errors.UpstreamInvalidJson(
                    "the upstream body is JSON nested too deeply to read; use responseType "
                    "'text' to read it as text"
                ) from None
        except ValueError:
            if response_type == "json":
                raise errors.UpstreamInvalidJson(
                    "the upstream body is not valid JSON; use responseType 'text' to read it "
                    "as text"
                ) from None
    return redactor.text(text)


def safe_headers(answer: UpstreamAnswer, redactor: Redactor) -> dict[str, str]:
    found = {}
    for name in SAFE_HEADERS:
        values = answer.headers.getall(name, [])
        if values:
            found[name] = redactor.text(", ".join(values))
    return found


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
