"""How loaded people are: the sum of their allocations' percents, day by day. Pure.

An allocation (``p/<id>/resources``, root ``allocations``) gives a ``user`` ``percent`` of
their time from ``start`` to ``end`` (dates, both days included; a missing one leaves that
side open). A person's load on a day is the sum of the percents of their allocations
covering that day; their *peak* is the highest load on any day. Someone whose peak is
above their capacity (100 % unless said otherwise) is overallocated.

Used by automation (``resource_overallocated``) and open to the REST API.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

_BEGIN = dt.date.min
_END = dt.date.max


def _day(value: Any, default: dt.date) -> dt.date | None:
    """A date field's day; ``default`` when absent; None when malformed (ignored)."""
    if value is None:
        return default
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _percent(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def peak_load(allocations: Iterable[Mapping[str, Any]], user: str) -> float:
    """``user``'s highest load on any day, in percent (0 without allocations)."""
    steps: list[tuple[dt.date, int, float]] = []  # (day, 0 = ends before / 1 = starts, delta)
    for alloc in allocations:
        if not isinstance(alloc, Mapping) or alloc.get("user") != user:
            continue
        percent = _percent(alloc.get("percent"))
        start = _day(alloc.get("start"), _BEGIN)
        end = _day(alloc.get("end"), _END)
        if percent is None or percent <= 0 or start is None or end is None or end < start:
            continue
        steps.append((start, 1, percent))
        if end < _END:
            steps.append((end + dt.timedelta(days=1), 0, -percent))
    steps.sort(key=lambda s: (s[0], s[1]))  # on one day, what ended leaves first
    load = peak = 0.0
    for _when, _order, delta in steps:
        load += delta
        peak = max(peak, load)
    return round(peak, 6)


def peak_loads(allocations: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Every allocated user's peak load."""
    items = [a for a in allocations if isinstance(a, Mapping)]
    users = {a["user"] for a in items if isinstance(a.get("user"), str)}
    return {user: peak_load(items, user) for user in sorted(users)}


def overallocated(
    allocations: Iterable[Mapping[str, Any]], capacity: float = 100.0
) -> dict[str, float]:
    """The users whose peak load is above ``capacity``, with that peak."""
    return {u: p for u, p in peak_loads(allocations).items() if p > capacity}
