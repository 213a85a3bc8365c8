"""MemoryStore: a complete DocumentStore (see hooks.py) that keeps everything in memory.

For tests, benchmarks and embedding Tandem where nothing has to outlive the
process: ``append`` returns as soon as the records are in this process's memory,
and everything is gone when the process ends. It follows the same contract as
:class:`sync_server.storage.sqlite_store.SQLiteStore` (``tests/test_store_contract.py`` runs
both): sequence numbers are assigned by the store, increasing and never reused
(one counter for the whole store, as SQLite's AUTOINCREMENT); compaction folds a
document's log into a snapshot with its state vector, and ``updates_since`` a
seq that was folded meanwhile returns the snapshot first.

All state changes happen on the event loop without awaiting in between, so
concurrent appends to one document get distinct, ordered seqs. Only the fold of
a compaction runs on a worker thread; it folds what it read and, like
SQLiteStore's, drops only updates up to the seq it read, so appends made during
the fold are kept, and a document deleted during the fold stays deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sync_server.interfaces import StoredDocument, StoredUpdate, UpdateRecord
from sync_server.storage.folding import fold

log = logging.getLogger("tandem.storage")


@dataclass(frozen=True)
class _Row:
    seq: int
    data: bytes
    actor: str
    created_at: float


@dataclass
class _Document:
    created_at: float
    snapshot: bytes | None = None
    snapshot_seq: int = 0
    snapshot_state: bytes | None = None
    log: list[_Row] = field(default_factory=list)  # seq > snapshot_seq, oldest first


class MemoryStore:
    """A :class:`~sync_server.interfaces.DocumentStore` in dicts; nothing survives the process.

    ``compact_threshold``: a log longer than this is folded in the background after
    the append that made it so (None: only when ``compact`` is called, as a room does
    when it unloads).
    """

    def __init__(self, *, compact_threshold: int | None = 500) -> None:
        self.compact_threshold = compact_threshold
        self._documents: dict[str, _Document] = {}
        self._seq = 0  # the newest seq given to any document
        self._compactions: dict[str, asyncio.Task[bool]] = {}
        self._closed = False
        # nothing here shares a transaction with the access tables (see SQLiteStore)
        self.access_generation: int | None = None

    # -- DocumentStore ---------------------------------------------------------

    async def load(self, doc_name: str) -> StoredDocument:
        self._check_open()
        d = self._documents.get(doc_name)
        if d is None:
            return StoredDocument(None, [], 0)
        last = d.log[-1].seq if d.log else d.snapshot_seq
        return StoredDocument(d.snapshot, [r.data for r in d.log], last, d.snapshot_state)

    async def append(self, doc_name: str, records: Sequence[UpdateRecord]) -> int:
        self._check_open()
        rows = [(_bytes_of(r.data, doc_name), str(r.actor)) for r in records]
        if not rows:
            return self._last_seq(doc_name)
        now = time.time()
        d = self._documents.get(doc_name)
        if d is None:
            d = self._documents[doc_name] = _Document(created_at=now)
        for data, actor in rows:
            self._seq += 1
            d.log.append(_Row(self._seq, data, actor, now))
        if self.compact_threshold is not None and len(d.log) > self.compact_threshold:
            self._compact_in_background(doc_name)
        return self._seq

    async def updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        self._check_open()
        d = self._documents.get(doc_name)
        if d is None:
            return []
        out: list[StoredUpdate] = []
        if d.snapshot_seq > seq and d.snapshot:  # folded since: the snapshot holds them
            out.append(StoredUpdate(d.snapshot_seq, d.snapshot))
        return out + [StoredUpdate(r.seq, r.data) for r in d.log if r.seq > seq]

    async def last_seq(self, doc_name: str) -> int:
        self._check_open()
        return self._last_seq(doc_name)

    async def compact(self, doc_name: str) -> bool:
        self._check_open()
        running = self._compactions.get(doc_name)
        if running is not None:
            await asyncio.shield(running)  # it may have read before the caller's last append
        return await self._compact(doc_name)

    async def exists(self, doc_name: str) -> bool:
        self._check_open()
        return doc_name in self._documents

    async def document_names(self, prefix: str = "") -> list[str]:
        self._check_open()
        return sorted(n for n in self._documents if n.startswith(prefix))

    async def delete_document(self, doc_name: str) -> None:
        self._check_open()
        self._documents.pop(doc_name, None)

    async def ping(self) -> None:
        """Always reachable (for /readyz)."""

    async def close(self) -> None:
        if self._closed:
            return
        await self.wait_for_compactions()
        self._closed = True

    # -- more ------------------------------------------------------------------

    async def wait_for_compactions(self) -> None:
        """Return once every compaction running in the background has finished."""
        while self._compactions:
            await asyncio.gather(*self._compactions.values(), return_exceptions=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MemoryStore is closed")

    def _last_seq(self, doc_name: str) -> int:
        d = self._documents.get(doc_name)
        if d is None:
            return 0
        return d.log[-1].seq if d.log else d.snapshot_seq

    async def _compact(self, doc_name: str) -> bool:
        d = self._documents.get(doc_name)
        if d is None or not d.log:
            return False
        snapshot, snapshot_seq = d.snapshot, d.snapshot_seq
        folded = d.log[-1].seq
        updates = [r.data for r in d.log]
        # off the event loop (appends go on meanwhile), as SQLiteStore folds in a child process
        merged, state = await asyncio.to_thread(fold, snapshot, updates)
        if self._documents.get(doc_name) is not d or d.snapshot_seq != snapshot_seq:
            return False  # deleted, or compacted by another call meanwhile
        d.snapshot, d.snapshot_seq, d.snapshot_state = merged, folded, state
        d.log = [r for r in d.log if r.seq > folded]
        return True

    def _compact_in_background(self, doc_name: str) -> None:
        if doc_name in self._compactions:
            return

        async def compact() -> bool:
            try:
                return await self._compact(doc_name)
            except Exception:  # the appends are kept; the next one past the threshold retries
                log.exception("compaction failed", extra={"doc": doc_name})
                return False
            finally:
                del self._compactions[doc_name]

        self._compactions[doc_name] = asyncio.get_running_loop().create_task(
            compact(), name=f"compact {doc_name}"
        )


def _bytes_of(data: object, doc_name: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"an update of {doc_name!r} must be bytes, not {type(data).__name__}")
    return bytes(data)
