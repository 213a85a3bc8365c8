"""The durable change feed: every stored update, in commit order, for consumers to follow.

``SQLiteStore.append`` writes one ``change_feed`` row per update in the same
transaction as the update (doc name, the update's seq, the actor, its changes
and domain events as JSON), so a row exists if and only if its update is
durable, whichever process wrote it (the server, the CLI, another server).
Row ids are assigned under SQLite's write lock, so id order is commit order.

A consumer (:meth:`ChangeFeed.subscribe`) runs in a task of its own: it reads
the rows after its cursor (on a worker thread, never on the event loop), hands
them to its handler as :class:`DocumentChanged` values, and only once the
handler has returned moves its cursor past them (rows with neither changes nor
events, a rejected update's revert or a schema migration, are passed over
without a call). Delivery is at-least-once: a busy consumer stores its cursor
at most once a second (each store takes the write lock the rooms' appends
need), and at once when it goes idle or the feed closes, so a crash delivers
at most the last second's batches again after a restart; a consumer that must
not act twice dedups by ``feed_id``. Rows are parsed once, on the reader's
thread, and the same DocumentChanged values are handed to every consumer that
reads them (they usually read the same rows moments apart). A handler that raises is logged and called again with the same
batch after a backoff (0.5 s doubling to 30 s); no other consumer waits for it.

Cursors: a durable consumer's cursor is stored in ``feed_cursors`` under its
name; a durable consumer seen for the first time starts at the newest row
(what happened before it was installed is not replayed; its cursor is stored
at once, so nothing committed after its first start is ever skipped). A
non-durable consumer starts at the newest row whenever the feed starts and
keeps its cursor in memory only.

Retention: rows every stored cursor has passed and older than
``retention_seconds`` are deleted in the background, on the feed's writer
thread. A cursor nobody advances any more (an extension uninstalled) holds rows
back until ``max_retention_seconds`` (90 days), past which rows are deleted
whoever has not read them (logged with the consumers that missed them); delete
a removed consumer's ``feed_cursors`` row to release them sooner.

New rows are noticed through :meth:`ChangeFeed.wake` (the room calls it after
each append) and, for other processes' writes, by polling every
``poll_seconds``.

Several servers (``leases``, ``sync_server.scale.leases``): each durable consumer
runs on one node at a time, the holder of lease ``feed:<name>``. It starts from
the stored cursor when it takes the lease, and every cursor store checks the
lease's fencing token in the same transaction: a node whose lease was taken over
cannot move the cursor (``FenceLost``) and stops. What it delivered after the
stored cursor is delivered again by the new holder (at-least-once, as after a
crash): consumers dedup by ``feed_id`` (automation's runs, the outbox's keys).
Non-durable consumers run on every node.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doc_model import Change, DomainEvent
from sync_server.interfaces import Actor, DocumentChanged
from sync_server.scale.fences import Fence, FenceLost
from sync_server.storage.database import SQLiteWorker, connect, is_locked

if TYPE_CHECKING:
    from sync_server.scale.leases import RedisLeases

log = logging.getLogger("tandem.feed")

Handler = Callable[[Sequence[DocumentChanged]], Awaitable[None]]

current_fence: ContextVar[Fence | None] = ContextVar("current_fence", default=None)
"""While a leased consumer's handler runs: the fence of the lease it runs under, for the
writes the handler must fence itself (automation's run claims)."""

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
GATHER_SECONDS = 0.05  # after a short batch, wait this long so a burst is read as one
CURSOR_STORE_SECONDS = 1.0
CLOSE_STORE_SECONDS = 5.0  # at close, storing each cursor waits for the write lock this long  # a busy consumer stores its cursor at most this often
PARSED_ROWS_KEPT = 4_096  # rows read and parsed once, for every consumer that reads them
PARSED_SHAPES_KEPT = 256  # distinct (changes, events) texts parsed once (a typing burst: one)
PRUNE_ROWS_PER_TRANSACTION = 5_000  # short write transactions: other writers wait less


def parse_actor(text: str) -> Actor:
    """The inverse of ``str(Actor)``: ``alice`` is a user, ``system:team`` a system actor,
    ``alice|automation:r1:2`` alice's rule r1 writing at chain depth 2."""
    text, _, via = text.partition("|")
    kind, sep, user = text.partition(":")
    if sep and kind == "system":
        return Actor(user, kind="system", via=via)
    return Actor(text, via=via)


def parse_changes(text: str) -> tuple[Change, ...]:
    return tuple(Change(tuple(path), action) for path, action in json.loads(text))


def parse_events(text: str) -> tuple[DomainEvent, ...]:
    return tuple(DomainEvent.from_json(e) for e in json.loads(text))


def insert_events_row(
    conn: sqlite3.Connection,
    doc_name: str,
    actor: Actor,
    events: Sequence[DomainEvent],
    now: float | None = None,
) -> int:
    """Store a feed row of domain events that no update carries (seq 0, no changes): what
    the server worked out later about a document, such as the mentions a settled burst of
    typing added (sync_server.extensions.mentions). Runs in the caller's transaction, so
    the row is stored if and only if what the caller writes beside it is; consumers see it
    like any other row (call :meth:`ChangeFeed.wake` after the commit)."""
    cur = conn.execute(
        "INSERT INTO change_feed (doc_name, seq, actor, changes, events, created)"
        " VALUES (?, 0, ?, '[]', ?, ?)",
        (
            doc_name,
            str(actor),
            json.dumps([e.to_json() for e in events], separators=(",", ":")),
            time.time() if now is None else now,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def document_events_after(
    conn: sqlite3.Connection, doc_name: str, after: int, up_to_seq: int
) -> list[DomainEvent]:
    """The domain events of ``doc_name``'s updates stored after feed row ``after`` whose
    seq is at most ``up_to_seq``, in commit order: what a read of the document at
    ``up_to_seq`` holds beyond a consumer's batch that ends at row ``after`` (a row exists
    for every durable update, so none is missing). Reads only the feed's tail past
    ``after``."""
    events: list[DomainEvent] = []
    for (text,) in conn.execute(
        "SELECT events FROM change_feed WHERE id > ? AND doc_name = ? AND seq > 0"
        " AND seq <= ? ORDER BY id",
        (after, doc_name, up_to_seq),
    ):
        events.extend(parse_events(text))
    return events


@dataclass
class _Consumer:
    name: str
    handler: Handler
    durable: bool
    batch: int
    kinds: frozenset[str] | None = None  # only rows with an event of these kinds (None: all)
    position: int = -1  # -1: not started
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    failures: int = 0  # consecutive failed handler calls (backoff)
    stored: int = -1  # the position last stored (durable consumers)
    stored_at: float = 0.0  # monotonic time it was stored
    fence: Fence | None = None  # the lease holding it runs under (several servers)


class ChangeFeed:
    """Consumers of the change feed, each in its own task (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        poll_seconds: float = 0.5,
        retention_seconds: float = 7 * 86400,
        max_retention_seconds: float | None = 90 * 86400,
        prune_interval_seconds: float = 3600.0,
        retry_first_seconds: float = RETRY_FIRST_SECONDS,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
        leases: RedisLeases | None = None,
        before_deliver: Handler | None = None,
    ) -> None:
        self.path = str(path)
        # awaited before a batch reaches a handler (several servers: the rooms this node holds
        # catch up with the rows' updates first, which may have been stored by another node
        # and not yet relayed here, so a handler reading a live document sees them)
        self.before_deliver = before_deliver
        self.leases = leases  # several servers: one node runs each durable consumer
        self.poll_seconds = poll_seconds
        self.retention_seconds = retention_seconds
        self.max_retention_seconds = max_retention_seconds
        self.prune_interval_seconds = prune_interval_seconds
        self.retry_first_seconds = retry_first_seconds
        self.retry_max_seconds = retry_max_seconds
        self.gather_seconds = gather_seconds
        self._consumers: dict[str, _Consumer] = {}
        # The newest rows read, parsed (None: a row that tells nothing), on the reader's
        # thread only: every row with an id in (_window_after, _window_ids[-1]] is in it, so
        # consumers reading the same rows (they usually do, moments apart) share one read
        # and one parse, and only the rows beyond it are read from the file.
        self._window_after = 0
        self._window_ids: list[int] = []
        self._window: list[DocumentChanged | None] = []
        # what rows' texts parse to: a typing burst's rows all have the same texts
        self._shapes: dict[tuple[str, str], tuple[tuple[Change, ...], tuple[DomainEvent, ...]]]
        self._shapes = {}
        self._actors: dict[str, Actor] = {}
        self._reader: SQLiteWorker | None = None
        self._writer: SQLiteWorker | None = None
        self._pruner: asyncio.Task | None = None
        self._started = False
        self._closed = False

    # -- public ------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        durable: bool = True,
        batch: int = 500,
        kinds: Collection[str] | None = None,
    ) -> None:
        """Deliver every row after this consumer's cursor to ``handler``, in order, in
        batches of at most ``batch``; durable consumers keep their cursor across restarts.
        ``kinds``: only rows with a domain event of one of these kinds are delivered (the
        others are passed over, as rows that tell nothing are); None: every row."""
        if not name:
            raise ValueError("a feed consumer needs a name")
        if name in self._consumers:
            raise ValueError(f"a feed consumer named {name!r} is already subscribed")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        consumer = _Consumer(
            name, handler, durable, batch, None if kinds is None else frozenset(kinds)
        )
        self._consumers[name] = consumer
        if self._started:
            consumer.task = asyncio.get_running_loop().create_task(
                self._run(consumer), name=f"feed {name}"
            )

    async def start(self) -> None:
        """Open the feed's connections and start every consumer's task (and the pruner)."""
        if self._started:
            return
        # reads (WAL: never wait for the write lock) and cursor writes on threads of their own
        self._reader = SQLiteWorker(connect(self.path, synchronous="NORMAL"))
        self._writer = SQLiteWorker(connect(self.path, synchronous="NORMAL"))
        self._started = True
        loop = asyncio.get_running_loop()
        for consumer in self._consumers.values():
            # where each starts is settled before start() returns, so that nothing the
            # server stores once it serves can fall before a new consumer's first cursor
            # (with leases: by the node that takes the lease, from the stored cursor)
            if self._leased(consumer):
                # a new consumer's first cursor, stored by whichever node starts first; the
                # lease's holder starts from the stored one
                try:
                    await self._writer.run(self._durable_start, consumer.name, None)
                except sqlite3.Error as e:
                    log.warning("feed consumer %s cannot start yet: %s", consumer.name, e)
                consumer.task = loop.create_task(self._run(consumer), name=f"feed {consumer.name}")
                continue
            try:
                consumer.position = await self._start_position(consumer)
            except sqlite3.Error as e:  # its task tries again
                log.warning("feed consumer %s cannot start yet: %s", consumer.name, e)
            consumer.task = loop.create_task(self._run(consumer), name=f"feed {consumer.name}")
        if self.prune_interval_seconds > 0:
            self._pruner = loop.create_task(self._prune_loop(), name="feed pruner")

    def wake(self) -> None:
        """New rows were committed by this process: consumers read now, not at the next poll."""
        for consumer in self._consumers.values():
            consumer.wake.set()

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Let consumers catch up with the rows stored so far for up to ``drain_seconds``,
        then stop them (a handler call in progress is cancelled: its batch is delivered
        again next time) and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._started and drain_seconds > 0:
            await self._drain(drain_seconds)
        tasks = [c.task for c in self._consumers.values() if c.task is not None]
        if self._pruner is not None:
            tasks.append(self._pruner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in self._consumers.values():  # the throttled stores catch up
            if consumer.durable and consumer.position >= 0 and consumer.stored != consumer.position:
                # bounded: a write lock held by another process must not hang the shutdown
                # (the rows since the last stored cursor are delivered again next start)
                try:
                    await asyncio.wait_for(self._store_cursor(consumer), CLOSE_STORE_SECONDS)
                except TimeoutError:
                    log.warning("feed cursor of %s not stored at close", consumer.name)
                except FenceLost as e:
                    log.warning("feed cursor of %s not stored at close: %s", consumer.name, e)
        for worker in (self._reader, self._writer):
            if worker is not None:
                await worker.close()

    async def _drain(self, seconds: float) -> None:
        assert self._reader is not None
        deadline = time.monotonic() + seconds
        try:
            newest = await self._reader.run(self._newest)
        except sqlite3.Error:
            return
        self.wake()
        while time.monotonic() < deadline and any(
            c.position < newest and c.task is not None and not c.task.done() and self._runs_here(c)
            for c in self._consumers.values()
        ):
            await asyncio.sleep(0.02)

    def position(self, name: str) -> int:
        """Where consumer ``name`` is (the last row id it finished), -1 before it started."""
        return self._consumers[name].position

    async def lag(self) -> dict[str, int]:
        """Rows each started consumer has yet to finish (the newest row's id minus its
        position), read off the event loop; empty before the feed started."""
        if self._reader is None or self._closed:
            return {}
        newest = await self._reader.run(self._newest)
        return {
            c.name: max(0, newest - c.position) for c in self._consumers.values() if c.position >= 0
        }

    async def prune(self, now: float | None = None) -> int:
        """Delete rows past retention that every stored cursor has passed; returns how many."""
        assert self._writer is not None, "the feed is not started"
        return await self._writer.run(self._prune, time.time() if now is None else now)

    # -- consumer task -----------------------------------------------------------

    def _leased(self, consumer: _Consumer) -> bool:
        return self.leases is not None and consumer.durable

    def _runs_here(self, consumer: _Consumer) -> bool:
        """Whether this node runs the consumer (always, without leases)."""
        if self.leases is None or not consumer.durable:
            return True
        return self.leases.held(f"feed:{consumer.name}") is not None

    async def _run(self, consumer: _Consumer) -> None:
        if not self._leased(consumer):
            await self._follow(consumer, None)
            return
        assert self.leases is not None
        while True:
            lease = await self.leases.acquire(f"feed:{consumer.name}")
            consumer.fence, consumer.position, consumer.stored = lease.fence, -1, -1
            log.info("feed consumer %s runs here (token %d)", consumer.name, lease.token)
            try:
                await self._follow(consumer, lease.lost)
            except FenceLost as e:
                log.warning("feed consumer %s stops: %s", consumer.name, e)
            if not lease.lost.is_set():
                await self.leases.release(lease)

    async def _follow(self, consumer: _Consumer, lost: asyncio.Event | None) -> None:
        """Deliver rows from the consumer's cursor on; returns when ``lost`` is set."""
        while consumer.position < 0:
            try:
                consumer.position = await self._start_position(consumer)
            except sqlite3.Error as e:
                log.warning("feed consumer %s cannot start yet: %s", consumer.name, e)
                await asyncio.sleep(self.retry_first_seconds)
        assert self._reader is not None
        while lost is None or not lost.is_set():
            consumer.wake.clear()  # before reading: a wake during the read is not lost
            try:
                last, changed = await self._reader.run(
                    self._read_changed, consumer.position, consumer.batch, consumer.kinds
                )
            except sqlite3.Error:
                log.exception("reading the change feed for %s failed", consumer.name)
                last, changed = None, []
            if last is None:
                if consumer.durable and consumer.stored != consumer.position:
                    await self._store_cursor(consumer)  # idle: the throttled store catches up
                # woken by wake() or by the poll timer (not asyncio.wait_for: a cancelled
                # wait_for inside the server's lifespan task was seen to hang shutdown)
                timer = asyncio.get_running_loop().call_later(self.poll_seconds, consumer.wake.set)
                try:
                    await consumer.wake.wait()
                finally:
                    timer.cancel()
                continue
            if changed:
                await self._deliver(consumer, changed, lost)
            consumer.position = last
            short = len(changed) < consumer.batch
            # stored at most once a CURSOR_STORE_SECONDS while busy (each store takes the
            # write lock the rooms' appends need), and at once when the consumer goes idle
            # or the feed closes: a crash redelivers at most that second's rows
            if consumer.durable and time.monotonic() - consumer.stored_at >= CURSOR_STORE_SECONDS:
                await self._store_cursor(consumer)
            if short and self.gather_seconds > 0:
                # A short batch: the consumer has caught up with a writer that is still
                # writing (the rooms append every few ms while people type). Reading again
                # at once would make a read, a handler call and (for most handlers) a
                # SQLite transaction per append, each taking the write lock the rooms'
                # appends need; gathering for a moment reads the burst as one.
                await asyncio.sleep(self.gather_seconds)

    async def _deliver(
        self, consumer: _Consumer, events: list[DocumentChanged], lost: asyncio.Event | None
    ) -> None:
        """Call the handler until it returns (at-least-once), backing off while it raises
        (and while this node holds the consumer's lease)."""
        while lost is None or not lost.is_set():
            try:
                if self.before_deliver is not None:
                    await self.before_deliver(events)
                token = current_fence.set(consumer.fence if lost is not None else None)
                try:
                    await consumer.handler(events)
                finally:
                    current_fence.reset(token)
                consumer.failures = 0
                return
            except Exception:
                consumer.failures += 1
                delay = min(
                    self.retry_max_seconds,
                    self.retry_first_seconds * 2 ** (consumer.failures - 1),
                )
                log.exception(
                    "feed consumer %s failed on %d change(s) (rows %d-%d); retrying in %.1f s",
                    consumer.name,
                    len(events),
                    events[0].feed_id,
                    events[-1].feed_id,
                    delay,
                    extra={"doc": events[0].doc_name},
                )
                await asyncio.sleep(delay)

    def _parse(self, row: tuple) -> DocumentChanged | None:
        """One row (id, doc_name, seq, actor, changes, events) as a DocumentChanged; None
        for a row with neither changes nor events (a revert's net effect, a migration)."""
        feed_id, doc_name, seq, actor_text, changes_text, events_text = row
        if changes_text == "[]" and events_text == "[]":
            return None
        shape = self._shapes.get((changes_text, events_text))
        if shape is None:
            try:
                shape = (parse_changes(changes_text), parse_events(events_text))
            except (ValueError, TypeError, KeyError) as e:
                # a damaged row is delivered without them rather than stopping the consumer
                log.error("change feed row %d is not readable: %s", feed_id, e)
                shape = ((), ())
            else:
                if len(self._shapes) >= PARSED_SHAPES_KEPT:
                    self._shapes.clear()
                self._shapes[(changes_text, events_text)] = shape
        actor = self._actors.get(actor_text)
        if actor is None:
            if len(self._actors) >= PARSED_SHAPES_KEPT:
                self._actors.clear()
            actor = self._actors[actor_text] = parse_actor(actor_text)
        changes, events = shape
        return DocumentChanged.stored(doc_name, actor, changes, events, feed_id, seq)

    async def _start_position(self, consumer: _Consumer) -> int:
        assert self._writer is not None
        if consumer.durable:
            return await self._writer.run(self._durable_start, consumer.name, consumer.fence)
        assert self._reader is not None
        return await self._reader.run(self._newest)

    async def _store_cursor(self, consumer: _Consumer) -> None:
        """Store the cursor; while another process holds the write lock, the consumer waits
        (at worst its last batch is delivered again after a crash meanwhile)."""
        assert self._writer is not None
        delay = self.retry_first_seconds
        while True:
            position = consumer.position
            try:
                await self._writer.run(self._write_cursor, consumer.name, position, consumer.fence)
                consumer.stored, consumer.stored_at = position, time.monotonic()
                return
            except sqlite3.Error as e:
                if not is_locked(e):  # stored with the next batch; until then, redelivered
                    log.error("storing feed cursor of %s failed: %s", consumer.name, e)
                    return
                log.warning("storing feed cursor of %s waits for the write lock", consumer.name)
                await asyncio.sleep(delay)
                delay = min(self.retry_max_seconds, delay * 2)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.prune_interval_seconds)
            try:
                pruned = await self.prune()
                if pruned:
                    log.info("pruned %d change feed row(s)", pruned)
            except sqlite3.Error as e:
                log.warning("pruning the change feed failed: %s", e)

    # -- worker-thread implementations ------------------------------------------

    def _read_changed(
        self, after: int, limit: int, kinds: frozenset[str] | None = None
    ) -> tuple[int | None, list[DocumentChanged]]:
        """The id of the last row after ``after`` (None: none yet), and those rows that tell
        something (to a consumer of ``kinds``) as DocumentChanged. A row with neither
        changes nor events is a revert's net effect (or a migration): stored, passed by
        the cursor, told to nobody."""
        ids, rows = self._rows_after(after, limit)
        if not ids:
            return None, []
        if kinds is None:
            return ids[-1], [r for r in rows if r is not None]
        return ids[-1], [
            r for r in rows if r is not None and any(e.kind in kinds for e in r.events)
        ]

    def _rows_after(self, after: int, limit: int) -> tuple[list[int], list[DocumentChanged | None]]:
        """Up to ``limit`` rows after ``after``, in id order, parsed: from the window of
        rows read last where it has them, the rest read from the file (and added to the
        window when they continue it)."""
        ids, window = self._window_ids, self._window
        out_ids: list[int] = []
        out: list[DocumentChanged | None] = []
        if ids and self._window_after <= after < ids[-1]:
            i = bisect.bisect_right(ids, after)
            out_ids, out = ids[i : i + limit], window[i : i + limit]
            if len(out_ids) == limit:
                return out_ids, out
            after = ids[-1]  # the rest (rows committed since the window was read)
        read = self._read(after, limit - len(out_ids))
        fresh_ids = [row[0] for row in read]
        fresh = [self._parse(row) for row in read]
        if ids and after == ids[-1]:  # the window continues
            ids.extend(fresh_ids)
            window.extend(fresh)
        elif fresh_ids and (not ids or after > ids[-1]):  # ahead of the window: a new one
            self._window_after, self._window_ids, self._window = after, fresh_ids, fresh
        # (behind the window: a consumer catching up reads on its own; the window stays)
        excess = len(self._window_ids) - PARSED_ROWS_KEPT
        if excess > 0:
            self._window_after = self._window_ids[excess - 1]
            del self._window_ids[:excess]
            del self._window[:excess]
        return out_ids + fresh_ids, out + fresh

    def _read(self, after: int, limit: int) -> list[tuple]:
        assert self._reader is not None
        return self._reader.conn.execute(
            "SELECT id, doc_name, seq, actor, changes, events FROM change_feed"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()

    def _newest(self, conn: sqlite3.Connection | None = None) -> int:
        if conn is None:
            assert self._reader is not None
            conn = self._reader.conn
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM change_feed").fetchone()[0])

    def _durable_start(self, name: str, fence: Fence | None = None) -> int:
        assert self._writer is not None
        c = self._writer.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            if fence is not None:
                fence(c)
            row = c.execute(
                "SELECT position FROM feed_cursors WHERE consumer = ?", (name,)
            ).fetchone()
            if row is not None:
                position = int(row[0])
            else:  # a new consumer starts at the newest row, stored at once
                position = self._newest(c)
                c.execute(
                    "INSERT INTO feed_cursors (consumer, position, updated) VALUES (?, ?, ?)",
                    (name, position, time.time()),
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return position

    def _write_cursor(self, name: str, position: int, fence: Fence | None = None) -> None:
        assert self._writer is not None
        c = self._writer.conn
        if fence is not None:  # checked in the write's own transaction
            c.execute("BEGIN IMMEDIATE")
        try:
            if fence is not None:
                fence(c)
            c.execute(
                "INSERT INTO feed_cursors (consumer, position, updated) VALUES (?, ?, ?)"
                " ON CONFLICT(consumer) DO UPDATE SET position = excluded.position,"
                " updated = excluded.updated",
                (name, position, time.time()),
            )
            if fence is not None:
                c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _prune(self, now: float) -> int:
        assert self._writer is not None
        c = self._writer.conn
        row = c.execute("SELECT min(position) FROM feed_cursors").fetchone()
        # no stored cursor at all: nothing durable waits for rows, age alone decides
        passed: Any = row[0] if row is not None else None
        total = self._delete_rows(now - self.retention_seconds, passed)
        if self.max_retention_seconds is not None:
            # the hard cap: a cursor nobody advances (a removed consumer) must not keep
            # every row forever; a consumer that far behind misses them, and is told
            cap = now - self.max_retention_seconds
            behind = c.execute(
                "SELECT consumer FROM feed_cursors WHERE position <"
                " (SELECT max(id) FROM change_feed WHERE created < ?)",
                (cap,),
            ).fetchall()
            dropped = self._delete_rows(cap, None)
            if dropped and behind:
                log.warning(
                    "dropped %d change feed row(s) older than %.0f days that consumer(s) %s"
                    " had not reached",
                    dropped,
                    self.max_retention_seconds / 86400,
                    ", ".join(r[0] for r in behind),
                )
            total += dropped
        return total

    def _delete_rows(self, cutoff: float, passed: int | None) -> int:
        """Delete rows created before ``cutoff`` (and, given ``passed``, with an id up to it),
        in short transactions."""
        assert self._writer is not None
        c = self._writer.conn
        where = "created < ?" + (" AND id <= ?" if passed is not None else "")
        params: tuple = (cutoff, passed) if passed is not None else (cutoff,)
        total = 0
        while True:
            c.execute("BEGIN IMMEDIATE")
            try:
                deleted = c.execute(
                    f"DELETE FROM change_feed WHERE id IN (SELECT id FROM change_feed WHERE {where}"
                    " ORDER BY id LIMIT ?)",
                    (*params, PRUNE_ROWS_PER_TRANSACTION),
                ).rowcount
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            total += deleted
            if deleted < PRUNE_ROWS_PER_TRANSACTION:
                return total
