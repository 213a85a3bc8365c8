"""An account's locale and time zone: checked when set, and the formats texts for it use.

- Time zones are IANA names, checked with the standard library (``zoneinfo``: the name
  must be one of ``zoneinfo.available_timezones()``, so ``localtime`` or a file path is
  refused, not only names that fail to load).
- Locales are BCP 47 tags (``de``, ``pt-BR``, ``sr-Latn-RS``), checked and formatted with
  Babel's CLDR data. The standard library cannot do either: ``locale`` switches the whole
  process to one locale at a time, and only to those the operating system has installed.
  A tag is stored normalized (``de-de`` -> ``de-DE``); one CLDR does not know is refused.

:func:`text_format` gives the :class:`~rules.automation.formatting.TextFormat` of an
account: dates in the locale's medium form (``05.12.2026`` for ``de``), date-times
converted to the account's time zone first, numbers with the locale's marks
(``1.234,5``). An account with neither gets :data:`~rules.automation.PLAIN`.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from rules.automation import PLAIN, TextFormat

MAX_TAG_LENGTH = 35  # RFC 5646's longest well-formed tag a registry would issue


class LocaleInvalid(ValueError):
    pass


NOT_ZONES = frozenset({"localtime", "posixrules"})
"""Files some systems keep beside the IANA zones (the machine's own zone: not a name)."""


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def normalize_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone name this server knows; LocaleInvalid if not."""
    if name not in _zones():
        raise LocaleInvalid(f"{name!r} is not an IANA time zone name (such as Europe/Berlin)")
    return name


def normalize_locale(tag: str) -> str:
    """``tag`` as a normalized BCP 47 tag (``pt-br`` -> ``pt-BR``); LocaleInvalid if it is
    not one, or names a language CLDR has no data for."""
    if not tag or len(tag) > MAX_TAG_LENGTH or "_" in tag:
        raise LocaleInvalid(f"{tag!r} is not a BCP 47 language tag (such as en-GB or de)")
    try:
        parsed = Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError, TypeError) as e:
        raise LocaleInvalid(
            f"{tag!r} is not a BCP 47 language tag this server knows (such as en-GB or de)"
        ) from e
    return "-".join(p for p in (parsed.language, parsed.script, parsed.territory) if p)


class LocaleFormat:
    """Dates and numbers as ``locale`` writes them, date-times in ``zone``."""

    def __init__(self, locale: str | None, zone: str | None) -> None:
        self.locale = Locale.parse(locale or "en", sep="-")
        self.zone = zoneinfo.ZoneInfo(zone) if zone else dt.UTC

    def date(self, value: str) -> str:
        try:
            if len(value) == 10:
                return format_date(dt.date.fromisoformat(value), "medium", locale=self.locale)
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return format_datetime(moment, "medium", tzinfo=self.zone, locale=self.locale)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.locale)


@functools.lru_cache(maxsize=256)
def text_format(locale: str | None, zone: str | None) -> TextFormat:
    """The format of an account with this locale and time zone (PLAIN with neither; a value
    that no longer loads, say after a tzdata update, falls back to the default)."""
    if not locale and not zone:
        return PLAIN
    try:
        return LocaleFormat(locale, zone)
    except (UnknownLocaleError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return PLAIN
