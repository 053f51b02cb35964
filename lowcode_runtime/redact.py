"""Keep a call's secrets out of what goes back to the caller (API.md section 5.4).

The process-wide log masking only knows values of four characters or more; this redactor knows
exactly the secrets this call resolved, whatever their length, and the forms in which an
upstream may echo them: as sent, percent-encoded (hex in either case, any of the characters
encoded or not: an upstream may decode some, as a URL parser does ``%2F``), form-encoded (a
space as ``+``), or escaped inside JSON text (any of their characters as ``\\uXXXX`` in
either case, ``\\/``, ``\\"`` and the other short escapes, escaped or not one by one).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from lowcode_runtime.masking import MASK

# A number as JSON writes one, standing alone (not a part of a word, a version or an address).
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")

# A parsed text with more arrays and objects than this is walked even when it shows no secret.
MAX_UNWALKED_CONTAINERS = 255


class Redactor:
    """Replaces this call's secret values with ``[REDACTED]``; remembers whether it did."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._pattern, self._escaped, self._numbers = _compiled(frozenset(secrets))
        self.redacted = False

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        # Every JSON escape has a backslash and every percent-encoding a "%": a text without
        # either needs only the plain forms.
        plain = "\\" not in text and "%" not in text
        pattern = self._pattern if plain else self._escaped
        if self._numbers:
            text = _NUMBER.sub(self._number_token, text)
        result, count = pattern.subn(MASK, text)
        self.redacted = self.redacted or count > 0
        return result

    def _number_token(self, match: re.Match[str]) -> str:
        """A number written in the text whose value is a numeric secret's, however spelt
        (``9.87654e5`` for ``987654``), as :meth:`json` finds one in parsed data."""
        try:
            value = json.loads(match[0])
        except ValueError:  # not JSON's spelling (``007``), or too many digits
            return match[0]
        if value in self._numbers or -value in self._numbers:
            self.redacted = True
            return MASK
        return match[0]

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
            # By value: 987654 also as 987654.0, 9.87654e5 or -987654 (its digits all there).
            if value in self._numbers or -value in self._numbers:
                self.redacted = True
                return MASK
        return value

    def parsed_json(self, value: Any, text: str) -> Any:
        """``json(value)`` for a ``value`` parsed from the JSON ``text``, walked only if needed.

        Where the text holds no backslash, every string of the value (keys too) is written in
        it as it is, and without a "%" no percent-encoded spelling can occur either, so when
        no plain form of a secret occurs in the text there is nothing to redact. A text of
        many arrays and
        objects is walked all the same: it may nest too deep to walk (``RecursionError``),
        which the caller answers.
        """
        if (
            self._pattern is not None
            and not self._numbers
            and "\\" not in text
            and "%" not in text
            and text.count("[") + text.count("{") <= MAX_UNWALKED_CONTAINERS
            and self._pattern.search(text) is None
        ):
            return value
        return self.json(value)


# JSON's short escapes (RFC 8259 section 7), after the backslash; any character may also be
# written ``\uXXXX``.
_SHORT_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}

_Compiled = tuple[re.Pattern[str] | None, re.Pattern[str], frozenset[int | float]]
_NOTHING = re.compile("(?!)")


@functools.lru_cache(maxsize=256)
def _compiled(secrets: frozenset[str]) -> _Compiled:
    """The pattern of the plain forms of ``secrets``, the pattern of those forms as JSON text
    may spell them too, and the values of the forms that read as numbers.

    Built once per set of secrets, not once per call: a project's set changes rarely.
    """
    plain = set()
    for value in secrets:
        if value:
            plain.update({value, quote(value, safe=""), quote_plus(value)})
    plain.discard("")
    if not plain:
        return None, _NOTHING, frozenset()

    ordered = sorted(plain, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, ordered)))
    numbers = frozenset(json.loads(value) for value in plain if _is_number_text(value))
    return pattern, _escaped_pattern(ordered), numbers


def _escaped_pattern(forms: list[str]) -> re.Pattern[str]:
    """Each form with each of its characters as itself, as any of its JSON escapes, or
    percent-encoded.

    The first character is read by one class (the form's first characters, the backslash
    and "%"), then told apart by a look-behind: a pattern that starts with a class is
    searched for by that class, three times faster than trying each branch at each position.
    """
    firsts = {"\\", "%"}
    branches = []
    for form in forms:
        first, rest = form[0], "".join(map(_spellings, form[1:]))
        firsts.add(first)
        branches.append(f"(?<={re.escape(first)}){rest}")
        branches += [rf"(?<=\\){escape}{rest}" for escape in _escapes(first)]
        branches.append(f"(?<=%){_percent_encoded(first)[1:]}{rest}")
        if first == " ":
            firsts.add("+")
            branches.append(rf"(?<=\+){rest}")
    starts = "".join(map(re.escape, sorted(firsts)))
    return re.compile(f"[{starts}](?:{'|'.join(branches)})")


def _spellings(char: str) -> str:
    """A regex of ``char`` as itself, as any of its JSON escapes, or percent-encoded (a space
    also as ``+``, as a form encodes it)."""
    spellings = [
        re.escape(char),
        *(rf"\\{e}" for e in _escapes(char)),
        _percent_encoded(char),
    ]
    if char == " ":
        spellings.append(r"\+")
    return "(?:" + "|".join(spellings) + ")"


def _percent_encoded(char: str) -> str:
    """A regex of ``char``'s UTF-8 bytes as ``%XX`` each, hex in either case."""
    return "".join(
        "%" + "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{byte:02x}")
        for byte in char.encode("utf-8", "surrogatepass")
    )


def _escapes(char: str) -> list[str]:
    """Regexes of what follows the backslash in each JSON escape of ``char``: its short
    escape if any, and ``uXXXX`` in either case (a surrogate pair past the BMP)."""
    code = ord(char)
    units = [code]
    if code > 0xFFFF:
        code -= 0x10000
        units = [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
    hex_digits = [
        "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{unit:04x}")
        for unit in units
    ]
    unicode_escape = r"\\u".join(hex_digits)
    escapes = ["u" + unicode_escape]
    if char in _SHORT_ESCAPES:
        escapes.append(re.escape(_SHORT_ESCAPES[char]))
    return escapes


def _is_number_text(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, int | float) and not isinstance(value, bool)
