"""Access ends when it is taken away: open sockets re-checked whenever access changes.

Every socket is watched with the credential it opened with and the document
it reads. The watch polls ``access_generation`` (one row, moved by triggers
on grants, roles, tokens, sessions and projects, so a change by the CLI or
another server counts) every ``poll_seconds`` on a worker thread of its own
(``database.SQLiteWorker``); when it moves, it re-reads every watched
credential and (user, project) permissions in one read transaction, and then,
on the event loop:

    credential revoked, expired or gone  -> close 4401, queued output dropped
    may no longer read the document      -> close 4403, queued output dropped
    otherwise                            -> the gate judges the next write with
                                            the new permissions (PermissionResolver.prime)

Credentials that expire (API tokens with an expiry, 12 h sessions) are closed
when their time comes, without waiting for a change. A change made by this
process (logout, a grant through the API) calls ``check_now`` before it
answers, so its sockets are closed by the time the response is sent.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doc_model import DocName
from rules import Permission, missing_for_document
from sync_server.core.connection import CloseCode, Connection
from sync_server.identity import accounts
from sync_server.identity.access import PermissionResolver, access_generation, permissions_of
from sync_server.storage.database import SQLiteWorker

log = logging.getLogger("tandem.access")


@dataclass
class Watched:
    conn: Connection
    token: str
    user: str
    doc_name: DocName
    expires_at: float | None


@dataclass(frozen=True)
class Lookup:
    """What the file says, read in one transaction: at which generation, each credential's
    owner and expiry (None: not valid), each (user, project)'s permissions."""

    generation: int
    credentials: dict[str, accounts.Credential | None]
    permissions: dict[tuple[str, str], frozenset[Permission]]


def read_access(
    conn: sqlite3.Connection, tokens: Iterable[str], pairs: Iterable[tuple[str, str]]
) -> Lookup:
    """Runs on the watch's worker thread."""
    conn.execute("BEGIN")
    try:
        generation = access_generation(conn)
        credentials = {t: accounts.credential(conn, t, record=False) for t in set(tokens)}
        perms = {(u, p): permissions_of(conn, u, p) for u, p in set(pairs)}
    finally:
        conn.execute("COMMIT")
    return Lookup(generation, credentials, perms)


@dataclass(frozen=True)
class Opening:
    """A new socket's credential (None: not valid) and permissions, and the generation they
    were read at."""

    generation: int
    credential: accounts.Credential | None
    permissions: frozenset[Permission]
    used: tuple[int, float] | None = None  # (token id, when): an API token's use to record


def open_socket(
    conn: sqlite3.Connection, token: str, project: str | None, defer_use: bool = False
) -> Opening:
    """Runs on the watch's worker thread. An API token's use is recorded at once, or with
    ``defer_use`` handed back in ``Opening.used`` (the server batches it on the event loop)."""
    generation = access_generation(conn)
    used: list[tuple[int, float]] = []
    found = accounts.credential(
        conn, token, (lambda token_id, now: used.append((token_id, now))) if defer_use else None
    )
    first_use = used[0] if used else None
    if found is None or project is None:
        return Opening(generation, found, frozenset(), first_use)
    return Opening(generation, found, permissions_of(conn, found.user.name, project), first_use)


class AccessWatch:
    def __init__(
        self,
        worker: SQLiteWorker,
        resolver: PermissionResolver,
        *,
        poll_seconds: float = 0.25,
        stored_generation: Callable[[], int | None] = lambda: None,
        touch: accounts.TokenTouch | None = None,
    ) -> None:
        self.worker = worker
        self.touch = touch  # records a token's use (called on the event loop)
        self.stored_generation = stored_generation
        self.resolver = resolver
        self.poll_seconds = poll_seconds
        self.generation: int | None = None
        self.watched: dict[int, Watched] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.generation = await self.worker.run(access_generation, self.worker.conn)
        self._task = asyncio.create_task(self._poll(), name="access watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def authenticate(self, token: str | None, project: str | None) -> Opening | None:
        """A new socket's credential and permissions, read off the event loop."""
        if not token:
            return None
        try:
            opening = await self.worker.run(
                open_socket, self.worker.conn, token, project, self.touch is not None
            )
        except sqlite3.Error:
            log.exception("token lookup failed")
            return None
        if opening.used is not None and self.touch is not None:
            self.touch(*opening.used)
        return opening

    def watch(self, conn: Connection, token: str, opening: Opening, doc_name: DocName) -> None:
        assert opening.credential is not None
        user = opening.credential.user.name
        self.watched[conn.id] = Watched(conn, token, user, doc_name, opening.credential.expires_at)
        self.resolver.keep(user, doc_name.project_id, opening.permissions)
        if opening.generation != self.generation:
            self.generation = None  # access changed since that read: the next poll re-checks

    def unwatch(self, conn: Connection) -> None:
        gone = self.watched.pop(conn.id, None)
        if gone is not None:
            key = (gone.user, gone.doc_name.project_id)
            if not any((w.user, w.doc_name.project_id) == key for w in self.watched.values()):
                self.resolver.unkeep(*key)

    async def settle(self) -> None:
        """Before a room sends a stored batch: if access changed before that batch was stored
        (the generation its append read), act on it first, so nobody whose access ended
        receives an update sent after that."""
        await self.settle_at(self.stored_generation())

    async def settle_at(self, seen: int | None) -> None:
        """Before sending an update stored when the access tables were at generation
        ``seen`` (another server's, sync_server.scale): as ``settle``."""
        if seen is not None and self.generation is not None and seen <= self.generation:
            return
        if seen is not None or self.generation is None:
            await self.check_now()

    async def refresh(self) -> None:
        """Act on any access change committed before now (a generation read, and the check
        only if it moved): before sending updates another process stored."""
        generation = await self.worker.run(access_generation, self.worker.conn)
        if generation != self.generation:
            await self.check_now()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                generation = await self.worker.run(access_generation, self.worker.conn)
                if generation != self.generation:
                    await self.check_now()
                else:
                    self._close_expired(time.time())
            except Exception:
                log.exception("checking open sockets' access failed")

    async def check_now(self) -> None:
        """Re-read every watched socket's access and act on it (see the module docstring)."""
        async with self._lock:
            watched = list(self.watched.values())
            lookup = await self.worker.run(
                read_access,
                self.worker.conn,
                [w.token for w in watched],
                [(w.user, w.doc_name.project_id) for w in watched],
            )
            self.generation = lookup.generation
            self.resolver.prime(lookup.permissions)
            for w in watched:
                if w.conn.id not in self.watched:
                    continue  # left meanwhile
                found = lookup.credentials.get(w.token)
                if found is None or found.user.name != w.user:
                    self._end(w, CloseCode.UNAUTHENTICATED, "token revoked or expired")
                    continue
                w.expires_at = found.expires_at
                missing = missing_for_document(
                    lookup.permissions[(w.user, w.doc_name.project_id)], w.doc_name.kind
                )
                if missing:
                    needs = ", ".join(p.value for p in missing)
                    self._end(
                        w,
                        CloseCode.FORBIDDEN,
                        f"{w.user} may no longer read {w.doc_name.name}: needs {needs}",
                    )
            self._close_expired(time.time())

    def _close_expired(self, now: float) -> None:
        for w in list(self.watched.values()):
            if w.expires_at is not None and w.expires_at <= now:
                self._end(w, CloseCode.UNAUTHENTICATED, "token expired")

    def _end(self, w: Watched, code: int, reason: str) -> None:
        log.info(
            "closing: %s", reason, extra={"doc": w.doc_name.name, "user": w.user, "conn": w.conn.id}
        )
        w.conn.close(code, reason, discard=True)
        self.unwatch(w.conn)
