"""RFC 9457 problem details: every API error is one of these."""

from __future__ import annotations

import sqlite3
from typing import Any

from quart import Response, json

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
    507: "Insufficient storage",
}


class Problem(Exception):
    def __init__(
        self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def storage_problem(error: BaseException | None) -> Response:
    """A write that could not be stored: 507 for a full disk, else 503; both say when to retry."""
    from sync_server.storage.database import is_full, storage_trouble

    _temporary, detail, retry = storage_trouble(error)
    full = isinstance(error, sqlite3.Error) and is_full(error)
    if full or not _temporary:
        detail += "; nothing was changed"
    response = problem_response(507 if full else 503, f"{detail}; retry in {retry} s")
    response.headers["Retry-After"] = str(retry)
    return response


def problem_response(status: int, detail: str, **extra: Any) -> Response:
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="tandem"'} if status == 401 else {}
    return Response(
        json.dumps(body), status=status, content_type="application/problem+json", headers=headers
    )
