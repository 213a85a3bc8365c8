"""The REST API's query parameters: parsed strictly, every mistake a 400 naming the parameter.

(The list queries themselves, filters, sorting and pages, are ``api.query``, pure.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from quart import request

from sync_server.api.problems import Problem
from sync_server.api.query import ListSpec, QueryError, parse_list_query


def page_links(total: int, limit: int, offset: int) -> dict[str, str | None]:
    def link(new_offset: int) -> str:
        args = dict(request.args)
        args["offset"] = str(new_offset)
        args["limit"] = str(limit)
        return f"{request.path}?{urlencode(args)}"

    return {
        "next": link(offset + limit) if offset + limit < total else None,
        "previous": link(max(offset - limit, 0)) if offset > 0 else None,
    }


def list_args(spec: ListSpec) -> Any:
    each_once()
    try:
        return parse_list_query(request.args, spec)
    except QueryError as e:
        raise Problem(400, str(e), field=e.parameter) from None


def simple_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name}: expected an integer, got {raw!r}", field=name) from None
    if not low <= value <= high:
        raise Problem(400, f"{name}: must be from {low} to {high}", field=name)
    return value


def choice_list(name: str, choices: Sequence[str]) -> frozenset[str] | None:
    """A comma-separated list of ``choices`` (``?status=active,on_hold``); None if absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",")]
    wrong = [v for v in values if v not in choices]
    if wrong or not values:
        raise Problem(
            400,
            f"{name}: {', '.join(repr(v) for v in wrong)} is not one of {', '.join(choices)}",
            field=name,
        )
    return frozenset(values)


def only_args(*allowed: str) -> None:
    """Refuse a query parameter the route does not take, and one given more than once
    (``?status=a&status=b`` would otherwise mean ``status=a``)."""
    for key in request.args:
        if key not in allowed:
            raise Problem(
                400,
                f"{key}: unknown query parameter; allowed: {', '.join(allowed) or 'none'}",
                field=key,
            )
    each_once()


def each_once() -> None:
    """Every query parameter is read once: one given twice is refused, not half-read."""
    for key in request.args:
        times = len(request.args.getlist(key))
        if times > 1:
            raise Problem(
                400,
                f"{key}: given {times} times; give it once (a list is comma-separated)",
                field=key,
            )
