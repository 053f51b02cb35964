"""Keep a call's secrets out of what goes back to the caller (API.md section 5.4).

The process-wide log masking only knows values of four characters or more; this redactor knows
exactly the secrets this call resolved, whatever their length, and the forms in which an
upstream may echo them: as sent, percent-encoded, form-encoded, or escaped inside JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from lowcode_runtime.masking import MASK


class Redactor:
    """Replaces this call's secret values with ``[REDACTED]``; remembers whether it did."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = set()
        for value in secrets:
            if value:
                forms.update({value, quote(value, safe=""), quote_plus(value)})
                forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        forms.discard("")
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(map(re.escape, ordered))) if ordered else None
        )
        self._numbers = {value for value in forms if _is_number_text(value)}
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


def _is_number_text(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, int | float) and not isinstance(value, bool)
