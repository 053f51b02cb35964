"""Find what in a plugin's result is not JSON, so that the error can name it.

Only called after the envelope failed to serialise a result, never on the hot path (but
:func:`result_shape_problem`, two type checks on every result).
"""

from __future__ import annotations

import math
from typing import Any

from lowcode_runtime.types import Result

JSON_SCALARS = (str, int, float, bool, type(None))
MAX_DEPTH = 500
"""Deeper nesting is reported as such: the encoders give up before a thousand levels."""


def result_shape_problem(result: Any) -> str | None:
    """What makes a handler's return value no ``Result`` the envelope can take, or None."""
    if not isinstance(result, Result):
        return f"it is a {type(result).__name__}, not a lowcode_runtime.Result"
    if result.meta is not None and not isinstance(result.meta, dict):
        return f"its meta is a {type(result.meta).__name__}, not a dict"
    return None


def first_non_json(value: Any, path: str) -> str | None:
    """``"data.when is a datetime"`` for the first value JSON cannot hold, or None.

    Walked with a list rather than recursion: a plugin's result may nest deeply. Nesting past
    :data:`MAX_DEPTH` is named only when nothing else is wrong.
    """
    pending: list[tuple[Any, str, int]] = [(value, path, 0)]
    seen: set[int] = set()
    too_deep: str | None = None
    while pending:
        item, where, depth = pending.pop()
        problem = _scalar_problem(item, where)
        if problem is not None:
            return problem
        if isinstance(item, JSON_SCALARS):
            continue
        if not isinstance(item, dict | list | tuple):
            return f"{where} is a {type(item).__name__}"
        if id(item) in seen:
            return f"{where} refers back to itself"
        if depth >= MAX_DEPTH:
            too_deep = too_deep or (
                f"{_shortened(where)} is nested more than {MAX_DEPTH} levels deep"
            )
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str | int | float | bool) and key is not None:
                    return f"{where} has a key that is a {type(key).__name__}"
                key_problem = _scalar_problem(key, f"a key of {where}")
                if key_problem is not None:
                    return key_problem
                pending.append((child, f"{where}.{key}", depth + 1))
        else:
            pending.extend(
                (child, f"{where}[{i}]", depth + 1)
                for i, child in reversed(list(enumerate(item)))
            )
    return too_deep


def _scalar_problem(item: Any, where: str) -> str | None:
    """What makes a scalar unencodable: NaN, an integer too long to write, a lone surrogate."""
    if isinstance(item, float) and not math.isfinite(item):
        return f"{where} is {item!r}, which JSON cannot hold"
    if isinstance(item, int) and not isinstance(item, bool):
        try:
            int.__repr__(item)
        except ValueError:
            return (
                f"{where} is an integer of {item.bit_length()} bits, too long to write"
            )
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as e:
            return (
                f"{_shortened(where)} holds a lone surrogate "
                f"(U+{ord(item[e.start]):04X} at position {e.start}), which UTF-8 cannot "
                "encode"
            )
    return None


def _shortened(where: str) -> str:
    return where if len(where) <= 80 else f"{where[:60]}…{where[-16:]}"
