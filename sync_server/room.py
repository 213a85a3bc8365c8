"""A room: one loaded document, its connections, and the path of every edit through it.

    receive(conn, update)                       (event loop, synchronous)
      -> gate.apply under conn's actor          accept, or revert exactly
      -> pending batch += (record, ack)         nothing is sent yet
    flusher task, a few ms later                (coalesces everything that arrived meanwhile)
      -> store.append(batch)                    durable before anyone sees it
      -> one merged update, encoded once, queued to every connection
      -> acks / rejections to the senders
      -> observer queue (automation, integrations, activity)

A new client's first sync waits for the pending batch to be durable, so no
client ever receives an update that a crash could still lose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pycrdt import Doc, merge_updates

from doc_model import DocName

from .connection import CloseCode, Connection
from .gate import Gate, GateResult, NotAnUpdate, PermissionCheck, UnrevertableUpdate
from .hooks import Actor, DocumentChanged, DocumentObserver, DocumentStore, UpdateRecord
from .protocol import (
    AwarenessEntry,
    AwarenessMessage,
    encode_awareness,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from .storage import build_document

log = logging.getLogger("tandem.room")

STORAGE_ORIGIN = "storage"


@dataclass
class RoomSettings:
    coalesce_seconds: float = 0.005
    idle_unload_seconds: float = 30.0


@dataclass
class _Batch:
    records: list[UpdateRecord] = field(default_factory=list)
    updates: list[bytes] = field(default_factory=list)
    senders: set[int] = field(default_factory=set)  # connection ids whose accepted edits are in it
    everyone: bool = False  # a revert or external update: the senders need it too
    replies: list[tuple[Connection, dict]] = field(default_factory=list)
    observed: list[DocumentChanged] = field(default_factory=list)


class StorageFailed(RuntimeError):
    pass


class Room:
    def __init__(
        self,
        doc_name: DocName,
        store: DocumentStore,
        *,
        settings: RoomSettings | None = None,
        observers: Sequence[DocumentObserver] = (),
        permission_check: PermissionCheck | None = None,
    ) -> None:
        self.doc_name = doc_name
        self.name = doc_name.name
        self.store = store
        self.settings = settings or RoomSettings()
        self.observers = list(observers)
        self.permission_check = permission_check
        self.connections: dict[int, Connection] = {}
        self.doc = Doc()
        self.gate: Gate | None = None
        self.last_seq = 0
        self.awareness: dict[
            int, tuple[int, object, int]
        ] = {}  # client id -> (clock, state, conn id)
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._durable = asyncio.Condition()
        self._applied_gen = 0
        self._durable_gen = 0
        self._observer_queue: asyncio.Queue[DocumentChanged] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._idle_handle: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()  # held while the document is (re)loaded
        self.closed = False
        self.on_unload: list = []

    # -- lifecycle -------------------------------------------------------------

    async def load(self) -> None:
        started = time.perf_counter()
        await self._load_doc()
        self._tasks = [
            asyncio.create_task(self._flusher(), name=f"flush {self.name}"),
            asyncio.create_task(self._observer_loop(), name=f"observers {self.name}"),
        ]
        log.info(
            "loaded in %.1f ms (seq %d)",
            (time.perf_counter() - started) * 1000,
            self.last_seq,
            extra={"doc": self.name},
        )

    async def _load_doc(self) -> None:
        stored = await self.store.load(self.name)
        doc = build_document(stored, self.doc_name, origin=STORAGE_ORIGIN)
        if self.gate is not None:
            self.gate.close()
        self.doc = doc
        self.gate = Gate(doc, self.doc_name, self.permission_check)
        self.last_seq = stored.last_seq

    async def close(self) -> None:
        """Make everything durable, close every connection, stop the tasks."""
        if self.closed:
            return
        try:
            await self.flush()
        finally:
            self.closed = True
            for conn in list(self.connections.values()):
                conn.close(CloseCode.GOING_AWAY, "server is shutting down")
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.gate is not None:
                self.gate.close()

    # -- connections -----------------------------------------------------------

    def join(self, conn: Connection) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self.connections[conn.id] = conn

    def leave(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        gone = [
            AwarenessEntry(cid, self.awareness[cid][0] + 1, None)
            for cid in conn.awareness_ids
            if cid in self.awareness
        ]
        for entry in gone:
            del self.awareness[entry.client_id]
        if gone:
            self._send_to_all(encode_awareness(encode_awareness_update(gone)))
        if not self.connections and not self.closed:
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(
                self.settings.idle_unload_seconds, self._unload_if_idle
            )

    def _unload_if_idle(self) -> None:
        if not self.connections and not self.closed:
            task = asyncio.get_running_loop().create_task(self._unload())
            self._tasks.append(task)

    async def _unload(self) -> None:
        if self.connections or self.closed:
            return
        for callback in self.on_unload:
            callback(self)
        await self.close()
        log.info("unloaded after idle", extra={"doc": self.name})

    async def start_sync(self, conn: Connection) -> None:
        """First messages to a new client: our state vector, then everyone's presence."""
        conn.send(encode_sync_step1(self.doc.get_state()))
        if self.awareness:
            entries = [AwarenessEntry(c, clock, s) for c, (clock, s, _) in self.awareness.items()]
            conn.send(encode_awareness(encode_awareness_update(entries)))

    # -- sync ------------------------------------------------------------------

    async def reply_sync_step1(self, conn: Connection, state_vector: bytes) -> None:
        await self.flush()  # never hand out state a crash could still lose
        try:
            diff = self.doc.get_update(state_vector)
        except ValueError as e:
            raise NotAnUpdate(f"sync step 1 carries no valid state vector: {e}") from e
        conn.send(encode_sync_step2(diff))

    async def receive_update(self, conn: Connection, update: bytes) -> GateResult:
        """Run one client transaction through the gate and queue its outcome."""
        conn.updates_received += 1
        ack_seq = conn.updates_received
        async with self._lock:
            assert self.gate is not None
            try:
                result = self.gate.apply(update, conn.actor)
            except UnrevertableUpdate:
                await self._reload_after_unrevertable()
                raise
        batch = self._batch
        if result.update is not None:
            batch.records.append(UpdateRecord(result.update, str(conn.actor)))
            batch.updates.append(result.update)
        if result.accepted:
            if result.update is not None:
                batch.senders.add(conn.id)
                batch.observed.append(
                    DocumentChanged(self.name, conn.actor, result.update, result.changes, self.doc)
                )
            batch.replies.append((conn, {"type": "ack", "n": ack_seq}))
        else:
            batch.everyone = True
            denial = result.denial
            assert denial is not None
            reply = {
                "type": "rejected",
                "n": ack_seq,
                "reason": denial.reason,
                "path": denial.path,
                "permission": denial.permission,
            }
            batch.replies.append((conn, reply))
            log.info(
                "rejected update: %s (path %s)",
                denial.reason,
                denial.path or "-",
                extra={"doc": self.name, "user": str(conn.actor)},
            )
        self._applied_gen += 1
        self._wake.set()
        return result

    async def _reload_after_unrevertable(self) -> None:
        """The document holds content the gate cannot take back: rebuild it from storage."""
        await self.flush()
        await self._load_doc()

    async def apply_external(self, updates: Sequence[bytes], actor: Actor, last_seq: int) -> None:
        """Updates another process already stored: apply and broadcast, do not store again."""
        merged: list[bytes] = []
        sub = self.doc.observe(lambda ev: merged.append(ev.update))
        try:
            with self.doc.transaction(origin=STORAGE_ORIGIN):
                for update in updates:
                    self.doc.apply_update(update)
        finally:
            self.doc.unobserve(sub)
        self.last_seq = max(self.last_seq, last_seq)
        if merged:
            update = merged[0] if len(merged) == 1 else merge_updates(*merged)
            self._send_to_all(encode_update(update))
            self._observer_queue.put_nowait(DocumentChanged(self.name, actor, update, (), self.doc))

    async def flush(self) -> None:
        """Return once every update applied so far is durable (and sent)."""
        target = self._applied_gen
        if self._durable_gen >= target:
            return
        self._wake.set()
        async with self._durable:
            await self._durable.wait_for(lambda: self._durable_gen >= target or self.closed)

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            if self.settings.coalesce_seconds:
                await asyncio.sleep(self.settings.coalesce_seconds)
            self._wake.clear()
            gen = self._applied_gen
            batch, self._batch = self._batch, _Batch()
            try:
                await self._commit(batch)
            except Exception:
                log.exception("storage failed; closing the room", extra={"doc": self.name})
                await self._fail_storage()
                return
            async with self._durable:
                self._durable_gen = gen
                self._durable.notify_all()

    async def _commit(self, batch: _Batch) -> None:
        if batch.records:
            last = await self.store.append(self.name, batch.records)
            if last - len(batch.records) == self.last_seq:
                self.last_seq = last  # contiguous: nobody else wrote in between
        if batch.updates:
            update = batch.updates[0] if len(batch.updates) == 1 else merge_updates(*batch.updates)
            message = encode_update(update)
            skip = (
                next(iter(batch.senders))
                if len(batch.senders) == 1 and not batch.everyone
                else None
            )
            for conn in list(self.connections.values()):
                if conn.id != skip:
                    conn.send(message)
        for conn, reply in batch.replies:
            if reply["type"] == "ack":
                conn.send_tandem(reply)
            else:
                conn.send_rejection(reply)
        for event in batch.observed:
            self._observer_queue.put_nowait(event)

    async def _fail_storage(self) -> None:
        """Updates in memory could not be stored: drop the room so nobody builds on them."""
        for conn in list(self.connections.values()):
            conn.close(CloseCode.INTERNAL_ERROR, "storage failure; reconnect to resync")
        self.closed = True
        async with self._durable:
            self._durable.notify_all()
        for callback in self.on_unload:
            callback(self)

    # -- presence --------------------------------------------------------------

    def receive_awareness(self, conn: Connection, message: AwarenessMessage) -> None:
        """Relay presence, refusing to let one connection speak for another's client ids."""
        accepted: list[AwarenessEntry] = []
        for entry in message.entries:
            current = self.awareness.get(entry.client_id)
            if current is not None and current[2] != conn.id:
                continue  # owned by someone else
            if current is not None and entry.clock < current[0]:
                continue  # stale
            accepted.append(entry)
            if entry.state is None:
                self.awareness.pop(entry.client_id, None)
                conn.awareness_ids.discard(entry.client_id)
            else:
                self.awareness[entry.client_id] = (entry.clock, entry.state, conn.id)
                conn.awareness_ids.add(entry.client_id)
        if not accepted:
            return
        if len(accepted) == len(message.entries):
            out = encode_awareness(message.update)
        else:
            out = encode_awareness(encode_awareness_update(accepted))
        self._send_to_all(out, exclude=conn.id)

    def awareness_snapshot(self) -> bytes:
        entries = [AwarenessEntry(c, clock, s) for c, (clock, s, _) in self.awareness.items()]
        return encode_awareness(encode_awareness_update(entries))

    # -- helpers ---------------------------------------------------------------

    def _send_to_all(self, message: bytes, exclude: int | None = None) -> None:
        for conn in list(self.connections.values()):
            if conn.id != exclude:
                conn.send(message)

    async def _observer_loop(self) -> None:
        while True:
            event = await self._observer_queue.get()
            for observer in self.observers:
                try:
                    await observer.document_changed(event)
                except Exception:
                    log.exception(
                        "observer %r failed",
                        observer,
                        extra={"doc": self.name, "user": str(event.actor)},
                    )
