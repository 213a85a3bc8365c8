"""The set of loaded rooms: load on first connection, unload when idle, catch up with other writers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from doc_model import DocName
from sync_server.core.gate import PermissionCheck
from sync_server.core.instruments import RoomInstruments
from sync_server.core.protocol import (
    AwarenessEntry,
    decode_awareness_update,
    encode_awareness_update,
)
from sync_server.core.room import RejectionHook, Room, RoomSettings
from sync_server.interfaces import Actor, DocumentChanged, DocumentStore, Fanout

log = logging.getLogger("tandem.rooms")

EXTERNAL_ACTOR = Actor("storage", kind="system")
REMOTE_ACTOR = Actor("node", kind="system")  # updates another server stored and relayed


class RoomManager:
    def __init__(
        self,
        store: DocumentStore,
        *,
        settings: RoomSettings | None = None,
        permission_check: PermissionCheck | None = None,
        on_rejected: RejectionHook | None = None,
        poll_seconds: float = 1.0,
        before_broadcast: Callable[[], Awaitable[None]] | None = None,
        before_external: Callable[[], Awaitable[None]] | None = None,
        on_stored: Callable[[], None] | None = None,
        on_loaded: Callable[[Room], None] | None = None,
        on_unloaded: Callable[[Room], None] | None = None,
        instruments: RoomInstruments | None = None,
        fanout: Fanout | None = None,
        before_remote: Callable[[int | None], Awaitable[None]] | None = None,
    ) -> None:
        self.instruments = instruments  # every room's hot-path metrics (shell.monitoring)
        # several servers (sync_server.scale): what rooms store and their connections'
        # presence goes to the other nodes, and theirs comes here; the poll below stays as
        # the safety net (the CLI writes without telling anyone), usually slower
        self.fanout = fanout
        # awaited before relaying another node's update, with the access generation its
        # append read: access taken away before it was stored ends first (AccessWatch)
        self.before_remote = before_remote
        # called after each room's append (ChangeFeed.wake: consumers read the new rows now)
        self.on_stored = on_stored
        # told when a room has loaded, and when one unloads (idle, storage failure, or
        # closed by close_room); not at shutdown
        self.on_loaded = on_loaded
        self.on_unloaded = on_unloaded
        self.before_broadcast = before_broadcast
        # awaited after reading another process's updates and before sending them: access
        # taken away before they were read ends first (AccessWatch.refresh)
        self.before_external = before_external
        self.on_rejected = on_rejected
        self.store = store
        self.settings = settings or RoomSettings()
        self.permission_check = permission_check
        self.poll_seconds = poll_seconds
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._poller: asyncio.Task | None = None

    async def start(self) -> None:
        if self.fanout is not None:
            await self.fanout.start(self)
        if self.poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll_external_writes(), name="external writes")

    async def get(self, doc_name: DocName) -> Room:
        """The loaded room for ``doc_name``, loading it once however many connect at once."""
        room = self.rooms.get(doc_name.name)
        if room is not None and not room.closed:
            return room
        task = self._loading.get(doc_name.name)
        if task is None:
            task = asyncio.create_task(self._load(doc_name))
            self._loading[doc_name.name] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(doc_name.name, None)

    async def _load(self, doc_name: DocName) -> Room:
        room = Room(
            doc_name,
            self.store,
            settings=self.settings,
            permission_check=self.permission_check,
            on_rejected=self.on_rejected,
            before_broadcast=self.before_broadcast,
            on_stored=self.on_stored,
            instruments=self.instruments,
            on_published=self._published if self.fanout is not None else None,
            on_presence=self._presence if self.fanout is not None else None,
        )
        await room.load()
        room.on_unload.append(self._forget)
        self.rooms[doc_name.name] = room
        if self.fanout is not None:
            self.fanout.watch(room.name)
        if self.on_loaded is not None:
            self.on_loaded(room)
        return room

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            if self.fanout is not None:
                self.fanout.unwatch(room.name)
            if self.on_unloaded is not None:
                self.on_unloaded(room)

    async def _poll_external_writes(self) -> None:
        """Apply updates that another process (the CLI, another server) stored for a loaded room.

        Only the room's document and its clients: feed consumers hear of those updates
        from the change feed rows their writer stored with them."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            for room in list(self.rooms.values()):
                await self._catch_up(room)

    async def _catch_up(self, room: Room) -> None:
        """Apply what storage holds for ``room`` beyond its copy, and send it."""
        if room.closed:
            return
        try:
            newest = await self.store.last_seq(room.name)
            if newest > room.last_seq:
                await room.flush()
                newest = await self.store.last_seq(room.name)
                if newest > room.last_seq:
                    stored = await self.store.updates_since(room.name, room.last_seq)
                    if self.before_external is not None:
                        await self.before_external()
                    await room.apply_external([u.data for u in stored], EXTERNAL_ACTOR, newest)
        except Exception:
            log.exception("catching up with external writes failed", extra={"doc": room.name})

    # -- cross-node fan-out (FanoutSink) -------------------------------------------

    def _published(self, room: Room, update: bytes, first_seq: int, last_seq: int) -> None:
        assert self.fanout is not None
        generation = getattr(self.store, "access_generation", None)
        self.fanout.publish_update(room.name, update, first_seq, last_seq, generation)

    def _presence(self, room: Room, entries: Sequence[AwarenessEntry]) -> None:
        assert self.fanout is not None
        self.fanout.publish_presence(room.name, encode_awareness_update(tuple(entries)))

    async def remote_update(self, doc_name: str, update: bytes, generation: int | None) -> None:
        """An update another node stored: applied and sent like another process's (never
        judged again: its gate judged it), once this node's sockets' access is as current
        as the origin's was when it stored it."""
        room = self.rooms.get(doc_name)
        if room is None or room.closed:
            return
        if self.before_remote is not None:
            await self.before_remote(generation)
        await room.apply_external([update], REMOTE_ACTOR, None)

    def local_presence(self, doc_name: str) -> bytes | None:
        room = self.rooms.get(doc_name)
        if room is None or room.closed:
            return None
        entries = room.local_presence()
        return encode_awareness_update(tuple(entries)) if entries else None

    def remote_presence(self, doc_name: str, payload: bytes) -> None:
        room = self.rooms.get(doc_name)
        if room is not None and not room.closed:
            room.apply_remote_presence(decode_awareness_update(payload))

    async def catch_up(self, doc_name: str) -> None:
        room = self.rooms.get(doc_name)
        if room is not None:
            await self._catch_up(room)

    async def hold_stored(self, changes: Sequence[DocumentChanged]) -> None:
        """Before change-feed rows are handled: each loaded room whose copy may lack one of
        their updates (stored by another node, perhaps not relayed yet) reads storage, so
        whoever reads the live document next sees what the rows describe."""
        newest: dict[str, int] = {}
        for change in changes:
            if change.seq is not None:
                newest[change.doc_name] = max(newest.get(change.doc_name, 0), change.seq)
        for doc_name, seq in newest.items():
            room = self.rooms.get(doc_name)
            if room is not None and room.last_seq < seq:
                await self._catch_up(room)

    async def close_room(self, name: str, code: int, reason: str) -> None:
        """Unload one room now, closing its connections with ``code`` and ``reason``."""
        room = self.rooms.pop(name, None)
        if room is not None:
            if self.fanout is not None:
                self.fanout.unwatch(name)
            await room.close(code, reason)
            if self.on_unloaded is not None:
                self.on_unloaded(room)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        await asyncio.gather(*(room.close() for room in list(self.rooms.values())))
        self.rooms.clear()
        if self.fanout is not None:
            await self.fanout.close()
