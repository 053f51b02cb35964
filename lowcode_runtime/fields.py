"""Strict marshmallow fields for JSON input: a JSON type never stands in for another.

marshmallow's own ``Boolean`` reads ``"yes"`` and ``1`` as true and ``Integer`` reads ``"500"``;
for a contract that calls wrong types ``VALIDATION_FAILED`` they are too forgiving. Use these
(or ``Integer(strict=True)``) for every input schema, core and plugins alike.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields

from lowcode_runtime.templates import TEMPLATE, check_templates, header_value_problem

__all__ = [
    "OutboundHeaders",
    "Scalar",
    "StrictBoolean",
    "StrictInteger",
    "check_header_names",
]

# RFC 9110 token characters: what a header name may hold.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the service from the body and the connection; a definition may not override them.
RESERVED_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
        "upgrade",
        "te",
        "trailer",
    }
)


class StrictBoolean(fields.Boolean):
    """Only JSON ``true`` and ``false``."""

    default_error_messages = {"invalid": "Not a valid boolean: expected true or false."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> bool:
        # ``1 in {True}`` holds in Python, so the type is checked, not membership.
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictInteger(fields.Integer):
    """Only JSON integers: no strings, no floats, no booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictFloat(fields.Float):
    """Only JSON numbers: no strings, no booleans; finite unless ``allow_nan``."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._validated(value)


class Scalar(fields.Field):
    """A string, number or boolean: what a query or header value may be written as."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Any:
        if isinstance(value, str | int | float | bool):
            return value
        raise ValidationError("expected a string, number or boolean")


def check_header_names(value: dict[str, Any]) -> None:
    """Every bad header name at once, each under its own name."""
    found = {}
    for name in value:
        if not HEADER_NAME.fullmatch(name):
            found[name] = f"{name!r} is not a valid header name"
        elif name.lower() in RESERVED_HEADERS:
            found[name] = f"header {name!r} is set by the service and may not be given"
    if found:
        raise ValidationError(found)


class EveryEntryDict(fields.Dict):
    """A dict field whose answer holds every entry's problem at once.

    A value of the wrong type stops marshmallow before the field's validators, so they run
    again on the entries that loaded, with empty text standing in for the others so that
    their keys are still checked.
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as e:
            if not isinstance(value, dict) or not isinstance(e.valid_data, dict):
                raise
            found: list[Any] = [
                {
                    name: _entry_problem(problem)
                    for name, problem in e.messages_dict.items()
                }
            ]
            valid = e.valid_data

        try:
            self._validate({name: valid.get(name, "") for name in value})
        except ValidationError as e:
            # A list: marshmallow gathers its validators' messages in one.
            found.extend(e.messages)
        raise ValidationError(found)


def _entry_problem(problem: Any) -> Any:
    """An entry's problem under its key alone (marshmallow nests a value's under ``value``)."""
    return problem.get("value", problem) if isinstance(problem, dict) else problem


class OutboundHeaders(EveryEntryDict):
    """The ``headers`` of an outbound request: valid names, scalar values, known templates,
    no control character in a value as written.

    One field for every type that calls out, so each refuses the same headers in the same words,
    every problem of them in one answer.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("load_default", dict)
        super().__init__(
            keys=fields.String(),
            values=Scalar(),
            validate=[check_header_names, check_templates, check_header_values],
            **kwargs,
        )


def check_header_values(value: dict[str, Any]) -> None:
    """Every header holding a control character as written, under its name: found with the
    definition's other problems rather than on its first call."""
    found = {
        name: problem
        for name, item in value.items()
        if isinstance(item, str)
        and (problem := header_value_problem(name, TEMPLATE.sub("", item)))
    }
    if found:
        raise ValidationError(found)
