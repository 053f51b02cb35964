"""Replace secret values, bearer tokens and DSN passwords before any text leaves the process.

Secret values are registered process-wide as they are resolved (a bounded set, newest kept),
so a line logged outside the request that resolved a secret is masked too.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import ahocorasick

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
    """The secret values known to this process, found in a text in one pass however many.

    Every log line is scanned for all of them, and a process that serves many projects knows
    thousands: one regular expression of them all took milliseconds a line at 10,000 values
    (Python's ``re`` tries each alternative at each position). Values known longer are kept
    in an Aho-Corasick automaton, whose scan costs about the same for 10 or 10,000 values;
    the newest few are looked for one by one until there are enough of them to rebuild it.
    """

    def __init__(self, limit: int = MAX_REGISTERED) -> None:
        # Each value with the projects it is a secret of (None: the service's own).
        self._values: OrderedDict[str, set[str | None]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        # Swapped whole, never changed in place: a scan in another thread keeps its own.
        self._settled: ahocorasick.Automaton | None = None
        self._recent: tuple[str, ...] = ()

    def register(self, *values: object, owner: str | None = None) -> None:
        """Add values (and their percent-encoded forms) as secrets of project ``owner`` (None:
        of the service itself); a known one is only kept longer.

        Called on every read of a project's secrets, so a known value costs a lookup only.
        """
        with self._lock:
            recent = list(self._recent)
            for value in values:
                if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
                    continue
                owners = self._values.get(value)
                if owners is not None and owner in owners:
                    self._values.move_to_end(value)
                    continue
                for form in (*_encoded_forms(value), value):
                    if form not in self._values:
                        recent.append(form)
                        self._values[form] = set()
                    self._values[form].add(owner)
                    self._values.move_to_end(form)
                while len(self._values) > self._limit:
                    # Still in the automaton until its next rebuild: masked a while longer.
                    self._values.popitem(last=False)
            if len(recent) > MAX_RECENT:
                self._settled, recent = _automaton(self._values), []
            self._recent = tuple(value for value in recent if value in self._values)

    def retire(self, owner: str, current: Iterable[str]) -> None:
        """``owner``'s values that are not among ``current`` are no longer its secrets.

        Its error answers stop masking them (a removed secret would hide, say, a host the
        caller needs to see); log lines still mask every value ever registered.
        """
        kept = {form for value in current for form in (value, *_encoded_forms(value))}
        with self._lock:
            for value, owners in self._values.items():
                if owner in owners and value not in kept:
                    owners.discard(owner)

    def found_in(self, text: str) -> set[str]:
        """The registered values that occur in ``text`` (overlapping ones included)."""
        settled, recent = self._settled, self._recent
        found = {value for value in recent if value in text}
        if settled is not None:
            found.update(value for _, value in settled.iter(text))
        return found

    def masked(self, text: str) -> str:
        """``text`` with every registered value in it replaced, the longest first."""
        found = self.found_in(text)
        return _replacing(frozenset(found)).sub(MASK, text) if found else text

    def masked_for(self, text: str, project_id: str | None) -> str:
        """``text`` with the secrets of ``project_id`` and of the service replaced, not other
        projects': an answer masked with every project's would tell its caller which of its
        guesses is another project's secret."""
        found = self.found_in(text)
        if found:
            values = self._values
            found = {
                v
                for v in found
                if not values.get(v, {None}).isdisjoint((None, project_id))
            }
        return _replacing(frozenset(found)).sub(MASK, text) if found else text

    def occurs_in(self, text: str) -> bool:
        """Whether any registered value occurs in ``text``; cheaper than :meth:`found_in`."""
        settled = self._settled
        if settled is not None and next(settled.iter(text), None) is not None:
            return True
        return any(value in text for value in self._recent)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._settled, self._recent = None, ()


MAX_RECENT = 32
"""New values looked for one by one before the automaton is rebuilt with them; each rebuild
costs about 50 ms at 10,000 values, and each value looked for alone about 0.05 µs a line."""


def _automaton(values: Iterable[str]) -> ahocorasick.Automaton | None:
    automaton = ahocorasick.Automaton()
    for value in values:
        automaton.add_word(value, value)
    if len(automaton) == 0:
        return None
    automaton.make_automaton()
    return automaton


@functools.lru_cache(maxsize=256)
def _replacing(values: frozenset[str]) -> re.Pattern[str]:
    """One pattern of the values found in a text, longest first, as masking always matched."""
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(value) for value in ordered))


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


def register_secret(*values: object, owner: str | None = None) -> None:
    """Mark values as secret for every later log line of this process, and for the error
    answers of project ``owner`` (of every project when it is None: the service's own)."""
    secrets.register(*values, owner=owner)


def mask_registered(text: str) -> str:
    """Replace only the registered secret values (for upstream bodies echoed to a caller)."""
    return secrets.masked(text)


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
    return secrets.occurs_in(text)


def mask(text: str) -> str:
    """Replace registered secrets, bearer tokens and DSN passwords in ``text``."""
    return _mask_patterns(mask_registered(text))


def mask_answer(text: str, project_id: str | None) -> str:
    """:func:`mask` for an answer to ``project_id``'s caller: only its own secrets, and the
    service's, among the registered ones."""
    return _mask_patterns(secrets.masked_for(text, project_id))


def _mask_patterns(text: str) -> str:
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _DSN_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, text)
