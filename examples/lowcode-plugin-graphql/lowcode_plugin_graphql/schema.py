"""The definition of a ``graphql`` dataSource and the params of its ``query`` operation.

Checked before anything is fetched: a broken definition is ``VALIDATION_FAILED`` with every
problem at once, before the project's secrets are read.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate
from yarl import URL

from lowcode_runtime import (
    OutboundHeaders,
    StrictInteger,
    check_templates,
    url_problem,
)

MAX_TIMEOUT_MS = 600_000


def _endpoint(value: str) -> None:
    """An absolute http(s) URL, sent as written: the endpoint takes no templates."""
    try:
        url = URL(value)
        problem = url_problem(url) if url.scheme in ("http", "https") else None
    except ValueError:
        raise ValidationError("expected an absolute http:// or https:// URL") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValidationError(
            "expected an absolute http:// or https:// URL with a host"
        )
    if problem is not None:
        raise ValidationError(problem)


class GraphqlDefinitionSchema(Schema):
    """A ``graphql`` dataSource without ``type`` and ``name`` (the core strips those)."""

    endpoint = fields.String(
        required=True, validate=[validate.Length(max=8192), _endpoint]
    )
    query = fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    operationName = fields.String(
        load_default=None, validate=validate.Length(min=1, max=200)
    )
    variables = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        load_default=dict,
        validate=check_templates,
    )
    headers = OutboundHeaders()
    timeoutMs = StrictInteger(
        load_default=None, validate=validate.Range(min=1, max=MAX_TIMEOUT_MS)
    )


class QueryParamsSchema(Schema):
    """Params of the ``query`` operation: any JSON object, read by the templates."""

    class Meta:
        unknown = INCLUDE


def graphql_body(
    definition: dict[str, Any], variables: dict[str, Any]
) -> dict[str, Any]:
    """The GraphQL-over-HTTP request document."""
    body: dict[str, Any] = {"query": definition["query"], "variables": variables}
    if definition["operationName"] is not None:
        body["operationName"] = definition["operationName"]
    return body
