"""Inbound webhooks: the intake route providers post to, and their management (manage_team).

    POST   /api/v1/webhooks/{github,gitlab,bitbucket}/<endpoint>/    a provider's delivery
    GET    /api/v1/projects/<id>/webhooks/                          the project's endpoints
    POST   /api/v1/projects/<id>/webhooks/  {"provider": "github"}  a new endpoint: its path
                                                                    and secret (shown once)
    DELETE /api/v1/projects/<id>/webhooks/<endpoint>/               remove it (and its grant)
    GET    /api/v1/projects/<id>/webhooks/<endpoint>/deliveries/    its recent deliveries

The intake answers 401 (problem details, nothing stored) without a valid
signature; a valid one is stored and answered 202 (200 for a delivery id seen
before, which changes nothing); the ``vcs-webhooks`` extension processes it
afterwards (``sync_server.extensions.vcs``). Bodies may be up to
``max_webhook_body_bytes`` (25 MB, GitHub's limit; every other route: 1 MB), bounded
while they stream in: above it, 413 problem details, nothing stored, and the rest of the
upload is not kept. The intake is not under the API's
per-address rate limit: a provider sends bursts from few addresses, and an
unsigned request costs one HMAC.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict
from quart import Blueprint, Request, Response, request
from quart_schema import document_request, document_response, hide
from werkzeug.exceptions import RequestEntityTooLarge

from integrations.secrets import SecretUnreadable
from integrations.vcs import PROVIDERS, delivery_id, verify
from integrations.vcs.signatures import SIGNATURE_HEADERS, event_name
from rules import Permission, RefusalKind
from sync_server.api.common import ApiContext, json_response, read_body
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.problems import Problem, storage_problem
from sync_server.extensions import webhook_store as store
from sync_server.identity import access

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext
    from sync_server.extensions.vcs import VcsWebhooks


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["github", "gitlab", "bitbucket"]


class WebhookOut(BaseModel):
    id: str
    provider: str
    project: str
    path: str
    identity: str
    created_by: str | None
    created_at: float
    last_delivery_at: float | None
    last_error: str | None
    paused_at: float | None = None
    secret: str | None = None  # only in the answer that created it


class WebhookList(BaseModel):
    items: list[WebhookOut]


INTAKE_PREFIX = "/api/v1/webhooks/"
SMALL_BODY = 64 * 1024  # a signature over a larger body is checked on a worker thread


def intake_request_class(limit: int) -> type[Request]:
    """Quart's request with a larger body limit for the webhook intake alone: GitHub sends
    deliveries of up to 25 MB, every other route keeps ``MAX_CONTENT_LENGTH`` (1 MB).
    The limit holds while the body streams in (Quart stops keeping bytes past it), and a
    Content-Length above it is refused before any byte is read."""

    class TandemRequest(Request):
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any):
            if method == "POST" and path.startswith(INTAKE_PREFIX):
                kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, *args, **kwargs)

    return TandemRequest


def webhook_intake(server: TandemContext, vcs: VcsWebhooks) -> Blueprint:
    bp = Blueprint("webhook_intake", __name__, url_prefix="/api/v1/webhooks")
    limit = server.settings.max_webhook_body_bytes

    def too_large() -> Problem:
        return Problem(
            413,
            f"a webhook delivery may be at most {limit} bytes ({limit / 2**20:g} MiB, GitHub's"
            " limit); nothing was stored",
        )

    @bp.post("/<provider>/<endpoint_id>/")
    @hide
    async def receive(provider: str, endpoint_id: str) -> Response:
        if provider not in PROVIDERS:
            raise Problem(404, f"no webhook provider {provider!r}; known: {', '.join(PROVIDERS)}")
        assert vcs.db is not None
        try:  # the endpoint and its secret (decrypted) on the extension's reader thread
            found = await vcs.db.run(
                store.endpoint_with_secret, vcs.db.conn, server.secret_keys, endpoint_id
            )
        except SecretUnreadable as e:
            raise Problem(
                503, "the endpoint's secret cannot be decrypted with the server's key"
            ) from e
        if found is None or found[0].provider != provider:
            raise Problem(404, f"no {provider} webhook endpoint {endpoint_id!r}")
        endpoint, secret = found
        try:
            body = await request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise too_large() from None
        assert isinstance(body, bytes)
        headers = dict(request.headers)
        if len(body) <= SMALL_BODY:
            valid = verify(provider, secret, headers, body)
        else:  # hashing megabytes would hold up every socket of the server
            valid = await anyio.to_thread.run_sync(verify, provider, secret, headers, body)
        if not valid:
            header = SIGNATURE_HEADERS[provider]
            raise Problem(
                401,
                f"{header}: missing, or not made with this endpoint's secret; nothing was stored",
                field=header,
            )
        delivery = delivery_id(provider, headers, body)
        event = event_name(provider, headers)
        try:
            row = await vcs.record(endpoint.id, delivery, event, body)
        except sqlite3.Error as e:  # not stored: the provider retries later
            return storage_problem(e)
        if row is None:
            return json_response({"status": "duplicate", "delivery": delivery}, 200)
        if endpoint.paused:  # answered 2xx so the provider does not retry; not acted on
            body_out = {"status": "ignored", "delivery": delivery, "detail": "endpoint paused"}
            return json_response(body_out, 202)
        return json_response({"status": "accepted", "delivery": delivery}, 202)

    return bp


def webhooks_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_webhooks", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    def endpoint_of(project: str, endpoint_id: str) -> store.Endpoint:
        endpoint = store.get_endpoint(ctx.conn, endpoint_id)
        if endpoint is None or endpoint.project != project:
            raise Problem(404, f"no webhook endpoint {endpoint_id!r} in project {project!r}")
        return endpoint

    @bp.get("/projects/<project>/webhooks/")
    @document_response(WebhookList)
    @_problems(403, 404)
    async def list_webhooks(project: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        items = [e.public() for e in store.list_endpoints(ctx.conn, project)]
        return json_response({"items": items})

    @bp.post("/projects/<project>/webhooks/")
    @document_request(WebhookCreate)
    @document_response(WebhookOut, 201)
    @_problems(400, 403, 404, 415, 422)
    async def create_webhook(project: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        data = await read_body(WebhookCreate)
        try:
            endpoint, secret = await ctx.write(
                store.create_endpoint,
                server.secret_keys,
                data.provider,
                project,
                user.name,
                user.name,
            )
        except access.GrantChangeRefused as e:
            status = 409 if e.refusal.kind is RefusalKind.LAST_OWNER else 403
            raise Problem(status, e.refusal.reason) from e
        ctx.resolver.forget(endpoint.identity, project)
        body: dict[str, Any] = {**endpoint.public(), "secret": secret}
        return json_response(body, 201, headers={"Location": endpoint.path})

    @bp.delete("/projects/<project>/webhooks/<endpoint_id>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_webhook(project: str, endpoint_id: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = endpoint_of(project, endpoint_id)
        try:
            await ctx.write(store.delete_endpoint, endpoint.id, user.name)
        except access.GrantChangeRefused as e:
            raise Problem(403, e.refusal.reason) from e
        ctx.resolver.forget(endpoint.identity, project)
        return Response(status=204)

    @bp.get("/projects/<project>/webhooks/<endpoint_id>/deliveries/")
    @_problems(403, 404)
    async def webhook_deliveries(project: str, endpoint_id: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = endpoint_of(project, endpoint_id)
        return json_response({"items": store.recent_deliveries(ctx.conn, endpoint.id)})

    return bp
