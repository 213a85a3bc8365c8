"""An in-memory DocumentStore, for benchmarks only: what Tandem costs without durable appends.

Implements ``sync_server.hooks.DocumentStore`` with dicts. ``append`` returns at
once; nothing survives the process. Never use it to serve real documents.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycrdt import merge_updates

from sync_server.hooks import StoredDocument, StoredUpdate, UpdateRecord


class MemoryStore:
    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[bytes, int]] = {}
        self._logs: dict[str, list[StoredUpdate]] = {}
        self._seq: dict[str, int] = {}

    async def load(self, doc_name: str) -> StoredDocument:
        snapshot, snap_seq = self._snapshots.get(doc_name, (None, 0))
        log = [u for u in self._logs.get(doc_name, []) if u.seq > snap_seq]
        return StoredDocument(snapshot, [u.data for u in log], self._seq.get(doc_name, 0))

    async def append(self, doc_name: str, records: Sequence[UpdateRecord]) -> int:
        log = self._logs.setdefault(doc_name, [])
        seq = self._seq.get(doc_name, 0)
        for r in records:
            seq += 1
            log.append(StoredUpdate(seq, r.data))
        self._seq[doc_name] = seq
        return seq

    async def updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        return [u for u in self._logs.get(doc_name, []) if u.seq > seq]

    async def last_seq(self, doc_name: str) -> int:
        return self._seq.get(doc_name, 0)

    async def compact(self, doc_name: str) -> bool:
        log = self._logs.get(doc_name)
        if not log:
            return False
        snapshot = self._snapshots.get(doc_name)
        parts = ([snapshot[0]] if snapshot else []) + [u.data for u in log]
        self._snapshots[doc_name] = (merge_updates(*parts), log[-1].seq)
        self._logs[doc_name] = []
        return True

    async def exists(self, doc_name: str) -> bool:
        return doc_name in self._seq

    async def close(self) -> None:
        pass
