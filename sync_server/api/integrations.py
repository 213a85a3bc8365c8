"""A project's integrations in one place (issue 21, item 7), for people with manage_team.

    GET    /api/v1/projects/<id>/integrations/                    every integration: kind,
                                                                  provider, status, last event,
                                                                  last error
    POST   /api/v1/projects/<id>/integrations/<integration>/test/    a check that costs nothing
    POST   /api/v1/projects/<id>/integrations/<integration>/pause/   deliveries still answered
    POST   /api/v1/projects/<id>/integrations/<integration>/resume/  2xx, recorded as ignored
    DELETE /api/v1/projects/<id>/integrations/<integration>/         remove it (and its grant)

An integration is an inbound webhook endpoint (``kind: "webhook"``; created through
``POST .../webhooks/``, whose answer shows its secret once) or a connection to a cloud-file
or time-tracking provider (``kind: "connection"``; made through ``POST .../connections/``,
``sync_server.api.connectors``). A webhook endpoint's status: ``paused`` while paused, else
``error`` when its last delivery failed (``last_error``), else ``active``; its last event
is its newest delivery (time and a one-line summary). A connection's status is its own
(``active``, ``error`` after a failed call; ``paused`` while paused); its last event is its
last use. Testing a connection makes one cheap authenticated call (a time tracker: who the
token is; a file store: a search for "tandem"), recorded as its last use. A paused
connection makes no call at all (no file search or attachment, no time import or export,
on demand or scheduled, no token refresh; those answer 409 and the test says it is paused)
until it is resumed.

A paused endpoint still checks signatures and answers a signed delivery 202 (so the
provider does not retry or disable the hook), stores it, and marks it ``ignored``
("the endpoint is paused") without acting on it.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from quart import Blueprint, Response, request
from quart_schema import document_response

from integrations import cloud_files, time_tracking
from integrations.connections import Connection, ConnectionError_, describe_error
from integrations.secrets import SecretUnreadable
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
    from sync_server.extensions.connectors import ConnectorsExtension
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
    category: str | None = None  # connections: "files" or "time"
    account: str | None = None  # connections: the provider account it acts as


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


def connection_integration(connection: Connection, title: str, category: str) -> dict[str, Any]:
    last_event = None
    if connection.last_used is not None:
        outcome = "failed" if connection.last_error else "done"
        summary = f"last call to {title}: {'failed' if connection.last_error else 'ok'}"
        last_event = {"at": connection.last_used, "summary": summary, "status": outcome}
    return {
        "id": connection.id,
        "kind": "connection",
        "provider": connection.provider,
        "name": f"{title} connection" + (f" ({connection.account})" if connection.account else ""),
        "status": "paused" if connection.paused else connection.status,
        "last_event": last_event,
        "last_error": connection.last_error,
        "created_by": connection.created_by,
        "created_at": connection.created,
        "paused_at": connection.paused_at,
        "category": category,
        "account": connection.account,
    }


def signature_checks(
    endpoint: store.Endpoint, secret: str, grant_held: bool
) -> list[dict[str, Any]]:
    """Whether the endpoint can accept its provider's deliveries: its secret is set and
    long enough, the intake's own check accepts a body signed with it and refuses one
    signed with another secret, and its identity still holds its grant on the project."""
    header = SIGNATURE_HEADERS[endpoint.provider]
    probe = b'{"zen": "tandem integration test"}'

    def signed(secret: str) -> dict[str, str]:
        value = secret if endpoint.provider == "gitlab" else sign_github(secret, probe)
        return {header: value}

    long_enough = len(secret) >= 32
    accepts = verify(endpoint.provider, secret, signed(secret), probe)
    refuses = not verify(endpoint.provider, secret, signed(secrets.token_urlsafe(32)), probe)
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


def integrations_api(server: TandemContext, connectors: ConnectorsExtension | None) -> Blueprint:
    bp = Blueprint("api_integrations", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    async def project_connections(project: str) -> list[dict[str, Any]]:
        if connectors is None or connectors.connections is None:
            return []
        service = connectors.connections
        out = []
        for c in await service.all(project):
            spec = service.provider(c.provider)
            out.append(connection_integration(c, spec.title, spec.category))
        return out

    async def connection_of(project: str, integration_id: str) -> Connection | None:
        if connectors is None or connectors.connections is None:
            return None
        try:
            return await connectors.connections.get(project, integration_id)
        except ConnectionError_:
            return None

    async def test_connection(connection: Connection) -> dict[str, Any]:
        assert connectors is not None and connectors.connections is not None
        service = connectors.connections
        spec = service.provider(connection.provider)
        if connection.paused:  # tested without a call: nothing goes out while paused
            detail = f"{spec.title}: the connection is paused (no call is made); resume it first"
            check = {"name": "call", "ok": False, "detail": detail}
            return {"ok": False, "checks": [check], "last_delivery": None}
        if spec.category == "time":
            what = "who the token is"

            def probe(client: Any) -> str:
                return time_tracking.whoami(client, spec)[0]
        else:
            what = "a search for “tandem”"

            def probe(client: Any) -> str:
                return f"{len(cloud_files.search(client, spec, 'tandem'))} file(s) found"

        try:
            answer = await service.call(connection, probe)
            check = {
                "name": "call",
                "ok": True,
                "detail": f"{spec.title} answered {what}: {answer}",
            }
        except Exception as e:  # the provider's failure, said without secrets
            detail = describe_error(e)
            with contextlib.suppress(Exception):
                await service.update(connection, error=detail, used=True)
            check = {"name": "call", "ok": False, "detail": f"{spec.title}: {detail}"}
        return {"ok": check["ok"], "checks": [check], "last_delivery": None}

    def origin() -> str:
        return request.host_url.rstrip("/")

    def missing(project: str, integration_id: str) -> Problem:
        return Problem(404, f"no integration {integration_id!r} in project {project!r}")

    def endpoint_or_none(project: str, integration_id: str) -> store.Endpoint | None:
        endpoint = store.get_endpoint(ctx.conn, integration_id)
        return endpoint if endpoint is not None and endpoint.project == project else None

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
        items += await project_connections(project)
        return json_response({"items": items})

    @bp.post("/projects/<project>/integrations/<integration_id>/test/")
    @document_response(TestOut)
    @_problems(403, 404)
    async def test_integration(project: str, integration_id: str) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, Permission.MANAGE_TEAM)
        endpoint = endpoint_or_none(project, integration_id)
        if endpoint is None:
            connection = await connection_of(project, integration_id)
            if connection is None:
                raise missing(project, integration_id)
            return json_response(await test_connection(connection))
        grant = access.get_grant(ctx.conn, endpoint.identity, project)
        try:
            secret = await ctx.write(store.endpoint_secret, server.secret_keys, endpoint)
        except SecretUnreadable:
            secret = ""  # reported by the checks: the intake cannot verify anything
        checks = signature_checks(endpoint, secret, grant is not None)
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
        endpoint = endpoint_or_none(project, integration_id)
        if endpoint is None:
            connection = await connection_of(project, integration_id)
            if connection is None or connectors is None or connectors.connections is None:
                raise missing(project, integration_id)
            service = connectors.connections
            try:
                after = await service.set_paused(project, connection.id, paused)
            except ConnectionError_ as e:  # deleted meanwhile
                raise missing(project, integration_id) from e
            spec = service.provider(after.provider)
            return json_response(connection_integration(after, spec.title, spec.category))
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
        endpoint = endpoint_or_none(project, integration_id)
        if endpoint is None:
            connection = await connection_of(project, integration_id)
            if connection is None or connectors is None or connectors.connections is None:
                raise missing(project, integration_id)
            await connectors.connections.delete(project, connection.id)  # revoked where it can be
            return Response(status=204)
        try:
            await ctx.write(store.delete_endpoint, endpoint.id, user.name)
        except access.GrantChangeRefused as e:
            raise Problem(403, e.refusal.reason) from e
        ctx.resolver.forget(endpoint.identity, project)
        return Response(status=204)

    return bp
