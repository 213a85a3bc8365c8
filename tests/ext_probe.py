"""Extensions the extension tests load into a real server (``--extension tests.ext_probe:Name``
or ``TANDEM_EXTENSIONS``). They report what they saw through routes of their own."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from pycrdt import Map
from quart import Blueprint, jsonify, request

from doc_model import TaskCreate, create_task
from sync_server.extensions import (
    AuthRequest,
    ConnectionInfo,
    EditRefused,
    Extension,
    Identity,
    Rejection,
    ServerContext,
)
from sync_server.interfaces import Actor, DocumentChanged


def _note(line: str) -> None:
    """Append to $TANDEM_PROBE_FILE (what a test reads after the server stopped)."""
    path = os.environ.get("TANDEM_PROBE_FILE")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class First(Extension):
    name = "first"

    async def startup(self, ctx: ServerContext) -> None:
        _note("startup first")

    async def shutdown(self, ctx: ServerContext) -> None:
        _note("shutdown first")


class Second(Extension):
    name = "second"

    async def startup(self, ctx: ServerContext) -> None:
        _note("startup second")

    async def shutdown(self, ctx: ServerContext) -> None:
        _note("shutdown second")


class Raiser(Extension):
    """Every hook raises."""

    name = "raiser"

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        raise RuntimeError("raiser fails on purpose")

    async def connected(self, ctx: ServerContext, conn: ConnectionInfo) -> None:
        raise RuntimeError("raiser fails on purpose")

    async def authenticate(self, ctx: ServerContext, request: AuthRequest) -> Identity | None:
        raise RuntimeError("raiser fails on purpose")


class Sleeper(Extension):
    """Every hook takes 5 s."""

    name = "sleeper"

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        await asyncio.sleep(5)

    async def connected(self, ctx: ServerContext, conn: ConnectionInfo) -> None:
        await asyncio.sleep(5)

    async def document_loaded(self, ctx: ServerContext, doc_name: str) -> None:
        await asyncio.sleep(5)


class Probe(Extension):
    """Records every hook call; serves the record at GET /ext/probe/log; admits sockets and
    REST calls that carry the token ``probe:NAME`` as NAME."""

    name = "probe"

    def __init__(self) -> None:
        self.log: list[dict] = []

    def _record(self, hook: str, **data: object) -> None:
        self.log.append({"hook": hook, "at": time.time(), **data})

    async def startup(self, ctx: ServerContext) -> None:
        self._record("startup")

    async def authenticate(self, ctx: ServerContext, request: AuthRequest) -> Identity | None:
        if request.token and request.token.startswith("probe:"):
            return Identity(request.token.removeprefix("probe:"), display_name="Probed")
        return None

    async def connected(self, ctx: ServerContext, conn: ConnectionInfo) -> None:
        self._record("connected", doc=conn.doc_name, user=conn.user, conn=conn.conn_id)

    async def disconnected(self, ctx: ServerContext, conn: ConnectionInfo) -> None:
        self._record(
            "disconnected",
            doc=conn.doc_name,
            user=conn.user,
            conn=conn.conn_id,
            code=conn.close_code,
            reason=conn.close_reason,
        )

    async def document_loaded(self, ctx: ServerContext, doc_name: str) -> None:
        self._record("document_loaded", doc=doc_name)

    async def document_unloaded(self, ctx: ServerContext, doc_name: str) -> None:
        self._record("document_unloaded", doc=doc_name)

    async def update_rejected(self, ctx: ServerContext, rejection: Rejection) -> None:
        self._record(
            "update_rejected",
            doc=rejection.doc_name,
            user=str(rejection.actor),
            reason=rejection.reason,
            path=rejection.path,
            permission=rejection.permission,
        )

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        for change in changes:
            self._record(
                "change_accepted",
                doc=change.doc_name,
                user=str(change.actor),
                paths=["/".join(str(p) for p in c.path) for c in change.changes],
                feed_id=change.feed_id,
                kinds=[e.kind for e in change.events],
            )

    def routes(self, ctx: ServerContext) -> Blueprint:
        bp = Blueprint("probe", __name__, url_prefix="/ext/probe")

        @bp.get("/log")
        async def log():
            return jsonify(self.log)

        return bp


class Picky(Extension):
    """Takes new tasks only (``event_kinds``); serves what it got at GET /ext/picky/log."""

    name = "picky"
    event_kinds = frozenset({"task_created"})

    def __init__(self) -> None:
        self.log: list[dict] = []

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        for change in changes:
            self.log.append({"feed_id": change.feed_id, "kinds": [e.kind for e in change.events]})

    def routes(self, ctx: ServerContext) -> Blueprint:
        bp = Blueprint("picky", __name__, url_prefix="/ext/picky")

        @bp.get("/log")
        async def log():
            return jsonify(self.log)

        return bp


class Editor(Extension):
    """POST /ext/editor/edit {"actor", "kind", "doc", "title"}: a task created with ctx.edit."""

    name = "editor"

    def routes(self, ctx: ServerContext) -> Blueprint:
        bp = Blueprint("editor", __name__, url_prefix="/ext/editor")

        @bp.post("/edit")
        async def edit():
            body = await request.get_json()
            actor = Actor(body["actor"], kind=body.get("kind", "user"))
            try:
                outcome = await ctx.edit(
                    actor,
                    body["doc"],
                    lambda doc: create_task(
                        doc, TaskCreate(title=body["title"]), created_by=actor.user_id
                    ),
                    "test edit",
                )
            except EditRefused as e:
                return jsonify(refused=e.reason, permission=e.permission, doc=e.doc_name), 403
            return jsonify(accepted=outcome.accepted, doc=outcome.doc_name)

        @bp.post("/seen")
        async def seen():
            """The task ids an edit's change function finds (it writes nothing)."""
            body = await request.get_json()
            found: list[str] = []
            await ctx.edit(
                Actor(body["actor"]),
                body["doc"],
                lambda doc: found.extend(sorted(doc.get("tasks", type=Map).keys())),
                "test read in an edit",
            )
            return jsonify(tasks=found)

        return bp
