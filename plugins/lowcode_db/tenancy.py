"""The tenant schema of a project (API.md section 6.1): its name and who owns it.

The slug folds accents the way a reader expects: a character whose decomposition starts with an
ASCII letter keeps that letter (``é`` -> ``e``), another Latin letter takes its transliteration
from ``text-unidecode`` (``ß`` -> ``ss``, ``ø`` -> ``o``), and a character of any other script,
which has no ASCII form, is dropped. ``python-slugify`` is not used: it also decodes HTML
entities, deletes commas between digits and transliterates every script, which the contract
does not ask for.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

from text_unidecode import unidecode

from lowcode_runtime.requests import checked_project_id

PREFIX = "preview_"
MAX_IDENTIFIER_BYTES = 63
CUT_BYTES = 54
_OUTSIDE = re.compile(r"[^a-z0-9]+")


def _fold_char(char: str) -> str:
    if char.isascii():
        return char
    decomposed = unicodedata.normalize("NFKD", char)
    if decomposed and decomposed[0].isascii():
        return "".join(c for c in decomposed if c.isascii())
    if unicodedata.name(char, "").startswith("LATIN "):
        return unidecode(char)
    return ""


def fold_accents(text: str) -> str:
    """``text`` in ASCII: accents folded, characters with no ASCII form dropped."""
    return "".join(_fold_char(char) for char in text)


def slugify(project_id: str) -> str:
    """The slug of 6.1: folded, lower case, runs outside ``a-z0-9`` as one ``_``, trimmed."""
    return _OUTSIDE.sub("_", fold_accents(project_id).lower()).strip("_")


def short_hash(project_id: str) -> str:
    """``h8``: the first 8 hex digits of the SHA-256 of the projectId's UTF-8 bytes."""
    return hashlib.sha256(project_id.encode("utf-8")).hexdigest()[:8]


@lru_cache(maxsize=4096)
def schema_name(project_id: str) -> str:
    """``preview_<slug>``, ``preview_<h8>`` for an empty slug, cut with ``_<h8>`` past 63 bytes."""
    checked_project_id(project_id)
    slug = slugify(project_id)
    if not slug:
        return PREFIX + short_hash(project_id)

    name = PREFIX + slug
    if len(name.encode("ascii")) > MAX_IDENTIFIER_BYTES:
        name = name[:CUT_BYTES] + "_" + short_hash(project_id)
    return name


def lock_key(schema: str) -> int:
    """A signed 64-bit advisory-lock key for ``schema``, stable across processes."""
    digest = hashlib.sha256(("lowcode_runtime:" + schema).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
