"""Every extension point of the sync server, in one place.

A room (``sync_server.core.room``) knows nothing about SQLite, PostgreSQL, Slack or
GitHub: it talks to storage through :class:`DocumentStore` and tells the rest
of the product about accepted changes through :class:`DocumentObserver`.
A new backend or a new observer is a new implementation of one of these
protocols, passed to ``create_app``; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pycrdt import Doc

    from doc_model import Change, DomainEvent


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, or the server itself acting for a feature."""

    user_id: str
    kind: str = "user"  # "user" | "system" (automation, integrations, CLI)
    # what acts through this identity, if not the person themselves: an automation rule
    # acting as its owner is ``Actor(owner, via="automation:<rule id>:<chain depth>")``:
    # the owner's permissions, and the change feed row of its write says which rule wrote
    # it at which depth of a chain (sync_server.extensions.automation)
    via: str = ""

    def __str__(self) -> str:
        name = self.user_id if self.kind == "user" else f"{self.kind}:{self.user_id}"
        return f"{name}|{self.via}" if self.via else name


@dataclass(frozen=True)
class UpdateRecord:
    """One update to append to a document's log."""

    data: bytes
    actor: str  # str(Actor)
    # what the update changed and meant: the store writes them to the change feed in the
    # same transaction as the update itself (empty: the feed gets a row without events)
    changes: Sequence[Change] = ()
    events: Sequence[DomainEvent] = ()


@dataclass(frozen=True)
class StoredDocument:
    """What storage holds for a document: a snapshot and the log after it."""

    snapshot: bytes | None
    updates: list[bytes]
    last_seq: int  # seq of the newest update folded into this state (0: none)
    snapshot_state: bytes | None = None  # the snapshot's state vector, if the store keeps it


@dataclass(frozen=True)
class StoredUpdate:
    seq: int
    data: bytes


@runtime_checkable
class DocumentStore(Protocol):
    """Durable storage of document update logs.

    ``append`` returns only once the updates are durable: a room broadcasts an
    update after its append returns, never before. Several processes may write
    the same document (the CLI while a server runs): sequence numbers are
    assigned by the store, and ``updates_since`` lets a room catch up.

    Implementations: ``storage.SQLiteStore`` (a SQLite file or, given a ``postgresql://``
    URL, a PostgreSQL database: docs/storage.md) and ``memory_store.MemoryStore`` (durable
    for the process's life only); every one must pass ``tests/test_store_contract.py``.
    """

    async def load(self, doc_name: str) -> StoredDocument:
        """Snapshot + tail of ``doc_name`` (empty if the document is new)."""
        ...

    async def append(self, doc_name: str, records: Sequence[UpdateRecord]) -> int:
        """Append records in one durable transaction; return the last seq."""
        ...

    async def updates_since(self, doc_name: str, seq: int) -> list[StoredUpdate]:
        """Updates with a seq greater than ``seq`` (written by anyone); if some of them were
        folded into the snapshot since, the snapshot first (with the seq it holds up to)."""
        ...

    async def last_seq(self, doc_name: str) -> int:
        """Newest seq of the document (0 if it has none)."""
        ...

    async def compact(self, doc_name: str) -> bool:
        """Fold the log into the snapshot (same state); True if there was anything to fold."""
        ...

    async def exists(self, doc_name: str) -> bool:
        """Whether anything was stored for ``doc_name`` (since it was last deleted)."""
        ...

    async def document_names(self, prefix: str = "") -> list[str]:
        """Names of the stored documents that start with ``prefix``, sorted."""
        ...

    async def delete_document(self, doc_name: str) -> None:
        """Forget ``doc_name``: its snapshot and its log (a project's deletion); no error
        if there is nothing stored. Seqs are never reused: a later append continues past
        the deleted ones."""
        ...

    @property
    def access_generation(self) -> int | None:
        """The access tables' generation as the newest append read it in its own
        transaction, for a store that shares a database with them (SQLiteStore): a room
        checks it before broadcasting, so access taken away before an update was stored
        ends before that update is sent (see access_watch). None: the store cannot tell."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class DocumentChanged:
    """One accepted transaction, as :meth:`DocumentObserver.documents_changed` receives it."""

    doc_name: str
    actor: Actor
    update: bytes  # the accepted transaction's own binary update
    changes: Sequence[Change] = field(default_factory=tuple)
    doc: Doc[Any] | None = None  # the live room document: read it, never write to it directly
    # what the transaction meant, with values before and after (doc_model.events); empty
    # where they could not be computed (see the change feed for how other writers' are)
    events: Sequence[DomainEvent] = field(default_factory=tuple)
    feed_id: int | None = None  # position in the durable change feed (None: not stored yet)
    seq: int | None = None  # the update's seq in the document's log, once stored

    @classmethod
    def stored(
        cls,
        doc_name: str,
        actor: Actor,
        changes: Sequence[Change],
        events: Sequence[DomainEvent],
        feed_id: int,
        seq: int,
    ) -> DocumentChanged:
        """A change read back from the feed (no update bytes, no live document): the same
        value the constructor makes, made with one store of its fields instead of a frozen
        dataclass's one ``object.__setattr__`` per field (0.4 us instead of 1.0; the feed's
        reader makes one per row, holding the GIL the event loop needs)."""
        made = object.__new__(cls)
        object.__setattr__(
            made,
            "__dict__",
            {
                "doc_name": doc_name,
                "actor": actor,
                "update": b"",
                "changes": changes,
                "doc": None,
                "events": events,
                "feed_id": feed_id,
                "seq": seq,
            },
        )
        return made


@runtime_checkable
class DocumentObserver(Protocol):
    """Told about accepted transactions once they are stored.

    Each observer is a consumer of the durable change feed
    (``sync_server.extensions.feed``) in a task of its own, never on the sync
    path: a slow observer delays nobody else. Each call gets the transactions
    stored since the previous call, in order (one or more, from every document
    and every writing process), so an observer can write them in one SQLite
    transaction however fast people type. Delivery is at-least-once: a call that
    raises is logged and made again with the same changes after a backoff.
    """

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None: ...


class FanoutSink(Protocol):
    """What a :class:`Fanout` hands other nodes' news to (the room manager)."""

    async def remote_update(self, doc_name: str, update: bytes, generation: int | None) -> None:
        """An update another node stored (``generation``: the access tables' generation its
        append read, see ``DocumentStore.access_generation``)."""
        ...

    def remote_presence(self, doc_name: str, payload: bytes) -> None:
        """Presence from another node's connections (an encoded awareness update)."""
        ...

    async def catch_up(self, doc_name: str) -> None:
        """Read what storage holds beyond the room's copy (messages may have been missed)."""
        ...

    def local_presence(self, doc_name: str) -> bytes | None:
        """The presence of this node's own connections to the room (an encoded awareness
        update; None: none), for a node that just started listening to it."""
        ...


@runtime_checkable
class Fanout(Protocol):
    """Cross-node fan-out: several servers on one storage relay what they stored and their
    connections' presence to the others holding the same rooms
    (``sync_server.scale.redis_fanout``). Publishing never waits: a message that cannot be
    sent is dropped, and the receivers learn of the gap and catch up from storage."""

    node_id: str

    async def start(self, sink: FanoutSink) -> None: ...

    def watch(self, doc_name: str) -> None:
        """A room was loaded: hear of its updates (then ``sink.catch_up`` once listening)."""
        ...

    def unwatch(self, doc_name: str) -> None: ...

    def publish_update(
        self, doc_name: str, update: bytes, first_seq: int, last_seq: int, generation: int | None
    ) -> None:
        """An update this node stored (seqs ``first_seq``..``last_seq``)."""
        ...

    def publish_presence(self, doc_name: str, payload: bytes) -> None: ...

    async def close(self) -> None: ...
