"""The activity stream: a document observer that records what happened in each project.

One row per entity a transaction touched ("task.created", "task.status",
"cost.added", ...) made through the server: WebSocket clients and the REST
API (edits the CLI appends to the file are applied by a running server but
carry no change list, so they are not in the stream). Repeats of the newest
row (typing) coalesce into it. The stream is what the activity feed shows
and what analytics read for completion dates (burndown, velocity). It also
keeps the project registry's name in step with ``meta/name``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from pycrdt import Doc, Map

from doc_model import Change, DocKind, parse_doc_name
from doc_model.snapshot import plain_value

from .database import SQLiteWorker
from .hooks import DocumentChanged
from .projects import rename_project, touch_project

log = logging.getLogger("tandem.activity")


def _task_field(doc: Doc | None, task: str, name: str) -> Any:
    if doc is None:
        return None
    tasks = doc.get("tasks", type=Map)
    if task not in tasks or not isinstance(tasks[task], Map):
        return None
    return plain_value(tasks[task].get(name))


def entries_for(kind: DocKind, changes: Sequence[Change], doc: Doc | None) -> list[dict[str, Any]]:
    """The activity rows for one accepted transaction (pure apart from reading ``doc``)."""
    rows: list[dict[str, Any]] = []
    touched: dict[tuple[str, str], set[str]] = {}
    added: set[tuple[str, str]] = set()
    deleted: set[tuple[str, str]] = set()
    for change in changes:
        if len(change.path) < 2:
            touched.setdefault((change.root, ""), set())
            continue
        key = (change.root, str(change.path[1]))
        if len(change.path) == 2 and change.action == "add":
            added.add(key)
        elif len(change.path) == 2 and change.action == "delete":
            deleted.add(key)
        touched.setdefault(key, set())
        if change.field is not None:
            touched[key].add(str(change.field))
    for (root, entity), fields in touched.items():
        action: str
        detail: dict[str, Any] = {}
        task: str | None = None
        if kind is DocKind.MAIN and root == "tasks" and entity:
            task = entity
            if (root, entity) in deleted:
                action = "task.deleted"
            elif (root, entity) in added:
                action = "task.created"
                detail = {
                    "title": _task_field(doc, entity, "title"),
                    "status": _task_field(doc, entity, "status"),
                }
            elif "status" in fields:
                action = "task.status"
                detail = {"status": _task_field(doc, entity, "status")}
            elif fields == {"assignees"}:
                action = "task.assigned"
                detail = {"assignees": _task_field(doc, entity, "assignees")}
            else:
                action = "task.updated"
                detail = {"fields": sorted(fields)}
        elif root == "messages":
            if (root, entity) not in added:
                continue  # edits of chat history show up in the audit log, not here
            action = "chat.message"
        else:
            singular = {
                "milestones": "milestone",
                "members": "member",
                "costs": "cost",
                "time_entries": "time_entry",
                "allocations": "allocation",
                "rules": "rule",
                "meta": "project",
                "budget": "budget",
                "columns": "columns",
            }.get(root, root)
            verb = (
                "deleted"
                if (root, entity) in deleted
                else "added"
                if (root, entity) in added
                else "updated"
            )
            action = f"{singular}.{verb}"
            if root == "members":
                detail = {"user": entity}
            elif root not in ("meta", "budget", "columns") and entity:
                detail = {"id": entity}
            if root == "meta" and entity:
                detail = {"fields": sorted({entity, *fields})}
        rows.append({"action": action, "task": task, "detail": detail})
    return rows


COALESCE_SECONDS = 60.0


class ActivityRecorder:
    """A DocumentObserver writing the activity stream into SQLite.

    Typing in a title is one transaction per keystroke; the stream shows it as
    one entry. A row identical to the project's newest one (same document,
    actor, action, task and detail) within ``COALESCE_SECONDS`` only moves that
    row's time forward. Each batch of transactions is one SQLite transaction.
    """

    def __init__(self, db: SQLiteWorker) -> None:
        self.db = db  # its connection is used on its worker thread only
        # project -> (row id, row key, time) of the newest row this recorder wrote
        self._newest: dict[str, tuple[int, tuple, float]] = {}

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        """Rows are worked out here, on the event loop (they read the live documents);
        the SQLite transaction runs on the worker thread, so waiting for the write
        lock or a commit never stalls the server."""
        now = time.time()
        rows: list[tuple[str, tuple]] = []  # (project, key)
        renamed: dict[str, str] = {}  # project -> its new name
        # Typing is a run of events with equal changes (edit tasks/t1/title, ...): each
        # would make the one row its predecessor made (rows read the live document, which
        # does not change within this loop), and the check below would drop it. Skipping
        # the repeat saves working the row out again, once per keystroke.
        repeat: tuple | None = None
        for event in events:
            if not event.changes:
                continue
            this = (event.doc_name, event.actor.user_id, event.changes)
            if this == repeat:
                continue
            name = parse_doc_name(event.doc_name)
            entries = entries_for(name.kind, event.changes, event.doc)
            repeat = this if len(entries) <= 1 else None
            for row in entries:
                detail = json.dumps(row["detail"], sort_keys=True) if row["detail"] else None
                key = (name.name, event.actor.user_id, row["action"], row["task"], detail)
                if rows and rows[-1] == (name.project_id, key):
                    continue  # the same entry again within this batch
                rows.append((name.project_id, key))
            meta_changed = any(c.root == "meta" for c in event.changes)
            if name.kind is DocKind.MAIN and event.doc is not None and meta_changed:
                title = event.doc.get("meta", type=Map).get("name")
                if isinstance(title, str) and title.strip():
                    renamed[name.project_id] = title
        if rows:
            await self.db.run(self._commit, rows, renamed, now)

    def _commit(self, rows: list[tuple[str, tuple]], renamed: dict[str, str], now: float) -> None:
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            for project, key in rows:
                self._write(project, key, now)
            for project, title in renamed.items():
                rename_project(self.db.conn, project, title)
            for project in {project for project, _ in rows}:
                touch_project(self.db.conn, project)
            self.db.conn.execute("COMMIT")
        except BaseException:
            self.db.conn.execute("ROLLBACK")
            self._newest.clear()  # the ids it holds may not exist
            raise

    def _write(self, project: str, key: tuple, now: float) -> None:
        newest = self._newest.get(project)
        if newest is not None and newest[1] == key and now - newest[2] < COALESCE_SECONDS:
            (latest,) = self.db.conn.execute(
                "SELECT max(id) FROM activity WHERE project = ?", (project,)
            ).fetchone()
            if latest == newest[0]:  # nobody (another process) wrote in between
                self.db.conn.execute("UPDATE activity SET at = ? WHERE id = ?", (now, latest))
                self._newest[project] = (latest, key, now)
                return
        document, actor, action, task, detail = key
        cursor = self.db.conn.execute(
            "INSERT INTO activity (at, project, document, actor, action, task, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, project, document, actor, action, task, detail),
        )
        assert cursor.lastrowid is not None
        self._newest[project] = (cursor.lastrowid, key, now)


def list_activity(
    conn: sqlite3.Connection,
    project: str,
    *,
    limit: int = 50,
    before: int | None = None,
    documents: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` pages back by row id; ``documents`` limits to readable ones."""
    sql = "SELECT id, at, document, actor, action, task, detail FROM activity WHERE project = ?"
    args: list[Any] = [project]
    if before is not None:
        sql += " AND id < ?"
        args.append(before)
    if documents is not None:
        sql += f" AND document IN ({','.join('?' * len(documents))})"
        args.extend(documents)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    return [
        {
            "id": r[0],
            "at": r[1],
            "document": r[2],
            "actor": r[3],
            "action": r[4],
            "task": r[5],
            "detail": json.loads(r[6]) if r[6] else {},
        }
        for r in conn.execute(sql, args)
    ]


def completion_times(
    conn: sqlite3.Connection, project: str, done: str = "done"
) -> dict[str, float]:
    """{task: when it last entered the ``done`` status}, for tasks whose last move was into it."""
    out: dict[str, float] = {}
    for task, at, detail in conn.execute(
        "SELECT task, at, detail FROM activity WHERE project = ?"
        " AND action IN ('task.status', 'task.created') AND task IS NOT NULL ORDER BY id",
        (project,),
    ):
        status = (json.loads(detail) if detail else {}).get("status")
        if status == done:
            out[task] = at
        else:
            out.pop(task, None)
    return out
