"""The one extension protocol, and the typed server context every hook receives.

In the spirit of Hocuspocus's extensions and Datasette's plugin hooks: an
extension is an object with a ``name`` and any of the hooks below; a hook it
does not define is not called. Subclass :class:`Extension` for the no-op
defaults and type checking, or write any object with the same methods.

Rules every hook lives by (enforced by the extension host, not by trust):

- A hook that raises is logged with the extension's name; other extensions and
  the sync path carry on.
- A slow hook delays nobody else: ``change_accepted`` runs in the extension's
  own task fed by the durable change feed (at-least-once, from the extension's
  own stored cursor when ``durable`` is true); the other notification hooks
  (connected, loaded, rejected...) are scheduled, never awaited on the sync
  path. Only ``authenticate`` and ``startup`` are awaited, because their
  answer is needed.
- Nothing writes a document except through ``ctx.edit``, which runs the gate
  with the acting identity's permissions.

Order: extensions are called in the order the app factory lists them (built-in
ones first, then entry points of the ``tandem.extensions`` group, then
``tandem serve --extension module:Name``); ``shutdown`` runs in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from pycrdt import Doc
    from quart import Blueprint

    from integrations.outbound import OutboundPolicy
    from sync_server.interfaces import Actor, DocumentChanged, DocumentStore
    from sync_server.shell.readiness import Readiness
    from sync_server.shell.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class AuthRequest:
    """What an ``authenticate`` hook sees of a request or socket opening."""

    path: str
    headers: dict[str, str]
    token: str | None  # bearer token or ?token=, if one came
    project_id: str | None  # the project the request is about, if known
    remote_addr: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who a request is: an account name, and the permissions it holds in the project."""

    user: str
    display_name: str | None = None
    kind: str = "user"  # "user" | "integration" | "automation"
    permissions: frozenset[str] | None = None  # None: look up the account's grants


@dataclass(frozen=True)
class ConnectionInfo:
    """One WebSocket connection, as connected/disconnected hooks see it."""

    conn_id: int
    doc_name: str
    user: str
    close_code: int | None = None  # on disconnect
    close_reason: str | None = None


@dataclass(frozen=True)
class Rejection:
    """One refused transaction (or part of one), as ``update_rejected`` sees it."""

    doc_name: str
    actor: Actor
    reason: str
    path: str = ""
    permission: str | None = None


@dataclass(frozen=True)
class EditOutcome:
    """What ``ctx.edit`` did: accepted (and durable, broadcast), with what it changed."""

    doc_name: str
    accepted: bool
    update: bytes | None
    feed_id: int | None = None
    events: Sequence[Any] = field(default_factory=tuple)  # doc_model.DomainEvent


class EditRefused(Exception):
    """``ctx.edit`` was refused by the gate, with the reason a client would get."""

    def __init__(self, doc_name: str, reason: str, permission: str | None = None) -> None:
        super().__init__(f"{doc_name}: {reason}")
        self.doc_name = doc_name
        self.reason = reason
        self.permission = permission


class ServerContext(Protocol):
    """Everything a hook may use. One per server; replaces the old untyped ``state`` dict.

    ``edit`` is the only way to write a document: it loads the document's room
    if needed, runs ``change(doc)`` in one transaction through the gate with
    ``actor``'s permissions (system actors included: an automation rule acts
    as the user who owns it, an integration as its connection's identity),
    waits until the result is durable and broadcast, and raises
    :class:`EditRefused` when the gate refuses it.
    """

    settings: Settings
    store: DocumentStore
    outbound: OutboundPolicy
    # /readyz's probes: an extension that depends on a service adds one at startup
    # (``ctx.readiness.add("name", async_ping)``); see shell.readiness
    readiness: Readiness

    async def edit(
        self, actor: Actor, doc_name: str, change: Callable[[Doc[Any]], T], reason: str
    ) -> EditOutcome: ...


class Extension:
    """Base class with no-op hooks; override what you need.

    ``durable``: ``change_accepted`` is delivered at least once from the
    extension's own cursor in the change feed, surviving restarts (consumers
    dedup by ``DocumentChanged.feed_id``); when false it gets live changes
    only, from the moment the server started.

    ``event_kinds``: if set, ``change_accepted`` gets only the transactions with
    at least one domain event of these kinds (``DomainEvent.kind``); the others
    pass its cursor without a call. None (the default): every transaction.
    """

    name: ClassVar[str] = "extension"
    durable: ClassVar[bool] = True
    event_kinds: ClassVar[frozenset[str] | None] = None

    async def startup(self, ctx: ServerContext) -> None:
        """Once, before the server accepts requests."""

    async def shutdown(self, ctx: ServerContext) -> None:
        """Once, when the server stops (reverse order)."""

    async def authenticate(self, ctx: ServerContext, request: AuthRequest) -> Identity | None:
        """Who the request is, or None to let the next extension decide."""
        return None

    async def connected(self, ctx: ServerContext, conn: ConnectionInfo) -> None: ...

    async def disconnected(self, ctx: ServerContext, conn: ConnectionInfo) -> None: ...

    async def document_loaded(self, ctx: ServerContext, doc_name: str) -> None: ...

    async def document_unloaded(self, ctx: ServerContext, doc_name: str) -> None: ...

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        """Accepted transactions, in feed order, one or more per call."""

    async def update_rejected(self, ctx: ServerContext, rejection: Rejection) -> None: ...

    def routes(self, ctx: ServerContext) -> Blueprint | None:
        """A blueprint mounted on the app (its own url_prefix), or None."""
        return None
