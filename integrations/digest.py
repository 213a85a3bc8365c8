"""The daily email digest: what changed yesterday in each user's tasks.

Two halves:

- pure: :func:`compose_digest` (a recipient, a day, activity rows -> a
  :class:`Digest` with subject, text and HTML, or None when nothing changed)
  and :func:`day_window` (the day's bounds in the recipient's time zone);
- sending: :func:`enqueue_daily_digests` reads the activity stream (the
  ``activity`` table the activity extension writes, off the event loop) and
  puts one email per recipient into the outbox under the idempotency key
  ``digest:<user>:<YYYY-MM-DD>``, so a digest is sent at most once per user and
  day however often the scheduler calls (a restart, two servers on one file).

**Entry point for the scheduler** (the automation runner's, daily, e.g. at
06:00 in each recipient's time zone): ``await enqueue_daily_digests(outbox,
recipients, day)`` with ``day`` the date the digest covers (yesterday) and
``recipients`` built by the runner: each user who wants a digest, with the
address to send to and the tasks they are assigned to, per project
(:func:`assigned_tasks` picks them from a project's tasks). The accounts
table has no email address yet, so where addresses come from is the caller's
choice. Digest rows are cross-project, so their outbox ``project`` is ``""``
(no project's delivery listing shows them).

A user's own changes are left out: the digest tells what others did.
"""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.outbox import Outbox

DIGEST_PROJECT = ""
MAX_ITEMS = 200  # changes listed in one mail; more are counted, not listed


@dataclass(frozen=True)
class DigestRecipient:
    user: str
    email: str
    # project id -> {task id: title} of the tasks the user is assigned to
    tasks: Mapping[str, Mapping[str, str]]
    display_name: str = ""
    project_names: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    base_url: str = ""  # the server's public URL, for links ("" : no links)


@dataclass(frozen=True)
class DigestLine:
    project: str
    task: str
    title: str
    changes: tuple[str, ...]  # "moved to Done (bob)", ...


@dataclass(frozen=True)
class Digest:
    user: str
    to: str
    day: date
    subject: str
    text: str
    html: str
    lines: tuple[DigestLine, ...]
    changes: int  # activity rows counted

    def payload(self) -> dict[str, Any]:
        """The outbox payload of the digest email."""
        return {"to": [self.to], "subject": self.subject, "text": self.text, "html": self.html}

    @property
    def key(self) -> str:
        return digest_key(self.user, self.day)


def digest_key(user: str, day: date) -> str:
    return f"digest:{user}:{day.isoformat()}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_window(day: date, timezone: str = "UTC") -> tuple[float, float]:
    """The day's start and end (exclusive) as Unix times, in ``timezone``."""
    zone = _zone(timezone)
    start = datetime.combine(day, time.min, zone)
    end = datetime.combine(day + timedelta(days=1), time.min, zone)
    return start.timestamp(), end.timestamp()


def assigned_tasks(tasks: Iterable[Mapping[str, Any]], user: str) -> dict[str, str]:
    """{task id: title} of the tasks (JSON, with ``id``, ``title``, ``assignees``) ``user``
    is assigned to."""
    out: dict[str, str] = {}
    for task in tasks:
        assignees = task.get("assignees") or []
        if isinstance(assignees, list) and user in assignees and task.get("id"):
            out[str(task["id"])] = str(task.get("title") or "")
    return out


def describe(row: Mapping[str, Any]) -> str | None:
    """One activity row about a task, as a phrase ("moved to done"); None: not shown."""
    action = row.get("action")
    detail = row.get("detail") or {}
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            detail = {}
    if not isinstance(detail, dict):
        detail = {}
    if action == "task.created":
        return "created"
    if action == "task.deleted":
        return "deleted"
    if action == "task.status":
        return f"moved to {detail.get('status')}"
    if action == "task.assigned":
        people = detail.get("assignees") or []
        return "assigned to " + (", ".join(str(p) for p in people) if people else "nobody")
    if action == "task.updated":
        fields = [str(f) for f in detail.get("fields") or []]
        return "changed " + ", ".join(fields) if fields else "changed"
    return None


def compose_digest(
    recipient: DigestRecipient, day: date, rows: Iterable[Mapping[str, Any]]
) -> Digest | None:
    """The digest of ``rows`` (activity rows: ``at``, ``project``, ``actor``, ``action``,
    ``task``, ``detail``) for ``recipient`` on ``day``; None when nothing in their tasks
    changed that day (by someone else). Pure."""
    start, end = day_window(day, recipient.timezone)
    # (project, task) -> (first time, [phrases]); a phrase repeated keeps its first place
    found: dict[tuple[str, str], list[str]] = {}
    first_at: dict[tuple[str, str], float] = {}
    counted = 0
    for row in sorted(rows, key=lambda r: (float(r.get("at") or 0), r.get("id") or 0)):
        at = float(row.get("at") or 0)
        project, task = str(row.get("project") or ""), row.get("task")
        if not (start <= at < end) or not task or row.get("actor") == recipient.user:
            continue
        if str(task) not in recipient.tasks.get(project, {}):
            continue
        phrase = describe(row)
        if phrase is None:
            continue
        counted += 1
        key = (project, str(task))
        phrase = f"{phrase} ({row.get('actor')})"
        phrases = found.setdefault(key, [])
        first_at.setdefault(key, at)
        if phrase not in phrases:
            phrases.append(phrase)
    if not found:
        return None
    ordered = sorted(found, key=lambda k: (recipient.project_names.get(k[0], k[0]), first_at[k]))
    lines = tuple(
        DigestLine(project, task, recipient.tasks[project][task], tuple(found[(project, task)]))
        for project, task in ordered
    )
    tasks = len(lines)
    subject = (
        f"Tandem: {tasks} of your task{'s' if tasks != 1 else ''} changed on {day.isoformat()}"
    )
    name = recipient.display_name or recipient.user
    text_parts = [f"Hello {name},", "", f"What changed in your tasks on {day.isoformat()}:"]
    html_parts = [
        f"<p>Hello {html.escape(name)},</p>",
        f"<p>What changed in your tasks on {day.isoformat()}:</p>",
    ]
    current = None
    shown = 0
    for line in lines:
        if shown >= MAX_ITEMS:
            break
        if line.project != current:
            if current is not None:
                html_parts.append("</ul>")
            current = line.project
            title = recipient.project_names.get(line.project, line.project)
            text_parts += ["", title]
            html_parts.append(f"<h3>{html.escape(title)}</h3><ul>")
        label = line.title or line.task
        link = (
            f"{recipient.base_url.rstrip('/')}/#/p/{line.project}/task/{line.task}"
            if recipient.base_url
            else ""
        )
        text_parts.append(f"- {label}: {'; '.join(line.changes)}" + (f" <{link}>" if link else ""))
        shown_label = html.escape(label)
        if link:
            shown_label = f'<a href="{html.escape(link, quote=True)}">{shown_label}</a>'
        html_parts.append(f"<li>{shown_label}: {html.escape('; '.join(line.changes))}</li>")
        shown += 1
    html_parts.append("</ul>")
    if shown < len(lines):
        text_parts += ["", f"… and {len(lines) - shown} more."]
        html_parts.append(f"<p>… and {len(lines) - shown} more.</p>")
    text_parts += ["", "— Tandem (a daily digest of changes others made to your tasks)", ""]
    return Digest(
        user=recipient.user,
        to=recipient.email,
        day=day,
        subject=subject,
        text="\n".join(text_parts),
        html="\n".join(html_parts),
        lines=lines,
        changes=counted,
    )


def read_activity(
    conn: sqlite3.Connection, start: float, end: float, projects: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Task activity rows with ``start <= at < end`` (run on a worker thread)."""
    sql = (
        "SELECT id, at, project, actor, action, task, detail FROM activity"
        " WHERE at >= ? AND at < ? AND task IS NOT NULL"
    )
    args: list[Any] = [start, end]
    if projects is not None:
        if not projects:
            return []
        sql += f" AND project IN ({','.join('?' * len(projects))})"
        args.extend(projects)
    out = []
    for r in conn.execute(sql + " ORDER BY id", args):
        try:
            detail = json.loads(r[6]) if r[6] else {}
        except ValueError:
            detail = {}
        out.append(
            {
                "id": r[0],
                "at": r[1],
                "project": r[2],
                "actor": r[3],
                "action": r[4],
                "task": r[5],
                "detail": detail,
            }
        )
    return out


async def enqueue_daily_digests(
    outbox: Outbox, recipients: Sequence[DigestRecipient], day: date
) -> dict[str, int | None]:
    """Compose each recipient's digest of ``day`` and put it in the outbox (key
    ``digest:<user>:<day>``). Returns {user: outbox id}; None for a user with nothing to
    tell or whose digest of that day was queued before. The scheduler's daily hook."""
    if not recipients:
        return {}
    windows = [day_window(day, r.timezone) for r in recipients]
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    projects = sorted({p for r in recipients for p in r.tasks})
    rows = await outbox.worker.run(read_activity, outbox.worker.conn, start, end, projects)
    out: dict[str, int | None] = {}
    for recipient in recipients:
        digest = compose_digest(recipient, day, rows)
        if digest is None or not recipient.email:
            out[recipient.user] = None
            continue
        out[recipient.user] = await outbox.enqueue(
            DIGEST_PROJECT, digest.key, "email", "", digest.payload()
        )
    return out
