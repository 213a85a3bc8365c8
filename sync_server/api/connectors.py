"""REST API of the connectors: connections (OAuth2 / API token), cloud files, time entries.

    GET    /api/v1/providers/                               the providers and whether set up
    POST   /api/v1/projects/<p>/connections/                start (OAuth2) or add (API token)
    GET    /api/v1/projects/<p>/connections/                list        (manage_team)
    DELETE /api/v1/projects/<p>/connections/<c>/            revoke and forget (manage_team)
    GET    /api/v1/connections/callback/                    the OAuth2 redirect (state checked)
    GET    /api/v1/projects/<p>/connections/<c>/files/?q=   search files (edit tasks)
    POST   /api/v1/projects/<p>/tasks/<t>/attachments/      attach a file {connection, file_id}
    POST   /api/v1/projects/<p>/connections/<c>/import/     import time entries (edit_costs)
    POST   /api/v1/projects/<p>/connections/<c>/export/     export the timesheet (edit_costs)

Every error is problem details; no answer and no log line holds a token. A paused
connection (``POST /api/v1/projects/<p>/integrations/<c>/pause/``) makes no call: its
files, import and export answer 409 until it is resumed.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response, hide

from integrations.cloud_files import ProviderAnswerInvalid
from integrations.connections import Connection, ConnectionError_, describe_error
from integrations.outbound import OutboundRefused
from integrations.providers import PROVIDERS, UnknownProvider
from integrations.time_tracking import TrackerAnswerInvalid
from rules import Permission
from sync_server.api.common import ApiContext, json_response, read_body
from sync_server.api.models import problems_documented as _problems
from sync_server.api.problems import Problem
from sync_server.extensions.protocol import EditRefused

if TYPE_CHECKING:
    from sync_server.extensions.connectors import ConnectorsExtension
    from sync_server.extensions.context import TandemContext

P = Permission
CALLBACK_PATH = "/api/v1/connections/callback/"
_strict = ConfigDict(extra="forbid")


class ConnectionConfig(BaseModel):
    """What a connection may be told (the ids Tandem finds itself are added to it)."""

    model_config = _strict
    projects: list[Annotated[str, Field(max_length=100)] | int] | None = Field(
        default=None,
        max_length=100,
        description="time trackers: import only entries of these provider projects",
    )
    auto_import: bool | None = Field(
        default=None, description="time trackers: imported on the schedule (default true)"
    )
    workspace_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | int | None = None
    export_project_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | int | None = None
    export_task_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | int | None = None


class ConnectionStart(BaseModel):
    model_config = _strict
    provider: Literal["google", "dropbox", "microsoft", "harvest", "toggl", "clockify"]
    api_token: str | None = Field(default=None, min_length=1, max_length=500)
    return_to: str = Field(default="", max_length=500)
    config: ConnectionConfig = ConnectionConfig()


class ConnectionPatch(BaseModel):
    """Changes to a connection's config (a field set to null is removed)."""

    model_config = _strict
    config: ConnectionConfig


class AttachFile(BaseModel):
    model_config = _strict
    connection: str = Field(min_length=1, max_length=64)
    file_id: str = Field(min_length=1, max_length=500)


class ImportRange(BaseModel):
    model_config = _strict
    since: dt.date | None = None
    until: dt.date | None = None


class ProviderOut(BaseModel):
    name: str
    title: str
    auth: str
    category: str
    configured: bool


class ProviderList(BaseModel):
    providers: list[ProviderOut]


class AuthorizeOut(BaseModel):
    """Send the user's browser to ``authorize_url``; the provider sends it back to the
    callback with ``state`` (valid 10 minutes, once)."""

    authorize_url: str
    state: str


class ConnectionOut(BaseModel):
    id: str
    project: str
    provider: str
    created_by: str
    account: str
    config: dict[str, Any]
    status: str
    created: float
    last_used: float | None = None
    last_error: str | None = None
    paused_at: float | None = None  # paused (POST .../integrations/<id>/pause/): no call


class ConnectionList(BaseModel):
    connections: list[ConnectionOut]


class Deleted(BaseModel):
    deleted: bool
    revoked: bool  # whether the provider confirmed it revoked the token


class FileOut(BaseModel):
    provider: str
    file_id: str
    name: str
    link: str
    size: int | None = None
    mime: str | None = None


class FileList(BaseModel):
    files: list[FileOut]


class FileSource(BaseModel):
    id: str
    provider: str
    title: str
    account: str


class FileSourceList(BaseModel):
    sources: list[FileSource]


class AttachmentOut(FileOut):
    added_by: str
    added_at: str


class Imported(BaseModel):
    fetched: int
    written: int


class Exported(BaseModel):
    exported: int


def _local_path(value: str) -> bool:
    """A path on this server: not another origin ("//host", "/\\host" to a browser)."""
    return value.startswith("/") and value[1:2] not in ("/", "\\") and "\n" not in value


def connectors_api(server: TandemContext, ext: ConnectorsExtension) -> Blueprint:
    bp = Blueprint("api_connectors", __name__, url_prefix="/api/v1")
    api = ApiContext(server)

    def redirect_uri() -> str:
        base = server.settings.public_url.rstrip("/") or request.host_url.rstrip("/")
        return base + CALLBACK_PATH

    async def connection_of(project: str, connection_id: str) -> Connection:
        try:
            return await ext.service.get(project, connection_id)
        except ConnectionError_ as e:
            raise Problem(e.status, str(e)) from None

    def provider_problem(e: Exception, title: str) -> Problem:
        if isinstance(e, Problem):
            return e
        if isinstance(e, ConnectionError_):
            return Problem(e.status, str(e))
        if isinstance(e, OutboundRefused):
            return Problem(502, f"{title} cannot be reached: {e}")
        if isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 404:
            return Problem(404, f"{title} has no such item")
        if isinstance(e, httpx.HTTPStatusError | httpx.TransportError):
            return Problem(502, f"{title} failed: {describe_error(e)}")
        if isinstance(e, ProviderAnswerInvalid | TrackerAnswerInvalid):
            return Problem(502, f"{title} answered in a shape Tandem does not know: {e}")
        if isinstance(e, EditRefused):
            return Problem(403 if e.permission else 422, e.reason, permission=e.permission)
        if isinstance(e, LookupError):
            return Problem(422, str(e))
        raise e

    @bp.get("/providers/")
    @document_response(ProviderList)
    @_problems()
    async def providers():
        api.user()
        return json_response(
            {
                "providers": [
                    {
                        "name": p.name,
                        "title": p.title,
                        "auth": p.auth,
                        "category": p.category,
                        "configured": ext.service.provider(p.name).configured,
                    }
                    for p in PROVIDERS.values()
                ]
            }
        )

    @bp.post("/projects/<project>/connections/")
    @document_request(ConnectionStart)
    @document_response(AuthorizeOut, 201)
    @_problems(400, 403, 404, 409, 413, 415, 422, 502)
    async def start(project: str):
        user = api.user()
        project = api.project(user, project, P.MANAGE_TEAM)
        body = await read_body(ConnectionStart)
        try:
            spec = ext.service.provider(body.provider)
        except UnknownProvider as e:
            raise Problem(422, str(e), field="provider") from None
        if spec.auth == "oauth2":
            if body.api_token is not None:
                raise Problem(
                    422, f"{spec.title} connects with OAuth2, not a token", field="api_token"
                )
            if body.return_to and not _local_path(body.return_to):
                raise Problem(422, "return_to must be a path on this server", field="return_to")
            try:
                url, state = await ext.service.start(
                    project, spec.name, user.name, redirect_uri(), body.return_to
                )
            except ConnectionError_ as e:
                raise Problem(e.status, str(e)) from None
            return json_response({"authorize_url": url, "state": state}, 201)
        if not body.api_token:
            raise Problem(422, f"{spec.title} needs api_token", field="api_token")
        token = body.api_token
        from integrations.time_tracking import whoami

        probe = Connection(
            id="-",
            project=project,
            provider=spec.name,
            created_by=user.name,
            account="",
            config={},
            status="new",
            created=0,
        )
        try:
            account, found = await ext.service.call_with_token(
                probe, token, lambda c: whoami(c, spec)
            )
        except Exception as e:
            if isinstance(e, httpx.HTTPStatusError) and e.response.status_code in (401, 403):
                raise Problem(422, f"{spec.title} refused the token", field="api_token") from None
            raise provider_problem(e, spec.title) from None
        config = {**found, **body.config.model_dump(exclude_none=True)}
        connection = await ext.service.add_api_token(
            project, spec.name, user.name, token, account=account, config=config
        )
        return json_response(connection.public(), 201)

    @bp.get("/connections/callback/")
    @hide  # a browser lands here from the provider; not an operation of the API
    async def callback():
        """Where the provider sends the browser back: no bearer token (a browser redirect
        carries none); the single-use state names the project and the user."""
        state = request.args.get("state", "")
        refused = request.args.get("error")
        if refused:
            raise Problem(400, f"the provider refused the authorization: {refused[:100]}")
        code = request.args.get("code", "")
        if not code:
            raise Problem(400, "the callback has no code")
        try:
            connection, return_to = await ext.service.finish(state, code)
        except ConnectionError_ as e:
            raise Problem(e.status, str(e)) from None
        spec = ext.service.provider(connection.provider)
        if "application/json" in request.headers.get("Accept", ""):
            return json_response(connection.public(), 201)
        if spec.category == "time":
            try:  # Harvest: which account and user the token is
                from integrations.time_tracking import whoami

                account, found = await ext.service.call(connection, lambda c: whoami(c, spec))
                connection = await ext.service.update(connection, account=account, config=found)
            except Exception as e:
                await ext.service.update(connection, error=describe_error(e), used=True)
        target = return_to if _local_path(return_to) else "/"
        page = (
            "<!doctype html><meta charset=utf-8><title>Connected</title>"
            f"<p>{html.escape(spec.title)} is connected."
            f' <a href="{html.escape(target)}">Back to Tandem</a></p>'
        )
        return Response(page, status=200, content_type="text/html; charset=utf-8")

    @bp.get("/projects/<project>/connections/")
    @document_response(ConnectionList)
    @_problems(403, 404)
    async def list_connections(project: str):
        user = api.user()
        project = api.project(user, project, P.MANAGE_TEAM)
        found = await ext.service.all(project)
        return json_response({"connections": [c.public() for c in found]})

    @bp.patch("/projects/<project>/connections/<connection_id>/")
    @document_request(ConnectionPatch)
    @document_response(ConnectionOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def patch_connection(project: str, connection_id: str):
        user = api.user()
        project = api.project(user, project, P.MANAGE_TEAM)
        body = await read_body(ConnectionPatch)
        connection = await connection_of(project, connection_id)
        config = {**connection.config, **body.config.model_dump(exclude_unset=True)}
        config = {k: v for k, v in config.items() if v is not None}
        updated = await ext.service.update(connection, config=config)
        return json_response(updated.public())

    @bp.delete("/projects/<project>/connections/<connection_id>/")
    @document_response(Deleted)
    @_problems(403, 404)
    async def delete_connection(project: str, connection_id: str):
        user = api.user()
        project = api.project(user, project, P.MANAGE_TEAM)
        try:
            revoked = await ext.service.delete(project, connection_id)
        except ConnectionError_ as e:
            raise Problem(e.status, str(e)) from None
        return json_response({"deleted": True, "revoked": revoked})

    # -- cloud files ---------------------------------------------------------------------

    def may_edit_tasks(user, project: str) -> str:
        project = api.project(user, project, P.VIEW_TASKS)
        perms = api.permissions(user, project)
        if not perms & {P.EDIT_OWN_TASKS, P.EDIT_ALL_TASKS}:
            raise Problem(
                403,
                f"{user.name} needs edit_own_tasks or edit_all_tasks on project {project!r}",
                permission=P.EDIT_OWN_TASKS.value,
            )
        return project

    @bp.get("/projects/<project>/file-sources/")
    @document_response(FileSourceList)
    @_problems(403, 404)
    async def file_sources(project: str):
        """The project's file connections, for whoever may attach files (no config)."""
        user = api.user()
        project = may_edit_tasks(user, project)
        sources = []
        for c in await ext.service.all(project):
            spec = ext.service.provider(c.provider)
            if spec.category == "files":
                sources.append(
                    {"id": c.id, "provider": c.provider, "title": spec.title, "account": c.account}
                )
        return json_response({"sources": sources})

    @bp.get("/projects/<project>/connections/<connection_id>/files/")
    @document_response(FileList)
    @_problems(403, 404, 409, 422, 502)
    async def search_files(project: str, connection_id: str):
        user = api.user()
        project = may_edit_tasks(user, project)
        text = request.args.get("q", "").strip()
        if not text or len(text) > 200:
            raise Problem(422, "q: 1-200 characters to search for", field="q")
        connection = await connection_of(project, connection_id)
        spec = ext.service.provider(connection.provider)
        if spec.category != "files":
            raise Problem(422, f"{spec.title} has no files", field="connection")
        try:
            files = await ext.search_files(connection, text)
        except Exception as e:
            raise provider_problem(e, spec.title) from None
        return json_response({"files": [f.as_attachment() for f in files]})

    @bp.post("/projects/<project>/tasks/<task_id>/attachments/")
    @document_request(AttachFile)
    @document_response(AttachmentOut, 201)
    @document_response(AttachmentOut, 200)
    @_problems(400, 403, 404, 409, 413, 415, 422, 502)
    async def attach(project: str, task_id: str):
        user = api.user()
        project = may_edit_tasks(user, project)
        body = await read_body(AttachFile)
        connection = await connection_of(project, body.connection)
        spec = ext.service.provider(connection.provider)
        if spec.category != "files":
            raise Problem(422, f"{spec.title} has no files", field="connection")
        try:
            attachment, added = await ext.attach(connection, task_id, body.file_id, user.name)
        except KeyError as e:
            raise Problem(404, str(e.args[0]) if e.args else "no such task") from None
        except Exception as e:
            raise provider_problem(e, spec.title) from None
        return json_response(attachment, 201 if added else 200)

    # -- time trackers ---------------------------------------------------------------------

    async def tracker(project: str, connection_id: str):
        user = api.user()
        project = api.project(user, project, P.EDIT_COSTS)
        connection = await connection_of(project, connection_id)
        spec = ext.service.provider(connection.provider)
        if spec.category != "time":
            raise Problem(422, f"{spec.title} is not a time tracker", field="connection")
        return user, connection, spec

    @bp.post("/projects/<project>/connections/<connection_id>/import/")
    @document_request(ImportRange)
    @document_response(Imported)
    @_problems(400, 403, 404, 409, 413, 415, 422, 502)
    async def import_time(project: str, connection_id: str):
        user, connection, spec = await tracker(project, connection_id)
        body = await read_body(ImportRange) if request.content_length else ImportRange()
        until = body.until or dt.date.today()
        since = body.since or until - dt.timedelta(days=server.settings.time_import_days)
        if since > until:
            raise Problem(422, "since: after until", field="since")
        if (until - since).days > 366:
            raise Problem(422, "since: at most 366 days before until", field="since")
        try:
            result = await ext.import_time(connection, user.name, since, until)
        except Exception as e:
            raise provider_problem(e, spec.title) from None
        return json_response(result)

    @bp.post("/projects/<project>/connections/<connection_id>/export/")
    @document_response(Exported)
    @_problems(403, 404, 409, 422, 502)
    async def export_time(project: str, connection_id: str):
        user, connection, spec = await tracker(project, connection_id)
        try:
            result = await ext.export_time(connection, user.name)
        except ValueError as e:
            if isinstance(e, TrackerAnswerInvalid | OutboundRefused):
                raise provider_problem(e, spec.title) from None
            raise Problem(422, str(e)) from None
        except Exception as e:
            raise provider_problem(e, spec.title) from None
        return json_response(result)

    return bp
