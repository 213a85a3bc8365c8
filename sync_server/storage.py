"""SQLiteStore: the embedded DocumentStore (see hooks.py).

Each document is a snapshot plus a log of updates with store-assigned
sequence numbers. All SQLite work runs on one worker thread per store (an
anyio CapacityLimiter of 1), never on the event loop. ``append`` commits
before it returns; with ``synchronous=FULL`` that survives power loss, with
``NORMAL`` a killed process.

Compaction folds the snapshot and the whole log into a new snapshot inside
one ``BEGIN IMMEDIATE`` transaction: read, fold and delete happen under the
write lock, so an update another process appends meanwhile is never deleted
unread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
from pycrdt import Doc

from doc_model import DocName, declare_roots

from .database import connect, migrate
from .hooks import StoredDocument, StoredUpdate, UpdateRecord

log = logging.getLogger("tandem.storage")

T = TypeVar("T")


class StorageError(RuntimeError):
    """Stored data that cannot be read back; names the document."""


def build_document(stored: StoredDocument, doc_name: DocName, origin: object = None) -> Doc:
    """A live Doc (roots declared with their types) from a snapshot and its log."""
    doc = Doc()
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
        synchronous: str = "FULL",
    ) -> None:
        self.path = str(path)
        self.compact_threshold = compact_threshold
        self._conn = connect(self.path, synchronous)
        migrate(self._conn)
        self._limiter = anyio.CapacityLimiter(1)
        self._tail_counts: dict[str, int] = {}

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- DocumentStore ---------------------------------------------------------

    async def load(self, doc_name: str) -> StoredDocument:
        return await self._run(self._load, doc_name)

    async def append(self, doc_name: str, records: Sequence[UpdateRecord]) -> int:
        return await self._run(self._append, doc_name, list(records))

    async def updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        return await self._run(self._updates_since, doc_name, seq)

    async def last_seq(self, doc_name: str) -> int:
        return await self._run(self._last_seq, doc_name)

    async def exists(self, doc_name: str) -> bool:
        return await self._run(self._exists, doc_name)

    async def close(self) -> None:
        await self._run(self._conn.close)

    # -- more ------------------------------------------------------------------

    async def compact(self, doc_name: str) -> bool:
        return await self._run(self._compact, doc_name)

    async def document_names(self, prefix: str = "") -> list[str]:
        return await self._run(self._document_names, prefix)

    async def delete_document(self, doc_name: str) -> None:
        await self._run(self._delete, doc_name)

    # -- worker-thread implementations ----------------------------------------

    def _load(self, doc_name: str) -> StoredDocument:
        c = self._conn
        c.execute("BEGIN")
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq, snapshot_state FROM documents WHERE name = ?",
                (doc_name,),
            ).fetchone()
            snapshot, snapshot_seq, snapshot_state = row if row else (None, 0, None)
            rows = c.execute(
                "SELECT seq, data FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, snapshot_seq),
            ).fetchall()
        finally:
            c.execute("COMMIT")
        if snapshot is not None and not isinstance(snapshot, bytes):
            raise StorageError(f"snapshot of {doc_name!r} is not binary data")
        self._tail_counts[doc_name] = len(rows)
        last = rows[-1][0] if rows else snapshot_seq
        return StoredDocument(snapshot, [r[1] for r in rows], last, snapshot_state)

    def _append(self, doc_name: str, records: list[UpdateRecord]) -> int:
        if not records:
            return self._last_seq(doc_name)
        c = self._conn
        now = time.time()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT OR IGNORE INTO documents (name, created_at) VALUES (?, ?)", (doc_name, now)
            )
            c.executemany(
                "INSERT INTO updates (doc, data, actor, created_at) VALUES (?, ?, ?, ?)",
                [(doc_name, r.data, r.actor, now) for r in records],
            )
            last = c.execute("SELECT last_insert_rowid()").fetchone()[0]
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        count = self._tail_counts.get(doc_name)
        if count is None:
            count = self._count_tail(doc_name)
        else:
            count += len(records)
        self._tail_counts[doc_name] = count
        if count > self.compact_threshold:
            try:
                self._compact(doc_name)
            except Exception:  # the append is committed; compaction can wait for the next one
                log.exception("compaction failed", extra={"doc": doc_name})
        return int(last)

    def _count_tail(self, doc_name: str) -> int:
        return self._conn.execute(
            "SELECT count(*) FROM updates WHERE doc = ? AND seq > "
            "coalesce((SELECT snapshot_seq FROM documents WHERE name = ?), 0)",
            (doc_name, doc_name),
        ).fetchone()[0]

    def _compact(self, doc_name: str) -> bool:
        c = self._conn
        started = time.perf_counter()
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq FROM documents WHERE name = ?", (doc_name,)
            ).fetchone()
            snapshot, snapshot_seq = (row[0], row[1]) if row else (None, 0)
            rows = c.execute(
                "SELECT seq, data FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, snapshot_seq),
            ).fetchall()
            if not rows:
                c.execute("COMMIT")
                return False
            doc = Doc()
            if snapshot:
                doc.apply_update(snapshot)
            for _, data in rows:
                doc.apply_update(data)
            folded = rows[-1][0]
            c.execute(
                "INSERT INTO documents"
                " (name, snapshot, snapshot_seq, snapshot_state, created_at, compacted_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " snapshot = excluded.snapshot, snapshot_seq = excluded.snapshot_seq,"
                " snapshot_state = excluded.snapshot_state, compacted_at = excluded.compacted_at",
                (doc_name, doc.get_update(), folded, doc.get_state(), time.time(), time.time()),
            )
            c.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc_name, folded))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._tail_counts[doc_name] = 0
        log.info(
            "compacted %d updates in %.1f ms",
            len(rows),
            (time.perf_counter() - started) * 1000,
            extra={"doc": doc_name},
        )
        return True

    def _updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        """Updates after ``seq``; if some were folded into the snapshot since, the snapshot first."""
        c = self._conn
        c.execute("BEGIN")
        try:
            row = c.execute(
                "SELECT snapshot, snapshot_seq FROM documents WHERE name = ?", (doc_name,)
            ).fetchone()
            out: list[StoredUpdate] = []
            start = seq
            if row and row[1] > seq and row[0]:
                out.append(StoredUpdate(row[1], row[0]))
                start = row[1]
            rows = c.execute(
                "SELECT seq, data FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
                (doc_name, start),
            ).fetchall()
        finally:
            c.execute("COMMIT")
        return out + [StoredUpdate(s, d) for s, d in rows]

    def _last_seq(self, doc_name: str) -> int:
        row = self._conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM updates WHERE doc = ?), 0),"
            " coalesce((SELECT snapshot_seq FROM documents WHERE name = ?), 0))",
            (doc_name, doc_name),
        ).fetchone()
        return int(row[0])

    def _exists(self, doc_name: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM documents WHERE name = ?", (doc_name,)).fetchone()
            is not None
        )

    def _document_names(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r[0]
            for r in self._conn.execute(
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
            c.execute("ROLLBACK")
            raise
        self._tail_counts.pop(doc_name, None)
