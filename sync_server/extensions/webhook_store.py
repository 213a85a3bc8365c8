"""Inbound webhook endpoints and their deliveries, in SQLite (migration 16).

An endpoint is one linked repository: a provider, the project it writes to, its
own secret (Fernet-encrypted in the ``secrets`` table through
``integrations.secrets.SecretStore``, the row holding only its reference, since
migration 21; never in a document or a log) and the identity it acts as (``integration:<provider>-<id>``, holding a grant on the project). A
delivery is stored before it is answered (``record_deliveries``: UNIQUE(endpoint,
delivery id), so a replayed id is recognised and changes nothing), then
processed by ``sync_server.extensions.vcs`` and marked done / ignored / failed.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field

from cryptography.fernet import MultiFernet

from integrations.secrets import WEBHOOK_KIND, load_keys, store_on
from rules import Grant, Permission
from sync_server.identity import access

ENDPOINT_ROLE = "member"
ENDPOINT_ADDED = frozenset({Permission.EDIT_ALL_TASKS})
"""An endpoint's identity: a member that may also edit any task (link it, move it)."""


@dataclass(frozen=True)
class Endpoint:
    id: str
    provider: str
    project: str
    secret_ref: str = field(repr=False)  # "secret:<id>" in the secrets table
    identity: str  # the principal its grant is held under: integration:<provider>-<id>
    created_by: str | None
    created_at: float
    last_delivery_at: float | None = None
    last_error: str | None = None
    paused_at: float | None = None  # set while paused: deliveries are recorded as ignored

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def path(self) -> str:
        return f"/api/v1/webhooks/{self.provider}/{self.id}/"

    @property
    def actor_name(self) -> str:
        return self.identity.removeprefix("integration:")

    def public(self) -> dict[str, object]:
        """What the API shows of an endpoint (never the secret)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "project": self.project,
            "path": self.path,
            "identity": self.identity,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "last_delivery_at": self.last_delivery_at,
            "last_error": self.last_error,
            "paused_at": self.paused_at,
        }


_COLUMNS = (
    "id, provider, project, secret_ref, identity, created_by, created_at, last_delivery_at,"
    " last_error, paused_at"
)


def create_endpoint(
    conn: sqlite3.Connection,
    keys: MultiFernet,
    provider: str,
    project: str,
    created_by: str,
    actor: str,
) -> tuple[Endpoint, str]:
    """A new endpoint with a new secret, and its identity's grant on ``project`` (through the
    grant rule as ``actor``: ``access.ADMIN`` for the CLI, else the person creating it).
    Returns the endpoint and its secret (shown once; stored only encrypted)."""
    endpoint_id = secrets.token_hex(8)
    identity = f"integration:{provider}-{endpoint_id}"
    secret = secrets.token_urlsafe(32)
    access.change_grant(
        conn,
        project,
        identity,
        Grant(identity, project, ENDPOINT_ROLE, ENDPOINT_ADDED),
        actor,
    )
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        ref = store_on(conn, keys).put_sync(project, WEBHOOK_KIND, secret)
        conn.execute(
            f"INSERT INTO webhook_endpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
            (endpoint_id, provider, project, ref, identity, created_by, now),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return Endpoint(endpoint_id, provider, project, ref, identity, created_by, now), secret


def endpoint_secret(conn: sqlite3.Connection, keys: MultiFernet, endpoint: Endpoint) -> str:
    """The endpoint's secret, decrypted (SecretUnreadable when the key changed)."""
    return store_on(conn, keys).get_sync(endpoint.secret_ref, endpoint.project)


def endpoint_with_secret(
    conn: sqlite3.Connection, keys: MultiFernet, endpoint_id: str
) -> tuple[Endpoint, str] | None:
    """The endpoint and its secret, in one call (the intake runs it off the event loop)."""
    endpoint = get_endpoint(conn, endpoint_id)
    if endpoint is None:
        return None
    return endpoint, endpoint_secret(conn, keys, endpoint)


def encrypt_stored_secrets(conn: sqlite3.Connection) -> None:
    """Migration 21: endpoints' secrets move from ``webhook_endpoints.secret`` (plain text)
    into the ``secrets`` table, encrypted, and the plain column is dropped. ``secure_delete``
    overwrites the freed bytes, so the old values are not left in the file's pages.

    The key is the one the server uses: ``TANDEM_SECRET_KEY``, else the key file next to
    the database (made here if there are secrets to encrypt and it does not exist yet)."""
    was = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = ON")
    try:
        _move_secrets(conn)
    finally:  # the connection goes on serving: back to what it was
        conn.execute(f"PRAGMA secure_delete = {int(was)}")


def encrypt_stored_secrets_postgres(conn: sqlite3.Connection) -> None:
    """Migration 21 on PostgreSQL (no PRAGMA: a dropped column's values are not kept in
    pages a reader of the database's files could open the way SQLite's free pages are)."""
    _move_secrets(conn, getattr(conn, "url", ""))


def _move_secrets(conn: sqlite3.Connection, path: str | None = None) -> None:
    conn.execute("ALTER TABLE webhook_endpoints ADD COLUMN secret_ref TEXT")
    rows = conn.execute("SELECT id, project, secret FROM webhook_endpoints").fetchall()
    if rows:
        if path is None:
            path = next(r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main")
        if not path:
            raise ValueError("an in-memory database has no key file for its webhook secrets")
        store = store_on(conn, load_keys(path, os.environ.get("TANDEM_SECRET_KEY", "")))
        for endpoint_id, project, secret in rows:
            ref = store.put_sync(project, WEBHOOK_KIND, str(secret))
            conn.execute(
                "UPDATE webhook_endpoints SET secret_ref = ? WHERE id = ?", (ref, endpoint_id)
            )
    conn.execute("ALTER TABLE webhook_endpoints DROP COLUMN secret")


def get_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
    ).fetchone()
    return Endpoint(*row) if row else None


def list_endpoints(conn: sqlite3.Connection, project: str | None = None) -> list[Endpoint]:
    if project is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM webhook_endpoints ORDER BY created_at")
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE project = ? ORDER BY created_at",
            (project,),
        )
    return [Endpoint(*row) for row in rows.fetchall()]


def set_paused(conn: sqlite3.Connection, endpoint_id: str, paused: bool) -> Endpoint | None:
    """Pause (deliveries still answered 2xx, recorded as ignored) or resume an endpoint;
    pausing one already paused keeps its first time. The endpoint after, or None if gone."""
    with conn:
        if paused:
            conn.execute(
                "UPDATE webhook_endpoints SET paused_at = COALESCE(paused_at, ?) WHERE id = ?",
                (time.time(), endpoint_id),
            )
        else:
            conn.execute(
                "UPDATE webhook_endpoints SET paused_at = NULL WHERE id = ?", (endpoint_id,)
            )
    return get_endpoint(conn, endpoint_id)


def delete_endpoint(conn: sqlite3.Connection, endpoint_id: str, actor: str) -> bool:
    """Forget the endpoint, its deliveries and its identity's grant."""
    endpoint = get_endpoint(conn, endpoint_id)
    if endpoint is None:
        return False
    access.change_grant(conn, endpoint.project, endpoint.identity, None, actor)
    with conn:
        conn.execute("DELETE FROM webhook_deliveries WHERE endpoint = ?", (endpoint_id,))
        conn.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
        conn.execute(
            "DELETE FROM secrets WHERE id = ?", (endpoint.secret_ref.removeprefix("secret:"),)
        )
    return True


def record_deliveries(
    conn: sqlite3.Connection, deliveries: list[tuple[str, str, str, bytes]]
) -> list[int | None]:
    """Store several deliveries (endpoint, delivery id, event, payload) in one transaction:
    one commit for everything that arrived meanwhile (group commit). Each one's row id, or
    None for a delivery id already stored (before, or earlier in the same batch)."""
    now = time.time()
    out: list[int | None] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for endpoint, delivery, event, payload in deliveries:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO webhook_deliveries"
                " (endpoint, delivery, event, payload, status, received_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (endpoint, delivery, event, payload, now),
            )
            out.append(cursor.lastrowid if cursor.rowcount else None)
        for endpoint in {d[0] for d in deliveries}:
            conn.execute(
                "UPDATE webhook_endpoints SET last_delivery_at = ? WHERE id = ?", (now, endpoint)
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


@dataclass(frozen=True)
class StoredDelivery:
    id: int
    endpoint: str
    delivery: str
    event: str
    payload: bytes


def pending_deliveries(conn: sqlite3.Connection, limit: int = 1000) -> list[StoredDelivery]:
    rows = conn.execute(
        "SELECT id, endpoint, delivery, event, payload FROM webhook_deliveries"
        " WHERE status = 'pending' ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [StoredDelivery(*row) for row in rows]


def get_delivery(conn: sqlite3.Connection, row_id: int) -> StoredDelivery | None:
    row = conn.execute(
        "SELECT id, endpoint, delivery, event, payload FROM webhook_deliveries WHERE id = ?",
        (row_id,),
    ).fetchone()
    return StoredDelivery(*row) if row else None


def finish_delivery(
    conn: sqlite3.Connection, row_id: int, endpoint: str, status: str, detail: str
) -> None:
    """Mark a delivery processed (``done``, ``ignored`` or ``failed``, with what happened)."""
    with conn:
        conn.execute(
            "UPDATE webhook_deliveries SET status = ?, detail = ?, processed_at = ? WHERE id = ?",
            (status, detail[:2000], time.time(), row_id),
        )
        conn.execute(
            "UPDATE webhook_endpoints SET last_error = ? WHERE id = ?",
            (detail[:2000] if status == "failed" else None, endpoint),
        )


def last_deliveries(conn: sqlite3.Connection, endpoints: list[str]) -> dict[str, dict[str, object]]:
    """The newest delivery of each endpoint named (none for one that never got any)."""
    if not endpoints:
        return {}
    marks = ", ".join("?" for _ in endpoints)
    rows = conn.execute(
        "SELECT endpoint, delivery, event, status, detail, received_at, processed_at"
        " FROM webhook_deliveries WHERE id IN (SELECT MAX(id) FROM webhook_deliveries"
        f" WHERE endpoint IN ({marks}) GROUP BY endpoint)",
        endpoints,
    ).fetchall()
    keys = ("delivery", "event", "status", "detail", "received_at", "processed_at")
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def recent_deliveries(
    conn: sqlite3.Connection, endpoint: str, limit: int = 50
) -> list[dict[str, object]]:
    rows = conn.execute(
        "SELECT delivery, event, status, detail, received_at, processed_at"
        " FROM webhook_deliveries WHERE endpoint = ? ORDER BY id DESC LIMIT ?",
        (endpoint, limit),
    ).fetchall()
    keys = ("delivery", "event", "status", "detail", "received_at", "processed_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
