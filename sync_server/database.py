"""The SQLite file: connection settings and schema migrations.

WAL mode lets the server and the ``tandem`` CLI use one file at once; writers
take ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for each other.
Migrations are numbered by ``PRAGMA user_version`` and each runs in its own
transaction, so a file is always at one well-defined schema version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import sqlite_utils

from .accounts import ACCOUNT_SCHEMA

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: document logs and snapshots
    """
    CREATE TABLE IF NOT EXISTS documents (
        name TEXT PRIMARY KEY,
        snapshot BLOB,
        snapshot_seq INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        compacted_at REAL
    );
    CREATE TABLE IF NOT EXISTS updates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        doc TEXT NOT NULL,
        data BLOB NOT NULL,
        actor TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS updates_doc_seq ON updates (doc, seq);
    """,
    # 2: accounts and API tokens
    ACCOUNT_SCHEMA,
    # 3: the snapshot's state vector, so a room can answer sync step 1 without decoding
    "ALTER TABLE documents ADD COLUMN snapshot_state BLOB",
    # 4: custom roles, per-project grants, audit log
    """
    CREATE TABLE IF NOT EXISTS roles (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,
        project TEXT,
        created_by TEXT,
        created_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS roles_name_project ON roles (name, coalesce(project, ''));
    CREATE TABLE IF NOT EXISTS grants (
        user TEXT NOT NULL,
        project TEXT NOT NULL,
        role TEXT NOT NULL,
        added TEXT NOT NULL DEFAULT '[]',
        removed TEXT NOT NULL DEFAULT '[]',
        updated_at REAL NOT NULL,
        PRIMARY KEY (user, project)
    );
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        project TEXT NOT NULL,
        document TEXT,
        action TEXT NOT NULL,
        path TEXT,
        reason TEXT,
        detail TEXT
    );
    CREATE INDEX IF NOT EXISTS audit_project ON audit (project, id);
    """,
    # 5: login sessions and the server's signing secret
    """
    CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE IF NOT EXISTS server_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 6: the project registry (listing without loading documents) and the activity stream
    """
    CREATE TABLE IF NOT EXISTS projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_by TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );
    INSERT OR IGNORE INTO projects (id, name, created_at, updated_at)
        SELECT DISTINCT project, project, min(updated_at), max(updated_at) FROM grants
        GROUP BY project;
    CREATE TABLE IF NOT EXISTS activity (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        project TEXT NOT NULL,
        document TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        task TEXT,
        detail TEXT
    );
    CREATE INDEX IF NOT EXISTS activity_project ON activity (project, id);
    CREATE INDEX IF NOT EXISTS activity_task_done ON activity (project, action, task);
    """,
    # 7: notifications (in-app list), Web Push subscriptions, who was told of which assignment
    """
    CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        url TEXT NOT NULL,
        created_at REAL NOT NULL,
        read_at REAL
    );
    CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user, id);
    CREATE TABLE IF NOT EXISTS push_subscriptions (
        endpoint TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS assignments (
        project TEXT NOT NULL,
        task TEXT NOT NULL,
        user TEXT NOT NULL,
        PRIMARY KEY (project, task, user)
    );
    """,
    # 8: API tokens may expire; a generation counter every change to access moves (triggers, so
    # a change by any process on the file counts: the server polls it to end revoked access)
    """
    ALTER TABLE api_tokens ADD COLUMN expires_at REAL;
    CREATE TABLE IF NOT EXISTS access_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO access_generation (id, n) VALUES (1, 0);
    """
    + "".join(
        f"CREATE TRIGGER IF NOT EXISTS access_{table}_{event.split()[0].lower()}"
        f" AFTER {event} ON {table}"
        " BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; END;\n"
        for table, events in (
            ("grants", ("INSERT", "UPDATE", "DELETE")),
            ("roles", ("INSERT", "UPDATE", "DELETE")),
            ("api_tokens", ("UPDATE OF revoked_at, expires_at, user_id", "DELETE")),
            ("sessions", ("UPDATE OF revoked_at, expires_at, user_id", "DELETE")),
            ("users", ("DELETE",)),
            ("projects", ("UPDATE OF deleted_at", "DELETE")),
        )
        for event in events
    ),
]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with Tandem's pragmas; transactions are explicit (autocommit mode)."""
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _statements(script: str) -> list[str]:
    """A script's statements, one by one (a trigger's body holds semicolons of its own)."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending)
    return out


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file's schema up to date; returns the version it is at."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    while version < len(MIGRATIONS):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have migrated meanwhile
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current == version:
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def open_database(path: str | Path, synchronous: str = "FULL") -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database file."""
    conn = connect(path, synchronous)
    migrate(conn)
    return sqlite_utils.Database(conn)


class SQLiteWorker:
    """One connection, used by one worker thread at a time: SQLite work off the event loop.

    A write waits for SQLite's write lock (``busy_timeout``) and a commit may
    fsync; on the event loop either stalls every connection of the server.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def close(self) -> None:
        await self.run(self.conn.close)
