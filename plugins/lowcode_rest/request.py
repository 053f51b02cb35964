"""Turn a validated definition and a template context into the request to send (section 5.1).

Encoding rules: a value substituted into the URL's path or query is percent-encoded outside
RFC 3986's unreserved set; a value forming a whole ``.`` or ``..`` path segment is refused;
query entries are encoded whole; the literal parts of ``url`` are sent as written.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

from yarl import URL

from lowcode_rest.schema import body_depth_problem, effective_body_type
from lowcode_runtime import errors
from lowcode_runtime.outbound import USER_AGENT, Outbound
from lowcode_runtime.templates import (
    TEMPLATE,
    Context,
    MissingParam,
    Ref,
    iter_strings,
    missing_param,
    parse_ref,
    render_entry,
    render_headers,
    stringify,
    whole_ref,
)
from lowcode_runtime.urls import url_problem

# A value substituted into the host may only add to a name or a port.
_HOST_VALUE = re.compile(r"[A-Za-z0-9.-]*")
_CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain; charset=utf-8",
}


def encode_value(value: str) -> str:
    """Percent-encode all but RFC 3986's unreserved characters (``/ ? # % +`` included)."""
    return quote(value, safe="")


def build_request(definition: dict[str, Any], ctx: Context) -> Outbound:
    """The request for ``definition``; a param it cannot hold (absent outside a query or header
    entry of its own, null in the URL) is a 400 that names every such param."""
    try:
        url = _render_url(definition["url"], ctx)
        url = _add_query(url, definition["query"], ctx)
        headers, secret_headers = render_headers(
            definition["headers"], ctx, {"User-Agent": USER_AGENT}
        )
        body = _render_body(definition, ctx, headers)
    except errors.ValidationFailed as e:
        # Rendering stops at the first problem; the caller wants every param at fault at once.
        details = _unique([*e.details, *_param_problems(definition, ctx)])
        if details == e.details:
            raise
        raise errors.ValidationFailed.from_details(details) from None
    return Outbound(definition["method"], url, headers, body, secret_headers)


def _param_problems(definition: dict[str, Any], ctx: Context) -> list[dict[str, str]]:
    """Each absent param where one is an error, and each null one in the URL, where it stands."""
    places = [("dataSource.url", definition["url"])]
    for section in ("query", "headers"):
        for key, entry in definition[section].items():
            places.extend(
                (f"dataSource.{section}.{key}", item)
                for item in (entry if isinstance(entry, list) else [entry])
                if not (isinstance(item, str) and whole_ref(item))  # absent: left out
            )
    places.append(("dataSource.body", definition.get("body")))

    found: list[dict[str, str]] = []
    for path, value in places:
        for ref in _param_refs(value):
            try:
                if ctx.lookup(ref) is None and path == "dataSource.url":
                    found.append({"path": path, "message": _null_in_url(ref)})
            except MissingParam as e:
                found.extend(missing_param(path, e).details)
    return found


def _param_refs(value: Any) -> Iterator[Ref]:
    for text in iter_strings(value):
        for match in TEMPLATE.finditer(text):
            ref = parse_ref(match.group(1))
            if ref is not None and ref.kind == "params":
                yield ref


def _unique(details: list[dict[str, str]]) -> list[dict[str, str]]:
    return list({(d["path"], d["message"]): d for d in details}.values())


def _render_url(template: str, ctx: Context) -> URL:
    if "{{" not in template:
        return _literal_url(template)
    return _rendered_url(template, ctx)


@functools.lru_cache(maxsize=256)
def _literal_url(template: str) -> URL:
    """A URL without templates renders the same on every call: read and checked once."""
    return _rendered_url(template, Context({}, {}))


def _rendered_url(template: str, ctx: Context) -> URL:
    scheme, rest = template.split("://", 1)
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]

    try:
        authority = _render_part(authority, ctx, _host_value)
        path, sep, after = _split_path(tail)
        segments = [_render_segment(segment, ctx) for segment in path.split("/")]
        after = _render_part(after, ctx, encode_value)
    except MissingParam as e:
        raise missing_param("dataSource.url", e) from None

    rendered = f"{scheme.lower()}://{authority}{'/'.join(segments)}{sep}{after}"
    try:
        url = URL(rendered, encoded=True)
        problem = url_problem(url)
    except ValueError as e:
        # yarl's own text is not for people, and might quote the host.
        problem = (
            "the URL's host is not a valid IPv6 address"
            if "IPv6" in str(e)
            else "the URL's host does not parse"
        )
    if problem is not None:
        raise errors.ValidationFailed(
            f"url does not form a valid URL once rendered: {problem}",
            [{"path": "dataSource.url", "message": problem}],
        )
    return url.with_fragment(None)


def _render_part(text: str, ctx: Context, encode: Callable[[str], str]) -> str:
    """A part of the URL rendered, where a null param has no spelling: text ``null`` would
    be sent as if it were the value."""
    return TEMPLATE.sub(lambda match: encode(_url_text(match, ctx)), text)


def _url_text(match: re.Match[str], ctx: Context) -> str:
    ref = parse_ref(match.group(1))
    assert ref is not None, "definitions are validated before they are rendered"
    value = ctx.lookup(ref)
    if value is None:
        message = _null_in_url(ref)
        raise errors.ValidationFailed(
            message, [{"path": "dataSource.url", "message": message}]
        )
    return stringify(value)


def _null_in_url(ref: Ref) -> str:
    return (
        f"{ref} is null; the URL cannot hold it: give it a value (a query entry "
        "that is this param alone is left out instead)"
    )


def _split_path(tail: str) -> tuple[str, str, str]:
    for i, char in enumerate(tail):
        if char in "?#":
            return tail[:i], char, tail[i + 1 :]
    return tail, "", ""


def _render_segment(segment: str, ctx: Context) -> str:
    rendered = _render_part(segment, ctx, encode_value)
    if rendered in (".", "..") and rendered != segment:
        message = "a param may not form the path segment '.' or '..'"
        raise errors.ValidationFailed(
            message, [{"path": "dataSource.url", "message": message}]
        )
    return rendered


def _host_value(value: str) -> str:
    if not _HOST_VALUE.fullmatch(value):
        message = "a value in the URL's host may hold only letters, digits, '.' and '-'"
        raise errors.ValidationFailed(
            message, [{"path": "dataSource.url", "message": message}]
        )
    return value


def _add_query(url: URL, query: dict[str, Any], ctx: Context) -> URL:
    pairs: list[str] = []
    for key, template in query.items():
        items = template if isinstance(template, list) else [template]
        for item in items:
            values = render_entry(item, ctx, f"dataSource.query.{key}")
            pairs.extend(f"{encode_value(key)}={encode_value(v)}" for v in values or ())
    if not pairs:
        return url
    joined = "&".join(pairs)
    base = str(url.with_query(None))
    existing = url.raw_query_string
    return URL(
        f"{base}?{existing}&{joined}" if existing else f"{base}?{joined}", encoded=True
    )


def _render_body(
    definition: dict[str, Any], ctx: Context, headers: dict[str, str]
) -> bytes | None:
    body_type = effective_body_type(definition)
    body = definition.get("body")
    if body_type == "none" or body is None:
        return None

    try:
        if body_type == "json":
            data = json.dumps(
                _rendered_body(body, ctx), ensure_ascii=False, allow_nan=False
            )
        elif body_type == "form":
            rendered = {k: ctx.render_json(v) for k, v in body.items()}
            data = urlencode(
                {k: stringify(v) for k, v in rendered.items() if v is not None}
            )
        else:
            data = ctx.render(body)
    except MissingParam as e:
        raise missing_param("dataSource.body", e) from None
    except ValueError as e:
        raise errors.ValidationFailed(
            "body does not form valid JSON once rendered",
            [{"path": "dataSource.body", "message": str(e)}],
        ) from None

    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = _CONTENT_TYPES[body_type]
    return data.encode("utf-8")


def _rendered_body(body: Any, ctx: Context) -> Any:
    """The JSON body rendered; a param may deepen it, and it is bounded again once rendered,
    since ``json.dumps`` recurses."""
    rendered = ctx.render_json(body)
    if problem := body_depth_problem(rendered):
        message = f"{problem} once rendered"
        raise errors.ValidationFailed(
            message, [{"path": "dataSource.body", "message": message}]
        )
    return rendered
