"""A room: one loaded document, its connections, and the path of every edit through it.

    receive(conn, update)                       (event loop, synchronous)
      -> gate.apply under conn's actor          accept, or revert exactly
      -> pending batch += (record, ack)         nothing is sent yet
    flusher task, a few ms later                (coalesces everything that arrived meanwhile)
      -> store.append(batch)                    durable before anyone sees it
      -> one merged update, encoded once, queued to every connection
      -> acks / rejections to the senders
      -> on_stored(): the change feed reads the rows the append wrote beside the
         updates (automation, integrations, activity: sync_server.extensions.feed)

A new client's first sync waits for the pending batch to be durable, so no
client ever receives an update that a crash could still lose.

Bytes mode: decoding a large document is the slowest thing a room does
(pycrdt holds the GIL while it decodes; ~150-250 ms for 10,000 tasks), so a
room opens with the stored snapshot and log as bytes, plus their state vector.
A brand-new client (empty state vector) is served those bytes as they are.
The Doc is built only when something needs it: the first non-empty update,
a returning client's sync, or catching up after an unrevertable update.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pycrdt import Doc, Map, get_state, merge_updates

from doc_model import SCHEMA_VERSION, DocKind, DocName, declare_roots, migrate, schema_version
from sync_server.core import state_vectors
from sync_server.core.connection import CloseCode, Connection
from sync_server.core.gate import (
    Denial,
    Gate,
    GateResult,
    MissingDependencies,
    NotAnUpdate,
    PermissionCheck,
    UnrevertableUpdate,
)
from sync_server.core.instruments import RoomInstruments, tracked
from sync_server.core.presence import bind_identity
from sync_server.core.protocol import (
    AwarenessEntry,
    AwarenessMessage,
    MessageType,
    awareness_holds_only,
    encode_awareness,
    encode_awareness_entry,
    encode_awareness_update,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    varuint,
)
from sync_server.core.update_squash import squash_update
from sync_server.interfaces import Actor, DocumentStore, StoredDocument, UpdateRecord
from sync_server.storage.database import storage_trouble
from sync_server.storage.sqlite_store import build_document

log = logging.getLogger("tandem.room")

RejectionHook = Callable[[Actor, DocName, Denial], None]
"""Told about every rejected transaction (the audit log)."""

PublishHook = Callable[["Room", bytes, int, int], None]
"""Told about every stored batch (the room, its merged update, its first and last seq),
after it was sent to the room's own connections: cross-node fan-out (sync_server.scale)."""

PresenceHook = Callable[["Room", Sequence[AwarenessEntry]], None]
"""Told about presence news from this node's own connections (identity bound), and their
departures: cross-node fan-out."""

REMOTE_CONN_ID = -1  # the holder of presence relayed from another node
# Presence relayed from another node and not renewed for this long is forgotten (its node
# died without saying its clients left): y-protocols' own outdated timeout; stock clients
# renew every 15 s.
REMOTE_PRESENCE_SECONDS = 30.0

STORAGE_ORIGIN = "storage"
MIGRATION_ACTOR = Actor("migration", kind="system")
EMPTY_UPDATE = b"\x00\x00"
CHEAP_TAIL_BYTES = 256 * 1024  # above this, reading the log's state vector costs a decode anyway
# Deleted content the gate's undo manager kept (see Room._collect_garbage) is freed by a
# rebuild once the bytes gated since the last one pass the live state's size, or this.
GARBAGE_MIN_BYTES = 64 * 1024
MAX_RESYNCS = 3  # gapped updates one connection may send before it is closed
# Presence frames remembered (by digest) to recognise their echoes: every newcomer gets a
# snapshot of its own, and in a storm its echo comes back after hundreds of others.
RECENT_PRESENCE_FRAMES = 4096
MAX_DEPARTED_CLIENTS = 10_000  # removal clocks remembered (oldest forgotten first)
_AWARENESS_TYPE = bytes((MessageType.AWARENESS,))


def _digest(frame: bytes) -> bytes:
    return hashlib.blake2b(frame, digest_size=16).digest()


def _put_newest(table: dict, key: object, value: object, limit: int) -> None:
    """Set ``key`` as the newest entry of an insertion-ordered ``table``, forgetting the
    oldest ones past ``limit``."""
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]


def _presence_user(state: object) -> str:
    """The user id a presence state was bound to (``user.id``), or ""."""
    user = state.get("user") if isinstance(state, dict) else None
    return str(user.get("id", "")) if isinstance(user, dict) else ""


def _cheap_state_vector(stored: StoredDocument) -> dict[int, int] | None:
    """The stored state's vector without decoding the snapshot, or None if that is not possible."""
    if stored.snapshot and stored.snapshot_state is None:
        return None
    if sum(len(u) for u in stored.updates) > CHEAP_TAIL_BYTES:
        return None
    try:
        vectors = [state_vectors.decode(stored.snapshot_state)] if stored.snapshot_state else []
        vectors += [state_vectors.decode(get_state(u)) for u in stored.updates]
    except ValueError:
        return None  # let the full decode report what is wrong
    return state_vectors.merge(vectors)


@dataclass
class RoomSettings:
    coalesce_seconds: float = 0.002
    presence_coalesce_seconds: float = 0.02  # the shortest interval between presence messages
    presence_frames_per_second: float = 10_000  # a big room's interval grows to stay under this
    idle_unload_seconds: float = 30.0
    max_unflushed_updates: int = 512  # flow control, see Room.receive_update


@dataclass
class _Batch:
    records: list[UpdateRecord] = field(default_factory=list)
    updates: list[bytes] = field(default_factory=list)
    senders: set[int] = field(default_factory=set)  # connection ids whose accepted edits are in it
    everyone: bool = False  # a revert or external update: the senders need it too
    repeat_sender: bool = False  # a connection has two edits in it: worth squashing
    replies: list[tuple[Connection, dict]] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # perf_counter of each accepted edit


def _merged(updates: Sequence[bytes], *, squash: bool = True) -> bytes:
    """One update for a batch's broadcast: merged, each typist's run of text one item.

    Items only squash within one client's edits, and one transaction's update is
    squashed already, so a batch with at most one edit per connection is only merged.
    """
    if len(updates) == 1:
        return updates[0]
    merged = merge_updates(*updates)
    return squash_update(merged) if squash else merged


class StorageFailed(RuntimeError):
    pass


class Room:
    def __init__(
        self,
        doc_name: DocName,
        store: DocumentStore,
        *,
        settings: RoomSettings | None = None,
        permission_check: PermissionCheck | None = None,
        on_rejected: RejectionHook | None = None,
        before_broadcast: Callable[[], Awaitable[None]] | None = None,
        on_stored: Callable[[], None] | None = None,
        instruments: RoomInstruments | None = None,
        on_published: PublishHook | None = None,
        on_presence: PresenceHook | None = None,
    ) -> None:
        self.doc_name = doc_name
        self.instruments = instruments  # metrics of the hot path (shell.monitoring), if any
        # cross-node fan-out (sync_server.scale.redis_fanout): what this node stored, and its
        # own connections' presence, for the other nodes holding the room
        self.on_published = on_published
        self.on_presence = on_presence
        # awaited after a batch is stored and before it is sent: access taken away before
        # the batch was stored ends first (AccessWatch.settle)
        self.before_broadcast = before_broadcast
        self.on_rejected = on_rejected
        self.name = doc_name.name
        self.store = store
        self.settings = settings or RoomSettings()
        # called after every append: the change feed's consumers read the new rows now
        # (ChangeFeed.wake) instead of at their next poll
        self.on_stored = on_stored
        self.permission_check = permission_check
        self.connections: dict[int, Connection] = {}
        self.doc: Doc | None = None  # None while in bytes mode
        self.gate: Gate | None = None
        self._parts: list[bytes] = []  # bytes mode: snapshot and log, in order
        self._parts_sv: dict[int, int] = {}  # bytes mode: their state vector
        self._full_state: bytes | None = None  # doc mode: cached full update for new clients
        self._gated_bytes = 0  # doc mode: bytes of updates applied since the doc was built
        self._live_bytes = 0  # doc mode: its encoded size when it was built (0: not measured)
        self.last_seq = 0
        self.awareness: dict[
            int, tuple[int, object, int]
        ] = {}  # client id -> (clock, state, conn id)
        self._awareness_bytes: dict[int, bytes] = {}  # client id -> its encoded entry
        self._batch = _Batch()
        self._wake = asyncio.Event()  # set by _signal_flusher: the batch holds something
        self._woken_at = 0.0  # monotonic time the batch first held something
        self._batch_full = asyncio.Event()  # flow control: commit now, coalesce no longer
        self._durable = asyncio.Condition()
        self._applied_gen = 0
        self.revision = 0  # counts every change applied to the document (API version cache)
        self._durable_gen = 0
        self._tasks: list[asyncio.Task] = []
        self._idle_handle: asyncio.TimerHandle | None = None
        self._presence_out: dict[int, AwarenessEntry] = {}  # client id -> newest state to relay
        self._presence_timer: asyncio.TimerHandle | None = None
        # client id -> (clock its presence was removed at, the user whose it was)
        self._departed: dict[int, tuple[int, str]] = {}
        self._sent_presence: dict[bytes, None] = {}  # digests of the latest presence frames
        self._remote_presence_at: dict[int, float] = {}  # relayed client id -> last heard
        self._unload_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # held while the document is (re)loaded
        self.closed = False
        self.storage_error: Exception | None = None  # why storing failed, if it did
        self.on_unload: list = []

    # -- lifecycle -------------------------------------------------------------

    async def load(self) -> None:
        started = time.perf_counter()
        stored = await self.store.load(self.name)
        self.last_seq = stored.last_seq
        sv = _cheap_state_vector(stored)
        if sv is None:
            self._build(stored)
        else:
            self._parts = ([stored.snapshot] if stored.snapshot else []) + list(stored.updates)
            self._parts_sv = sv
        self._tasks = [asyncio.create_task(self._flusher(), name=f"flush {self.name}")]
        log.info(
            "opened in %.1f ms (seq %d, %s)",
            (time.perf_counter() - started) * 1000,
            self.last_seq,
            "decoded" if self.doc is not None else "bytes mode",
            extra={"doc": self.name},
        )

    def _build(self, stored: StoredDocument) -> None:
        started = time.perf_counter()
        doc = build_document(stored, self.doc_name, origin=STORAGE_ORIGIN)
        if self.gate is not None:
            self.gate.close()
        self.doc = doc
        self.revision += 1
        self.gate = Gate(doc, self.doc_name, self.permission_check)
        self._parts, self._parts_sv, self._full_state = [], {}, None
        self._gated_bytes, self._live_bytes = 0, 0
        log.info(
            "decoded in %.1f ms", (time.perf_counter() - started) * 1000, extra={"doc": self.name}
        )
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older document up to SCHEMA_VERSION; stored and broadcast like any change."""
        assert self.doc is not None
        if self.doc_name.kind is not DocKind.MAIN:
            return
        version = schema_version(self.doc)
        if version >= SCHEMA_VERSION or "name" not in self.doc.get("meta", type=Map):
            return  # current, or no project metadata yet (nothing to migrate)
        updates: list[bytes] = []
        sub = self.doc.observe(lambda event: updates.append(event.update))
        try:
            migrate(self.doc, self.doc_name.kind)
        finally:
            self.doc.unobserve(sub)
        if updates:
            update = updates[0] if len(updates) == 1 else merge_updates(*updates)
            self._batch.records.append(UpdateRecord(update, str(MIGRATION_ACTOR)))
            self._batch.updates.append(update)
            self._batch.everyone = True
            self._applied_gen += 1
            self.revision += 1
            self._signal_flusher()
            log.info(
                "migrated from schema %d to %d", version, SCHEMA_VERSION, extra={"doc": self.name}
            )

    def ensure_doc(self) -> Doc:
        """The decoded document, building it from the stored bytes on first use."""
        if self.doc is None:
            self._build(StoredDocument(None, self._parts, self.last_seq))
        assert self.doc is not None
        return self.doc

    def state_vector(self) -> bytes:
        if self.doc is not None:
            return self.doc.get_state()
        return state_vectors.encode(self._parts_sv)

    async def close(
        self, code: int = CloseCode.GOING_AWAY, reason: str = "server is shutting down"
    ) -> None:
        """Make everything durable, close every connection, stop the tasks."""
        if self.closed:
            return
        try:
            await self.flush()
        finally:
            self.closed = True
            if self._presence_timer is not None:
                self._presence_timer.cancel()
            for conn in list(self.connections.values()):
                conn.close(code, reason)
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
        if conn.presence_flush is not None:
            conn.presence_flush.cancel()
        gone = [
            AwarenessEntry(cid, self.awareness[cid][0] + 1, None)
            for cid in conn.awareness_ids
            if cid in self.awareness
        ]
        for entry in gone:
            self._remove_presence(entry.client_id, entry.clock, conn.actor.user_id)
        if gone:
            self._queue_presence(gone)
            if self.on_presence is not None:
                self.on_presence(self, gone)
        self._arm_idle_unload()

    def _arm_idle_unload(self) -> None:
        """With nobody connected, unload after the idle delay (rooms opened by the API too)."""
        if self.connections or self.closed:
            return
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = asyncio.get_running_loop().call_later(
            self.settings.idle_unload_seconds, self._unload_if_idle
        )

    def _unload_if_idle(self) -> None:
        if not self.connections and not self.closed and self._unload_task is None:
            # not one of self._tasks: close() cancels and awaits those, and this task calls close()
            self._unload_task = asyncio.get_running_loop().create_task(self._unload())

    async def _unload(self) -> None:
        self._unload_task = None
        if self.connections or self.closed:
            return
        for callback in self.on_unload:
            callback(self)
        await self.close()
        try:  # the next cold open then reads one snapshot and needs no decode
            await self.store.compact(self.name)
        except Exception:
            log.exception("compaction on unload failed", extra={"doc": self.name})
        log.info("unloaded after idle", extra={"doc": self.name})

    async def start_sync(self, conn: Connection) -> None:
        """First messages to a new client: our state vector, then everyone's presence."""
        conn.send(encode_sync_step1(self.state_vector()))
        if self.awareness:
            conn.send(self.awareness_snapshot())

    # -- sync ------------------------------------------------------------------

    async def reply_sync_step1(self, conn: Connection, state_vector: bytes) -> None:
        await self.flush()  # never hand out state a crash could still lose
        if state_vector == state_vectors.EMPTY:  # a new client: the whole document
            if self.doc is None:
                if not self._parts:
                    conn.send(encode_sync_step2(b"\x00\x00"))
                    return
                if len(self._parts) > 1:  # clients count as synced on step 2: send it all at once
                    self._parts = [merge_updates(*self._parts)]
                conn.send(encode_sync_step2(self._parts[0]))
                return
            if self._full_state is None:
                self._full_state = self.doc.get_update()
            conn.send(encode_sync_step2(self._full_state))
            return
        try:
            state_vectors.decode(state_vector)
            diff = self.ensure_doc().get_update(state_vector)
        except ValueError as e:
            raise NotAnUpdate(f"sync step 1 carries no valid state vector: {e}") from e
        conn.send(encode_sync_step2(diff))

    async def receive_update(
        self, conn: Connection, update: bytes, *, step2: bool = False
    ) -> GateResult | None:
        """Run one client transaction through the gate and queue its outcome.

        None: the update builds on changes the server lacks; it was not kept and the
        client was asked to resync (see :meth:`_request_resync`).

        Flow control: an update that brings the pending batch (gated, not yet
        durable) to ``max_unflushed_updates`` returns only once that batch is
        durable and sent (other connections may each add one more meanwhile).
        Its connection's receive loop reads no further frames meanwhile, so
        clients typing faster than the room can store and fan out wait in their
        own sockets, and every commit stays small and prompt.
        (Gating a frame costs less than storing and sending it: without this
        bound, a busy room gated every frame as it arrived and broadcast in ever
        bigger, ever later batches, a median delay of 0.5-1.2 s for 50 clients
        typing flat out.)
        """
        conn.updates_received += 1
        ack_seq = conn.updates_received
        if conn.awaiting_resync and not step2:  # the coming step 2 carries this one too
            self._batch.replies.append((conn, {"type": "resync", "n": ack_seq}))
            self._signal_flusher()
            return None
        conn.awaiting_resync = False
        async with self._lock:
            if update == EMPTY_UPDATE:
                result = GateResult(accepted=True, update=None)
            else:
                self.ensure_doc()
                assert self.gate is not None
                try:
                    result = self.gate.apply(update, conn.actor)
                    # keep what may be kept (sync_server.core.split), within the sender's budget
                    if result.splittable and conn.split_bucket.take():
                        await self._reload_after_unrevertable()
                        assert self.gate is not None
                        result = self.gate.apply_in_parts(update, conn.actor)
                except MissingDependencies as e:
                    if e.applied:  # found only after applying: the document holds part of it
                        await self._reload_after_unrevertable()
                    self._request_resync(conn, ack_seq, str(e))
                    return None
                except UnrevertableUpdate:
                    await self._reload_after_unrevertable()
                    raise
                except NotAnUpdate as e:
                    if e.applied:  # pycrdt raised mid-way: it may keep structs pending
                        await self._reload_after_unrevertable()
                    raise
        reply: dict = {"type": "ack", "n": ack_seq}
        if not result.accepted:
            denial = result.denial
            assert denial is not None
            reply = {
                "type": "rejected",
                "n": ack_seq,
                "reason": denial.reason,
                "path": denial.path,
                "permission": denial.permission,
                "partial": bool(result.kept),  # the rest of the update was kept
            }
        self._queue_outcome(result, conn.actor, conn)
        batch = self._batch
        batch.replies.append((conn, reply))
        if len(batch.records) >= self.settings.max_unflushed_updates:
            self._batch_full.set()
            await self.flush()
        return result

    def _request_resync(self, conn: Connection, ack_seq: int, reason: str) -> None:
        """An update with missing dependencies was dropped: ask its sender for everything.

        Stock y-websocket sends edits as soon as the socket opens, so an edit made
        offline-then-online can arrive before the sync step 2 it builds on. Our
        state vector makes the client answer with a step 2 holding all it has
        that we lack; until that arrives, its updates are skipped (the step 2
        carries them). A client that keeps sending gaps is closed.
        """
        conn.resyncs += 1
        log.info(
            "update with missing dependencies: %s; asking for a resync",
            reason,
            extra={"doc": self.name, "user": str(conn.actor)},
        )
        if conn.resyncs > MAX_RESYNCS:
            raise UnrevertableUpdate(f"{reason} (again, after {MAX_RESYNCS} resyncs)")
        conn.awaiting_resync = True
        conn.send(encode_sync_step1(self.state_vector()))
        self._batch.replies.append((conn, {"type": "resync", "n": ack_seq, "reason": reason}))
        self._signal_flusher()

    def _queue_outcome(self, result: GateResult, actor: Actor, sender: Connection | None) -> int:
        """Put one gated transaction into the pending batch (stored, then broadcast, then
        observed); returns its generation, durable once ``_durable_gen`` reaches it.

        The sender of an accepted update already has it; everyone else gets it. A revert
        (and any server-side edit, which has no sender) goes to everyone. A transaction
        that changed nothing (every new client's empty sync step 2) only queues its
        reply: there is nothing to make durable, so nobody's sync waits for it.
        """
        batch = self._batch
        if result.update is not None:
            self._full_state = None
            self._collect_garbage(len(result.update))
            # the change feed's row carries what was kept (a revert's row: nothing)
            kept = result.changes if result.accepted else (result.kept or ())
            batch.records.append(
                UpdateRecord(result.update, str(actor), changes=kept, events=result.events)
            )
            batch.updates.append(result.update)
            if result.accepted and self.instruments is not None:
                self.instruments.accepted(1)
                batch.accepted_at.append(time.perf_counter())
            if result.accepted and sender is not None:
                batch.repeat_sender = batch.repeat_sender or sender.id in batch.senders
                batch.senders.add(sender.id)
            else:
                batch.everyone = True
        if not result.accepted and result.denial is not None and result.error is None:
            if self.instruments is not None:
                self.instruments.rejected(result.denial.permission or "schema")
            if self.on_rejected is not None:
                try:
                    self.on_rejected(actor, self.doc_name, result.denial)
                except Exception:
                    log.exception("recording a rejection failed", extra={"doc": self.name})
            log.info(
                "rejected update: %s (path %s)",
                result.denial.reason,
                result.denial.path or "-",
                extra={"doc": self.name, "user": str(actor)},
            )
        if result.update is not None:
            self._applied_gen += 1
            self.revision += 1
        self._signal_flusher()
        return self._applied_gen

    def _collect_garbage(self, gated_bytes: int) -> None:
        """Free deleted content that the gate's undo manager kept alive.

        yrs garbage-collects a transaction's deleted items when it commits, except
        those an undo manager tracking the transaction marks to keep (it needs them
        to undo). The gate's verdict comes after the commit, and ``clear()`` only
        unmarks them: yrs collects only what the committing transaction itself
        deleted, and pycrdt offers no later collection (yrs' ``TransactionMut::gc``
        is not exposed). So every replaced text stayed in the document, its encoded
        state, and every new client's first sync, for as long as the room was loaded.

        A document rebuilt from its own encoding integrates the deleted items in
        one transaction, which collects them. The room does that once the bytes
        gated since the last build exceed the live state (at least
        ``GARBAGE_MIN_BYTES``): amortised, each gated byte is re-encoded about
        twice, and the state stays within about twice its live content.
        """
        self._gated_bytes += gated_bytes
        if self.doc is None or self._gated_bytes <= max(GARBAGE_MIN_BYTES, self._live_bytes):
            return
        started = time.perf_counter()
        before = self.doc.get_update()
        # the same client id: the copy holds all of it, so the server's own edits continue
        # its clocks instead of adding a client to every state vector per rebuild
        doc: Doc = Doc(client_id=self.doc.client_id)
        declare_roots(doc, self.doc_name.kind)
        with doc.transaction(origin=STORAGE_ORIGIN):
            doc.apply_update(before)
        old = self.gate
        if old is not None:
            old.close()
        self.doc = doc
        self.gate = Gate(doc, self.doc_name, self.permission_check, same_content_as=old)
        self._full_state = doc.get_update()
        self._gated_bytes, self._live_bytes = 0, len(self._full_state)
        log.info(
            "collected deleted content: %d -> %d bytes in %.1f ms",
            len(before),
            self._live_bytes,
            (time.perf_counter() - started) * 1000,
            extra={"doc": self.name},
        )

    async def edit(self, actor: Actor, mutate: Callable[[Doc], None]) -> GateResult:
        """A server-side edit (REST API, automation) through the gate, returned once durable.

        Accepted or not, its outcome reaches every connected client like a
        client's transaction would: the accepted update, or the net effect of
        the reverted one.
        """
        async with self._lock:
            self.ensure_doc()
            assert self.gate is not None
            result = self.gate.edit(mutate, actor)
        mine = self._queue_outcome(result, actor, None)
        self._arm_idle_unload()
        await self.flush()
        if self._durable_gen < mine:
            raise StorageFailed(
                f"{self.name}: the edit could not be stored"
            ) from self.storage_error
        return result

    async def _reload_after_unrevertable(self) -> None:
        """The document holds content the gate cannot take back: rebuild it from storage."""
        await self.flush()
        stored = await self.store.load(self.name)
        self.last_seq = stored.last_seq
        self._build(stored)

    async def apply_external(
        self, updates: Sequence[bytes], actor: Actor, last_seq: int | None
    ) -> None:
        """Updates another process already stored: apply and broadcast, do not store again.

        ``last_seq``: the stored log's newest seq they were read up to; None for updates
        relayed by another node (sync_server.scale), which say nothing about the seqs
        before theirs (seqs are shared by every document): the room's ``last_seq`` stays,
        and the next catch-up from storage reads them again (applying an update twice
        changes nothing and sends nothing in doc mode)."""
        if last_seq is not None:
            self.last_seq = max(self.last_seq, last_seq)
        if not updates:
            return
        if self.doc is None:
            self._parts.extend(updates)
            self._parts_sv = state_vectors.merge(
                [self._parts_sv, *(state_vectors.decode(get_state(u)) for u in updates)]
            )
            update = updates[0] if len(updates) == 1 else merge_updates(*updates)
            self._send_to_all(encode_update(update))
            return
        self._full_state = None
        self.revision += 1
        merged: list[bytes] = []
        sub = self.doc.observe(lambda ev: merged.append(ev.update))
        try:
            with self.doc.transaction(origin=STORAGE_ORIGIN):
                for update in updates:
                    self.doc.apply_update(update)
        finally:
            self.doc.unobserve(sub)
        if merged:
            update = _merged(merged)
            self._send_to_all(encode_update(update))
            self._collect_garbage(len(update))
            # feed consumers hear of it from the change feed rows its writer stored

    async def flush(self) -> None:
        """Return once every update applied so far is durable (and sent)."""
        target = self._applied_gen
        if self._durable_gen >= target:
            return
        self._signal_flusher()
        async with self._durable:
            await self._durable.wait_for(lambda: self._durable_gen >= target or self.closed)

    def _signal_flusher(self) -> None:
        """The batch holds something: the flusher commits it a coalescing window after
        the first thing entered it (not after it noticed: a batch that filled while the
        previous one was being stored has already waited)."""
        if not self._wake.is_set():
            self._woken_at = time.monotonic()
            self._wake.set()

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            delay = self._woken_at + self.settings.coalesce_seconds - time.monotonic()
            if delay > 0 and not self._batch_full.is_set():
                timer = loop.call_later(delay, self._batch_full.set)
                await self._batch_full.wait()
                timer.cancel()
            self._batch_full.clear()
            self._wake.clear()
            gen = self._applied_gen
            batch, self._batch = self._batch, _Batch()
            try:
                await self._commit(batch)
            except Exception as e:
                log.exception("storage failed; closing the room", extra={"doc": self.name})
                self.storage_error = e
                await self._fail_storage()
                return
            # not kept while this loop waits for the next write: the batch's replies hold
            # their connections (and what their send queues hold) after the clients left
            del batch
            async with self._durable:
                self._durable_gen = gen
                self._durable.notify_all()

    async def _commit(self, batch: _Batch) -> None:
        last = 0
        if batch.records:
            started = time.perf_counter()
            last = await self.store.append(self.name, batch.records)
            if self.instruments is not None:
                self.instruments.appended(time.perf_counter() - started)
            if self.on_stored is not None:
                self.on_stored()
            if last - len(batch.records) == self.last_seq:
                self.last_seq = last  # contiguous: nobody else wrote in between
            if self.before_broadcast is not None:
                await self.before_broadcast()
        if batch.updates:
            merged = _merged(batch.updates, squash=batch.repeat_sender)
            message = encode_update(merged)
            skip = (
                next(iter(batch.senders))
                if len(batch.senders) == 1 and not batch.everyone
                else None
            )
            targets = [conn for conn in self.connections.values() if conn.id != skip]
            if self.instruments is not None:
                message = tracked(message, len(targets), batch.accepted_at, self.instruments)
            for conn in targets:
                conn.send(message)
            if self.on_published is not None and last:
                # one append's seqs are consecutive (assigned under the store's write lock)
                self.on_published(self, merged, last - len(batch.records) + 1, last)
        for conn, reply in batch.replies:
            if reply["type"] == "rejected":
                conn.send_rejection(reply)
            else:
                conn.send_tandem(reply)

    async def _fail_storage(self) -> None:
        """Updates in memory could not be stored: drop the room so nobody builds on them.

        Nothing unstored was sent to anyone (a batch is broadcast after its append), and
        each writer's client still holds its change and sends it again when it reconnects.
        A temporary failure (a full disk, a held lock) closes with 1013 Try Again Later and
        says when; anything else with 1011."""
        temporary, what, retry = storage_trouble(self.storage_error)
        code = CloseCode.TRY_AGAIN_LATER if temporary else CloseCode.INTERNAL_ERROR
        reason = f"{what}; your changes are kept on your device; retry in {retry} s"
        for conn in list(self.connections.values()):
            conn.close(code, reason)
        self.closed = True
        async with self._durable:
            self._durable.notify_all()
        for callback in self.on_unload:
            callback(self)

    # -- presence --------------------------------------------------------------

    def receive_awareness(self, conn: Connection, message: AwarenessMessage) -> None:
        """Relay presence under the sender's real identity, at most at the connection's rate.

        One connection cannot speak for another's client ids, and a state's
        ``user.id`` / ``user.name`` are always the authenticated user's. Past the
        rate limit, the newest state per client id waits for the next token, so
        the last position is never lost, only delayed.

        A state is news only as y-protocols' ``applyAwarenessUpdate`` judges it:
        a newer clock than the one known (the removal clock for a client that left,
        0 for one never heard of), or a removal at the same clock. Every peer
        ignores anything else, the state each ``Awareness`` is constructed with
        (clock 0) included, so relaying it would only cost frames: 1,000 stock
        clients connecting once sent each other 49 MB of such states, each parsed
        and dropped.

        A client that comes back (a reconnect: its user, on a connection that has
        announced nothing yet) announces the state it left with, at a clock no
        newer than its removal, which every peer would ignore until the client
        renews it (15-30 s with y-websocket). The room answers that client with its
        removal, and y-protocols' own rule ("never let a remote client remove this
        local state") makes it announce its current state one clock past, at once.
        The clock stays the client's own: a room that relayed the old state past
        the removal instead put a clock on it that the client had not chosen, and a
        client that moved before that relay reached it had its move refused as
        stale, then took the older state back from the relay. The same old state
        from anyone else is an echo, and stale.
        """
        removals: list[AwarenessEntry] = []
        for entry in message.entries:
            cid = entry.client_id
            current = self.awareness.get(cid)
            if current is not None and current[2] != conn.id:
                if entry.clock <= current[0] or not self._may_take_over(conn, current[2]):
                    continue  # owned by someone else, or an echo of it
                self._move_presence(cid, to=conn)
            clock = entry.clock
            known = current[0] if current is not None else 0
            gone = self._departed.get(cid) if current is None else None
            if gone is not None:
                known, owner = gone
                returning = owner == conn.actor.user_id and not conn.awareness_ids
                if clock <= known and returning and entry.state is not None:
                    removals.append(AwarenessEntry(cid, known, None))
                    continue
            if clock < known:
                continue  # stale
            if clock == known and (current is None or entry.state is not None):
                continue  # nothing any peer would apply
            state = bind_identity(entry.state, conn.actor.user_id, conn.display_name)
            conn.pending_presence[cid] = AwarenessEntry(cid, clock, state)
        if removals:
            conn.send(encode_awareness(encode_awareness_update(removals)))
        if conn.pending_presence and conn.presence_flush is None:
            self._flush_presence(conn)

    def _may_take_over(self, conn: Connection, holder_id: int) -> bool:
        """Whether ``conn``, sending news of a client id (a clock newer than the room's),
        may take its presence over from connection ``holder_id``: only a newer connection
        of the same user may.

        Yjs client ids are random per document instance, so news of the same id from
        the same user on a newer connection is that client reconnected while its old
        socket still looks open here (a phone that changed network: no FIN reached the
        server, which learns of the loss only when TCP gives up, minutes later).
        Until then the old connection would keep showing where the user was, and
        the new one's moves would be refused as somebody else's.

        Only news counts: stock clients send back every state they hear, and the
        user's other tabs would otherwise take each other's presence with every
        echo. An echo is never news: it carries a clock the room relayed, at most
        the one it knows.
        """
        holder = self.connections.get(holder_id)
        return holder is None or (
            holder.actor.user_id == conn.actor.user_id and holder.id < conn.id
        )

    def _move_presence(self, client_id: int, to: Connection) -> None:
        """``client_id``'s presence is ``to``'s now; its old connection leaves without it."""
        clock, state, holder_id = self.awareness[client_id]
        holder = self.connections.get(holder_id)
        if holder is not None:
            holder.awareness_ids.discard(client_id)
            holder.pending_presence.pop(client_id, None)
        self.awareness[client_id] = (clock, state, to.id)
        to.awareness_ids.add(client_id)

    def _flush_presence(self, conn: Connection) -> None:
        conn.presence_flush = None
        if not conn.pending_presence or conn.id not in self.connections:
            return
        if not conn.presence_bucket.take():
            wait = conn.presence_bucket.wait_seconds()
            conn.presence_flush = asyncio.get_running_loop().call_later(
                wait, self._flush_presence, conn
            )
            return
        entries = list(conn.pending_presence.values())
        conn.pending_presence.clear()
        for entry in entries:
            self._awareness_bytes.pop(entry.client_id, None)
            if entry.state is None:
                self._remove_presence(entry.client_id, entry.clock, conn.actor.user_id)
                conn.awareness_ids.discard(entry.client_id)
            else:
                self._departed.pop(entry.client_id, None)
                self.awareness[entry.client_id] = (entry.clock, entry.state, conn.id)
                conn.awareness_ids.add(entry.client_id)
        self._queue_presence(entries)
        if self.on_presence is not None:
            self.on_presence(self, entries)

    def local_presence(self) -> list[AwarenessEntry]:
        """The current presence of this node's own connections (for another node that
        just started holding the room: presence is not stored, so it asks)."""
        return [
            AwarenessEntry(cid, clock, state)
            for cid, (clock, state, holder) in self.awareness.items()
            if holder != REMOTE_CONN_ID
        ]

    def apply_remote_presence(self, entries: Sequence[AwarenessEntry]) -> None:
        """Presence another node's connections sent (its identity bound there): held for
        newcomers and relayed to this node's connections, as news by y-protocols' rule (a
        newer clock; a removal at the same clock). A client id one of this node's own
        connections holds is left to it."""
        news: list[AwarenessEntry] = []
        for entry in entries:
            current = self.awareness.get(entry.client_id)
            if current is not None and current[2] != REMOTE_CONN_ID:
                continue
            known = current[0] if current is not None else 0
            gone = self._departed.get(entry.client_id) if current is None else None
            if gone is not None:
                known = gone[0]
            if entry.clock < known or (entry.clock == known and entry.state is not None):
                continue
            self._awareness_bytes.pop(entry.client_id, None)
            if entry.state is None:
                user = _presence_user(current[1]) if current is not None else ""
                self._remove_presence(entry.client_id, entry.clock, user)
            else:
                self._departed.pop(entry.client_id, None)
                self.awareness[entry.client_id] = (entry.clock, entry.state, REMOTE_CONN_ID)
                self._remote_presence_at[entry.client_id] = time.monotonic()
            news.append(entry)
        if news:
            self._queue_presence(news)

    def _remove_presence(self, client_id: int, clock: int, user: str) -> None:
        """A client's presence is gone at ``clock``: remembered, as every y-protocols peer
        remembers it, so that its old state, still being echoed back by others, is stale
        (judged as news, it would be adopted by the echoing connection: a departed user's
        ghost under somebody else's name, refusing its owner's own state when it returns)."""
        self.awareness.pop(client_id, None)
        self._awareness_bytes.pop(client_id, None)
        _put_newest(self._departed, client_id, (clock, user), MAX_DEPARTED_CLIENTS)

    def _queue_presence(self, entries: Sequence[AwarenessEntry]) -> None:
        """Presence goes out per room, coalesced: one message with every state that changed
        in the last few ms, encoded once for all connections. (Relayed one by one, 1,000
        clients connecting at once make a million messages.) A sender receiving its own
        state back ignores it: the clock is not newer than its own."""
        for entry in entries:
            self._presence_out[entry.client_id] = entry
        if self._presence_timer is None and not self.closed:
            self._presence_timer = asyncio.get_running_loop().call_later(
                self.presence_interval(), self._send_presence
            )

    def presence_interval(self) -> float:
        """Seconds between presence messages: 20 ms, or longer in a big room, so relaying
        presence costs at most ``presence_frames_per_second`` WebSocket frames (every
        y-websocket client renews its state every 15 s: 1,000 clients renew 67 times a
        second, and each message goes to all 1,000). 1,000 connections: every 100 ms."""
        settings = self.settings
        return max(
            settings.presence_coalesce_seconds,
            len(self.connections) / settings.presence_frames_per_second,
        )

    def _send_presence(self) -> None:
        self._presence_timer = None
        entries = list(self._presence_out.values())
        self._presence_out.clear()
        if entries and not self.closed:
            parts = [varuint(len(entries))]
            parts += (self._encoded_presence(e.client_id, e.clock, e.state) for e in entries)
            self._send_to_all(self._remember_presence(encode_awareness(b"".join(parts))))

    def awareness_snapshot(self) -> bytes:
        """Everyone's presence, for a client that just connected or asked."""
        self._forget_outdated_remote_presence()
        parts = [varuint(len(self.awareness))]
        parts += (
            self._encoded_presence(c, clock, s) for c, (clock, s, _) in self.awareness.items()
        )
        return self._remember_presence(encode_awareness(b"".join(parts)))

    def _forget_outdated_remote_presence(self) -> None:
        """Relayed presence not renewed within REMOTE_PRESENCE_SECONDS is not handed to
        newcomers (connected clients time it out themselves, by the same rule)."""
        cutoff = time.monotonic() - REMOTE_PRESENCE_SECONDS
        for cid, heard in list(self._remote_presence_at.items()):
            current = self.awareness.get(cid)
            if current is None or current[2] != REMOTE_CONN_ID:
                del self._remote_presence_at[cid]
            elif heard < cutoff:  # remembered as gone: an echo of it is stale, not news
                del self._remote_presence_at[cid]
                self._remove_presence(cid, current[0], _presence_user(current[1]))

    def _remember_presence(self, frame: bytes) -> bytes:
        _put_newest(self._sent_presence, _digest(frame), None, RECENT_PRESENCE_FRAMES)
        return frame

    def is_presence_echo(self, frame: bytes) -> bool:
        """Whether ``frame`` is a presence message with nothing in it the room does not
        hold: one it sent lately, or one made only of current states, byte for byte.

        Stock y-websocket clients send back every state they apply, re-encoded the
        way the server encoded it, so when a message was news to them in full, the
        echo is the very frame they were sent. Nothing in it is news to the server
        (every state is one it relayed, at the clock it knows), so it is dropped
        unparsed: with 1,000 clients connecting, parsing the echoes was two thirds of
        the server's loop in a profile (bench.presence_connect measures the CPU), and
        a whole frame is recognised by one digest. A relay that was news only in part
        comes back as that part: a client's own state, its clock being the client's
        own, is never news to it. Such an echo is recognised entry by entry against
        the room's encoded current states, without decoding it (after a reconnect
        storm of 500 clients those echoes were half the presence parsing). Any other
        message is parsed and judged entry by entry.
        """
        if not isinstance(frame, bytes) or frame[:1] != _AWARENESS_TYPE:
            return False
        return _digest(frame) in self._sent_presence or awareness_holds_only(
            frame, self._awareness_bytes
        )

    def _encoded_presence(self, client_id: int, clock: int, state: object) -> bytes:
        """One client's encoded awareness entry. A current state is encoded once, for the
        relay and every later newcomer alike, and kept until it changes: with 1,000 clients
        connecting, encoding every state afresh for each newcomer was half a million JSON
        encodings. A departure (or a state already replaced) is encoded as it is."""
        current = self.awareness.get(client_id)
        if current is None or current[0] != clock:
            return encode_awareness_entry(AwarenessEntry(client_id, clock, state))
        encoded = self._awareness_bytes.get(client_id)
        if encoded is None:
            entry = AwarenessEntry(client_id, clock, state)
            encoded = self._awareness_bytes[client_id] = encode_awareness_entry(entry)
        return encoded

    # -- helpers ---------------------------------------------------------------

    def _send_to_all(self, message: bytes, exclude: int | None = None) -> None:
        for conn in list(self.connections.values()):
            if conn.id != exclude:
                conn.send(message)
