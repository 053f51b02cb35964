"""Keep a call's secrets out of what goes back to the caller (API.md section 5.4).

The process-wide log masking only knows values of four characters or more; this redactor knows
exactly the secrets this call resolved, whatever their length, and the forms in which an
upstream may echo them: as sent, percent-encoded, form-encoded, or escaped inside JSON text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from lowcode_runtime.masking import MASK

# A parsed text with more arrays and objects than this is walked even when it shows no secret.
MAX_UNWALKED_CONTAINERS = 255


class Redactor:
    """Replaces this call's secret values with ``[REDACTED]``; remembers whether it did."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._pattern, self._numbers = _compiled(frozenset(secrets))
        self.redacted = False

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        result, count = self._pattern.subn(MASK, text)
        self.redacted = self.redacted or count > 0
        return result

    def json(self, value: Any) -> Any:
        """A parsed JSON value with every string (keys too) redacted, and numeric secrets."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            if json.dumps(value) in self._numbers:
                self.redacted = True
                return MASK
        return value

    def parsed_json(self, value: Any, text: str) -> Any:
        """``json(value)`` for a ``value`` parsed from the JSON ``text``, walked only if needed.

        Where the text holds no backslash, every string of the value (keys too) is written in
        it as it is, so when no form of a secret occurs in the text there is nothing to
        redact. A text of many arrays and objects is walked all the same: it may nest too
        deep to walk (``RecursionError``), which the caller answers.
        """
        if (
            self._pattern is not None
            and not self._numbers
            and "\\" not in text
            and text.count("[") + text.count("{") <= MAX_UNWALKED_CONTAINERS
            and self._pattern.search(text) is None
        ):
            return value
        return self.json(value)


@functools.lru_cache(maxsize=256)
def _compiled(secrets: frozenset[str]) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    """The pattern of every form of ``secrets`` and those forms that read as numbers.

    Built once per set of secrets, not once per call: a project's set changes rarely.
    """
    forms = set()
    for value in secrets:
        if value:
            forms.update({value, quote(value, safe=""), quote_plus(value)})
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.discard("")
    ordered = sorted(forms, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
    return pattern, frozenset(value for value in forms if _is_number_text(value))


def _is_number_text(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, int | float) and not isinstance(value, bool)
