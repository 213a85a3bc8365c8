"""The REST API's cross-cutting parts, from well-kept libraries: OpenAPI (quart-schema),
rate limits (quart-rate-limiter), CORS (quart-cors), and RFC 9457 errors for all of them.

Versioning policy: everything under /api/v1 keeps its meaning. Fields may be
added to responses; nothing is removed or renamed. An incompatible change
ships as /api/v2 beside v1, and v1 stays served.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from quart import Blueprint, Quart, request
from quart_cors import cors
from quart_rate_limiter import RateLimit, RateLimiter, RateLimitExceeded, limit_blueprint
from quart_schema import HttpSecurityScheme, Info, OpenAPIProvider, QuartSchema

from sync_server.api.common import bearer
from sync_server.api.problems import Problem, problem_response, storage_problem
from sync_server.core.room import StorageFailed
from sync_server.shell.settings import Settings
from sync_server.storage.sqlite_store import CorruptDocument, StorageError

log = logging.getLogger("tandem.api")

API_DESCRIPTION = """\
Tandem's REST API: JSON snapshots of the same live documents the WebSocket
clients edit, and writes that go through the same permission gate.

Authenticate with `Authorization: Bearer <token>` (an API token from
`tandem token create`, or a session token from `POST /api/v1/login`).
Errors are RFC 9457 problem details. Lists take `limit`/`offset` and return
`total` and `links`. Reads carry an `ETag`; send it back in `If-None-Match`
to get `304 Not Modified`. Requests are limited per token (default 100 per
minute): see the `RateLimit-*` headers, and `Retry-After` on 429.

Versioning: /api/v1 keeps its meaning; fields may be added, never removed or
renamed. Incompatible changes come as /api/v2 beside it.
"""


async def token_or_address() -> str:
    """The rate-limit key: the token's hash (never the token itself), else the client address.

    A login is keyed by address whatever it sends: a made-up token must not buy a fresh
    budget there (failed logins have their own limits too: login_guard)."""
    if request.endpoint == "access_api.login":
        return "a:" + (request.remote_addr or "unknown")
    token = bearer(request.headers.get("Authorization"))
    if token:
        return "t:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    return "a:" + (request.remote_addr or "unknown")


class PerTokenRateLimiter(RateLimiter):
    """One budget per token across every API route.

    quart-rate-limiter keys limits per endpoint; the product promises N
    requests per minute per token in all, so the key leaves the endpoint out.
    """

    async def _create_key(self, endpoint: str, rate_limit: RateLimit) -> str:  # type: ignore[override]
        return await super()._create_key("api", rate_limit)


PROBLEM_SCHEMA = {
    "type": "object",
    "title": "ProblemDetails",
    "required": ["title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


class TandemOpenAPI(OpenAPIProvider):
    """quart-schema's document, told the truth about what is not JSON: problem details are
    application/problem+json, 204s have no body, exports are CSV or JSON, every API route
    can answer 429, and GETs with an ETag can answer 304."""

    def schema(self) -> dict:
        schema = super().schema()
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation.get("responses", {})
                for response in responses.values():
                    content = response.get("content", {})
                    json_body = content.get("application/json", {}).get("schema", {})
                    model = json_body.get("title") or json_body.get("$ref", "").split("/")[-1]
                    if model == "ProblemDetails":
                        response["content"] = {"application/problem+json": {"schema": json_body}}
                    elif model == "NoContent":
                        response.pop("content", None)
                        response["description"] = "done; no body"
                    elif model == "TasksExport":
                        content["text/csv"] = {"schema": {"type": "string"}}
                if path.startswith("/api/v1"):
                    responses.setdefault(
                        429,
                        {
                            "description": "too many requests; see Retry-After",
                            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
                        },
                    )
                    if method == "get" and 200 in responses:
                        responses.setdefault(304, {"description": "not modified (ETag)"})
        return schema


def configure_web_api(app: Quart, blueprints: Sequence[Blueprint], settings: Settings) -> None:
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    limit = RateLimit(settings.api_rate_limit, timedelta(minutes=1), token_or_address)
    for bp in blueprints:
        if settings.api_rate_limit > 0:
            limit_blueprint(bp, limits=[limit])
        if origins:
            cors(
                bp,
                allow_origin=origins,
                allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                expose_headers=[
                    "ETag",
                    "Location",
                    "Retry-After",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                ],
                max_age=600,
            )
        app.register_blueprint(bp)
    PerTokenRateLimiter(app)
    QuartSchema(
        app,
        info=Info(title="Tandem API", version="1.0", description=API_DESCRIPTION),
        security_schemes={"bearer": HttpSecurityScheme(scheme="bearer")},
        security=[{"bearer": []}],
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,  # /docs is served from this server (security_headers)
        openapi_provider_class=TandemOpenAPI,
    )

    @app.errorhandler(Problem)
    async def handle_problem(e: Problem):
        response = problem_response(e.status, e.detail, **e.extra)
        response.headers.update(e.headers)
        return response

    @app.errorhandler(sqlite3.OperationalError)
    async def handle_database_error(e: sqlite3.OperationalError):
        log.error("database error on %s %s: %s", request.method, request.path, e)
        return storage_problem(e)

    @app.errorhandler(StorageError)
    async def handle_unreadable_document(e: StorageError):
        log.error("%s %s: %s", request.method, request.path, e)
        extra: dict = {}
        if isinstance(e, CorruptDocument):
            extra = {"document": e.doc_name, "seq": e.seq}
        return problem_response(500, f"{e}; an administrator must run `tandem doctor`", **extra)

    @app.errorhandler(StorageFailed)
    async def handle_storage_failed(e: StorageFailed):
        log.error("storage failed on %s %s: %s", request.method, request.path, e)
        return storage_problem(e.__cause__)

    @app.errorhandler(RateLimitExceeded)
    async def handle_rate_limit(e: RateLimitExceeded):
        response = problem_response(
            429,
            f"more than {settings.api_rate_limit} requests a minute with this token;"
            f" retry in {e.retry_after} s",
        )
        response.headers["Retry-After"] = str(e.retry_after)
        return response

    @app.errorhandler(500)
    async def handle_error(e):
        log.error("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "internal error; it has been logged")
