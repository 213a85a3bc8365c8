"""Notifications: assignments and @mentions, in the app and by Web Push.

A document observer (:class:`NotificationCenter`) reads accepted transactions' domain
events (``DocumentChanged.events``, doc_model.domain_events):
- a user among a new task's assignees, or added to a task's assignees, is told (once
  per assignment: removing and re-adding them tells them again), unless they assigned
  themselves;
- a chat message or comment naming ``@user`` tells that user, if they are on the project
  and may read the chat; a mention added to a task's title or description
  (``mention`` events with ``where == "task"``, stored by ``extensions.mentions`` once
  the typing settles) tells them if they may read the project's tasks.

Whoever a notice goes to (an assignee, a mentioned name, an automation's recipients) is
told only if they may read what it quotes, as the grants stand when it is stored: a
notice names the read it makes (``Notice.read``: ``task_notice``, ``chat_notice`` or
``project_notice`` in ``rules.reads``), and :func:`may_hear` is the one check, made in
the transaction that stores it. A task assigned to someone outside the project (any
string is a valid assignee in the document) tells them nothing.

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
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from doc_model import DomainEvent, parse_doc_name
from integrations.outbound import GuardedSession, OutboundPolicy, OutboundRefused
from rules import Permission, may_read
from sync_server.identity.access import permissions_of, readers
from sync_server.identity.accounts import live_credential
from sync_server.interfaces import DocumentChanged
from sync_server.storage.database import SQLiteWorker

log = logging.getLogger("tandem.notifications")

VAPID_SUBJECT = "mailto:admin@tandem.invalid"


@dataclass(frozen=True)
class Notice:
    user: str
    project: str
    kind: str  # "assigned" | "mention"
    title: str
    body: str
    url: str
    read: str  # what it quotes, as a read of rules.reads.READS (task_notice, chat_notice...)


def may_hear(conn: sqlite3.Connection, notice: Notice) -> bool:
    """Whether ``notice.user`` may read what ``notice`` quotes, on the grants the file holds
    now: the one check every notice passes before it is stored or pushed (automation's
    e-mails pass the same, ``access.readers``)."""
    return bool(readers(conn, notice.project, [notice.user], notice.read))


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


def save_subscription(
    conn: sqlite3.Connection,
    user: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    credential: tuple[str | None, str | None] = (None, None),
) -> None:
    """Keep a browser's subscription for ``user``, bound to the ``credential`` that registered
    it (accounts.credential_of): it is pushed to only while that session or token is valid.
    The same browser registered again (another login) is bound anew."""
    with conn:
        conn.execute(
            "INSERT INTO push_subscriptions"
            " (endpoint, user, p256dh, auth, created_at, session_id, token_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(endpoint) DO UPDATE SET"
            " user = excluded.user, p256dh = excluded.p256dh, auth = excluded.auth,"
            " session_id = excluded.session_id, token_hash = excluded.token_hash",
            (endpoint, user, p256dh, auth, time.time(), *credential),
        )


def delete_subscription(conn: sqlite3.Connection, user: str, endpoint: str) -> bool:
    with conn:
        cur = conn.execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ? AND user = ?", (endpoint, user)
        )
    return cur.rowcount > 0


def subscriptions_of(conn: sqlite3.Connection, user: str) -> list[dict[str, Any]]:
    """``user``'s browsers whose registering session or token is still valid."""
    return [
        {"endpoint": e, "keys": {"p256dh": p, "auth": a}}
        for e, p, a in conn.execute(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions p WHERE p.user = :user"
            f" AND {live_credential('p')}",
            {"user": user, "now": time.time()},
        )
    ]


NOTICE_READ = (
    "COALESCE(read_needed, CASE WHEN url LIKE '%/task/%' THEN 'task_notice'"
    " WHEN kind = 'mention' THEN 'chat_notice' ELSE 'project_notice' END)"
)
"""The read a stored notification makes (rows stored before it was recorded: from their kind
and link, as they were made)."""


READ_NAMES = frozenset({"task_notice", "chat_notice", "project_notice"})


def _still_readable(conn: sqlite3.Connection, user: str) -> list[str]:
    """``project|read`` of the notifications of ``user`` that they may still read: a notice
    is shown for as long as its reader may read what it quotes, not only when it was sent
    (someone removed from a project no longer reads its task titles in their inbox)."""
    pairs = conn.execute(
        f"SELECT DISTINCT project, {NOTICE_READ} FROM notifications WHERE user = ?", (user,)
    ).fetchall()
    perms: dict[str, frozenset[Permission]] = {}  # (each project's grant read once)
    for project, _read in pairs:
        if project not in perms:
            perms[project] = permissions_of(conn, user, project)
    return [f"{p}|{r}" for p, r in pairs if r in READ_NAMES and may_read(perms[p], r)]


def inbox(
    conn: sqlite3.Connection, user: str, *, unread_only: bool = False, limit: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """``user``'s notifications (newest first) and how many are unread, both only of those
    they may still read (what may be read is worked out once for both)."""
    shown = _still_readable(conn, user)
    return _listed(conn, user, shown, unread_only, limit), _unread(conn, user, shown)


def _listed(
    conn: sqlite3.Connection, user: str, shown: list[str], unread_only: bool, limit: int
) -> list[dict[str, Any]]:
    if not shown:
        return []
    sql = (
        "SELECT id, project, kind, title, body, url, created_at, read_at FROM notifications"
        " WHERE user = ?"
        + (" AND read_at IS NULL" if unread_only else "")
        + f" AND project || '|' || {NOTICE_READ} IN ({','.join('?' * len(shown))})"
        " ORDER BY id DESC LIMIT ?"
    )
    keys = ("id", "project", "kind", "title", "body", "url", "created_at", "read_at")
    rows = conn.execute(sql, (user, *shown, limit))
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _unread(conn: sqlite3.Connection, user: str, shown: list[str]) -> int:
    if not shown:
        return 0
    return conn.execute(
        "SELECT count(*) FROM notifications WHERE user = ? AND read_at IS NULL"
        f" AND project || '|' || {NOTICE_READ} IN ({','.join('?' * len(shown))})",
        (user, *shown),
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


@dataclass(frozen=True)
class _Mention:
    """``name`` was @mentioned in a message; told if they are on the project."""

    project: str
    actor: str
    name: str
    text: str
    where: str = "chat"  # "chat" | "comment" | "task" (a task's title or description)
    task: str | None = None
    title: str | None = None  # the task's title, for a mention in a task


def _assigned(
    project: str, actor: str, task: str, title: str, users: Sequence[str]
) -> list[Notice]:
    return [
        Notice(
            user,
            project,
            "assigned",
            f"{actor} assigned you a task",
            title,
            f"/#/p/{project}/task/{task}",
            "task_notice",
        )
        for user in sorted(set(users))
        if user != actor
    ]


NOTIFYING_KINDS = frozenset({"task_created", "task_assignees_changed", "mention"})
"""The only domain events notices_for reads: the notifications extension is not handed the
others (a typing burst costs it nothing)."""


def notices_for(project: str, actor: str, events: Sequence[DomainEvent]) -> list[Notice | _Mention]:
    """What one transaction's events are worth telling (pure): new assignees of a task
    (among a new task's assignees, or added to a task's), and @mentions."""
    out: list[Notice | _Mention] = []
    for event in events:
        title = event.detail.get("title")
        title = title if isinstance(title, str) else "a task"
        if event.kind == "task_created" and isinstance(event.after, dict):
            assignees = event.after.get("assignees")
            users = (
                [a for a in assignees if isinstance(a, str)] if isinstance(assignees, list) else []
            )
            out += _assigned(project, actor, event.entity or "", title, users)
        elif event.kind == "task_assignees_changed":
            added = [a for a in event.detail.get("added", ()) if isinstance(a, str)]
            out += _assigned(project, actor, event.entity or "", title, added)
        elif event.kind == "mention" and event.entity and event.entity != actor:
            text, where, task = (event.detail.get(k) for k in ("text", "where", "task"))
            out.append(
                _Mention(
                    project,
                    actor,
                    event.entity,
                    text if isinstance(text, str) else "",
                    where if where in ("chat", "comment", "task") else "chat",
                    task if isinstance(task, str) else None,
                    title if where == "task" else None,
                )
            )
    return out


def mention_notices(conn: sqlite3.Connection, items: Sequence[_Mention]) -> list[Notice]:
    """The mentions of members who may read what mentions them (others are nobody to
    tell): a task's text is a task notice, chat and comments a chat notice (may_hear)."""
    out: list[Notice] = []
    for item in items:
        read = "task_notice" if item.where == "task" else "chat_notice"
        if item.where == "task" and item.task:
            title = f"{item.actor} mentioned you in {item.title or 'a task'}"
            url = f"/#/p/{item.project}/task/{item.task}"
        elif item.where == "comment" and item.task:
            title = f"{item.actor} mentioned you"
            url = f"/#/p/{item.project}/task/{item.task}"
        else:
            title = f"{item.actor} mentioned you"
            url = f"/#/p/{item.project}/chat"
        notice = Notice(item.name, item.project, "mention", title, item.text[:200], url, read)
        if may_hear(conn, notice):
            out.append(notice)
    return out


Delivery = tuple[Notice, list[dict[str, Any]]]
"""A stored notice and the push subscriptions of its user."""


class NotificationCenter:
    """A DocumentObserver: stores notifications and pushes them to subscribed browsers.

    What a change means comes from its domain events (worked out on the event loop,
    no document read); the SQLite transaction that checks mentions against the
    project's members and stores the notices runs on the worker's thread
    (``database.SQLiteWorker``), so the loop never waits for the write lock; pushes
    run on worker threads of their own.
    """

    def __init__(self, db: SQLiteWorker, outbound: OutboundPolicy | None = None) -> None:
        self.db = db
        self._key: Vapid02 | None = None
        self._session = GuardedSession(outbound or OutboundPolicy())

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        items: list[Notice | _Mention] = []
        for e in events:
            if e.actor.kind != "user" or not e.events:
                continue
            items += notices_for(parse_doc_name(e.doc_name).project_id, e.actor.user_id, e.events)
        await self.deliver(items)

    async def deliver(self, notices: Sequence[Notice | _Mention]) -> int:
        """Store ``notices`` (mentions resolved to members; each kept only for a user who
        may hear it) and push them to their users' browsers; the feed's notices and
        automation's notify both come here. Returns how many were stored."""
        if not notices:
            return 0
        deliveries = await self.db.run(self._store, list(notices))
        if not any(subscriptions for _, subscriptions in deliveries):
            return len(deliveries)
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
        return len(deliveries)

    def _store(self, items: Sequence[Notice | _Mention]) -> list[Delivery]:
        """One transaction (on the worker's thread): the notices, and whom to push them to."""
        conn = self.db.conn
        notices: list[Notice] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in items:
                if isinstance(item, Notice):
                    if may_hear(conn, item):
                        notices.append(item)
                else:
                    notices += mention_notices(conn, [item])
            for n in notices:
                conn.execute(
                    "INSERT INTO notifications"
                    " (user, project, kind, title, body, url, created_at, read_needed)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (n.user, n.project, n.kind, n.title, n.body, n.url, time.time(), n.read),
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
