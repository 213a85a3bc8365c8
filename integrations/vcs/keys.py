"""Task keys named in text, and the keys a text closes ("Fixes TDM-42, TDM-43"). Pure.

A key is ``PREFIX-N`` (doc_model.task_keys) standing alone: not inside a longer
word or number (``XTDM-4``, ``TDM-42a`` and ``TDM-4.2`` name no key... the last one
names none because a key never continues with ``.digit``). Closing words, in
any case: close, closes, closed, fix, fixes, fixed, resolve, resolves,
resolved, optionally followed by ``:``, then one key or a list of keys joined
by ``,``, ``and`` or ``&`` ("fixes TDM-1, TDM-2 and TDM-3").
"""

from __future__ import annotations

import re

from doc_model.task_keys import KEY_PATTERN

_BOUNDED_KEY = rf"(?<![A-Za-z0-9_-])({KEY_PATTERN})(?![A-Za-z0-9_]|\.[0-9])"
_KEY = re.compile(_BOUNDED_KEY)
_CLOSING_WORD = r"(?<![A-Za-z0-9_])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)"
_SEPARATOR = r"\s*(?:,|&|\band\b)\s*"
_CLOSING = re.compile(
    rf"{_CLOSING_WORD}:?\s+(?P<keys>{_BOUNDED_KEY}(?:{_SEPARATOR}{_BOUNDED_KEY})*)",
    re.IGNORECASE,
)


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(keys))


def mentioned_keys(text: str | None) -> list[str]:
    """Every task key named in ``text``, once each, in order of first mention."""
    if not text:
        return []
    return _unique(_KEY.findall(text))


def closing_keys(text: str | None) -> list[str]:
    """The keys ``text`` closes with a closing word, once each, in order."""
    if not text:
        return []
    out: list[str] = []
    for match in _CLOSING.finditer(text):
        # IGNORECASE reaches the key pattern too: keep only real (upper-case) keys
        out.extend(k for k in _KEY.findall(match.group("keys")) if k == k.upper())
    return _unique(out)
