"""List queries of the REST API: pagination, filters, sorting and field selection. Pure.

    ?limit=50&offset=0                   page (limit 1..1000)
    ?status=todo,review&assignee=ana     filters (comma: any of)
    ?due_before=2026-12-01&q=login       date bounds, text search
    ?order_by=-priority,due              several keys, "-" descending
    ?fields=id,title,status              field selection

Every mistake is a :class:`QueryError` naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from doc_model import PRIORITIES

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
PAGING = ("limit", "offset", "order_by", "fields")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}


class QueryError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Filter:
    """A query parameter that filters; ``make(raw)`` parses it into a predicate."""

    name: str
    make: Callable[[str], Predicate]
    description: str


@dataclass(frozen=True)
class ListSpec:
    """What one collection's list endpoint accepts."""

    fields: tuple[str, ...]  # selectable and returned
    sortable: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    default_order: tuple[str, ...] = ("id",)
    sort_keys: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ListQuery:
    limit: int
    offset: int
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    fields: tuple[str, ...] | None
    predicates: tuple[Predicate, ...]


def _int(name: str, raw: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, f"expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise QueryError(name, f"must be {bound}, got {value}")
    return value


def _names(name: str, raw: str, allowed: Sequence[str], *, signed: bool = False) -> list[str]:
    out = []
    for part in raw.split(","):
        part = part.strip()
        bare = part[1:] if signed and part.startswith("-") else part
        if not bare:
            raise QueryError(name, "empty field name")
        if bare not in allowed:
            raise QueryError(name, f"unknown field {bare!r}; one of {', '.join(allowed)}")
        out.append(part)
    return out


def parse_list_query(args: Mapping[str, str], spec: ListSpec) -> ListQuery:
    known = {f.name: f for f in spec.filters}
    for key in args:
        if key not in known and key not in PAGING:
            allowed = ", ".join([*PAGING, *known])
            raise QueryError(key, f"unknown query parameter; allowed: {allowed}")
    limit = _int("limit", args["limit"], 1, MAX_LIMIT) if "limit" in args else DEFAULT_LIMIT
    offset = _int("offset", args["offset"], 0, None) if "offset" in args else 0
    order = (
        _names("order_by", args["order_by"], spec.sortable, signed=True)
        if "order_by" in args
        else list(spec.default_order)
    )
    fields = tuple(_names("fields", args["fields"], spec.fields)) if "fields" in args else None
    predicates = []
    for key, flt in known.items():
        if key in args:
            try:
                predicates.append(flt.make(args[key]))
            except QueryError:
                raise
            except ValueError as e:
                raise QueryError(key, str(e)) from None
    return ListQuery(
        limit=limit,
        offset=offset,
        order_by=tuple((o.lstrip("-"), o.startswith("-")) for o in order),
        fields=fields,
        predicates=tuple(predicates),
    )


def _sort_value(value: Any) -> tuple:
    """Orders values of mixed presence: missing values sort last in either direction."""
    if value is None or value == "" or value == []:
        return (1, "")
    if isinstance(value, bool | int | float):
        return (0, float(value))
    return (0, str(value).casefold() if isinstance(value, str) else str(value))


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def run_query(items: Sequence[dict[str, Any]], query: ListQuery, spec: ListSpec) -> Page:
    """Filter, sort (stable, key by key), page and select fields."""
    chosen = [item for item in items if all(p(item) for p in query.predicates)]
    for name, descending in reversed(query.order_by):
        key = spec.sort_keys.get(name)

        def sort_key(item: dict[str, Any], name=name, key=key) -> tuple:
            value = item.get(name)
            return _sort_value(key(value) if key and value is not None else value)

        present = [i for i in chosen if _sort_value(i.get(name))[0] == 0]
        missing = [i for i in chosen if _sort_value(i.get(name))[0] == 1]
        present.sort(key=sort_key, reverse=descending)
        chosen = present + missing
    window = chosen[query.offset : query.offset + query.limit]
    if query.fields is not None:
        keep = {"id", *query.fields}
        window = [{k: v for k, v in item.items() if k in keep} for item in window]
    return Page(window, len(chosen), query.limit, query.offset)


# -- filter factories -----------------------------------------------------------


def any_of(name: str, *, many: bool = False) -> Callable[[str], Predicate]:
    """``name`` equals one of the comma-separated values (or, for a list field, contains one)."""

    def make(raw: str) -> Predicate:
        wanted = {v.strip() for v in raw.split(",") if v.strip()}
        if not wanted:
            raise ValueError("give at least one value")
        if many:
            return lambda item: bool(wanted.intersection(item.get(name) or ()))
        return lambda item: item.get(name) in wanted

    return make


def date_bound(name: str, *, before: bool) -> Callable[[str], Predicate]:
    def make(raw: str) -> Predicate:
        try:
            bound = dt.date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ValueError(f"expected a date YYYY-MM-DD, got {raw!r}") from None
        if before:
            return lambda item: bool(item.get(name)) and str(item[name]) < bound
        return lambda item: bool(item.get(name)) and str(item[name]) > bound

    return make


def text_search(*names: str) -> Callable[[str], Predicate]:
    def make(raw: str) -> Predicate:
        words = raw.casefold().split()
        if not words:
            raise ValueError("give some words to search for")

        def match(item: dict[str, Any]) -> bool:
            text = " ".join(str(item.get(n) or "") for n in names).casefold()
            return all(w in text for w in words)

        return match

    return make
