"""Time for rules: the cron-like ``schedule`` trigger, and due-date windows. Pure.

The clock is never read here: every function takes the instant it works from.

**Cron specs** have five fields, ``minute hour day-of-month month day-of-week``:

- each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a
  comma-separated list of these; months may be named ``jan``..``dec`` and weekdays
  ``sun``..``sat`` (``0`` and ``7`` are both Sunday);
- as in Vixie cron, when both day-of-month and day-of-week are restricted (neither is
  ``*``), a day matches if *either* does;
- at most 100 characters; a malformed spec raises :class:`CronError` naming the field,
  and so does one that never fires (``0 0 31 2 *``).

Times are wall-clock times in the rule's IANA time zone (``zoneinfo``). Around daylight
saving changes:

- a time the clocks skip (02:30 on the night Berlin moves to summer time) fires once,
  shifted by the gap (03:30 local): no day is skipped;
- a time the clocks repeat (02:30 on the night they go back) fires once, at its first
  occurrence, unless the hour field is ``*`` (every hour), which fires in both passes.

**Due dates** are days (``YYYY-MM-DD``), with no time. A task is *due* at the start of its
due date in the project's time zone (00:00 local), and *overdue* from the start of the
following day (the same definition as the metrics: a due date before today). A
``due_date_approaching`` rule with ``within`` N hours / days fires at the due instant
minus that span.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_CRON_LENGTH = 100
SEARCH_DAYS = 366 * 8 + 2  # a 29 February on a given weekday can be 8 years off
UTC = dt.UTC

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_MONTH_DAYS = {m: 31 for m in (1, 3, 5, 7, 8, 10, 12)} | {m: 30 for m in (4, 6, 9, 11)} | {2: 29}
_TZ_NAME = re.compile(r"[A-Za-z0-9_+-]{1,40}(/[A-Za-z0-9_+-]{1,40}){0,2}")


class CronError(ValueError):
    """A malformed cron spec; the message names the field and what is wrong."""


class TimeZoneError(ValueError):
    """Not an IANA time zone name this machine knows."""


@dataclass(frozen=True)
class Cron:
    """A parsed five-field spec: the sets of values each field allows."""

    spec: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    days_any: bool  # day-of-month was "*"
    weekdays_any: bool  # day-of-week was "*"

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow  # both restricted: either (Vixie cron)

    def matches(self, local: dt.datetime) -> bool:
        """Whether a wall-clock time (its minute) is one the spec names."""
        return local.minute in self.minutes and local.hour in self.hours and self.day_matches(local)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit() or len(text) > 4:
        raise CronError(f"{name}: {text!r} is not a number" + (" or a name" if names else ""))
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{name}: {number} is out of range {low}-{high}")
    return number


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    if not text:
        raise CronError(f"{name}: empty")
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty item in list {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or len(step_text) > 4 or int(step_text) == 0:
                raise CronError(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name}: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if slash else start  # "5/15": from 5, every 15
        out.update(range(start, end + 1, step))
    return out


def parse_cron(spec: str) -> Cron:
    """Parse a five-field cron spec, or raise :class:`CronError` saying what is wrong."""
    if not isinstance(spec, str):
        raise CronError("expected a string of five fields")
    if len(spec) > MAX_CRON_LENGTH:
        raise CronError(f"at most {MAX_CRON_LENGTH} characters")
    return _parse_cron(spec)


@lru_cache(maxsize=1024)
def _parse_cron(spec: str) -> Cron:
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    sets = [_field(p, *f) for p, f in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    if (
        parts[2] != "*"
        and (parts[4] == "*")
        and not any(day <= _MONTH_DAYS[month] for month in sets[3] for day in sets[2])
    ):
        raise CronError(
            f"day of month: {parts[2]!r} never falls in month {parts[3]!r}, so it never fires"
        )
    return Cron(
        spec=spec,
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=weekdays,
        days_any=parts[2] == "*",
        weekdays_any=parts[4] == "*",
    )


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Europe/Berlin``, ``UTC``), or TimeZoneError.

    Looked up directly (``available_timezones()`` scans the whole database: 0.2 s, too
    long for the gate, which checks a rule's zone when the rule is written)."""
    if not isinstance(name, str) or not _TZ_NAME.fullmatch(name):
        raise TimeZoneError(f"{name!r} is not an IANA time zone name (like Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise TimeZoneError(f"unknown time zone {name!r}") from exc


def _aware(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware datetimes")
    return instant


def _instants(cron: Cron, wall: dt.datetime, tz: ZoneInfo) -> list[dt.datetime]:
    """The UTC instants a matching wall time stands for (see the module doc)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(tz).replace(tzinfo=None) != wall:
        return [first]  # in a gap: fold=0 reads it with the offset before, i.e. later
    # repeated: fold=0 is the first pass
    return [first, second] if len(cron.hours) == 24 else [first]


def next_fire(cron: Cron | str, after: dt.datetime, tz: ZoneInfo | str = "UTC") -> dt.datetime:
    """The first instant strictly after ``after`` that ``cron`` names in zone ``tz`` (UTC).

    Raises ValueError if there is none within eight years (a spec like ``0 0 31 2 *``).
    """
    spec = parse_cron(cron) if isinstance(cron, str) else cron
    zone = time_zone(tz) if isinstance(tz, str) else tz
    after = _aware(after).astimezone(UTC)
    # start a day early: a repeated hour can put earlier wall times after ``after``
    day = after.astimezone(zone).date() - dt.timedelta(days=1)
    floor = after.astimezone(zone).replace(tzinfo=None) - dt.timedelta(hours=3)
    hours = sorted(spec.hours)
    minutes = sorted(spec.minutes)
    best: dt.datetime | None = None
    for _ in range(SEARCH_DAYS):
        if spec.day_matches(day):
            # a day without an offset change: wall order is time order, stop at the first
            steady = _offset(day, zone) == _offset(day + dt.timedelta(days=1), zone)
            for hour, minute in ((h, m) for h in hours for m in minutes):
                wall = dt.datetime(day.year, day.month, day.day, hour, minute)
                if wall < floor:
                    continue  # hours before ``after`` on any reading of the clock
                instants = _instants(spec, wall, zone)
                for instant in instants:
                    if instant > after and (best is None or instant < best):
                        best = instant
                if steady and best is not None:
                    break
        if best is not None and best < _day_start(day + dt.timedelta(days=1), zone):
            return best  # later days begin after this one's candidates
        day += dt.timedelta(days=1)
    if best is not None:
        return best
    raise ValueError(f"{spec.spec!r} names no time within {SEARCH_DAYS // 366} years")


def _offset(day: dt.date, zone: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime(day.year, day.month, day.day).replace(tzinfo=zone).utcoffset()


def _day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The earliest instant of a local day (a day's wall times start no earlier, less the
    largest offset change, 3 hours with room to spare)."""
    midnight = dt.datetime(day.year, day.month, day.day).replace(tzinfo=zone)
    return midnight.astimezone(UTC) - dt.timedelta(hours=3)


# -- due dates -------------------------------------------------------------------------------


def due_instant(due: dt.date | str, tz: ZoneInfo | str = "UTC") -> dt.datetime:
    """When a task with this due date is due: 00:00 of that day, local (as UTC)."""
    day = dt.date.fromisoformat(due) if isinstance(due, str) else due
    zone = time_zone(tz) if isinstance(tz, str) else tz
    return dt.datetime(day.year, day.month, day.day).replace(tzinfo=zone).astimezone(UTC)


def overdue_at(due: dt.date | str, tz: ZoneInfo | str = "UTC") -> dt.datetime:
    """From when a task with this due date is overdue: 00:00 of the next day, local (UTC)."""
    day = dt.date.fromisoformat(due) if isinstance(due, str) else due
    return due_instant(day + dt.timedelta(days=1), tz)


def approaching_at(
    due: dt.date | str, within: dt.timedelta, tz: ZoneInfo | str = "UTC"
) -> dt.datetime:
    """When a ``due_date_approaching`` rule with window ``within`` fires for this due date."""
    return due_instant(due, tz) - within


def is_overdue(due: dt.date | str, now: dt.datetime, tz: ZoneInfo | str = "UTC") -> bool:
    return _aware(now) >= overdue_at(due, tz)


def is_approaching(
    due: dt.date | str, within: dt.timedelta, now: dt.datetime, tz: ZoneInfo | str = "UTC"
) -> bool:
    """Whether ``now`` is inside the window: at or past the fire time, before overdue."""
    return approaching_at(due, within, tz) <= _aware(now) < overdue_at(due, tz)
