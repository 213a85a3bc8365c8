"""SQLiteStore: the SQL DocumentStore (see interfaces.py), on a SQLite file (the embedded
default) or a PostgreSQL database (``SQLiteStore("postgresql://...")``: the same code and
SQL through ``postgres.PgConnection``; see docs/storage.md).

Each document is a snapshot plus a log of updates with store-assigned
sequence numbers, each stored with its CRC-32 and checked whenever it is read
(a damaged row raises :class:`CorruptDocument`; ``tandem doctor`` finds and
recovers them). All SQLite work runs on worker threads, never on the event
loop: one connection and thread for the log's writes, one for reads (in WAL a
reader never waits for the write lock, so a room opening does not queue behind
an append stuck on another process's lock), another for compaction
(``database.SQLiteWorker``). ``append`` commits
before it returns; with ``synchronous=FULL`` that survives power loss, with
``NORMAL`` a killed process.

Compaction folds the snapshot and the log up to some sequence number S into
a new snapshot. It runs on its own connection and thread once a log past
``compact_threshold`` has had no append for ``compact_delay`` (see
``_schedule_compaction``), so appends never wait for a fold, and the fold
itself runs in a child process (``folding``), so the event loop does not wait
for it either. It reads in a read transaction and folds holding no lock; only
the write (new snapshot, delete ``seq <= S``) takes the write lock, and it
first checks that nobody compacted meanwhile. Sequence numbers are AUTOINCREMENT and
assigned under the write lock, so an update committed after the read has
``seq > S`` and is never deleted unread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from pycrdt import Doc

from doc_model import DocName, declare_roots
from sync_server.interfaces import StoredDocument, StoredUpdate, UpdateRecord
from sync_server.storage.database import SQLiteWorker, checksum, connect, is_locked, migrate
from sync_server.storage.folding import FoldProcess
from sync_server.storage.postgres import is_postgres

log = logging.getLogger("tandem.storage")

PING_LOCK_WAIT_SECONDS = 1.0  # readiness: longer than any append holds the lock


class StorageError(RuntimeError):
    """Stored data that cannot be read back; names the document."""


class CorruptDocument(StorageError):
    """A stored update or snapshot whose bytes are not the ones written (checksum mismatch)."""

    def __init__(self, doc_name: str, seq: int | None, reason: str) -> None:
        where = f"update {seq}" if seq is not None else "snapshot"
        super().__init__(f"{doc_name} is corrupt at its {where}: {reason}")
        self.doc_name = doc_name
        self.seq = seq  # None: the snapshot
        self.reason = reason


def verify(doc_name: str, seq: int | None, data: object, expected: int | None) -> bytes:
    """``data`` if it is the bytes that were stored, else CorruptDocument (rows written
    before checksums existed have none and pass; the migration gave every old row one)."""
    if not isinstance(data, bytes):
        raise CorruptDocument(doc_name, seq, f"stored as {type(data).__name__}, not bytes")
    if expected is not None and checksum(data) != expected:
        raise CorruptDocument(doc_name, seq, "checksum mismatch")
    return data


def feed_columns(record: UpdateRecord) -> tuple[str, str]:
    """A record's changes and domain events as the change feed stores them (JSON text)."""
    changes = json.dumps([[list(c.path), c.action] for c in record.changes], separators=_COMPACT)
    events = (
        json.dumps([e.to_json() for e in record.events], separators=_COMPACT)
        if record.events
        else "[]"
    )
    return changes, events


_COMPACT = (",", ":")  # every feed row is written with its update: the fewer bytes the better


class FeedColumns:
    """feed_columns with a memory of the shapes it wrote lately: a typing burst is a run
    of records with equal changes and the very same events (the gate hands the same
    tuple out again, doc_model.RepeatEvents), written as the same JSON, once."""

    LIMIT = 64

    def __init__(self) -> None:
        self._memo: dict[tuple, tuple[object, tuple[str, str]]] = {}
        self._last: tuple[object, object, tuple[str, str]] | None = None

    def __call__(self, record: UpdateRecord) -> tuple[str, str]:
        changes = record.changes
        last = self._last
        if last is not None and last[0] is changes and last[1] is record.events:
            return last[2]  # the gate hands a repeat the same changes and events tuples
        if not isinstance(changes, tuple):
            return feed_columns(record)
        known = self._memo.get(changes)
        if known is not None and known[0] is record.events:
            self._last = (changes, record.events, known[1])
            return known[1]
        columns = feed_columns(record)
        if len(self._memo) >= self.LIMIT:
            self._memo.clear()
        self._memo[changes] = (record.events, columns)
        self._last = (changes, record.events, columns)
        return columns


def build_document(stored: StoredDocument, doc_name: DocName, origin: object = None) -> Doc:
    """A live Doc (roots declared with their types) from a snapshot and its log."""
    doc: Doc = Doc()
    declare_roots(doc, doc_name.kind)
    try:
        with doc.transaction(origin=origin):
            if stored.snapshot:
                doc.apply_update(stored.snapshot)
            for update in stored.updates:
                doc.apply_update(update)
    except ValueError as e:
        raise StorageError(f"stored data of {doc_name.name!r} is corrupt: {e}") from e
    return doc


class SQLiteStore:
    def __init__(
        self,
        path: str | Path,
        *,
        compact_threshold: int = 500,
        compact_delay: float = 1.0,
        compact_max_updates: int | None = None,
        synchronous: str = "FULL",
        lock_wait_seconds: float = 120.0,
    ) -> None:
        self.path = str(path)
        self.lock_wait_seconds = lock_wait_seconds
        self.compact_threshold = compact_threshold
        self.compact_delay = compact_delay
        self.compact_max_updates = (
            compact_max_updates if compact_max_updates is not None else 10 * compact_threshold
        )
        conn = connect(self.path, synchronous)
        migrate(conn)
        self._worker = SQLiteWorker(conn)
        self._rows_per_insert = max(
            1, min(1000, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6)
        )
        # Reads (a room opening, catching up, listing) on a connection and thread of their own:
        # in WAL mode a reader never waits for the write lock, so an append stuck behind
        # another process's lock (the CLI, a backup) delays only its own room.
        self._reader = SQLiteWorker(connect(self.path, synchronous))
        self._compactor = SQLiteWorker(connect(self.path, synchronous))
        # readiness (ping): may this node write now? on a connection of its own that waits
        # only briefly for the write lock, so a probe never queues behind an append
        prober = connect(self.path, synchronous)
        if not is_postgres(self.path):
            prober.execute(f"PRAGMA busy_timeout={int(PING_LOCK_WAIT_SECONDS * 1000)}")
        self._prober = SQLiteWorker(prober)
        self._ping: asyncio.Future[None] | None = None
        self._folder = FoldProcess()  # used on the compactor's thread only
        self._compactions: dict[str, asyncio.Task[bool]] = {}  # doc name -> running compaction
        self._due: dict[str, asyncio.TimerHandle] = {}  # doc name -> its debounced compaction
        self._tail_counts: dict[str, int] = {}
        self._feed_columns = FeedColumns()  # used on the log worker's thread only
        # access_generation as the newest append saw it (in its own transaction): a room
        # compares it before broadcasting, so access taken away before an update was stored
        # ends before that update is sent (see access_watch)
        self.access_generation: int | None = None

    @property
    def _conn(self) -> sqlite3.Connection:
        """The log's connection: for the worker-thread implementations below only."""
        return self._worker.conn

    # -- DocumentStore ---------------------------------------------------------

    async def load(self, doc_name: str) -> StoredDocument:
        return await self._reader.run(self._load, doc_name)

    async def append(self, doc_name: str, records: Sequence[UpdateRecord]) -> int:
        """Store ``records``; waits (off the event loop) for as long as another process holds
        the write lock, up to ``lock_wait_seconds``, then raises."""
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                last = await self._worker.run(self._append, doc_name, list(records))
                break
            except sqlite3.OperationalError as e:
                if not is_locked(e) or time.monotonic() >= deadline:
                    raise
                log.warning("still waiting for the write lock: %s", e, extra={"doc": doc_name})
        self._schedule_compaction(doc_name)
        return last

    async def updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        return await self._reader.run(self._updates_since, doc_name, seq)

    async def last_seq(self, doc_name: str) -> int:
        return await self._reader.run(self._last_seq, doc_name)

    async def exists(self, doc_name: str) -> bool:
        return await self._reader.run(self._exists, doc_name)

    async def ping(self) -> None:
        """Return if this store can write now; raise StorageError saying why not.

        Takes and releases the write lock (``BEGIN IMMEDIATE``), waiting at most
        ``PING_LOCK_WAIT_SECONDS``: in WAL mode a read succeeds while another process
        holds the lock for minutes, and every edit would wait for it. One probe at a
        time: callers that come while one runs share its answer."""
        if is_postgres(self.path):  # one statement on the readers' connection (reopened if
            # PostgreSQL restarted: a connection finds out at its next statement)
            await self._reader.run(lambda: self._reader.conn.execute("SELECT 1").fetchone())
            return
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._prober.run(self._try_write_lock))
            self._ping.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.shield(self._ping)

    def _try_write_lock(self) -> None:
        c = self._prober.conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if is_locked(e):
                raise StorageError(
                    f"another process holds the write lock of {Path(self.path).name}"
                    f" (waited {PING_LOCK_WAIT_SECONDS:g} s)"
                ) from e
            raise StorageError(f"{Path(self.path).name}: {e}") from e
        c.execute("ROLLBACK")

    async def close(self) -> None:
        await self.wait_for_compactions()  # due ones included: the file is left compact
        await self._prober.close()
        await self._compactor.run(self._folder.close)
        await self._compactor.close()
        await self._reader.close()
        await self._worker.close()

    # -- more ------------------------------------------------------------------

    async def compact(self, doc_name: str) -> bool:
        """Fold the log into the snapshot now; False if there was nothing to fold."""
        running = self._compactions.get(doc_name)
        if running is not None:
            await asyncio.shield(running)  # it may have read before the caller's last append
        return await self._compact_now(doc_name)

    async def _compact_now(self, doc_name: str) -> bool:
        return await self._compactor.run(self._compact, self._compactor.conn, doc_name)

    async def wait_for_compactions(self) -> None:
        """Run the compactions that are due now, and return once all have finished."""
        while self._compactions or self._due:
            for doc_name in list(self._due):
                self._due.pop(doc_name).cancel()
                self._compact_in_background(doc_name)
            await asyncio.gather(*self._compactions.values(), return_exceptions=True)

    def _schedule_compaction(self, doc_name: str) -> None:
        """Debounced: a log past ``compact_threshold`` is folded once its document has had
        no append for ``compact_delay`` seconds, or at once past ``compact_max_updates``.

        A fold costs CPU in proportion to the whole document, so folding every
        ``compact_threshold`` updates of a document being typed into flat out is
        work that the next fold redoes a moment later. (Hocuspocus debounces its
        store the same way.) The cap bounds what a cold load must replay.
        """
        tail = self._tail_counts.get(doc_name, 0)
        if tail <= self.compact_threshold or doc_name in self._compactions:
            return  # a running compaction checks the tail again when it ends
        due = self._due.pop(doc_name, None)
        if due is not None:
            due.cancel()
        if tail > self.compact_max_updates or self.compact_delay <= 0:
            self._compact_in_background(doc_name)
        else:
            self._due[doc_name] = asyncio.get_running_loop().call_later(
                self.compact_delay, self._compact_due, doc_name
            )

    def _compact_due(self, doc_name: str) -> None:
        self._due.pop(doc_name, None)
        self._compact_in_background(doc_name)

    def _compact_in_background(self, doc_name: str) -> None:
        if doc_name in self._compactions:
            return

        async def compact() -> bool:
            folded = False
            try:
                folded = await self._compact_now(doc_name)
                return folded
            except Exception:  # the appends are committed; the next one tries again
                log.exception("compaction failed", extra={"doc": doc_name})
                return False
            finally:
                del self._compactions[doc_name]
                if folded:  # appends went on during the fold: they may be due one of their own
                    self._schedule_compaction(doc_name)

        self._compactions[doc_name] = asyncio.get_running_loop().create_task(
            compact(), name=f"compact {doc_name}"
        )

    async def document_names(self, prefix: str = "") -> list[str]:
        return await self._reader.run(self._document_names, prefix)

    async def delete_document(self, doc_name: str) -> None:
        await self._worker.run(self._delete, doc_name)

    # -- worker-thread implementations ----------------------------------------

    def _load(self, doc_name: str) -> StoredDocument:
        c = self._reader.conn
        c.execute("BEGIN")
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq, snapshot_state, snapshot_checksum"
                " FROM documents WHERE name = ?",
                (doc_name,),
            ).fetchone()
            snapshot, snapshot_seq, snapshot_state, snapshot_sum = (
                row if row else (None, 0, None, None)
            )
            rows = c.execute(
                "SELECT seq, data, checksum FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, snapshot_seq),
            ).fetchall()
        finally:
            c.execute("COMMIT")
        if snapshot is not None:
            snapshot = verify(doc_name, None, snapshot, snapshot_sum)
        updates = [verify(doc_name, seq, data, expected) for seq, data, expected in rows]
        self._tail_counts[doc_name] = len(rows)
        last = rows[-1][0] if rows else snapshot_seq
        return StoredDocument(snapshot, updates, last, snapshot_state)

    def _append(self, doc_name: str, records: list[UpdateRecord]) -> int:
        if not records:
            return self._last_seq(doc_name, self._conn)
        c = self._conn
        now = time.time()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT OR IGNORE INTO documents (name, created_at) VALUES (?, ?)", (doc_name, now)
            )
            # One multi-row INSERT per chunk, not executemany: each row of executemany is
            # its own sqlite3_step, which releases the GIL and must win it back from the
            # busy event loop (up to the 5 ms switch interval, per row).
            for i in range(0, len(records), self._rows_per_insert):
                chunk = records[i : i + self._rows_per_insert]
                inserted = c.execute(
                    "INSERT INTO updates (doc, data, actor, created_at, checksum) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                    [v for r in chunk for v in (doc_name, r.data, r.actor, now, checksum(r.data))],
                )
                # the chunk's seqs are consecutive (assigned under the write lock we hold);
                # the cursor knows the last (no statement: each one this thread runs must win
                # the GIL back from the busy event loop, up to the 5 ms switch interval)
                rowid = inserted.lastrowid
                assert rowid is not None  # (rows were inserted)
                last = rowid
                first = last - len(chunk) + 1
                # the change feed's rows, in the same transaction: a row exists if and only
                # if its update is durable (sync_server.extensions.feed reads them)
                c.execute(
                    "INSERT INTO change_feed (doc_name, seq, actor, changes, events, created)"
                    " VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    [
                        v
                        for n, r in enumerate(chunk)
                        for v in (doc_name, first + n, r.actor, *self._feed_columns(r), now)
                    ],
                )
            self.access_generation = c.execute(
                "SELECT n FROM access_generation WHERE id = 1"
            ).fetchone()[0]
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:  # SQLite rolls back itself on some errors (SQLITE_FULL):
                c.execute("ROLLBACK")  # a second ROLLBACK would hide the real error
            raise
        count = self._tail_counts.get(doc_name)
        if count is None:
            count = self._count_tail(self._conn, doc_name)
        else:
            count += len(records)
        self._tail_counts[doc_name] = count
        return int(last)

    @staticmethod
    def _count_tail(c: sqlite3.Connection, doc_name: str) -> int:
        return c.execute(
            "SELECT count(*) FROM updates WHERE doc = ? AND seq > "
            "coalesce((SELECT snapshot_seq FROM documents WHERE name = ?), 0)",
            (doc_name, doc_name),
        ).fetchone()[0]

    def _compact(self, c: sqlite3.Connection, doc_name: str) -> bool:
        started = time.perf_counter()
        c.execute("BEGIN")  # one consistent read of the snapshot and the log
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq, snapshot_checksum FROM documents WHERE name = ?",
                (doc_name,),
            ).fetchone()
            snapshot, snapshot_seq, snapshot_sum = row if row else (None, 0, None)
            rows = c.execute(
                "SELECT seq, data, checksum FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, snapshot_seq),
            ).fetchall()
        finally:
            c.execute("COMMIT")
        # never fold damaged bytes into a snapshot: the log keeps them for `tandem doctor`
        if snapshot is not None:
            snapshot = verify(doc_name, None, snapshot, snapshot_sum)
        rows = [(seq, verify(doc_name, seq, data, expected)) for seq, data, expected in rows]
        if not rows:
            self._tail_counts[doc_name] = 0  # another process folded it all
            return False
        # folded holding no lock (writers go on meanwhile), in the fold process (the event
        # loop goes on meanwhile: pycrdt would hold the GIL for the whole fold)
        folded = rows[-1][0]
        snapshot, state = self._folder.fold(snapshot, [data for _, data in rows])
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(
                "SELECT snapshot_seq FROM documents WHERE name = ?", (doc_name,)
            ).fetchone()
            if row is None or row[0] != snapshot_seq:  # deleted, or compacted by another
                self._tail_counts[doc_name] = self._count_tail(c, doc_name)
                c.execute("COMMIT")
                return False
            c.execute(
                "INSERT INTO documents (name, snapshot, snapshot_seq, snapshot_state,"
                " snapshot_checksum, created_at, compacted_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " snapshot = excluded.snapshot, snapshot_seq = excluded.snapshot_seq,"
                " snapshot_state = excluded.snapshot_state,"
                " snapshot_checksum = excluded.snapshot_checksum,"
                " compacted_at = excluded.compacted_at",
                (doc_name, snapshot, folded, state, checksum(snapshot), time.time(), time.time()),
            )
            c.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc_name, folded))
            remaining = self._count_tail(c, doc_name)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:  # SQLite rolls back itself on some errors (SQLITE_FULL):
                c.execute("ROLLBACK")  # a second ROLLBACK would hide the real error
            raise
        self._tail_counts[doc_name] = remaining
        log.info(
            "compacted %d updates in %.1f ms",
            len(rows),
            (time.perf_counter() - started) * 1000,
            extra={"doc": doc_name},
        )
        return True

    def _updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        """Updates after ``seq``; if some were folded into the snapshot since, the snapshot first."""
        c = self._reader.conn
        c.execute("BEGIN")
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq, snapshot_checksum FROM documents WHERE name = ?",
                (doc_name,),
            ).fetchone()
            out: list[StoredUpdate] = []
            start = seq
            if row and row[1] > seq and row[0]:
                out.append(StoredUpdate(row[1], verify(doc_name, None, row[0], row[2])))
                start = row[1]
            rows = c.execute(
                "SELECT seq, data, checksum FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, start),
            ).fetchall()
        finally:
            c.execute("COMMIT")
        return out + [StoredUpdate(s, verify(doc_name, s, d, c_)) for s, d, c_ in rows]

    def _last_seq(self, doc_name: str, c: sqlite3.Connection | None = None) -> int:
        row = (
            (c or self._reader.conn)
            .execute(
                "SELECT max(coalesce((SELECT max(seq) FROM updates WHERE doc = ?), 0),"
                " coalesce((SELECT snapshot_seq FROM documents WHERE name = ?), 0))",
                (doc_name, doc_name),
            )
            .fetchone()
        )
        return int(row[0])

    def _exists(self, doc_name: str) -> bool:
        return (
            self._reader.conn.execute(
                "SELECT 1 FROM documents WHERE name = ?", (doc_name,)
            ).fetchone()
            is not None
        )

    def _document_names(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r[0]
            for r in self._reader.conn.execute(
                "SELECT name FROM documents WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                (escaped + "%",),
            )
        ]

    def _delete(self, doc_name: str) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM updates WHERE doc = ?", (doc_name,))
            c.execute("DELETE FROM documents WHERE name = ?", (doc_name,))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:  # SQLite rolls back itself on some errors (SQLITE_FULL):
                c.execute("ROLLBACK")  # a second ROLLBACK would hide the real error
            raise
        self._tail_counts.pop(doc_name, None)
