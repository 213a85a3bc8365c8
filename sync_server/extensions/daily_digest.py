"""When the daily e-mail digest goes out, and to whom (``integrations.digest`` composes it).

Once a day, at ``digest_hour`` (``TANDEM_DIGEST_HOUR``, 0-23, default 7) **UTC**
(accounts have no time zone), the automation scheduler's tick calls
:meth:`DailyDigest.tick`; the digest covers the previous UTC day. Recipients are
the accounts with an e-mail address whose ``digest`` preference is ``daily``
(the default; ``off`` opts out), with the tasks they are assigned to in every
project they hold a grant with ``view_tasks`` on.

The time is the automation runner's injectable clock, so tests move it forward
instead of waiting. The latest day that is due is (re)considered once per
process start: a day whose hour passed while the server was down is sent at
start, and the outbox key ``digest:<user>:<date>`` keeps a digest from going out
twice (a restart, two servers on one file). Only the latest due day is sent,
not every day of a long outage.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from integrations.digest import DigestRecipient, assigned_tasks, enqueue_daily_digests
from integrations.outbox import Outbox
from rules import Permission
from sync_server.identity.access import permissions_of
from sync_server.identity.accounts import Profile, digest_subscribers
from sync_server.storage.database import SQLiteWorker

log = logging.getLogger("tandem.digest")

DEFAULT_HOUR = 7

# project id -> its JSON snapshot (``project_json``: ``members``, ``tasks`` by id, ``meta``)
ReadProject = Callable[[str], Awaitable[dict[str, Any]]]


def due_day(now: float, hour: int) -> dt.date:
    """The day whose digest is due at ``now``: yesterday once today's ``hour`` (UTC) has
    passed, else the day before yesterday."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    today = moment.date()
    if moment.hour < hour:
        today -= dt.timedelta(days=1)
    return today - dt.timedelta(days=1)


def subscriber_projects(conn: sqlite3.Connection, users: list[str]) -> dict[str, list[str]]:
    """{user: the projects they hold a grant with ``view_tasks`` on} for ``users`` (run on a
    worker thread): a digest names tasks, so only someone who may read them gets one."""
    out: dict[str, list[str]] = {u: [] for u in users}
    pairs: list[tuple[str, str]] = []
    for i in range(0, len(users), 500):
        chunk = users[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for user, project in conn.execute(
            f"SELECT user, project FROM grants WHERE user IN ({marks}) ORDER BY project", chunk
        ):
            pairs.append((user, project))
    for user, project in pairs:
        if Permission.VIEW_TASKS in permissions_of(conn, user, project):
            out[user].append(project)
    return out


def recipients_of(
    profiles: list[Profile],
    projects: dict[str, list[str]],
    snapshots: dict[str, dict[str, Any]],
    base_url: str = "",
) -> list[DigestRecipient]:
    """Each subscriber with the tasks they are assigned to in the projects they may see
    (``projects``: user -> project ids; ``snapshots``: project id -> ``project_json``)."""
    names = {p: str((s.get("meta") or {}).get("name") or p) for p, s in snapshots.items()}
    out = []
    for profile in profiles:
        if not profile.email:
            continue
        tasks: dict[str, dict[str, str]] = {}
        for project in projects.get(profile.name, ()):
            snapshot = snapshots.get(project)
            if snapshot is None:
                continue
            found = snapshot.get("tasks") or {}
            rows = found.values() if isinstance(found, dict) else found
            mine = assigned_tasks(rows, profile.name)
            if mine:
                tasks[project] = mine
        if tasks:
            out.append(
                DigestRecipient(
                    user=profile.name,
                    email=profile.email,
                    tasks=tasks,
                    display_name=profile.display_name,
                    project_names={p: names[p] for p in tasks},
                    base_url=base_url,
                )
            )
    return out


class DailyDigest:
    """Sends the digest of the due day once per process (the outbox key dedups across runs)."""

    def __init__(
        self,
        db: SQLiteWorker,
        outbox: Outbox,
        read_project: ReadProject,
        clock: Callable[[], float],
        hour: int = DEFAULT_HOUR,
        base_url: str = "",
    ) -> None:
        if not 0 <= hour <= 23:
            raise ValueError(f"digest_hour must be 0-23, not {hour}")
        self.db = db
        self.outbox = outbox
        self.read_project = read_project
        self.clock = clock
        self.hour = hour
        self.base_url = base_url
        self.done: dt.date | None = None  # the latest day handled by this process

    async def tick(self) -> dict[str, int | None] | None:
        """Send the due day's digests unless this process did already; what was queued
        ({user: outbox id or None}), or None when there was nothing to do."""
        day = due_day(self.clock(), self.hour)
        if self.done is not None and day <= self.done:
            return None
        result = await self.send(day)
        self.done = day
        return result

    async def send(self, day: dt.date) -> dict[str, int | None]:
        profiles = await self.db.run(digest_subscribers, self.db.conn)
        projects = await self.db.run(subscriber_projects, self.db.conn, [p.name for p in profiles])
        snapshots = {}
        for project in sorted({p for ps in projects.values() for p in ps}):
            try:
                snapshots[project] = await self.read_project(project)
            except Exception:  # a deleted or unreadable project: the others still go out
                log.warning("daily digest: project %s could not be read", project, exc_info=True)
        recipients = recipients_of(profiles, projects, snapshots, self.base_url)
        result = await enqueue_daily_digests(self.outbox, recipients, day)
        sent = sum(1 for v in result.values() if v is not None)
        log.info("daily digest of %s: %d queued, %d recipient(s)", day, sent, len(recipients))
        return result
