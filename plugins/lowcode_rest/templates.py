"""Templates of API.md section 5.1: ``{{ secrets.NAME }}`` and ``{{ params.a.b }}``.

This module knows the grammar and how to look a reference up; where each rendered value goes
and how it is encoded is :mod:`lowcode_rest.request`'s business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lowcode_runtime import errors

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


def parse_ref(inner: str) -> Ref | None:
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
        elif isinstance(item, Mapping):
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            pending.extend(reversed(item))


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
