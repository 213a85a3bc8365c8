"""REST: login, my permissions, roles, grants and the audit log (under /api/v1)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, jsonify, request
from quart_schema import document_querystring, document_request, document_response

from doc_model import InvalidDocName, parse_doc_name
from rules import (
    BUILTIN_ROLES,
    Grant,
    Permission,
    RefusalKind,
    Role,
    UnknownPermission,
    effective_permissions,
    parse_permissions,
)
from sync_server.api.common import caller as authenticated_caller
from sync_server.api.common import read_body
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.problems import Problem
from sync_server.identity import access, accounts
from sync_server.identity.login_guard import LoginGuard, LoginRefused
from sync_server.storage.database import SQLiteWorker

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

log = logging.getLogger("tandem.api")
T = TypeVar("T")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    description: str = Field(default="", max_length=500)
    permissions: list[str] = Field(max_length=len(Permission))
    project: str = Field(min_length=1, max_length=64)


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] | None = Field(default=None, max_length=len(Permission))


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1, max_length=40)
    added: list[str] = Field(default_factory=list, max_length=len(Permission))
    removed: list[str] = Field(default_factory=list, max_length=len(Permission))


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="", max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=accounts.MAX_TOKEN_DAYS)


class TokenOut(BaseModel):
    id: int
    label: str
    created_at: float
    last_used_at: float | None
    expires_at: float | None
    revoked_at: float | None


class NewToken(TokenOut):
    token: str


class TokenList(BaseModel):
    tokens: list[TokenOut]


class LoginOut(BaseModel):
    token: str
    token_type: str
    expires_at: float


class MyPermissions(BaseModel):
    user: str
    project: str
    role: str | None
    permissions: list[str]


class MyPermissionsArgs(BaseModel):
    project: str


class RoleOut(BaseModel):
    name: str
    description: str
    permissions: list[str]
    project: str | None
    builtin: bool


class RoleList(BaseModel):
    roles: list[RoleOut]


class GrantOut(BaseModel):
    user: str
    role: str
    added: list[str]
    removed: list[str]


class GrantList(BaseModel):
    grants: list[GrantOut]


class GrantSet(BaseModel):
    user: str
    role: str
    permissions: list[str]


class AuditArgs(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=1000)


class AuditList(BaseModel):
    entries: list[dict[str, Any]]


def _role_json(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(p.value for p in role.permissions),
        "project": role.project,
        "builtin": role.builtin,
    }


def access_api(ctx: TandemContext) -> Blueprint:
    bp = Blueprint("access_api", __name__, url_prefix="/api/v1")

    def conn() -> sqlite3.Connection:
        return ctx.accounts

    async def access_changed() -> None:
        """Close the sockets this change took access from before answering (if that fails,
        the change stands and the watch's next poll closes them)."""
        try:
            await ctx.watch.check_now()
        except Exception:
            log.exception("checking open sockets after an access change failed")

    def caller() -> accounts.User:
        return authenticated_caller(conn())

    async def write(fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the writer's connection and thread, never the event loop."""
        writer: SQLiteWorker = ctx.writer
        return await writer.run(fn, writer.conn, *args)

    def project_id(value: str) -> str:
        try:
            return parse_doc_name(f"p/{value}").project_id
        except InvalidDocName as e:
            raise Problem(404, str(e)) from e

    def perms_of(user: str, project: str) -> frozenset[Permission]:
        return effective_permissions(
            access.get_grant(conn(), user, project), access.custom_roles(conn(), project)
        )

    def require(user: accounts.User, project: str, permission: Permission) -> frozenset[Permission]:
        perms = perms_of(user.name, project)
        if permission not in perms:
            raise Problem(
                403,
                f"{user.name} needs {permission.value} on project {project!r}",
                permission=permission.value,
            )
        return perms

    def permissions_or_422(codes: list[str]) -> frozenset[Permission]:
        try:
            return parse_permissions(codes)
        except UnknownPermission as e:
            raise Problem(422, str(e), field="permissions") from e

    @bp.post("/login")
    @document_request(LoginBody)
    @document_response(LoginOut)
    @_problems(400, 401, 413, 415, 422)
    async def login():
        """A session token for a correct password. Failed logins are limited per account
        and per address (see login_guard): past either limit, 429 with Retry-After."""
        data = await read_body(LoginBody)
        guard: LoginGuard = ctx.login_guard
        address = request.remote_addr or "unknown"
        # the limits' check, Argon2 and the failure count, all on the writer's thread
        result = await write(guard.attempt, data.username, data.password, address)
        if isinstance(result, LoginRefused):
            raise Problem(
                429,
                result.detail(guard.limits[result.scope], guard.window),
                headers={"Retry-After": str(result.retry_after)},
            )
        if result is None:
            raise Problem(401, "wrong user name or password")
        token, expires = result
        return jsonify(token=token, token_type="Bearer", expires_at=expires)

    @bp.post("/logout")
    @document_response(NoContent, 204)
    @_problems(400)
    async def logout():
        caller()
        token = request.headers.get("Authorization", "")[7:].strip()
        if not token.startswith(accounts.SESSION_PREFIX):
            raise Problem(
                400,
                "only session tokens log out; revoke an API token with DELETE /api/v1/me/tokens/ID",
            )
        await write(accounts.logout, token)
        await access_changed()
        return "", 204

    def token_json(t: accounts.TokenInfo) -> dict[str, Any]:
        return {
            "id": t.id,
            "label": t.label,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "expires_at": t.expires_at,
            "revoked_at": t.revoked_at,
        }

    @bp.post("/me/tokens")
    @document_request(TokenBody)
    @document_response(NewToken, 201)
    @_problems(400, 413, 415, 422)
    async def create_token():
        """A new API token for you (shown once), expiring after ``expires_in_days`` if given;
        revoke it with `DELETE /api/v1/me/tokens/ID` or `tandem token revoke ID`."""
        user = caller()
        data = await read_body(TokenBody)
        token, info = await write(
            accounts.create_token_info, user.name, data.label, data.expires_in_days
        )
        return jsonify({**token_json(info), "token": token}), 201

    @bp.get("/me/tokens")
    @document_response(TokenList)
    @_problems()
    async def list_tokens():
        """Your API tokens with their last use, expiry and revocation (never the token)."""
        user = caller()
        return jsonify(tokens=[token_json(t) for t in accounts.list_tokens(conn(), user.name)])

    @bp.delete("/me/tokens/<token_id>")
    @document_response(NoContent, 204)
    @_problems(404)
    async def revoke_token(token_id: str):
        """Revoke one of your API tokens (the one you are using too, if you name it). Sockets
        opened with it are closed (4401) before this answers. An id that is not one of your
        tokens is 404, whoever's it is; a token revoked already is 204 again."""
        user = caller()
        digits = token_id.isascii() and token_id.isdigit() and len(token_id) <= 19
        number = int(token_id) if digits else 0
        revoked = await write(accounts.revoke_own_token, user.name, number) if number else None
        if revoked is None:
            raise Problem(404, f"you have no API token with id {token_id[:40]!r}")
        if revoked:
            await access_changed()
        return "", 204

    @bp.get("/me/permissions")
    @document_querystring(MyPermissionsArgs)
    @document_response(MyPermissions)
    @_problems(404, 422)
    async def my_permissions():
        user = caller()
        project = request.args.get("project")
        if not project:
            raise Problem(422, "query parameter 'project' is required", field="project")
        project = project_id(project)
        grant = access.get_grant(conn(), user.name, project)
        perms = perms_of(user.name, project)
        return jsonify(
            user=user.name,
            project=project,
            role=grant.role if grant else None,
            permissions=sorted(p.value for p in perms),
        )

    @bp.get("/projects/<project>/roles")
    @document_response(RoleList)
    @_problems(403, 404)
    async def list_roles(project: str):
        user = caller()
        project = project_id(project)
        require(user, project, Permission.VIEW_PROJECT)
        roles = list(BUILTIN_ROLES.values()) + access.custom_roles(conn(), project)
        return jsonify(roles=[_role_json(r) for r in roles])

    @bp.post("/projects/<project>/roles")
    @document_request(RoleBody)
    @document_response(RoleOut, 201)
    @_problems(400, 403, 404, 409, 413, 415, 422)
    async def create_role(project: str):
        user = caller()
        project = project_id(project)
        data = await read_body(RoleBody)
        if data.project != project:
            raise Problem(422, "body.project must match the URL's project", field="project")
        mine = require(user, project, Permission.MANAGE_TEAM)
        perms = permissions_or_422(data.permissions)
        if not perms <= mine:
            extra = sorted(p.value for p in perms - mine)
            raise Problem(
                403, f"a role cannot give permissions you do not have: {', '.join(extra)}"
            )
        try:
            await write(
                access.create_role, Role(data.name, perms, data.description, project), user.name
            )
        except access.AccessError as e:
            raise Problem(409, str(e)) from e
        return jsonify(_role_json(Role(data.name, perms, data.description, project))), 201

    @bp.patch("/projects/<project>/roles/<name>")
    @document_request(RoleUpdate)
    @document_response(RoleOut)
    @_problems(400, 403, 404, 409, 413, 415, 422)
    async def update_role(project: str, name: str):
        user = caller()
        project = project_id(project)
        data = await read_body(RoleUpdate)
        mine = require(user, project, Permission.MANAGE_TEAM)
        perms = permissions_or_422(data.permissions) if data.permissions is not None else None
        if perms is not None and not perms <= mine:
            raise Problem(403, "a role cannot give permissions you do not have")
        try:
            role = await write(
                access.update_role, project, name, perms, data.description, user.name
            )
        except access.GrantChangeRefused as e:
            status = 409 if e.refusal.kind is RefusalKind.LAST_OWNER else 403
            raise Problem(status, e.refusal.reason, user=e.refusal.user) from e
        except access.AccessError as e:
            raise Problem(404, str(e)) from e
        ctx.access.forget_project(project)
        await access_changed()
        return jsonify(_role_json(role))

    @bp.delete("/projects/<project>/roles/<name>")
    @document_response(NoContent, 204)
    @_problems(403, 404, 409)
    async def delete_role(project: str, name: str):
        user = caller()
        project = project_id(project)
        require(user, project, Permission.MANAGE_TEAM)
        try:
            await write(access.delete_role, project, name, user.name)
        except access.AccessError as e:
            raise Problem(409 if "in use" in str(e) else 404, str(e)) from e
        await access_changed()
        return "", 204

    @bp.get("/projects/<project>/grants")
    @document_response(GrantList)
    @_problems(403, 404)
    async def list_grants(project: str):
        user = caller()
        project = project_id(project)
        require(user, project, Permission.VIEW_PROJECT)
        return jsonify(
            grants=[
                {
                    "user": g.user,
                    "role": g.role,
                    "added": sorted(p.value for p in g.added),
                    "removed": sorted(p.value for p in g.removed),
                }
                for g in access.list_grants(conn(), project)
            ]
        )

    async def change_grant(project: str, member: str, grant: Grant | None, actor: str) -> bool:
        """The grant rule's check and the write, on the access worker's thread."""
        try:
            changed = await write(access.change_grant, project, member, grant, actor)
        except access.GrantChangeRefused as e:
            refusal = e.refusal
            if refusal.kind is RefusalKind.LAST_OWNER:
                raise Problem(409, refusal.reason, user=refusal.user) from e
            extra: dict[str, Any] = (
                {"permission": refusal.permissions[0].value} if refusal.permissions else {}
            )
            raise Problem(403, refusal.reason, user=refusal.user, **extra) from e
        except access.AccessError as e:
            raise Problem(422, str(e), field="role") from e
        ctx.access.forget_project(project)
        if changed:
            await access_changed()
        return changed

    @bp.put("/projects/<project>/grants/<member>")
    @document_request(GrantBody)
    @document_response(GrantSet)
    @_problems(400, 403, 404, 409, 413, 415, 422)
    async def put_grant(project: str, member: str):
        """Give ``member`` a role. A name without an account yet is kept as an invitation
        (it takes effect when an account of that name is made), so the answer never tells
        whether an account exists."""
        user = caller()
        project = project_id(project)
        data = await read_body(GrantBody)
        require(user, project, Permission.MANAGE_TEAM)
        try:  # a user, or an integration identity (integration:NAME, see access.principal)
            accounts.validate_username(member.removeprefix("integration:"))
        except accounts.AccountError as e:
            raise Problem(422, str(e), field="user") from e
        grant = Grant(
            member,
            project,
            data.role,
            permissions_or_422(data.added),
            permissions_or_422(data.removed),
        )
        await change_grant(project, member, grant, user.name)
        granted = effective_permissions(grant, access.custom_roles(conn(), project))
        await ctx.members.grant_changed(ctx, user.name, project, member, data.role)
        return jsonify(user=member, role=data.role, permissions=sorted(p.value for p in granted))

    @bp.delete("/projects/<project>/grants/<member>")
    @document_response(NoContent, 204)
    @_problems(403, 404, 409)
    async def delete_grant(project: str, member: str):
        user = caller()
        project = project_id(project)
        require(user, project, Permission.MANAGE_TEAM)
        if member == user.name:
            raise Problem(409, "you cannot remove your own access; ask another manager")
        if not await change_grant(project, member, None, user.name):
            raise Problem(404, f"{member} has no grant on {project}")
        await ctx.members.grant_changed(ctx, user.name, project, member, None)
        return "", 204

    # /members/<user> is the same resource as /grants/<user>, under the name the app uses
    bp.add_url_rule(
        "/projects/<project>/members/<member>", "put_member", put_grant, methods=["PUT"]
    )
    bp.add_url_rule(
        "/projects/<project>/members/<member>", "delete_member", delete_grant, methods=["DELETE"]
    )

    @bp.get("/projects/<project>/audit")
    @document_querystring(AuditArgs)
    @document_response(AuditList)
    @_problems(403, 404, 422)
    async def audit(project: str):
        user = caller()
        project = project_id(project)
        require(user, project, Permission.MANAGE_TEAM)
        try:
            limit = min(max(int(request.args.get("limit", "100")), 1), 1000)
        except ValueError as e:
            raise Problem(422, "limit must be a whole number from 1 to 1000", field="limit") from e
        return jsonify(entries=access.list_audit(conn(), project, limit))

    return bp
