"""Templates of API.md section 5.1: ``{{ secrets.NAME }}`` and ``{{ params.a.b }}``.

This module knows the grammar, how to check a definition's templates before any value is known
(:func:`check_templates`, a marshmallow validator), how to look a reference up and how to render
text, JSON values and header entries. Where each rendered value goes in a URL and how it is
encoded there is :mod:`lowcode_rest.request`'s business.

Public (re-exported from :mod:`lowcode_runtime`): every type that takes templates uses these, so
that ``{{ params.x }}`` and ``{{ secrets.X }}`` mean one thing across types.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from lowcode_runtime import errors
from lowcode_runtime.requests import CONTROL_CHARACTER

__all__ = [
    "Context",
    "MissingParam",
    "Ref",
    "TEMPLATE",
    "bad_templates",
    "check_templates",
    "header_value_problem",
    "iter_strings",
    "json_depth",
    "missing_param",
    "parse_ref",
    "render_entry",
    "render_headers",
    "secret_names",
    "stringify",
    "unclosed_template",
    "whole_ref",
]

# Anything between double braces is meant as a template; what it may hold is checked apart,
# so that a misspelt one is an error rather than text sent upstream.
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SECRET_REF = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_-]*)")
_PARAM_REF = re.compile(r"params((?:\.[A-Za-z0-9_-]+)+)")


class MissingParam(Exception):
    """A template names a param the call did not give."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"params.{path} is not given")


@dataclass(frozen=True)
class Ref:
    """One reference: ``kind`` is ``secrets`` or ``params``; ``path`` the dotted rest."""

    kind: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.path}"


# Template insides up to this long have their reading kept (a bounded cache).
MAX_KEPT_REF = 256


def parse_ref(inner: str) -> Ref | None:
    """The reference a template's inside names, or None; kept, since definitions repeat."""
    return _kept_ref(inner) if len(inner) <= MAX_KEPT_REF else _read_ref(inner)


@functools.lru_cache(maxsize=4096)
def _kept_ref(inner: str) -> Ref | None:
    return _read_ref(inner)


def _read_ref(inner: str) -> Ref | None:
    inner = inner.strip()
    if match := _SECRET_REF.fullmatch(inner):
        return Ref("secrets", match.group(1))
    if match := _PARAM_REF.fullmatch(inner):
        return Ref("params", match.group(1)[1:])
    return None


def bad_templates(text: str) -> list[str]:
    """The templates in ``text`` that name nothing the grammar knows."""
    return [
        m.group(0) for m in TEMPLATE.finditer(text) if parse_ref(m.group(1)) is None
    ]


def whole_ref(text: str) -> Ref | None:
    """The reference when ``text`` is one template and nothing else."""
    match = TEMPLATE.fullmatch(text.strip())
    return parse_ref(match.group(1)) if match else None


def iter_strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value (object keys aside: they are never templates), in order.

    Walked with a list rather than recursion, so that no nesting depth reaches Python's stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict | list):
            pending.extend(reversed(item.values() if isinstance(item, dict) else item))
        elif isinstance(item, Mapping):  # after the plain containers: the ABC is slow
            pending.extend(reversed(list(item.values())))


def json_depth(value: Any) -> int:
    """How many objects and arrays nest in ``value`` at the deepest (0 for a scalar)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, Mapping) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


def secret_names(value: Any) -> set[str]:
    """Names of the secrets a definition (or any JSON value) refers to."""
    names = set()
    for text in iter_strings(value):
        if "{{" not in text:
            continue
        for match in TEMPLATE.finditer(text):
            ref = parse_ref(match.group(1))
            if ref is not None and ref.kind == "secrets":
                names.add(ref.path)
    return names


def stringify(value: Any) -> str:
    """How a value reads inside text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def check_templates(value: Any) -> None:
    """A marshmallow validator: every unknown template, under the key of the entry holding it.

    Give it to a field whose strings may hold templates (``validate=check_templates``).
    """
    if isinstance(value, dict):
        problems = {key: _bad_template_message(item) for key, item in value.items()}
        found = {key: message for key, message in problems.items() if message}
        if found:
            raise ValidationError(found)
    elif message := _bad_template_message(value):
        raise ValidationError(message)


def unclosed_template(text: str) -> str | None:
    """Why ``text`` holds a ``{{`` that no ``}}`` closes (quoting it), or None."""
    outside = TEMPLATE.sub("", text)
    start = outside.find("{{")
    if start < 0:
        return None
    opening = outside[start:]
    if len(opening) > 40:
        opening = f"{opening[:40]}..."
    return f"the template {opening!r} is not closed; end it with '}}}}'"


def _bad_template_message(value: Any) -> str | None:
    bad: list[str] = []
    unclosed: list[str] = []
    for text in iter_strings(value):
        if "{{" in text:
            bad.extend(bad_templates(text))
            if message := unclosed_template(text):
                unclosed.append(message)

    messages = unclosed[:1]
    if bad:
        names = ", ".join(repr(t) for t in dict.fromkeys(bad))
        plural = "s" if len(set(bad)) > 1 else ""
        messages.append(
            f"unknown template{plural} {names}: "
            "use {{ params.a.b }} or {{ secrets.NAME }}"
        )
    return "; ".join(messages) or None


_ABSENT = object()


class Context:
    """What templates are rendered from: the call's params and the project's secrets."""

    def __init__(self, params: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        self.params = params
        self.secrets = secrets

    def lookup(self, ref: Ref) -> Any:
        """The referenced value; raises :class:`MissingParam` or ``SecretNotFound``."""
        if ref.kind == "secrets":
            if ref.path not in self.secrets:
                raise errors.SecretNotFound(
                    f"secret {ref.path!r} is not defined for this project; add it to the "
                    "project's secrets or change the template"
                )
            return self.secrets[ref.path]

        value: Any = self.params
        for part in ref.path.split("."):
            value = _child(value, part)
            if value is _ABSENT:
                raise MissingParam(ref.path)
        return value

    def render(self, text: str, encode: Callable[[str], str] = str) -> str:
        """``text`` with each template replaced by ``encode`` of its value as text."""
        return TEMPLATE.sub(lambda m: encode(stringify(self.lookup(_ref(m)))), text)

    def render_json(self, value: Any) -> Any:
        """A JSON value rendered: a string that is one whole template keeps its value's type.

        Built with a list of pending slots rather than recursion, so that no depth of the
        definition reaches Python's stack; templates are still looked up in document order.
        """
        root: list[Any] = [None]
        pending: list[tuple[Any, Any, Any]] = [(value, root, 0)]
        while pending:
            item, parent, slot = pending.pop()
            if isinstance(item, str):
                ref = whole_ref(item)
                parent[slot] = (
                    self.lookup(ref) if ref is not None else self.render(item)
                )
            elif isinstance(item, Mapping):
                copy = dict.fromkeys(item)
                parent[slot] = copy
                pending.extend((v, copy, k) for k, v in reversed(list(item.items())))
            elif isinstance(item, list):
                items: list[Any] = [None] * len(item)
                parent[slot] = items
                pending.extend(
                    (v, items, i) for i, v in reversed(list(enumerate(item)))
                )
            else:
                parent[slot] = item
        return root[0]


def _ref(match: re.Match[str]) -> Ref:
    ref = parse_ref(match.group(1))
    assert ref is not None, "definitions are validated before they are rendered"
    return ref


def _child(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part, _ABSENT)
    if isinstance(value, list) and part.isdigit() and int(part) < len(value):
        return value[int(part)]
    return _ABSENT


def header_value_problem(name: str, value: str) -> str | None:
    """Why ``value`` may not be sent as header ``name``, or None when it may."""
    # The contract allows no control character in a header value, and aiohttp would send a
    # C1 one (NEL U+0085, CSI U+009B) as raw bytes.
    if CONTROL_CHARACTER.search(value):
        return (
            f"header {name!r} may not hold CR, LF or another control character "
            "(U+0000-U+001F, U+007F-U+009F)"
        )
    return None


def missing_param(path: str, error: MissingParam) -> errors.ValidationFailed:
    """``VALIDATION_FAILED`` at ``path`` for a template naming a param the call lacks."""
    message = f"{error}: give it in params or remove it from the template"
    return errors.ValidationFailed(message, [{"path": path, "message": message}])


def render_entry(template: Any, ctx: Context, path: str) -> list[str] | None:
    """A query or header entry rendered; None leaves it out (its whole value is absent).

    A string that is one whole ``{{ params.x }}`` gives each item of a list value, and nothing
    when the param is absent or null; any other absent param is ``VALIDATION_FAILED``.
    """
    if not isinstance(template, str):
        return [stringify(template)]
    ref = whole_ref(template)
    try:
        if ref is not None:
            value = ctx.lookup(ref)
            if value is None:
                return None
            return (
                [stringify(v) for v in value]
                if isinstance(value, list)
                else [stringify(value)]
            )
        return [ctx.render(template)]
    except MissingParam as e:
        if ref is not None and ref.kind == "params":
            return None
        raise missing_param(path, e) from None


def render_headers(
    templates: Mapping[str, Any],
    ctx: Context,
    defaults: Mapping[str, str] | None = None,
    path: str = "dataSource.headers",
) -> tuple[dict[str, str], set[str]]:
    """The headers to send, over ``defaults``, and the (lower-case) names holding a secret.

    A value holding CR, LF or another control character is ``VALIDATION_FAILED``.
    """
    headers = dict(defaults or {})
    holding_secrets = set()
    for name, template in templates.items():
        values = render_entry(template, ctx, f"{path}.{name}")
        if values is None:
            continue
        value = ", ".join(values)
        if message := header_value_problem(name, value):
            where = f"{path}.{name}"
            raise errors.ValidationFailed(
                message, [{"path": where, "message": message}]
            )
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
        headers[name] = value
        if isinstance(template, str) and secret_names(template):
            holding_secrets.add(name.lower())
    return headers, holding_secrets
