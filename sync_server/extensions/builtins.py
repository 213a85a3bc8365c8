"""The server's own features, written as extensions like anyone else's.

    token-auth        API and session tokens (sockets and REST)
    activity          the activity stream (sync_server.extensions.activity.ActivityRecorder)
    notifications     notifications and Web Push (sync_server.extensions.notifications.NotificationCenter)
    rejection-audit   an audit row for every refused transaction
    members-sync      the members map follows grant changes, written through ctx.edit

Each is a thin wrapper: the feature's code stays in its own module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from doc_model import add_member, doc_name, parse_doc_name, remove_member
from sync_server.core.gate import Denial
from sync_server.extensions.activity import ActivityRecorder
from sync_server.extensions.notifications import NOTIFYING_KINDS, NotificationCenter
from sync_server.extensions.protocol import (
    AuthRequest,
    EditRefused,
    Extension,
    Identity,
    Rejection,
    ServerContext,
)
from sync_server.identity import access, accounts
from sync_server.interfaces import Actor, DocumentChanged
from sync_server.storage.database import SQLiteWorker, connect

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext
    from sync_server.identity.access_watch import Opening

log = logging.getLogger("tandem.extensions")

SOCKET_PREFIX = "/sync/"


def _tandem(ctx: ServerContext) -> TandemContext:
    """Built-ins use the server's own context (the concrete one, with the directory)."""
    from sync_server.extensions.context import TandemContext

    assert isinstance(ctx, TandemContext)
    return ctx


@dataclass(frozen=True)
class TokenIdentity(Identity):
    """An identity proved by a Tandem token: the account, and for a socket what the access
    watch needs to close it when the token is revoked or the grant taken away."""

    token: str = ""
    account: accounts.User | None = None
    opening: Opening | None = None


class TokenAuth(Extension):
    """API tokens and session tokens: ``Authorization: Bearer`` (or ``?token=`` on sockets)."""

    name = "token-auth"

    async def authenticate(self, ctx: ServerContext, request: AuthRequest) -> Identity | None:
        tandem = _tandem(ctx)
        if not request.token:
            return None
        if request.path.startswith(SOCKET_PREFIX):
            # read off the event loop, with the permissions the socket opens with
            opening = await tandem.watch.authenticate(request.token, request.project_id)
            if opening is None or opening.credential is None:
                return None
            user = opening.credential.user
            return TokenIdentity(
                user.name,
                user.display_name,
                permissions=opening.permissions,
                token=request.token,
                account=user,
                opening=opening,
            )
        found = accounts.authenticate(tandem.accounts, request.token, tandem.touch)
        if found is None:
            return None
        return TokenIdentity(found.name, found.display_name, token=request.token, account=found)


class ActivityExtension(Extension):
    """The activity stream, written on a SQLite connection and worker thread of its own
    (synchronous=NORMAL: a commit is not an fsync; WAL still survives a killed process)."""

    name = "activity"

    def __init__(self) -> None:
        self.db: SQLiteWorker | None = None
        self.recorder: ActivityRecorder | None = None

    async def startup(self, ctx: ServerContext) -> None:
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        self.recorder = ActivityRecorder(self.db)

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        assert self.recorder is not None
        await self.recorder.documents_changed(changes)

    async def shutdown(self, ctx: ServerContext) -> None:
        if self.db is not None:
            await self.db.close()


class NotificationsExtension(Extension):
    """Notifications (assigned, mentioned) stored and pushed to subscribed browsers."""

    name = "notifications"
    event_kinds = NOTIFYING_KINDS  # assignments and mentions only

    def __init__(self) -> None:
        self.db: SQLiteWorker | None = None
        self.center: NotificationCenter | None = None

    async def startup(self, ctx: ServerContext) -> None:
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        self.center = NotificationCenter(self.db, ctx.outbound)

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        assert self.center is not None
        await self.center.documents_changed(changes)

    async def shutdown(self, ctx: ServerContext) -> None:
        if self.db is not None:
            await self.db.close()


class RejectionAudit(Extension):
    """An ``update.rejected`` audit row per refused transaction, batched off the loop."""

    name = "rejection-audit"

    async def update_rejected(self, ctx: ServerContext, rejection: Rejection) -> None:
        _tandem(ctx).deferred.submit(
            access.rejection_row,
            rejection.actor,
            parse_doc_name(rejection.doc_name),
            Denial(rejection.reason, rejection.path, rejection.permission),
        )


class MembersSync(Extension):
    """The project's members map mirrors its grants.

    A grant changed through the server (REST) is written into the main document with
    ``ctx.edit``, as the person who changed the grant: the gate allows a members entry
    that matches the grants table to someone holding manage_team (or to the member
    themselves), see ``rules.permissions``. The CLI, which runs without a server,
    writes the stored document directly (``demo.grant_project_role``).
    """

    name = "members-sync"

    async def grant_changed(
        self, ctx: ServerContext, actor: str, project: str, member: str, role: str | None
    ) -> bool:
        """Show ``member``'s new role (None: removed); False (logged) if the gate refused."""

        def edit(doc) -> None:  # type: ignore[no-untyped-def]
            if role is None:
                remove_member(doc, member)
            else:
                add_member(doc, member, role)

        try:
            await ctx.edit(Actor(actor), doc_name(project), edit, f"grant of {member} changed")
        except EditRefused as e:
            log.error(
                "the members map was not updated for %s: %s",
                member,
                e.reason,
                extra={"doc": e.doc_name, "user": actor},
            )
            return False
        return True
