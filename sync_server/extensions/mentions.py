"""@mentions in tasks' titles and descriptions: a ``mention`` event once the typing settles.

Chat messages and comments are posted whole, so the gate's domain events name their
mentions at once (``doc_model.domain_events``). A task's title and description are
typed a keystroke at a time, and their events carry no text (a description can be
100,000 characters): this extension (``mentions``, a durable change-feed consumer)
notes which tasks' text was touched, by whom, and once nobody has touched a task's
text for ``mention_settle_seconds`` (a burst of typing has ended) it reads the title and
description from the live document and compares the names they mention
(``doc_model.mentions``) with those they mentioned when they last settled
(``mention_marks``, migration 20). For each name added that belongs to a member who may
read the project's tasks (``rules.reads``: never a non-member, never someone without
``view_tasks``), it stores a ``mention`` domain event in the change feed, in the same
transaction that moves ``mention_marks`` on (``feed.insert_events_row``): the
notification centre and the automation runner's ``mentioned`` trigger read it as they
read a comment's mention, with ``detail["where"] == "task"`` and ``detail["task"]``.

So typing ``@alice`` character by character tells alice once (``@a``, ``@al``... are
never seen settled), re-saving the same text tells nobody, and removing and re-typing
a mention within one burst tells nobody again; removing it, letting the text settle
and adding it later is a new mention. The actor of the event is whoever touched the
task's text last in the burst (an automation rule's write keeps its chain depth).

A task created with text (REST, a client, a rule) settles the same way. A deleted task's
marks are dropped. Known limit: the bursts waiting to settle live in memory, so a
server stopped within ``mention_settle_seconds`` of an edit does not tell of the
mentions that edit added (the consumer's cursor has passed it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Map

from doc_model import DocKind, DomainEvent, parse_doc_name
from doc_model.mentions import TEXT_FIELDS, added_mentions, excerpt, task_mentions
from rules.reads import root_needs
from sync_server.extensions.feed import insert_events_row
from sync_server.extensions.protocol import Extension, ServerContext
from sync_server.identity.access import permissions_of
from sync_server.interfaces import Actor, DocumentChanged
from sync_server.storage.database import SQLiteWorker, connect

if TYPE_CHECKING:
    import sqlite3

    from pycrdt import Doc

log = logging.getLogger("tandem.mentions")

TOUCHING = frozenset({"task_created", "task_field_changed", "task_deleted"})
TASK_READ = root_needs(DocKind.MAIN, "tasks")

Key = tuple[str, str]  # (doc name, task id)


@dataclass
class _Burst:
    actor: Actor
    deadline: float


class Bursts:
    """Tasks whose text is being typed, each settled ``quiet`` seconds after its last touch
    (pure bookkeeping against a clock the caller passes)."""

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self._open: dict[Key, _Burst] = {}

    def touch(self, key: Key, actor: Actor, now: float) -> None:
        self._open[key] = _Burst(actor, now + self.quiet)

    def drop(self, key: Key) -> None:
        self._open.pop(key, None)

    def settled(self, now: float) -> list[tuple[Key, Actor]]:
        """The bursts quiet since ``now - quiet``, removed from those open."""
        due = [(k, b.actor) for k, b in self._open.items() if b.deadline <= now]
        for key, _ in due:
            del self._open[key]
        return due

    def next_deadline(self) -> float | None:
        return min((b.deadline for b in self._open.values()), default=None)

    def __len__(self) -> int:
        return len(self._open)


def touched_tasks(change: DocumentChanged) -> list[tuple[str, bool]]:
    """(task, deleted) for each task whose title or description ``change`` touched (created
    with them, edited) or that it deleted; main documents only."""
    out: dict[str, bool] = {}
    for event in change.events:
        if not isinstance(event.entity, str) or event.kind not in TOUCHING:
            continue
        if event.kind == "task_deleted":
            out[event.entity] = True
        elif event.kind == "task_created" or event.field in TEXT_FIELDS:
            out[event.entity] = False
    return list(out.items())


def read_task_text(doc: Doc[Any], task: str) -> dict[str, str] | None:
    """A task's title and description as they are now (None: no such task)."""
    with doc.transaction():
        record = doc.get("tasks", type=Map).get(task)
        if not isinstance(record, Map):
            return None
        return {name: str(record.get(name) or "") for name in TEXT_FIELDS}


def settle_mentions(
    conn: sqlite3.Connection,
    doc_name: str,
    project: str,
    task: str,
    text: dict[str, str] | None,
    actor: Actor,
) -> list[DomainEvent]:
    """One transaction: the mentions ``text`` (None: the task is gone) adds to what the task
    mentioned when it last settled, of members who may read tasks, stored as a feed row of
    ``mention`` events; ``mention_marks`` moves on to what ``text`` mentions."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = {
            row[0]
            for row in conn.execute(
                "SELECT user FROM mention_marks WHERE project = ? AND task = ?", (project, task)
            )
        }
        now_named = task_mentions(text) if text is not None else frozenset()
        gone = before - now_named
        conn.executemany(
            "DELETE FROM mention_marks WHERE project = ? AND task = ? AND user = ?",
            [(project, task, user) for user in gone],
        )
        added = added_mentions(before, now_named)
        conn.executemany(
            "INSERT OR IGNORE INTO mention_marks (project, task, user, created) VALUES (?,?,?,?)",
            [(project, task, user, time.time()) for user in added],
        )
        events: list[DomainEvent] = []
        if text is not None:
            for user in added:
                if not permissions_of(conn, user, project) >= TASK_READ:
                    continue  # not a member, or may not read tasks: nobody to tell
                field = next(f for f in TEXT_FIELDS if user in task_mentions({f: text[f]}))
                detail = {
                    "where": "task",
                    "task": task,
                    "field": field,
                    "title": text["title"],
                    "text": excerpt(text[field], user),
                    "author": actor.user_id,
                }
                events.append(DomainEvent("mention", user, None, None, user, detail))
        if events:
            insert_events_row(conn, doc_name, actor, events)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return events


class MentionWatch(Extension):
    """The ``mentions`` extension: see the module docstring."""

    name = "mentions"
    event_kinds = TOUCHING

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.db: SQLiteWorker | None = None
        self.bursts = Bursts(5.0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ctx: ServerContext | None = None

    async def startup(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self.bursts.quiet = ctx.settings.mention_settle_seconds
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        self._task = asyncio.get_running_loop().create_task(self._settle_loop(), name="mentions")

    async def shutdown(self, ctx: ServerContext) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.db is not None:
            await self.db.close()

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        now = self.clock()
        for change in changes:
            try:
                name = parse_doc_name(change.doc_name)
            except ValueError:
                continue
            if name.kind is not DocKind.MAIN:
                continue
            for task, deleted in touched_tasks(change):
                key = (change.doc_name, task)
                if deleted:
                    self.bursts.drop(key)
                    await self._settle(key, change.actor, gone=True)
                else:
                    self.bursts.touch(key, change.actor, now)
        self._wake.set()

    async def _settle_loop(self) -> None:
        while True:
            deadline = self.bursts.next_deadline()
            self._wake.clear()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = deadline - self.clock()
            if delay > 0:
                timer = asyncio.get_running_loop().call_later(delay, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
                continue
            await self.settle_due()

    async def settle_due(self) -> int:
        """Settle every burst quiet long enough; how many were settled."""
        due = self.bursts.settled(self.clock())
        for key, actor in due:
            try:
                await self._settle(key, actor)
            except Exception:
                log.exception("settling the mentions of a task failed", extra={"doc": key[0]})
        return len(due)

    async def _settle(self, key: Key, actor: Actor, gone: bool = False) -> None:
        from sync_server.extensions.context import TandemContext

        ctx = self._ctx
        assert isinstance(ctx, TandemContext) and self.db is not None
        doc_name, task = key
        name = parse_doc_name(doc_name)
        text = None
        if not gone:
            view = await ctx.live.read(name)
            text = read_task_text(view.doc, task)
        events = await self.db.run(
            settle_mentions, self.db.conn, doc_name, name.project_id, task, text, actor
        )
        if events:
            ctx.feed.wake()
