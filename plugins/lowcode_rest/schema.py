"""The marshmallow schemas of a ``rest`` definition (API.md section 5) and its params.

Everything that can be checked before any value is known is checked here, so that a broken
definition is ``VALIDATION_FAILED`` with every problem at once, before secrets are fetched.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from lowcode_runtime.fields import (
    EveryEntryDict,
    OutboundHeaders,
    Scalar,
    StrictBoolean,
    StrictInteger,
)
from lowcode_runtime.plain_schema import PlainFirst
from lowcode_runtime.templates import (
    TEMPLATE,
    check_templates,
    json_depth,
    secret_names,
    unclosed_template,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
BODY_TYPES = ("json", "form", "text", "none")
RESPONSE_TYPES = ("auto", "json", "text")
MAX_TIMEOUT_MS = 600_000
# How deep a body may nest, as written and once rendered: as deep as the service's own requests.
MAX_BODY_DEPTH = 64

URL_START = re.compile(r"(?i)https?://[^/?#\s]")


def body_depth_problem(body: Any) -> str | None:
    if json_depth(body) > MAX_BODY_DEPTH:
        return (
            f"the body nests deeper than {MAX_BODY_DEPTH} levels of objects and arrays"
        )
    return None


def _not_too_deep(value: Any) -> None:
    if problem := body_depth_problem(value):
        raise ValidationError(problem)


class QueryValue(Scalar):
    """A scalar, or a list of scalars for a repeated key."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Any:
        if isinstance(value, list):
            return [super(QueryValue, self)._deserialize(v, attr, data) for v in value]
        return super()._deserialize(value, attr, data)


class AnyJson(fields.Raw):
    """Any JSON value (the body): kept as given, templates checked."""


class UpperString(fields.String):
    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> str:
        return super()._deserialize(value, attr, data, **kwargs).upper()


def _url(value: str) -> None:
    if not URL_START.match(value):
        scheme = value.split(":", 1)[0] if "://" in value else None
        if scheme and scheme.lower() not in ("http", "https"):
            raise ValidationError(
                f"scheme {scheme!r} is not allowed: use http or https"
            )
        raise ValidationError(
            "expected an absolute http:// or https:// URL with a host"
        )
    # Checked first: the space of an unclosed '{{ params.x' would read as a stray one.
    if message := unclosed_template(value):
        raise ValidationError(message)
    if any(c.isspace() for c in TEMPLATE.sub("", value)):
        raise ValidationError("the URL may not hold white space; percent-encode it")
    check_templates(value)


class RestQuery(EveryEntryDict):
    """``query``: a value of the wrong type does not hide another entry's bad template."""

    def __init__(self) -> None:
        super().__init__(
            keys=fields.String(validate=validate.Length(min=1)),
            values=QueryValue(),
            load_default=dict,
            validate=check_templates,
        )


class RestDefinition(dict[str, Any]):
    """A loaded definition that knows the secrets it names: found once, as it is cached."""

    secret_names: frozenset[str] = frozenset()


class RestDefinitionSchema(Schema):
    """A ``rest`` dataSource without ``type`` and ``name`` (the core strips those)."""

    method = UpperString(load_default="GET", validate=validate.OneOf(METHODS))
    url = fields.String(required=True, validate=[validate.Length(max=8192), _url])
    query = RestQuery()
    headers = OutboundHeaders()
    body = AnyJson(
        load_default=None, allow_none=True, validate=[_not_too_deep, check_templates]
    )
    bodyType = fields.String(load_default=None, validate=validate.OneOf(BODY_TYPES))
    timeoutMs = StrictInteger(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_TIMEOUT_MS),
    )
    followRedirects = StrictBoolean(load_default=True)
    responseType = fields.String(
        load_default="auto", validate=validate.OneOf(RESPONSE_TYPES)
    )

    # Run even when fields failed, so that a body of the wrong shape is listed with them.
    @validates_schema(skip_on_field_errors=False)
    def _body_fits_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        body, body_type = data.get("body"), data.get("bodyType")
        if body_type is None:
            return
        if body_type == "none" and body is not None:
            raise ValidationError("bodyType 'none' takes no body; remove body", "body")
        if body_type == "text" and body is not None and not isinstance(body, str):
            raise ValidationError("bodyType 'text' needs a string body", "body")
        if body_type == "form" and body is not None and not _flat_object(body):
            raise ValidationError(
                "bodyType 'form' needs an object of strings, numbers or booleans",
                "body",
            )

    @post_load
    def _with_secret_names(self, data: dict[str, Any], **kwargs: Any) -> RestDefinition:
        loaded = RestDefinition(data)
        loaded.secret_names = frozenset(secret_names(data))
        return loaded


def _flat_object(body: Any) -> bool:
    return isinstance(body, dict) and all(
        isinstance(v, str | int | float | bool) or v is None for v in body.values()
    )


class RequestParamsSchema(PlainFirst):
    """Params of the ``request`` operation: any JSON object, read by the templates."""

    class Meta:
        unknown = INCLUDE

    def plainly_valid(self, data: Any) -> dict[str, Any] | None:
        """An object loads as its copy, as marshmallow loads it (which lists the keys in a
        set's order); a test holds the two to the same values."""
        return dict(data) if type(data) is dict else None


def effective_body_type(definition: dict[str, Any]) -> str:
    """``bodyType`` as given, else ``json`` for a structured body, ``text`` for a string."""
    if definition.get("bodyType"):
        return definition["bodyType"]
    body = definition.get("body")
    if body is None:
        return "none"
    return "text" if isinstance(body, str) else "json"
