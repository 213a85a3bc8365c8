"""Task keys (``TDM-42``): their shape, a project's prefix, and how keys are found in text. Pure.

A key is ``PREFIX-N``: the project's prefix (2-6 of A-Z and 0-9, starting with a
letter) and a number the server assigns from a counter that only grows
(``sync_server.extensions.task_keys``). The prefix is the project meta's
``key_prefix``, or one made from the project's name (:func:`default_prefix`).
"""

from __future__ import annotations

import re
import unicodedata

PREFIX_PATTERN = r"[A-Z][A-Z0-9]{1,5}"
KEY_PATTERN = rf"{PREFIX_PATTERN}-[1-9][0-9]{{0,9}}"
_PREFIX = re.compile(PREFIX_PATTERN)
_KEY = re.compile(KEY_PATTERN)
_VOWELS = set("AEIOU")


def valid_prefix(value: object) -> bool:
    return isinstance(value, str) and _PREFIX.fullmatch(value) is not None


def valid_key(value: object) -> bool:
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def format_key(prefix: str, number: int) -> str:
    return f"{prefix}-{number}"


def parse_key(value: str) -> tuple[str, int] | None:
    """``("TDM", 42)`` for ``"TDM-42"``, None for anything that is not a key."""
    if not valid_key(value):
        return None
    prefix, number = value.rsplit("-", 1)
    return prefix, int(number)


def default_prefix(name: str) -> str:
    """A prefix from a project's name: "Tandem" -> "TDM", "Mobile App" -> "MA",
    "x" -> "XX"; always :func:`valid_prefix`.

    Several words: their initials (up to 6). One word: its first letter and the
    consonants after it, up to 3 letters (filled up with its other letters).
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().upper()
    words = [w for w in re.split(r"[^A-Z0-9]+", ascii_name) if w]
    while words and not words[0][0].isalpha():  # a prefix starts with a letter
        words[0] = words[0].lstrip("0123456789")
        if not words[0]:
            words.pop(0)
    if not words:
        return "TSK"
    if len(words) > 1:
        prefix = "".join(w[0] for w in words)[:6]
    else:
        word = words[0]
        consonants = [c for c in word[1:] if c not in _VOWELS]
        prefix = word[0] + "".join(consonants[-2:])
        if len(prefix) < 3:
            prefix = word[:3]
    if len(prefix) < 2:
        prefix = (prefix + "X")[:2]
    assert valid_prefix(prefix), prefix
    return prefix
