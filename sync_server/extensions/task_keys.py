"""Task keys (``TDM-42``): assigned by the server, unique in a project, never given twice.

How (see docs/architecture.md, "Task keys"):

- The counter lives in SQLite (``task_key_counters``, migration 15), never in a
  document: two clients creating tasks at the same moment, or an offline client
  whose tasks reach the server a day later, cannot pick a number themselves
  without colliding. ``task_keys`` records which number each task got, so
  assigning is idempotent (the change feed delivers at least once) and a deleted
  task's number stays taken.
- This extension consumes the change feed: when a transaction adds tasks to a
  project document, it takes the project's tasks that have no key (in creation
  order), allocates their numbers in one SQLite transaction off the event loop,
  and writes ``key`` into each task's map through ``ctx.edit`` as
  :data:`~sync_server.identity.access.TASK_KEYS_ACTOR`, the one identity the gate
  lets write that field (clients may not write or change it: rules.permissions).
- Projects that existed before keys (no counter row yet) get their tasks' keys at
  startup, in creation order: the document half of migration 15.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from doc_model import DocKind, DocName, InvalidDocName, parse_doc_name
from doc_model.task_keys import default_prefix, format_key, valid_prefix
from sync_server.extensions.protocol import EditRefused, Extension, ServerContext
from sync_server.identity.access import TASK_KEYS_ACTOR
from sync_server.interfaces import DocumentChanged
from sync_server.storage.database import SQLiteWorker, connect

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

log = logging.getLogger("tandem.task_keys")


def project_prefix(doc: Doc[Any]) -> str:
    meta = doc.get("meta", type=Map)
    chosen = meta.get("key_prefix")
    if valid_prefix(chosen):
        return str(chosen)
    name = meta.get("name")
    return default_prefix(name if isinstance(name, str) else "")


def keyless_tasks(doc: Doc[Any]) -> list[str]:
    """Ids of the tasks without a key, in creation order (created_at, then id)."""
    out: list[tuple[str, str]] = []
    for task_id, task in doc.get("tasks", type=Map).items():
        if isinstance(task, Map) and "key" not in task:
            created = task.get("created_at")
            out.append((created if isinstance(created, str) else "", task_id))
    return [task_id for _, task_id in sorted(out)]


def allocate(
    conn: sqlite3.Connection, project: str, prefix: str, tasks: Sequence[str]
) -> dict[str, str]:
    """The key of each of ``tasks``: the one it already got, else the next number. One
    transaction, so concurrent servers or processes on the file never share a number."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR IGNORE INTO task_key_counters (project, prefix, next) VALUES (?, ?, 1)",
            (project, prefix),
        )
        conn.execute("UPDATE task_key_counters SET prefix = ? WHERE project = ?", (prefix, project))
        (next_number,) = conn.execute(
            "SELECT next FROM task_key_counters WHERE project = ?", (project,)
        ).fetchone()
        keys: dict[str, str] = {}
        for task in tasks:
            row = conn.execute(
                "SELECT key FROM task_keys WHERE project = ? AND task = ?", (project, task)
            ).fetchone()
            if row is not None:
                keys[task] = row[0]
                continue
            key = format_key(prefix, next_number)
            conn.execute(
                "INSERT INTO task_keys (project, task, number, key) VALUES (?, ?, ?, ?)",
                (project, task, next_number, key),
            )
            keys[task] = key
            next_number += 1
        conn.execute(
            "UPDATE task_key_counters SET next = ? WHERE project = ?", (next_number, project)
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return keys


def has_counter(conn: sqlite3.Connection, project: str) -> bool:
    row = conn.execute("SELECT 1 FROM task_key_counters WHERE project = ?", (project,)).fetchone()
    return row is not None


def write_keys(keys: dict[str, str]) -> Any:
    def change(doc: Doc[Any]) -> None:
        tasks = doc.get("tasks", type=Map)
        for task_id, key in keys.items():
            task = tasks.get(task_id)
            if isinstance(task, Map) and "key" not in task:
                task["key"] = key

    return change


class TaskKeys(Extension):
    """Assigns task keys (see the module's docstring)."""

    name = "task-keys"

    def __init__(self) -> None:
        self.db: SQLiteWorker | None = None
        self.backfill: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def startup(self, ctx: ServerContext) -> None:
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        self.backfill = asyncio.create_task(self._backfill(ctx), name="task-keys backfill")

    async def shutdown(self, ctx: ServerContext) -> None:
        if self.backfill is not None:
            self.backfill.cancel()
            await asyncio.gather(self.backfill, return_exceptions=True)
        if self.db is not None:
            await self.db.close()

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        projects: list[str] = []
        for changed in changes:
            if str(changed.actor) == str(TASK_KEYS_ACTOR):
                continue
            try:
                name = parse_doc_name(changed.doc_name)
            except InvalidDocName:
                continue
            if name.kind is not DocKind.MAIN or name.project_id in projects:
                continue
            if any(
                c.root == "tasks" and len(c.path) == 2 and c.action == "add"
                for c in changed.changes
            ):
                projects.append(name.project_id)
        for project in projects:
            await self.assign(ctx, project)

    async def assign(self, ctx: ServerContext, project: str) -> dict[str, str]:
        """Give every task of ``project`` that has none a key; returns the keys written."""
        tandem = _tandem(ctx)
        assert self.db is not None
        lock = self._locks.setdefault(project, asyncio.Lock())
        async with lock:  # one allocation per project at a time (the backfill and the feed)
            name = DocName(project, DocKind.MAIN)
            view = await tandem.live.read(name)
            if not view.exists:
                return {}
            tasks = keyless_tasks(view.doc)
            prefix = project_prefix(view.doc)
            if not tasks:
                if not await self.db.run(has_counter, self.db.conn, project):
                    await self.db.run(allocate, self.db.conn, project, prefix, [])
                return {}
            keys = await self.db.run(allocate, self.db.conn, project, prefix, tasks)
            try:
                await ctx.edit(TASK_KEYS_ACTOR, name.name, write_keys(keys), "task keys")
            except EditRefused as e:
                log.error("task keys not written: %s", e.reason, extra={"doc": name.name})
                return {}
            return keys

    async def _backfill(self, ctx: ServerContext) -> None:
        """Keys for the tasks of projects stored before keys existed (no counter yet)."""
        assert self.db is not None
        try:
            names = await ctx.store.document_names("p/")
            for doc in names:
                try:
                    name = parse_doc_name(doc)
                except InvalidDocName:
                    continue
                if name.kind is not DocKind.MAIN:
                    continue
                if await self.db.run(has_counter, self.db.conn, name.project_id):
                    continue
                keys = await self.assign(ctx, name.project_id)
                if keys:
                    log.info("gave %d existing task(s) keys", len(keys), extra={"doc": doc})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task keys for existing tasks failed; tried again at next start")


def _tandem(ctx: ServerContext) -> TandemContext:
    from sync_server.extensions.context import TandemContext

    assert isinstance(ctx, TandemContext)
    return ctx
