"""A project's integrations in one place (issue 21, item 7), for people with manage_team.

    GET    /api/v1/projects/<id>/integrations/                    every integration: kind,
                                                                  provider, status, last event,
                                                                  last error
    POST   /api/v1/projects/<id>/integrations/<integration>/test/    a check that costs nothing
    POST   /api/v1/projects/<id>/integrations/<integration>/pause/   deliveries still answered
    POST   /api/v1/projects/<id>/integrations/<integration>/resume/  2xx, recorded as ignored
    DELETE /api/v1/projects/<id>/integrations/<integration>/         remove it (and its grant)

An integration here is an inbound webhook endpoint (``kind: "webhook"``; created
through ``POST .../webhooks/``, whose answer shows its secret once). Its status:
``paused`` while paused, else ``error`` when its last delivery failed (``last_error``),
else ``active``. Its last event is its newest delivery (time and a one-line summary).

A paused endpoint still checks signatures and answers a signed delivery 202 (so the
provider does not retry or disable the hook), stores it, and marks it ``ignored``
("the endpoint is paused") without acting on it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from quart import Blueprint, Response, request
from quart_schema import document_response

from integrations.vcs import verify
from integrations.vcs.signatures import SIGNATURE_HEADERS, sign_github
from rules import Permission
from sync_server.api.common import ApiContext, json_response
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.problems import Problem
from sync_server.extensions import webhook_store as store
from sync_server.identity import access

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

PROVIDER_NAMES = {"github": "GitHub", "gitlab": "GitLab", "bitbucket": "Bitbucket"}


class LastEvent(BaseModel):
    at: float
    summary: str
    status: str


class IntegrationOut(BaseModel):
    id: str
    kind: str  # "webhook"
    provider: str
    name: str
    status: str  # active | paused | error
    last_event: LastEvent | None
    last_error: str | None
    created_by: str | None
    created_at: float
    paused_at: float | None
    path: str | None = None  # webhook endpoints: the intake path, and its absolute URL
    url: str | None = None
    signature_header: str | None = None


class IntegrationList(BaseModel):
    items: list[IntegrationOut]


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class TestOut(BaseModel):
    ok: bool
    checks: list[Check]
    last_delivery: dict[str, Any] | None


def _summary(delivery: dict[str, Any]) -> str:
    event = str(delivery.get("event") or "event")
    status = str(delivery.get("status") or "")
    detail = str(delivery.get("detail") or "")
    text = f"{event}: {status}" + (f" ({detail})" if detail else "")
    return text[:300]


def webhook_integration(
    endpoint: store.Endpoint, last: dict[str, Any] | None, origin: str
) -> dict[str, Any]:
    if endpoint.paused:
        status = "paused"
    elif endpoint.last_error:
        status = "error"
    else:
        status = "active"
    last_event = None
    if last is not None:
        at = last.get("processed_at") or last.get("received_at") or 0.0
        last_event = {"at": at, "summary": _summary(last), "status": last.get("status")}
    return {
        "id": endpoint.id,
        "kind": "webhook",
        "provider": endpoint.provider,
        "name": f"{PROVIDER_NAMES.get(endpoint.provider, endpoint.provider)} webhook",
        "status": status,
        "last_event": last_event,
        "last_error": endpoint.last_error,
        "created_by": endpoint.created_by,
        "created_at": endpoint.created_at,
        "paused_at": endpoint.paused_at,
        "path": endpoint.path,
        "url": origin + endpoint.path,
        "signature_header": SIGNATURE_HEADERS[endpoint.provider],
    }


def signature_checks(endpoint: store.Endpoint, grant_held: bool) -> list[dict[str, Any]]:
    """Whether the endpoint can accept its provider's deliveries: its secret is set and
    long enough, the intake's own check accepts a body signed with it and refuses one
    signed with another secret, and its identity still holds its grant on the project."""
    header = SIGNATURE_HEADERS[endpoint.provider]
    probe = b'{"zen": "tandem integration test"}'

    def signed(secret: str) -> dict[str, str]:
        value = secret if endpoint.provider == "gitlab" else sign_github(secret, probe)
        return {header: value}

    long_enough = len(endpoint.secret) >= 32
    accepts = verify(endpoint.provider, endpoint.secret, signed(endpoint.secret), probe)
    refuses = not verify(
        endpoint.provider, endpoint.secret, signed(secrets.token_urlsafe(32)), probe
    )
    return [
        {
            "name": "secret",
            "ok": long_enough,
            "detail": "a secret of 32+ characters is set" if long_enough else "the secret is short",
        },
        {
            "name": "signature",
            "ok": accepts and refuses,
            "detail": f"{header} made with the secret is accepted, one made with another refused"
            if accepts and refuses
            else f"{header}: the intake does not check it as expected",
        },
        {
            "name": "grant",
            "ok": grant_held,
            "detail": f"{endpoint.identity} may edit this project's tasks"
            if grant_held
            else f"{endpoint.identity} holds no grant on this project: it cannot link or move tasks",
        },
    ]


def integrations_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_integrations", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    def origin() -> str:
        return request.host_url.rstrip("/")

    def integration_of(project: str, integration_id: str) -> store.Endpoint:
        endpoint = store.get_endpoint(ctx.conn, integration_id)
        if endpoint is None or endpoint.project != project:
            raise Problem(404, f"no integration {integration_id!r} in project {project!r}")
        return endpoint

    def shown(endpoint: store.Endpoint) -> dict[str, Any]:
        last = store.last_deliveries(ctx.conn, [endpoint.id]).get(endpoint.id)
        return webhook_integration(endpoint, last, origin())

    @bp.get("/projects/<project>/integrations/")
    @document_response(IntegrationList)
    @_problems(403, 404)
    async def list_integrations(project: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoints = store.list_endpoints(ctx.conn, project)
        last = store.last_deliveries(ctx.conn, [e.id for e in endpoints])
        items = [webhook_integration(e, last.get(e.id), origin()) for e in endpoints]
        return json_response({"items": items})

    @bp.post("/projects/<project>/integrations/<integration_id>/test/")
    @document_response(TestOut)
    @_problems(403, 404)
    async def test_integration(project: str, integration_id: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = integration_of(project, integration_id)
        grant = access.get_grant(ctx.conn, endpoint.identity, project)
        checks = signature_checks(endpoint, grant is not None)
        recent = store.recent_deliveries(ctx.conn, endpoint.id, limit=1)
        last = recent[0] if recent else None
        if last is None:
            checks.append({"name": "deliveries", "ok": True, "detail": "no delivery received yet"})
        else:
            failed = last.get("status") == "failed"
            checks.append(
                {
                    "name": "deliveries",
                    "ok": not failed,
                    "detail": f"last delivery (signed with the secret): {_summary(last)}",
                }
            )
        ok = all(c["ok"] for c in checks)
        return json_response({"ok": ok, "checks": checks, "last_delivery": last})

    async def set_paused(project: str, integration_id: str, paused: bool) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = integration_of(project, integration_id)
        changed = await ctx.write(store.set_paused, endpoint.id, paused)
        if changed is None:
            raise Problem(404, f"no integration {integration_id!r} in project {project!r}")
        return json_response(shown(changed))

    @bp.post("/projects/<project>/integrations/<integration_id>/pause/")
    @document_response(IntegrationOut)
    @_problems(403, 404)
    async def pause_integration(project: str, integration_id: str) -> Response:
        return await set_paused(project, integration_id, True)

    @bp.post("/projects/<project>/integrations/<integration_id>/resume/")
    @document_response(IntegrationOut)
    @_problems(403, 404)
    async def resume_integration(project: str, integration_id: str) -> Response:
        return await set_paused(project, integration_id, False)

    @bp.delete("/projects/<project>/integrations/<integration_id>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_integration(project: str, integration_id: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = integration_of(project, integration_id)
        try:
            await ctx.write(store.delete_endpoint, endpoint.id, user.name)
        except access.GrantChangeRefused as e:
            raise Problem(403, e.refusal.reason) from e
        ctx.resolver.forget(endpoint.identity, project)
        return Response(status=204)

    return bp
