"""When the daily e-mail digest goes out, and to whom (``integrations.digest`` composes it).

Once a day, at ``digest_hour`` (``TANDEM_DIGEST_HOUR``, 0-23, default 7) **UTC**, the
automation scheduler's tick calls :meth:`DailyDigest.tick`. Each recipient's digest
covers the last whole day in their account's time zone at that moment
(:func:`recipient_day`; UTC for an account without one: the previous UTC day), and
shows that day as their locale writes dates (``identity.locales``). Recipients are
the accounts with an e-mail address whose ``digest`` preference is ``daily``
(the default; ``off`` opts out), with the tasks they are assigned to in every
project whose tasks they may read (``task_notice`` in ``rules.reads``, the read every
notification about a task makes too).

The time is the automation runner's injectable clock, so tests move it forward
instead of waiting. The latest day that is due is (re)considered once per
process start: a day whose hour passed while the server was down is sent at
start, and the outbox key ``digest:<user>:<date>`` keeps a digest from going out
twice (a restart, two servers on one file). Only the latest due day is sent,
not every day of a long outage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from integrations.digest import (
    DIGEST_PROJECT,
    Digest,
    DigestRecipient,
    assigned_tasks,
    compose_digest,
    day_window,
    read_activity,
)
from integrations.outbox import Outbox
from rules.automation import PLAIN, TextFormat
from sync_server.identity.access import readers
from sync_server.identity.accounts import Profile, digest_subscribers
from sync_server.identity.locales import text_format
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


def recipient_day(day: dt.date, hour: int, zone: str | None) -> dt.date:
    """The day a recipient in ``zone`` is told about when the digest of (UTC) ``day`` goes
    out (at ``hour`` UTC the day after): the last day that has ended for them by then."""
    sent = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(hour), dt.UTC)
    local = sent.astimezone(ZoneInfo(zone)) if zone else sent
    return local.date() - dt.timedelta(days=1)


def localized(digest: Digest, fmt: TextFormat) -> Digest:
    """``digest`` with its day written as ``fmt`` writes dates (in the subject and the
    opening line, where integrations.digest writes it in ISO form; a task title that holds
    the same date is left alone)."""
    iso = digest.day.isoformat()
    shown = fmt.date(iso)
    if shown == iso:
        return digest
    opening = f"What changed in your tasks on {iso}:"
    return dataclasses.replace(
        digest,
        subject=digest.subject.replace(f"changed on {iso}", f"changed on {shown}"),
        text=digest.text.replace(opening, f"What changed in your tasks on {shown}:", 1),
        html=digest.html.replace(opening, f"What changed in your tasks on {shown}:", 1),
    )


async def enqueue_localized(
    outbox: Outbox, recipients: Sequence[tuple[DigestRecipient, dt.date, TextFormat]]
) -> dict[str, int | None]:
    """Like ``integrations.digest.enqueue_daily_digests``, with a day and a date format per
    recipient (the key ``digest:<user>:<day>`` still sends each day's digest once)."""
    if not recipients:
        return {}
    windows = [day_window(day, r.timezone) for r, day, _ in recipients]
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    projects = sorted({p for r, _, _ in recipients for p in r.tasks})
    rows = await outbox.worker.run(read_activity, outbox.worker.conn, start, end, projects)
    out: dict[str, int | None] = {}
    for recipient, day, fmt in recipients:
        digest = compose_digest(recipient, day, rows)
        if digest is None or not recipient.email:
            out[recipient.user] = None
            continue
        digest = localized(digest, fmt)
        out[recipient.user] = await outbox.enqueue(
            DIGEST_PROJECT, digest.key, "email", "", digest.payload()
        )
    return out


def subscriber_projects(conn: sqlite3.Connection, users: list[str]) -> dict[str, list[str]]:
    """{user: the projects whose tasks they may read} for ``users`` (run on a worker thread):
    a digest names tasks, so it is a task notice (``rules.reads``), like a notification."""
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
        if readers(conn, project, [user], "task_notice"):
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
                    timezone=profile.time_zone or "UTC",
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
        settings = {p.name: (p.locale, p.time_zone) for p in profiles}
        result = await enqueue_localized(
            self.outbox,
            [
                (
                    r,
                    recipient_day(day, self.hour, settings[r.user][1]),
                    text_format(*settings[r.user]) if r.user in settings else PLAIN,
                )
                for r in recipients
            ],
        )
        sent = sum(1 for v in result.values() if v is not None)
        log.info("daily digest of %s: %d queued, %d recipient(s)", day, sent, len(recipients))
        return result
