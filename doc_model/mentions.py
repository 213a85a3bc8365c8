"""@mentions in a task's text: who a title and description name, and who a settled edit adds.

Pure (no I/O). The syntax is the one chat messages and comments use
(:data:`doc_model.domain_events.MENTION`: ``@name`` not preceded by a word character or
another ``@``, so ``mail@alice.example`` names nobody).

A task's text is typed a keystroke at a time, so what counts is the text once a burst of
typing has settled (``sync_server.extensions.mentions`` waits for the quiet), compared with
the names it held when it last settled: :func:`added_mentions`. Typing ``@al`` on the way to
``@alice`` names nobody new; removing a mention and typing it again within one burst
changes nothing; removing it, letting the text settle, and adding it later is a new
mention.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .domain_events import MENTION

TEXT_FIELDS = ("title", "description")
"""The task fields whose mentions notify (both Y.Text, typed a keystroke at a time)."""

EXCERPT_CHARS = 200


def mentions_in(text: str | None) -> frozenset[str]:
    """The user names ``text`` mentions."""
    return frozenset(MENTION.findall(text)) if text else frozenset()


def task_mentions(task: Mapping[str, Any]) -> frozenset[str]:
    """The names a task's title and description mention (a task's values as plain JSON)."""
    out: frozenset[str] = frozenset()
    for name in TEXT_FIELDS:
        value = task.get(name)
        if isinstance(value, str):
            out |= mentions_in(value)
    return out


def added_mentions(before: Iterable[str], after: Iterable[str]) -> list[str]:
    """The names ``after`` mentions that ``before`` did not, sorted."""
    return sorted(set(after) - set(before))


def excerpt(text: str, name: str, limit: int = EXCERPT_CHARS) -> str:
    """The line of ``text`` that mentions ``name`` (at most ``limit`` characters around the
    mention), for a notification's body; the start of ``text`` if it does not mention them."""
    for match in MENTION.finditer(text):
        if match.group(1) != name:
            continue
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", match.end())
        end = len(text) if end < 0 else end
        line = text[start:end].strip()
        if len(line) <= limit:
            return line
        at = match.start() - start
        lo = max(0, min(at - limit // 2, len(line) - limit))
        return ("…" if lo else "") + line[lo : lo + limit].strip() + "…"
    return text[:limit]
