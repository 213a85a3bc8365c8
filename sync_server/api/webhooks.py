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
afterwards (``sync_server.extensions.vcs``). The intake is not under the API's
per-address rate limit: a provider sends bursts from few addresses, and an
unsigned request costs one HMAC.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response, hide

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


def webhook_intake(server: TandemContext, vcs: VcsWebhooks) -> Blueprint:
    bp = Blueprint("webhook_intake", __name__, url_prefix="/api/v1/webhooks")

    @bp.post("/<provider>/<endpoint_id>/")
    @hide
    async def receive(provider: str, endpoint_id: str) -> Response:
        if provider not in PROVIDERS:
            raise Problem(404, f"no webhook provider {provider!r}; known: {', '.join(PROVIDERS)}")
        endpoint = store.get_endpoint(server.accounts, endpoint_id)
        if endpoint is None or endpoint.provider != provider:
            raise Problem(404, f"no {provider} webhook endpoint {endpoint_id!r}")
        body = await request.get_data(cache=False)
        assert isinstance(body, bytes)
        headers = dict(request.headers)
        if not verify(provider, endpoint.secret, headers, body):
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
            endpoint = await ctx.write(
                store.create_endpoint, data.provider, project, user.name, user.name
            )
        except access.GrantChangeRefused as e:
            status = 409 if e.refusal.kind is RefusalKind.LAST_OWNER else 403
            raise Problem(status, e.refusal.reason) from e
        ctx.resolver.forget(endpoint.identity, project)
        body: dict[str, Any] = {**endpoint.public(), "secret": endpoint.secret}
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
