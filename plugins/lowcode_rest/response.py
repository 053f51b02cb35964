"""From the upstream's answer to the call's result (API.md 5.2), secrets redacted (5.4)."""

from __future__ import annotations

from typing import Any

from lowcode_runtime import errors
from lowcode_runtime.redact import Redactor
from lowcode_runtime.types import Result
from lowcode_runtime.upstream import (
    UpstreamAnswer,
    decode_text,
    is_json_type,
    parse_json,
    upstream_status,
)

SAFE_HEADERS = (
    "content-type",
    "etag",
    "cache-control",
    "link",
    "last-modified",
    "x-total-count",
)


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
            return redactor.parsed_json(parse_json(text), text)
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
