"""Find what in a plugin's result is not JSON, so that the error can name it.

Only called after the envelope failed to serialise a result, never on the hot path.
"""

from __future__ import annotations

import math
from typing import Any

JSON_SCALARS = (str, int, float, bool, type(None))


def first_non_json(value: Any, path: str) -> str | None:
    """``"data.when is a datetime"`` for the first value JSON cannot hold, or None.

    Walked with a list rather than recursion: a plugin's result may nest deeply.
    """
    pending: list[tuple[Any, str]] = [(value, path)]
    seen: set[int] = set()
    while pending:
        item, where = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where} is {item!r}, which JSON cannot hold"
        if isinstance(item, JSON_SCALARS):
            continue
        if not isinstance(item, dict | list | tuple):
            return f"{where} is a {type(item).__name__}"
        if id(item) in seen:
            return f"{where} refers back to itself"
        seen.add(id(item))
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str | int | float | bool) and key is not None:
                    return f"{where} has a key that is a {type(key).__name__}"
                pending.append((child, f"{where}.{key}"))
        else:
            pending.extend(
                (child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item)))
            )
    return None
