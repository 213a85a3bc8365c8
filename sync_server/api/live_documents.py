"""The API's view of documents: the live room's copy when loaded, else storage; writes via the gate.

read(doc)   room loaded  -> the room's Doc (the state WebSocket clients see)
            not loaded   -> decoded from storage, kept until its log moves on;
                            no room is started for a read
version     a digest of the document's state vector: changes with every
            edit, identical for the same state wherever it was read from
snapshot    JSON-ready views cached per (document, version, what)
edit(doc)   the room (loaded on demand) runs the edit through its gate
            under the caller's identity, stores it, broadcasts it
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pycrdt import Doc

from doc_model import DocName
from sync_server.core.gate import GateResult
from sync_server.core.rooms import RoomManager
from sync_server.interfaces import Actor, DocumentStore
from sync_server.storage.sqlite_store import build_document

T = TypeVar("T")


@dataclass(frozen=True)
class DocumentView:
    name: DocName
    doc: Doc
    version: str
    exists: bool


def version_of(doc: Doc) -> str:
    """The state vector says what was inserted, the delete set what was deleted since: the
    diff from the document's own state vector is exactly its delete set."""
    state = doc.get_state()
    digest = hashlib.blake2b(state, digest_size=12)
    digest.update(doc.get_update(state))
    return digest.hexdigest()


class LiveDocuments:
    def __init__(
        self,
        rooms: RoomManager,
        store: DocumentStore,
        *,
        body_budget: int = 32 * 1024 * 1024,
        stored_limit: int = 16,
    ) -> None:
        self.rooms = rooms
        self.store = store
        # name -> (last_seq, view): documents read without a room, newest use last
        self._stored: OrderedDict[str, tuple[int, DocumentView]] = OrderedDict()
        self._stored_limit = stored_limit
        self._snapshots: dict[tuple[str, str], tuple[str, Any]] = {}
        self._bodies: OrderedDict[str, str] = OrderedDict()
        self._body_bytes = 0
        self._body_budget = body_budget
        # name -> (the room's doc, weakly: an unloaded room's doc must die, (revision, seq), version)
        self._room_versions: dict[str, tuple[weakref.ref[Doc], tuple[int, int], str]] = {}

    async def read(self, name: DocName) -> DocumentView:
        self._prune()
        room = self.rooms.rooms.get(name.name)
        if room is not None and not room.closed:
            self._stored.pop(name.name, None)
            doc = room.ensure_doc()
            # the room's own counters change with every change it applies, so the (costlier)
            # digest is computed once per change, not once per read
            mark = (room.revision, room.last_seq)
            known = self._room_versions.get(name.name)
            if known is not None and known[0]() is doc and known[1] == mark:
                return DocumentView(name, doc, known[2], exists=True)
            version = version_of(doc)
            self._room_versions[name.name] = (weakref.ref(doc), mark, version)
            return DocumentView(name, doc, version, exists=True)
        last_seq = await self.store.last_seq(name.name)
        cached = self._stored.get(name.name)
        if cached is not None and cached[0] == last_seq:
            self._stored.move_to_end(name.name)
            return cached[1]
        stored = await self.store.load(name.name)
        doc = build_document(stored, name)
        view = DocumentView(name, doc, version_of(doc), exists=stored.last_seq > 0)
        self._stored[name.name] = (stored.last_seq, view)
        self._stored.move_to_end(name.name)
        while len(self._stored) > self._stored_limit:
            dropped, _ = self._stored.popitem(last=False)
            for key in [k for k in self._snapshots if k[0] == dropped]:
                del self._snapshots[key]
        return view

    async def stored(self, name: DocName) -> tuple[int, Doc]:
        """The document as storage holds it, and the seq of its newest update folded in
        (0: none), whether or not a room has it loaded: a state tied to a known place in
        the log (the room's copy may already hold an edit being stored). Not cached."""
        stored = await self.store.load(name.name)
        return stored.last_seq, build_document(stored, name)

    def _prune(self) -> None:
        """Drop snapshots and versions of documents that are neither loaded nor kept here."""
        live = set(self.rooms.rooms) | set(self._stored)
        for key in [k for k in self._snapshots if k[0] not in live]:
            del self._snapshots[key]
        for gone in [n for n in self._room_versions if n not in self.rooms.rooms]:
            del self._room_versions[gone]

    def snapshot(self, view: DocumentView, what: str, build: Callable[[Doc], T]) -> T:
        """``build(doc)``, computed once per document version (``what`` names the view).

        Only the newest version of each view is kept: a busy document makes a new
        version with every edit, and a snapshot of 10,000 tasks is tens of megabytes.
        """
        key = (view.name.name, what)
        hit = self._snapshots.get(key)
        if hit is not None and hit[0] == view.version:
            return hit[1]
        value = build(view.doc)
        self._snapshots[key] = (view.version, value)
        return value

    async def edit(self, name: DocName, actor: Actor, mutate: Callable[[Doc], None]) -> GateResult:
        """Run ``mutate`` on the live document under ``actor``, through the gate; durable on return.

        The room first takes in what storage holds beyond its copy (another process's or
        another node's write, not yet polled or relayed), so ``mutate`` reads what is stored:
        a check it makes before writing (an automation run carried out again after a
        takeover looks for the comment its first holder posted) sees every stored write."""
        self._stored.pop(name.name, None)
        room = await self.rooms.get(name)
        await self.rooms.catch_up(name.name)
        return await room.edit(actor, mutate)

    def forget(self, name: DocName) -> None:
        self._stored.pop(name.name, None)
        self._room_versions.pop(name.name, None)
        for key in [k for k in self._snapshots if k[0] == name.name]:
            del self._snapshots[key]

    def cached_body(self, tag: str, build: Callable[[], str]) -> str:
        """A response body, serialized once per ETag; least recently used out past the budget."""
        body = self._bodies.get(tag)
        if body is not None:
            self._bodies.move_to_end(tag)
            return body
        body = build()
        self._bodies[tag] = body
        self._body_bytes += len(body)
        while self._body_bytes > self._body_budget and len(self._bodies) > 1:
            _, dropped = self._bodies.popitem(last=False)
            self._body_bytes -= len(dropped)
        return body
