"""How texts the server writes for people show dates and numbers: an interface, and the plain
default. Pure.

The engine fills a rule's texts (``{task.due}``, ``{task.estimate}``...) and the facts of
its Slack and Teams messages through a :class:`TextFormat`. The runner passes the one of
the person the text is for (``sync_server.identity.locales``: their account's locale and
time zone, with Babel's CLDR data); :data:`PLAIN` (ISO 8601 dates, numbers as Python
writes them) is what a text gets when nobody chose otherwise.
"""

from __future__ import annotations

from typing import Protocol


class TextFormat(Protocol):
    def date(self, value: str) -> str:
        """An ISO 8601 date (``2026-12-05``) or date-time (``2026-12-05T14:00:00Z``), as
        the reader writes it; ``value`` unchanged if it is neither."""
        ...

    def number(self, value: float) -> str:
        """A number as the reader writes it (decimal and grouping marks)."""
        ...


class PlainFormat:
    """ISO dates as they are, numbers as Python writes them (whole floats without ``.0``)."""

    def date(self, value: str) -> str:
        return value

    def number(self, value: float) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


PLAIN: TextFormat = PlainFormat()

DATE_FIELDS = frozenset({"due", "start", "start_date", "end_date"})
"""Fields of tasks and of a project's meta that hold dates."""
