"""The activity stream: a document observer that records what happened in each project.

One row per entity a transaction touched ("task.created", "task.status",
"cost.added", ...), worked out from the transaction's domain events
(``DocumentChanged.events``, doc_model.domain_events): what a row says (a
task's title, the status it moved to) is the events' after values, never the
live document, which may have moved on by the time the row is written.
Repeats of the newest row (typing) coalesce into it. The stream is what the
activity feed shows and what analytics read for completion dates (burndown,
velocity). It also keeps the project registry's name in step with ``meta/name``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from doc_model import DocKind, DomainEvent, parse_doc_name
from sync_server.identity.projects import rename_project, set_project_status, touch_project
from sync_server.interfaces import DocumentChanged
from sync_server.storage.database import SQLiteWorker

log = logging.getLogger("tandem.activity")
KEY_WRITER = "system:task-keys"  # sync_server.identity.access.TASK_KEYS_ACTOR

# event kind prefix -> the entity word of its rows
_ENTITIES = {
    "milestone": "milestone",
    "rule": "rule",
    "cost": "cost",
    "time_entry": "time_entry",
    "allocation": "allocation",
}


def _group(event: DomainEvent) -> tuple[str, str] | None:
    """The row an event belongs to: (entity word, entity id); None: it makes no row."""
    kind = event.kind
    if kind.startswith("task_"):
        return ("task", event.entity or "")
    if kind in ("chat_message_posted", "comment_posted"):
        return ("chat", str(event.detail.get("message") or event.entity or ""))
    if kind == "member_role_changed":
        return ("member", event.entity or "")
    if kind == "project_changed":
        return ("project", event.field or "")
    if kind == "budget_changed":
        return ("budget", event.field or "")
    if kind == "columns_changed":
        return ("columns", "")
    for prefix, word in _ENTITIES.items():
        if kind.startswith(prefix + "_"):
            return (word, event.entity or "")
    return None  # mentions: the chat row covers them


def _verb(events: Sequence[DomainEvent]) -> str:
    kinds = {e.kind.rsplit("_", 1)[-1] for e in events}
    if kinds & {"deleted"}:
        return "deleted"
    if kinds & {"created", "added"}:
        return "added"
    return "updated"


def _shape(events: Sequence[DomainEvent]) -> tuple | None:
    """What the rows of task field edits (not status or assignees) depend on: which
    fields of which tasks changed; None for events whose rows show their values."""
    out = []
    for e in events:
        if e.kind != "task_field_changed" or e.field == "status":
            return None
        out.append((e.entity, e.field))
    return tuple(out)


def entries_for(kind: DocKind, events: Sequence[DomainEvent]) -> list[dict[str, Any]]:
    """The activity rows for one accepted transaction's domain events (pure)."""
    groups: dict[tuple[str, str], list[DomainEvent]] = {}
    for event in events:
        key = _group(event)
        if key is not None:
            groups.setdefault(key, []).append(event)
    rows: list[dict[str, Any]] = []
    for (word, entity), items in groups.items():
        detail: dict[str, Any] = {}
        task: str | None = None
        if word == "task":
            task = entity
            by_kind = {e.kind: e for e in items}
            fields = {e.field for e in items if e.field is not None}
            if "task_deleted" in by_kind:
                action = "task.deleted"
            elif "task_created" in by_kind:
                action = "task.created"
                after = by_kind["task_created"].after or {}
                detail = {"title": after.get("title"), "status": after.get("status")}
            elif "status" in fields:
                action = "task.status"
                status = next(e.after for e in items if e.field == "status")
                detail = {"status": status}
            elif fields == {"assignees"}:
                action = "task.assigned"
                detail = {"assignees": items[0].after}
            else:
                action = "task.updated"
                detail = {"fields": sorted(str(f) for f in fields)}
        elif word == "chat":
            action = "chat.message"
        elif word == "project":
            event = items[0]
            verb = (
                "added" if event.before is None else "deleted" if event.after is None else "updated"
            )
            action = f"project.{verb}"
            detail = {"fields": [entity]}
        elif word == "budget":
            event = items[0]
            verb = (
                "added" if event.before is None else "deleted" if event.after is None else "updated"
            )
            action = f"budget.{verb}"
        elif word == "columns":
            action = "columns.added" if not items[0].before else "columns.updated"
        elif word == "member":
            event = items[0]
            verb = (
                "added" if event.before is None else "deleted" if event.after is None else "updated"
            )
            action = f"member.{verb}"
            detail = {"user": entity}
        else:
            action = f"{word}.{_verb(items)}"
            detail = {"id": entity}
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
        """Rows are worked out here, on the event loop, from the events alone; the SQLite
        transaction runs on the worker thread, so waiting for the write lock or a commit
        never stalls the server."""
        now = time.time()
        rows: list[tuple[str, tuple]] = []  # (project, key)
        renamed: dict[str, str] = {}  # project -> its new name
        statuses: dict[str, str] = {}  # project -> its new status
        # Typing is a run of transactions whose events differ only in values its rows do
        # not show (task.updated names the fields): each would make the row its
        # predecessor made, which the check below would drop. Skipping the repeat saves
        # working the row out again, once per keystroke.
        repeat: tuple | None = None
        last: Sequence[DomainEvent] | None = None  # (the feed hands a repeat the same tuple)
        for event in events:
            if not event.events or str(event.actor) == KEY_WRITER:
                continue  # a task's key arriving is not something anybody did
            if (
                event.events is last
                and repeat is not None
                and repeat[:2] == (event.doc_name, event.actor.user_id)
            ):
                continue
            last = event.events
            this = (event.doc_name, event.actor.user_id, _shape(event.events))
            if this == repeat:
                continue
            repeat = this if this[2] is not None else None
            name = parse_doc_name(event.doc_name)
            for row in entries_for(name.kind, event.events):
                detail = json.dumps(row["detail"], sort_keys=True) if row["detail"] else None
                key = (name.name, event.actor.user_id, row["action"], row["task"], detail)
                if rows and rows[-1] == (name.project_id, key):
                    continue  # the same entry again within this batch
                rows.append((name.project_id, key))
            if name.kind is DocKind.MAIN:
                for domain in event.events:
                    if domain.kind == "project_changed" and domain.field == "name":
                        title = domain.after
                        if isinstance(title, str) and title.strip():
                            renamed[name.project_id] = title
                    elif (
                        domain.kind == "project_changed"
                        and domain.field == "status"
                        and isinstance(domain.after, str)
                    ):
                        statuses[name.project_id] = domain.after
        if rows or renamed or statuses:
            await self.db.run(self._commit, rows, renamed, now, statuses)

    def _commit(
        self,
        rows: list[tuple[str, tuple]],
        renamed: dict[str, str],
        now: float,
        statuses: dict[str, str] | None = None,
    ) -> None:
        self.db.conn.execute("BEGIN IMMEDIATE")
        try:
            for project, key in rows:
                self._write(project, key, now)
            for project, title in renamed.items():
                rename_project(self.db.conn, project, title)
            for project, status in (statuses or {}).items():
                set_project_status(self.db.conn, project, status)
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
