"""Notifications: assignments and @mentions, in the app and by Web Push.

A document observer (:class:`NotificationCenter`) watches accepted changes:
- a user newly among a task's assignees is told (once per assignment: removing and
  re-adding them tells them again), unless they assigned themselves;
- a chat message naming ``@user`` tells that user, if they are on the project.

Every notification is stored (the in-app list, ``/api/v1/me/notifications``) and, for
users who subscribed a browser, sent by Web Push (pywebpush: VAPID-signed, aes128gcm
encrypted). The VAPID key pair is made on first start and kept in the database, so
every process on the file signs with the same key. Push delivery runs in a worker
thread, through the outbound guard (integrations.outbound: public https hosts only,
the checked address pinned, no redirects, short timeouts); subscriptions the push
service reports gone (404/410) are dropped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pycrdt import Array, Map

from doc_model import DocKind, parse_doc_name
from integrations.outbound import GuardedSession, OutboundPolicy, OutboundRefused

from .database import SQLiteWorker
from .hooks import DocumentChanged

log = logging.getLogger("tandem.notifications")

MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")
VAPID_SUBJECT = "mailto:admin@tandem.invalid"


@dataclass(frozen=True)
class Notice:
    user: str
    project: str
    kind: str  # "assigned" | "mention"
    title: str
    body: str
    url: str


# -- the VAPID key -----------------------------------------------------------------


def vapid_key(conn: sqlite3.Connection) -> Vapid02:
    """The server's VAPID key pair, made on first use and kept in server_secrets."""
    row = conn.execute("SELECT value FROM server_secrets WHERE name = 'vapid'").fetchone()
    if row is None:
        key = Vapid02()
        key.generate_keys()
        with conn:
            conn.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('vapid', ?)",
                (key.private_pem().decode(),),
            )
        row = conn.execute("SELECT value FROM server_secrets WHERE name = 'vapid'").fetchone()
    return Vapid02.from_pem(row[0].encode())


def application_server_key(key: Vapid02) -> str:
    """The public key as browsers want it for pushManager.subscribe (base64url, no padding)."""
    raw = key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- storage -------------------------------------------------------------------------


def save_subscription(conn: sqlite3.Connection, user: str, endpoint: str, p256dh: str, auth: str):
    with conn:
        conn.execute(
            "INSERT INTO push_subscriptions (endpoint, user, p256dh, auth, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(endpoint) DO UPDATE SET user = excluded.user,"
            " p256dh = excluded.p256dh, auth = excluded.auth",
            (endpoint, user, p256dh, auth, time.time()),
        )


def delete_subscription(conn: sqlite3.Connection, user: str, endpoint: str) -> bool:
    with conn:
        cur = conn.execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ? AND user = ?", (endpoint, user)
        )
    return cur.rowcount > 0


def subscriptions_of(conn: sqlite3.Connection, user: str) -> list[dict[str, Any]]:
    return [
        {"endpoint": e, "keys": {"p256dh": p, "auth": a}}
        for e, p, a in conn.execute(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE user = ?", (user,)
        )
    ]


def list_notifications(
    conn: sqlite3.Connection, user: str, *, unread_only: bool = False, limit: int = 50
) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, project, kind, title, body, url, created_at, read_at FROM notifications"
        " WHERE user = ?" + (" AND read_at IS NULL" if unread_only else "") + " ORDER BY id DESC"
        " LIMIT ?"
    )
    keys = ("id", "project", "kind", "title", "body", "url", "created_at", "read_at")
    return [dict(zip(keys, row, strict=True)) for row in conn.execute(sql, (user, limit))]


def unread_count(conn: sqlite3.Connection, user: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM notifications WHERE user = ? AND read_at IS NULL", (user,)
    ).fetchone()[0]


def mark_read(conn: sqlite3.Connection, user: str, ids: list[int] | None) -> int:
    now = time.time()
    with conn:
        if ids is None:
            cur = conn.execute(
                "UPDATE notifications SET read_at = ? WHERE user = ? AND read_at IS NULL",
                (now, user),
            )
        else:
            marks = ",".join("?" * len(ids))
            cur = conn.execute(
                f"UPDATE notifications SET read_at = ? WHERE user = ? AND read_at IS NULL"
                f" AND id IN ({marks})",
                (now, user, *ids),
            )
    return cur.rowcount


# -- what deserves a notification ---------------------------------------------------------


def _title(task: Map) -> str:
    title = task.get("title")
    return str(title) if title is not None else "a task"


def _may_notify(kind: DocKind, event: DocumentChanged) -> bool:
    """Whether a change can raise a notice at all: a task added or its assignees changed
    (main document), a chat message added. Cheap, and false for nearly every keystroke."""
    if kind is DocKind.MAIN:
        return any(
            c.root == "tasks" and (len(c.path) == 2 or c.field == "assignees")
            for c in event.changes
        )
    if kind is DocKind.CHAT:
        return any(c.action == "add" and len(c.path) == 2 for c in event.changes)
    return False


@dataclass(frozen=True)
class _Assignees:
    """A touched task's assignees as the live document has them (read on the event loop)."""

    project: str
    task_id: str
    actor: str
    assignees: frozenset[str]
    title: str | None  # None: no such task (deleted, or not a task)


@dataclass(frozen=True)
class _Message:
    """An added chat message's text (read on the event loop)."""

    project: str
    actor: str
    text: str


def read_assignees(event: DocumentChanged, project: str) -> list[_Assignees]:
    """The current assignees of every task this change added or reassigned."""
    if event.doc is None:
        return []
    tasks = event.doc.get("tasks", type=Map)
    touched = {
        str(c.path[1])
        for c in event.changes
        if c.root == "tasks" and len(c.path) >= 2 and (len(c.path) == 2 or c.field == "assignees")
    }
    out: list[_Assignees] = []
    for task_id in sorted(touched):
        task = tasks.get(task_id)
        now: frozenset[str] = frozenset()
        if isinstance(task, Map) and isinstance(task.get("assignees"), Array):
            now = frozenset(a for a in task["assignees"] if isinstance(a, str))
        title = _title(task) if isinstance(task, Map) else None
        out.append(_Assignees(project, task_id, event.actor.user_id, now, title))
    return out


def read_messages(event: DocumentChanged, project: str) -> list[_Message]:
    """The text of every chat message this change added."""
    if event.doc is None:
        return []
    messages = event.doc.get("messages", type=Array)
    out: list[_Message] = []
    for change in event.changes:
        if change.action != "add" or len(change.path) != 2 or not isinstance(change.path[1], int):
            continue
        index = change.path[1]
        if index >= len(messages) or not isinstance(messages[index], Map):
            continue
        text = str(messages[index].get("text") or "")
        out.append(_Message(project, event.actor.user_id, text))
    return out


def assignment_notices(conn: sqlite3.Connection, item: _Assignees) -> list[Notice]:
    """New assignees of one task (remembered in ``assignments``): removing and re-adding
    someone tells them again; assigning yourself tells nobody."""
    known = {
        r[0]
        for r in conn.execute(
            "SELECT user FROM assignments WHERE project = ? AND task = ?",
            (item.project, item.task_id),
        )
    }
    for gone in known - item.assignees:
        conn.execute(
            "DELETE FROM assignments WHERE project = ? AND task = ? AND user = ?",
            (item.project, item.task_id, gone),
        )
    out: list[Notice] = []
    for user in sorted(item.assignees - known):
        conn.execute(
            "INSERT OR IGNORE INTO assignments (project, task, user) VALUES (?, ?, ?)",
            (item.project, item.task_id, user),
        )
        if user != item.actor and item.title is not None:
            out.append(
                Notice(
                    user,
                    item.project,
                    "assigned",
                    f"{item.actor} assigned you a task",
                    item.title,
                    f"/#/p/{item.project}/task/{item.task_id}",
                )
            )
    return out


def mention_notices(conn: sqlite3.Connection, item: _Message) -> list[Notice]:
    """Members of the project named ``@user`` in one message (not its author)."""
    names = sorted(set(MENTION.findall(item.text)) - {item.actor})
    if not names:
        return []
    marks = ",".join("?" * len(names))
    members = {
        r[0]
        for r in conn.execute(
            f"SELECT user FROM grants WHERE project = ? AND user IN ({marks})",
            (item.project, *names),
        )
    }
    return [
        Notice(
            name,
            item.project,
            "mention",
            f"{item.actor} mentioned you",
            item.text[:200],
            f"/#/p/{item.project}/chat",
        )
        for name in names
        if name in members
    ]


Delivery = tuple[Notice, list[dict[str, Any]]]
"""A stored notice and the push subscriptions of its user."""


class NotificationCenter:
    """A DocumentObserver: stores notifications and pushes them to subscribed browsers.

    What a change means is read from the live document on the event loop; the
    SQLite transaction that remembers assignments and stores the notices runs on
    the worker's thread (``database.SQLiteWorker``), so the loop never waits for
    the write lock; pushes run on worker threads of their own.
    """

    def __init__(self, db: SQLiteWorker, outbound: OutboundPolicy | None = None) -> None:
        self.db = db
        self._key: Vapid02 | None = None
        self._session = GuardedSession(outbound or OutboundPolicy())

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        items: list[_Assignees | _Message] = []
        for e in events:
            if e.actor.kind != "user":
                continue
            name = parse_doc_name(e.doc_name)
            if not _may_notify(name.kind, e):
                continue  # typing, moving cards, ...: nothing to read or write
            if name.kind is DocKind.MAIN:
                items += read_assignees(e, name.project_id)
            else:
                items += read_messages(e, name.project_id)
        if not items:
            return
        deliveries = await self.db.run(self._store, items)
        if not any(subscriptions for _, subscriptions in deliveries):
            return
        if self._key is None:
            self._key = await self.db.run(vapid_key, self.db.conn)
        for notice, subscriptions in deliveries:
            for subscription in subscriptions:
                gone = await asyncio.to_thread(
                    self._push, self._key, notice, subscription, self._session
                )
                if gone:
                    await self.db.run(self._forget, subscription["endpoint"])
                    log.info("dropped an expired push subscription", extra={"user": notice.user})

    def _store(self, items: Sequence[_Assignees | _Message]) -> list[Delivery]:
        """One transaction (on the worker's thread): the notices, and whom to push them to."""
        conn = self.db.conn
        notices: list[Notice] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in items:
                if isinstance(item, _Assignees):
                    notices += assignment_notices(conn, item)
                else:
                    notices += mention_notices(conn, item)
            for n in notices:
                conn.execute(
                    "INSERT INTO notifications (user, project, kind, title, body, url, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (n.user, n.project, n.kind, n.title, n.body, n.url, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [(n, subscriptions_of(conn, n.user)) for n in notices]

    def _forget(self, endpoint: str) -> None:
        with self.db.conn:
            self.db.conn.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,))

    @staticmethod
    def _push(
        key: Vapid02, notice: Notice, subscription: dict[str, Any], session: GuardedSession
    ) -> bool:
        """Send one push (in a worker thread) through the outbound guard (only to public
        https hosts, no redirects); True if the subscription no longer exists."""
        # Imported on the first push: pywebpush loads aiohttp and requests at import,
        # 13 MB of every server's memory that most servers never use.
        from pywebpush import WebPushException, webpush

        payload = json.dumps({"title": notice.title, "body": notice.body, "url": notice.url})
        try:
            webpush(
                subscription,
                payload,
                vapid_private_key=key,
                vapid_claims={"sub": VAPID_SUBJECT},
                ttl=24 * 3600,
                timeout=10,
                requests_session=session,  # duck-typed: only its post() is used
            )
        except OutboundRefused as e:
            log.warning("push refused by the outbound guard: %s", e, extra={"user": notice.user})
        except WebPushException as e:
            status = e.response.status_code if e.response is not None else None
            if status in (404, 410):
                return True
            log.warning("push failed (%s): %s", status, e, extra={"user": notice.user})
        except Exception as e:  # the push service is down or unreachable: the in-app copy stays
            log.warning("push failed: %s", e, extra={"user": notice.user})
        return False
