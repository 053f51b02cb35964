"""Replace secret values, bearer tokens and DSN passwords before any text leaves the process.

Secret values are registered process-wide as they are resolved (a bounded set, newest kept),
so a line logged outside the request that resolved a secret is masked too.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
MAX_REGISTERED = 10_000
# Shorter values would mask ordinary words; such secrets are still kept out of answers by the
# rest plugin's exact-match redaction, which knows the request's own secrets.
MIN_SECRET_LENGTH = 4

_BEARER_SOURCE = r"\b(bearer\s+)[A-Za-z0-9._~+/=-]+"
_DSN_PASSWORD_SOURCE = r"\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(@)"
_PASSWORD_PARAM_SOURCE = r"\b(password\s*=\s*)('[^']*'|\S+)"
_BEARER = re.compile(_BEARER_SOURCE, re.IGNORECASE)
_DSN_PASSWORD = re.compile(_DSN_PASSWORD_SOURCE, re.IGNORECASE)
_PASSWORD_PARAM = re.compile(_PASSWORD_PARAM_SOURCE, re.IGNORECASE)
# All three in one scan, after a cheaper look for the words each needs: most texts hold none.
_ANY_PATTERN = re.compile(
    "|".join(
        f"(?:{source})"
        for source in (_BEARER_SOURCE, _DSN_PASSWORD_SOURCE, _PASSWORD_PARAM_SOURCE)
    ),
    re.IGNORECASE,
)


class SecretRegistry:
    """The secret values known to this process, matched longest first."""

    def __init__(self, limit: int = MAX_REGISTERED) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def register(self, *values: object) -> None:
        """Add values (and their percent-encoded forms); a known one is only kept longer.

        Called on every read of a project's secrets, so a known value costs a lookup only.
        """
        added = False
        with self._lock:
            for value in values:
                if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
                    continue
                if value in self._values:
                    self._values.move_to_end(value)
                    continue
                for form in _encoded_forms(value):
                    self._values.setdefault(form, None)
                self._values[value] = None
                added = True
                while len(self._values) > self._limit:
                    self._values.popitem(last=False)
            if added:
                self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


def _encoded_forms(value: str) -> list[str]:
    """``value`` percent-encoded as a URL's query or path carries it (hex in either case, a
    space as ``%20`` or ``+``), where that differs from the value: a URL in a traceback or a
    library's message shows a secret so. Forms with only some characters encoded are left to
    the rest plugin's redaction of answers, which knows the call's own secrets."""
    encoded = quote(value, safe="")
    forms = {
        encoded,
        _LOWER_HEX.sub(lambda m: m.group(0).lower(), encoded),
        quote_plus(value),
    }
    forms.discard(value)
    return sorted(forms)


_LOWER_HEX = re.compile(r"%[0-9A-F]{2}")

secrets = SecretRegistry()


def register_secret(*values: object) -> None:
    """Mark values as secret for every later log line and error text of this process."""
    secrets.register(*values)


def mask_registered(text: str) -> str:
    """Replace only the registered secret values (for upstream bodies echoed to a caller)."""
    pattern = secrets.pattern()
    return pattern.sub(MASK, text) if pattern else text


def needs_masking(text: str) -> bool:
    """Whether :func:`mask` could change ``text``: one scan for any of its patterns.

    Texts joined by a newline may be scanned at once: a match inside one of them is still a
    match in the joined text (a newline ends a word, as the end of a text does), so a False
    answer holds for each of them.
    """
    folded = text.casefold()  # as IGNORECASE matches: "ſ" is an "s" to it
    if ("bearer" in folded or "password" in folded or "://" in text) and (
        _ANY_PATTERN.search(text)
    ):
        return True
    pattern = secrets.pattern()
    return pattern is not None and pattern.search(text) is not None


def mask(text: str) -> str:
    """Replace registered secrets, bearer tokens and DSN passwords in ``text``."""
    text = mask_registered(text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _DSN_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, text)
