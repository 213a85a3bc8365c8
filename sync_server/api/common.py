"""What every REST route shares: the caller, JSON bodies, permissions, ETags, edits via the gate."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pycrdt import Doc
from pydantic import BaseModel, ValidationError
from quart import Response, g, json, request
from werkzeug.exceptions import HTTPException

from doc_model import (
    DocKind,
    DocName,
    InvalidDocName,
    InvalidWrite,
    doc_name,
    finance_snapshot,
    parse_doc_name,
    project_snapshot,
    resources_snapshot,
)
from doc_model.snapshot import Finance, Project, Resources
from rules import READS, Permission
from sync_server.api.live_documents import DocumentView, LiveDocuments
from sync_server.api.problems import Problem
from sync_server.identity import accounts, projects
from sync_server.identity.access import PermissionResolver
from sync_server.interfaces import Actor
from sync_server.storage.database import SQLiteWorker

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext
    from sync_server.extensions.protocol import Identity

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
log = logging.getLogger("tandem.api")


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def caller(conn: sqlite3.Connection) -> accounts.User:
    """The request's account, as the extensions' ``authenticate`` hooks found it (the app
    asks them before every /api/ request; token-auth is the first), or 401."""
    identity: Identity | None = g.get("tandem_identity")
    if identity is None:
        raise Problem(401, "send a valid API or session token as 'Authorization: Bearer <token>'")
    account = getattr(identity, "account", None)
    if isinstance(account, accounts.User):
        return account
    # an identity another extension vouched for: its account if it has one, else its name
    name = identity.user if identity.kind == "user" else f"{identity.kind}:{identity.user}"
    known = accounts.get_user(conn, name) if identity.kind == "user" else None
    return known or accounts.User(0, name, identity.display_name or name)


def validation_problem(e: ValidationError) -> Problem:
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    return Problem(
        422,
        f"{field}: {first['msg']}",
        field=field,
        errors=[
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
            for err in e.errors()
        ],
    )


async def read_body(model: type[M]) -> M:
    """The JSON body validated as ``model``, or a problem naming what is wrong."""
    if not request.is_json:
        raise Problem(415, "send a JSON body with Content-Type: application/json")
    try:
        data = await request.get_json(force=True)
    except HTTPException as e:
        if e.code == 413:
            raise Problem(413, f"the body is larger than {request.max_content_length} bytes") from e
        raise Problem(400, "the body is not valid JSON") from e
    except Exception as e:
        raise Problem(400, "the body is not valid JSON") from e
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise validation_problem(e) from e


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None):
    return Response(
        json.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def etag_for(parts: Iterable[str]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return f'W/"{digest.hexdigest()}"'


def cached_response(
    payload_fn: Callable[[], Any],
    versions: Iterable[str],
    *extra: str,
    cache: LiveDocuments | None = None,
):
    """200 with an ETag derived from the documents' versions and the request, or 304.

    The body depends on nothing but what the ETag hashes (the documents' versions and the
    path with its query), so with ``cache`` it is serialized once per ETag.
    """
    tag = etag_for([*versions, request.full_path, *extra])
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    wanted = request.headers.get("If-None-Match", "")
    if wanted and (wanted.strip() == "*" or tag in [t.strip() for t in wanted.split(",")]):
        return Response(status=304, headers=headers)
    if cache is None:
        return json_response(payload_fn(), headers=headers)
    body = cache.cached_body(tag, lambda: json.dumps(payload_fn()))
    return Response(body, status=200, content_type="application/json", headers=headers)


def chosen_id_allowed(value: str) -> bool:
    """A project id a client chooses must be a UUID in its canonical lowercase form.

    An id that means something ("acme-merger-2027") would tell anyone who tries to create
    it that it exists (409), and ids are global. A UUID means nothing, and one somebody else
    made cannot be guessed; clients that must name a project before the server answers (an
    offline client, a retried request) make one with crypto.randomUUID() or uuid4().
    """
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def parse_id(value: str, what: str = "project") -> str:
    try:
        return parse_doc_name(f"p/{value}").project_id
    except InvalidDocName:
        raise Problem(404, f"no {what} {value!r}") from None


class ApiContext:
    """The services REST routes use, bound once the app has started."""

    def __init__(self, server: TandemContext) -> None:
        self.server = server

    @property
    def conn(self) -> sqlite3.Connection:
        return self.server.accounts

    @property
    def live(self) -> LiveDocuments:
        return self.server.live

    @property
    def resolver(self) -> PermissionResolver:
        return self.server.access

    def user(self) -> accounts.User:
        return caller(self.conn)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the writer's connection and thread: a write waits for the
        lock there (another process may hold it), never on the event loop."""
        writer: SQLiteWorker = self.server.writer
        return await writer.run(fn, writer.conn, *args)

    def project(
        self, user: accounts.User, value: str, needs: Permission, *, check: bool = True
    ) -> str:
        """The project id, if it exists and ``user`` holds ``needs`` on it.

        A project the user has no grant on is reported as missing (404), not
        forbidden, so ids of other teams' projects do not leak.
        """
        project = parse_id(value)
        if projects.get_project(self.conn, project) is None:
            raise Problem(404, f"no project {project!r}")
        perms = self.resolver.permissions(user.name, project)
        if not perms:
            raise Problem(404, f"no project {project!r}")
        if check and needs not in perms:
            raise Problem(
                403,
                f"{user.name} needs {needs.value} on project {project!r}",
                permission=needs.value,
            )
        return project

    def project_read(self, user: accounts.User, value: str, read: str) -> str:
        """The project id, if it exists and ``user`` may make the read named ``read``
        (``rules.READS``: the read's own permission and every permission of what it returns);
        404 without a grant, 403 naming the first permission missing."""
        project = self.project(user, value, Permission.VIEW_PROJECT, check=False)
        missing = READS[read].missing(self.resolver.permissions(user.name, project))
        if missing is not None:
            raise Problem(
                403,
                f"{user.name} needs {missing.value} on project {project!r}",
                permission=missing.value,
            )
        return project

    def permissions(self, user: accounts.User, project: str) -> frozenset[Permission]:
        return self.resolver.permissions(user.name, project)

    async def read(self, project: str, kind: DocKind = DocKind.MAIN) -> DocumentView:
        return await self.live.read(doc_name_of(project, kind))

    # Snapshots of a read document, built once per document version (LiveDocuments caches).
    def project_snapshot(self, view: DocumentView, project: str) -> Project:
        return self.live.snapshot(view, "project", lambda doc: project_snapshot(doc, project))

    def finance_snapshot(self, view: DocumentView) -> Finance:
        return self.live.snapshot(view, "finance", finance_snapshot)

    def resources_snapshot(self, view: DocumentView) -> Resources:
        return self.live.snapshot(view, "resources", resources_snapshot)

    async def edit(
        self, user: accounts.User, project: str, kind: DocKind, mutate: Callable[[Doc], Any]
    ) -> Any:
        """Run ``mutate`` through the gate as ``user``; returns what it returned, or raises a
        problem: 404 for a missing entity, 403 naming the permission, 422 naming the path."""
        out: list[Any] = []

        def run(doc: Doc) -> None:
            out.append(mutate(doc))

        result = await self.live.edit(doc_name_of(project, kind), Actor(user.name), run)
        if result.error is not None:
            if isinstance(result.error, KeyError):
                raise Problem(404, str(result.error))
            if isinstance(result.error, InvalidWrite | ValueError):
                raise Problem(422, str(result.error))
            log.error(
                "edit failed and was reverted",
                exc_info=result.error,
                extra={"doc": doc_name_of(project, kind).name, "user": user.name},
            )
            raise Problem(500, "the change failed and was reverted; it has been logged")
        if not result.accepted:
            denial = result.denial
            assert denial is not None
            if denial.permission:
                raise Problem(403, denial.reason, permission=denial.permission, path=denial.path)
            raise Problem(422, denial.reason, path=denial.path)
        return out[0] if out else None


def doc_name_of(project: str, kind: DocKind) -> DocName:
    return parse_doc_name(doc_name(project, kind))
