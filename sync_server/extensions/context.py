"""The server context: one typed object holding the running server's services.

It replaces the untyped ``state`` dict the app factory and the REST blueprints
shared. Fields given at construction exist from ``create_app`` on; the others
are bound when the server starts (``before_serving``), before any request or
hook can run, so reading them earlier is a bug and raises ``AttributeError``.

``edit`` is the one way anything on the server writes a document while it
runs: through the gate, with the permissions of the identity that acts.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from doc_model import DocName, parse_doc_name
from sync_server.extensions.protocol import EditOutcome, EditRefused
from sync_server.interfaces import Actor, DocumentStore, Fanout

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet
    from pycrdt import Doc
    from sqlite_utils import Database

    from integrations.outbound import OutboundPolicy
    from sync_server.api.live_documents import LiveDocuments
    from sync_server.core.rooms import RoomManager
    from sync_server.extensions.builtins import MembersSync
    from sync_server.extensions.feed import ChangeFeed
    from sync_server.extensions.host import ExtensionHost
    from sync_server.identity import accounts
    from sync_server.identity.access import PermissionResolver
    from sync_server.identity.access_watch import AccessWatch
    from sync_server.identity.login_guard import LoginGuard
    from sync_server.scale.leases import RedisLeases
    from sync_server.shell.monitoring import ServerMetrics
    from sync_server.shell.readiness import Readiness
    from sync_server.shell.settings import Settings
    from sync_server.storage.database import DeferredWrites, SQLiteWorker

T = TypeVar("T")
log = logging.getLogger("tandem.extensions")


@dataclass(eq=False)
class TandemContext:
    """The concrete :class:`~sync_server.extensions.protocol.ServerContext`."""

    settings: Settings
    outbound: OutboundPolicy
    login_guard: LoginGuard
    host: ExtensionHost
    members: MembersSync  # writes grant changes into the members map
    # operations: readiness probes (backends add theirs at startup) and Prometheus metrics
    readiness: Readiness = field(init=False)
    metrics: ServerMetrics = field(init=False)
    # bound at startup ------------------------------------------------------------------
    db: Database = field(init=False)  # the accounts/grants file, read on the event loop
    store: DocumentStore = field(init=False)
    access: PermissionResolver = field(init=False)  # effective permissions, cached
    writer: SQLiteWorker = field(init=False)  # writes someone waits for (REST), off the loop
    deferred: DeferredWrites = field(init=False)  # writes nobody waits for, batched
    watch: AccessWatch = field(init=False)  # open sockets, closed when access ends
    rooms: RoomManager = field(init=False)
    feed: ChangeFeed = field(init=False)  # the durable change feed (extensions.feed)
    # several servers (sync_server.scale): None for a single server
    fanout: Fanout | None = field(init=False, default=None)
    leases: RedisLeases | None = field(init=False, default=None)
    live: LiveDocuments = field(init=False)
    metrics_reader: SQLiteWorker = field(init=False)  # gauges read when /metrics is scraped
    secret_keys: MultiFernet = field(init=False)  # the secrets table's keys (webhook secrets)
    keepalive: asyncio.Task[None] | None = field(init=False, default=None)
    touch: accounts.TokenTouch | None = field(init=False, default=None)

    @property
    def accounts(self) -> sqlite3.Connection:
        """The directory of accounts, tokens, roles and grants (read on the event loop)."""
        return self.db.conn

    async def edit(
        self,
        actor: Actor,
        doc_name: str | DocName,
        change: Callable[[Doc], Any],
        reason: str,
    ) -> EditOutcome:
        """Run ``change(doc)`` through the gate as ``actor``; see ``ServerContext.edit``.

        Returns once the result is durable and sent to every connected client. Raises
        :class:`EditRefused` with the reason a client would get when the gate refuses the
        transaction, and re-raises what ``change`` raised (its writes are reverted).
        """
        name = doc_name if isinstance(doc_name, DocName) else parse_doc_name(doc_name)
        result = await self.live.edit(name, actor, change)
        if result.error is not None:
            raise result.error
        if not result.accepted:
            denial = result.denial
            assert denial is not None
            log.info(
                "edit refused (%s): %s",
                reason,
                denial.reason,
                extra={"doc": name.name, "user": str(actor)},
            )
            raise EditRefused(name.name, denial.reason, denial.permission)
        log.debug("edit (%s)", reason, extra={"doc": name.name, "user": str(actor)})
        return EditOutcome(
            name.name,
            True,
            result.update,
            events=tuple(getattr(result, "events", ())),
        )
