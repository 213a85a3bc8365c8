"""Notifications: assignments and @mentions, in the app and by Web Push.

A document observer (:class:`NotificationCenter`) watches accepted changes:
- a user newly among a task's assignees is told (once per assignment: removing and
  re-adding them tells them again), unless they assigned themselves;
- a chat message naming ``@user`` tells that user, if they are on the project.

Every notification is stored (the in-app list, ``/api/v1/me/notifications``) and, for
users who subscribed a browser, sent by Web Push (pywebpush: VAPID-signed, aes128gcm
encrypted). The VAPID key pair is made on first start and kept in the database, so
every process on the file signs with the same key. Push delivery runs in a worker
thread; subscriptions the push service reports gone (404/410) are dropped.
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
from pywebpush import WebPushException, webpush

from doc_model import DocKind, parse_doc_name

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


def assignment_notices(
    conn: sqlite3.Connection, event: DocumentChanged, project: str
) -> list[Notice]:
    """New assignees of the tasks this change touched (remembered in ``assignments``)."""
    if event.doc is None:
        return []
    tasks = event.doc.get("tasks", type=Map)
    touched = {
        str(c.path[1])
        for c in event.changes
        if c.root == "tasks" and len(c.path) >= 2 and (len(c.path) == 2 or c.field == "assignees")
    }
    out: list[Notice] = []
    for task_id in sorted(touched):
        task = tasks.get(task_id)
        now: set[str] = set()
        if isinstance(task, Map) and isinstance(task.get("assignees"), Array):
            now = {a for a in task.get("assignees") if isinstance(a, str)}
        known = {
            r[0]
            for r in conn.execute(
                "SELECT user FROM assignments WHERE project = ? AND task = ?", (project, task_id)
            )
        }
        for gone in known - now:
            conn.execute(
                "DELETE FROM assignments WHERE project = ? AND task = ? AND user = ?",
                (project, task_id, gone),
            )
        for user in sorted(now - known):
            conn.execute(
                "INSERT OR IGNORE INTO assignments (project, task, user) VALUES (?, ?, ?)",
                (project, task_id, user),
            )
            if user != event.actor.user_id and isinstance(task, Map):
                out.append(
                    Notice(
                        user,
                        project,
                        "assigned",
                        f"{event.actor.user_id} assigned you a task",
                        _title(task),
                        f"/#/p/{project}/task/{task_id}",
                    )
                )
    return out


def mention_notices(conn: sqlite3.Connection, event: DocumentChanged, project: str) -> list[Notice]:
    if event.doc is None:
        return []
    messages = event.doc.get("messages", type=Array)
    members = {r[0] for r in conn.execute("SELECT user FROM grants WHERE project = ?", (project,))}
    out: list[Notice] = []
    for change in event.changes:
        if change.action != "add" or len(change.path) != 2 or not isinstance(change.path[1], int):
            continue
        index = change.path[1]
        if index >= len(messages) or not isinstance(messages[index], Map):
            continue
        message = messages[index]
        text = str(message.get("text") or "")
        for name in sorted(set(MENTION.findall(text))):
            if name in members and name != event.actor.user_id:
                out.append(
                    Notice(
                        name,
                        project,
                        "mention",
                        f"{event.actor.user_id} mentioned you",
                        text[:200],
                        f"/#/p/{project}/chat",
                    )
                )
    return out


class NotificationCenter:
    """A DocumentObserver: stores notifications and pushes them to subscribed browsers."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._key: Vapid02 | None = None

    @property
    def key(self) -> Vapid02:
        if self._key is None:
            self._key = vapid_key(self.conn)
        return self._key

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        relevant = [
            (name, e)
            for e in events
            if e.actor.kind == "user" and _may_notify((name := parse_doc_name(e.doc_name)).kind, e)
        ]
        if not relevant:
            return  # typing, moving cards, ...: nothing to read or write
        notices: list[Notice] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for name, event in relevant:
                if name.kind is DocKind.MAIN:
                    notices += assignment_notices(self.conn, event, name.project_id)
                else:
                    notices += mention_notices(self.conn, event, name.project_id)
            for n in notices:
                self.conn.execute(
                    "INSERT INTO notifications (user, project, kind, title, body, url, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (n.user, n.project, n.kind, n.title, n.body, n.url, time.time()),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        for notice in notices:
            for subscription in subscriptions_of(self.conn, notice.user):
                gone = await asyncio.to_thread(self._push, notice, subscription)
                if gone:
                    with self.conn:
                        self.conn.execute(
                            "DELETE FROM push_subscriptions WHERE endpoint = ?",
                            (subscription["endpoint"],),
                        )
                    log.info("dropped an expired push subscription", extra={"user": notice.user})

    def _push(self, notice: Notice, subscription: dict[str, Any]) -> bool:
        """Send one push (in a worker thread); True if the subscription no longer exists."""
        payload = json.dumps({"title": notice.title, "body": notice.body, "url": notice.url})
        try:
            webpush(
                subscription,
                payload,
                vapid_private_key=self.key,
                vapid_claims={"sub": VAPID_SUBJECT},
                ttl=24 * 3600,
                timeout=10,
            )
        except WebPushException as e:
            status = e.response.status_code if e.response is not None else None
            if status in (404, 410):
                return True
            log.warning("push failed (%s): %s", status, e, extra={"user": notice.user})
        except Exception as e:  # the push service is down or unreachable: the in-app copy stays
            log.warning("push failed: %s", e, extra={"user": notice.user})
        return False
