"""The database: connection settings and schema migrations, for SQLite and PostgreSQL.

The storage target is a SQLite file path (the embedded default) or a
``postgresql://`` URL; :func:`connect` gives a connection of the one shape every
module uses (sqlite3.Connection's; ``postgres.PgConnection`` has it over psycopg),
and :func:`migrate` brings either engine's schema up to date (see docs/storage.md).

WAL mode lets the server and the ``tandem`` CLI use one file at once; writers
take ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for each other.
Migrations are numbered by ``PRAGMA user_version`` and each runs in its own
transaction, so a file is always at one well-defined schema version.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import sqlite3
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlite_utils

from sync_server.identity.accounts import (
    ACCOUNT_SCHEMA,
    add_email_columns,
    add_locale_columns,
)
from sync_server.storage import postgres

T = TypeVar("T")

log = logging.getLogger("tandem.database")


def checksum(data: bytes) -> int:
    """The checksum stored beside every update and snapshot (CRC-32: every burst of up to 32
    flipped bits, and any truncation that changes the CRC, is caught)."""
    return zlib.crc32(data)


def _add_checksums(conn: sqlite3.Connection) -> None:
    """Migration 8: a checksum per stored update and snapshot, computed for existing rows;
    a table for updates ``tandem doctor --recover`` takes out of a document's log."""
    conn.execute("ALTER TABLE updates ADD COLUMN checksum INTEGER")
    conn.execute("ALTER TABLE documents ADD COLUMN snapshot_checksum INTEGER")
    for seq, data in conn.execute("SELECT seq, data FROM updates").fetchall():
        if isinstance(data, bytes):  # anything else is reported as corrupt on load
            conn.execute("UPDATE updates SET checksum = ? WHERE seq = ?", (checksum(data), seq))
    for name, data in conn.execute(
        "SELECT name, snapshot FROM documents WHERE snapshot IS NOT NULL"
    ).fetchall():
        if isinstance(data, bytes):
            conn.execute(
                "UPDATE documents SET snapshot_checksum = ? WHERE name = ?", (checksum(data), name)
            )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS quarantined_updates (
            seq INTEGER NOT NULL,
            doc TEXT NOT NULL,
            data BLOB,
            actor TEXT,
            created_at REAL,
            checksum INTEGER,
            quarantined_at REAL NOT NULL,
            reason TEXT NOT NULL
        )"""
    )


Migration = str | Callable[[sqlite3.Connection], None]


def add_marks_locale_and_status(conn: sqlite3.Connection) -> None:
    """Migration 20: ``mention_marks`` (extensions.mentions), ``users.locale`` /
    ``users.time_zone`` (identity.accounts) and ``projects.status`` (identity.projects)."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(projects)")}
    if "status" not in columns:  # NULL: not read from the document yet
        conn.execute("ALTER TABLE projects ADD COLUMN status TEXT")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS mention_marks (project TEXT NOT NULL, task TEXT NOT NULL,"
        " user TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (project, task, user))"
    )
    add_locale_columns(conn)


# what moves access_generation (migration 9)
_ACCESS_TRIGGERS = (
    ("grants", ("INSERT", "UPDATE", "DELETE")),
    ("roles", ("INSERT", "UPDATE", "DELETE")),
    ("api_tokens", ("UPDATE OF revoked_at, expires_at, user_id", "DELETE")),
    ("sessions", ("UPDATE OF revoked_at, expires_at, user_id", "DELETE")),
    ("users", ("DELETE",)),
    ("projects", ("UPDATE OF deleted_at", "DELETE")),
)

MIGRATIONS: list[Migration] = [
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
    # 8: checksums of stored updates and snapshots
    _add_checksums,
    # 9: API tokens may expire; a generation counter every change to access moves (triggers, so
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
        for table, events in _ACCESS_TRIGGERS
        for event in events
    ),
    # 10: the durable change feed (sync_server.extensions.feed): one row per stored update,
    # written in the update's own transaction, and each durable consumer's position in it
    """
    CREATE TABLE IF NOT EXISTS change_feed (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        actor TEXT NOT NULL,
        changes TEXT NOT NULL DEFAULT '[]',
        events TEXT NOT NULL DEFAULT '[]',
        created REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS change_feed_created ON change_feed (created);
    CREATE TABLE IF NOT EXISTS feed_cursors (
        consumer TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # 11: notifications learn who
    # was newly assigned from domain events (assignees added), not from a shadow copy of
    # every task's assignees
    """
    DROP TABLE IF EXISTS assignments;
    """,
    # 12: failed logins, kept where every server process on the file and a restart see them
    # (login_guard)
    """
    CREATE TABLE IF NOT EXISTS login_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (scope, key, at);
    CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
    """,
    # 13: secrets kept outside the shared documents (integrations.secrets: webhook, Slack and
    # Teams URLs, webhook signing secrets; values encrypted) and the durable outbox of
    # outbound messages (integrations.outbox)
    """
    CREATE TABLE IF NOT EXISTS secrets (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        value BLOB NOT NULL,
        hint TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS secrets_project ON secrets (project, kind);
    CREATE UNIQUE INDEX IF NOT EXISTS secrets_signing ON secrets (project) WHERE kind = 'signing';
    CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        created REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX IF NOT EXISTS outbox_project ON outbox (project, id);
    """,
    # 14: automation (sync_server.extensions.automation): every run of a rule, at most one
    # per (rule, event key); the scheduler's next fire times; rules paused and why
    """
    CREATE TABLE IF NOT EXISTS rule_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule TEXT NOT NULL,
        project TEXT NOT NULL,
        event_key TEXT NOT NULL,
        event TEXT NOT NULL DEFAULT '{}',
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        depth INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL,
        UNIQUE (rule, event_key)
    );
    CREATE INDEX IF NOT EXISTS rule_runs_project ON rule_runs (project, rule, id);
    CREATE TABLE IF NOT EXISTS rule_schedule (
        rule TEXT NOT NULL,
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        entity TEXT NOT NULL DEFAULT '',
        next_fire_at REAL NOT NULL,
        event_key TEXT NOT NULL,
        PRIMARY KEY (project, rule, entity)
    );
    CREATE INDEX IF NOT EXISTS rule_schedule_next ON rule_schedule (next_fire_at);
    CREATE TABLE IF NOT EXISTS rule_state (
        project TEXT NOT NULL,
        rule TEXT NOT NULL,
        paused_reason TEXT,
        paused_at REAL,
        PRIMARY KEY (project, rule)
    );
    """,
    # 15: task keys (extensions.task_keys): each project's counter (only grows: a key is
    # never given twice) and which number each task got (assigning is idempotent)
    """
    CREATE TABLE IF NOT EXISTS task_key_counters (
        project TEXT PRIMARY KEY,
        prefix TEXT NOT NULL,
        next INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS task_keys (
        project TEXT NOT NULL,
        task TEXT NOT NULL,
        number INTEGER NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (project, task),
        UNIQUE (project, number)
    );
    """,
    # 16: inbound webhook endpoints (one per linked repository, each with its own secret;
    # never in a document) and the delivery ids seen (a replay changes nothing)
    """
    CREATE TABLE IF NOT EXISTS webhook_endpoints (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        project TEXT NOT NULL,
        secret TEXT NOT NULL,
        identity TEXT NOT NULL,
        created_by TEXT,
        created_at REAL NOT NULL,
        last_delivery_at REAL,
        last_error TEXT
    );
    CREATE INDEX IF NOT EXISTS webhook_endpoints_project ON webhook_endpoints (project);
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        delivery TEXT NOT NULL,
        event TEXT NOT NULL,
        payload BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        detail TEXT,
        received_at REAL NOT NULL,
        processed_at REAL,
        UNIQUE (endpoint, delivery)
    );
    CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON webhook_deliveries (status, id);
    """,
    # 17: connections of a project to providers (integrations.connections: OAuth2 tokens and
    # API tokens, encrypted in secrets; the row holds only its reference) and the state of
    # authorizations under way (the PKCE verifier encrypted in secrets too)
    """
    CREATE TABLE IF NOT EXISTS connections (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        provider TEXT NOT NULL,
        created_by TEXT NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'active',
        created REAL NOT NULL,
        last_used REAL,
        last_error TEXT,
        credential TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS connections_project ON connections (project, created);
    CREATE TABLE IF NOT EXISTS oauth_states (
        state TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        provider TEXT NOT NULL,
        user TEXT NOT NULL,
        verifier TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        return_to TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );
    """,
    # 18: an account's e-mail address and daily-digest preference
    add_email_columns,
    # 19: an inbound webhook endpoint can be paused (sync_server.api.integrations): while
    # paused_at is set, its deliveries are answered 2xx and recorded as ignored, not acted on
    """
    ALTER TABLE webhook_endpoints ADD COLUMN paused_at REAL;
    """,
    # 20: what each task's title and description mentioned when their typing last settled
    # (extensions.mentions: a mention added since tells its member once), an account's
    # locale and time zone (dates and numbers in what the server writes for them), and a
    # project's status in the registry (listed and filtered without loading documents)
    add_marks_locale_and_status,
    # 21: inbound webhook endpoints' secrets encrypted in the secrets table (the row keeps
    # its reference, secret_ref); the plain-text column is dropped, its bytes overwritten
    lambda conn: _encrypt_webhook_secrets(conn),
    # 22: connections (integrations.connections) can be paused: while paused_at is set
    # nothing is fetched or pushed for one (no call, no token refresh, no scheduled import);
    # a token refresh is single-flight across processes: the one that claims the row
    # (refresh_holder, until refresh_until) refreshes, the others wait for the token it stores
    """
    ALTER TABLE connections ADD COLUMN paused_at REAL;
    ALTER TABLE connections ADD COLUMN refresh_holder TEXT;
    ALTER TABLE connections ADD COLUMN refresh_until REAL;
    """,
    # 23: fencing tokens of the scale-out leases (sync_server.scale.fences): the newest token
    # that claimed each lease; a write by the holder of an older one (a change-feed cursor, an
    # outbox claim) is refused; a rule run records the token of the holding that claimed it
    # (one left running by a holder that lost its lease is claimed again by the next)
    """
    CREATE TABLE IF NOT EXISTS lease_fences (
        name TEXT PRIMARY KEY,
        token INTEGER NOT NULL,
        holder TEXT NOT NULL,
        claimed REAL NOT NULL
    );
    ALTER TABLE rule_runs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
    """,
    # 24: a push subscription lasts as long as the credential that registered it (the login
    # session, or the API token by its hash): after a logout, a revoked token or an expired
    # session, the browser it names is pushed nothing more (rows from before: both null);
    # a notification names the read it makes (rules.reads: task_notice...), and is listed
    # only while its user may make it (rows from before: worked out from kind and url)
    """
    ALTER TABLE push_subscriptions ADD COLUMN session_id TEXT;
    ALTER TABLE push_subscriptions ADD COLUMN token_hash TEXT;
    ALTER TABLE notifications ADD COLUMN read_needed TEXT;
    """,
]


def _encrypt_webhook_secrets(conn: sqlite3.Connection, postgres: bool = False) -> None:
    from sync_server.extensions import webhook_store  # no import cycle

    if postgres:
        webhook_store.encrypt_stored_secrets_postgres(conn)
    else:
        webhook_store.encrypt_stored_secrets(conn)


def _access_generation_postgres(conn: sqlite3.Connection) -> None:
    """Migration 9 on PostgreSQL: the same table, its triggers as one plpgsql function."""
    conn.execute("ALTER TABLE api_tokens ADD COLUMN expires_at REAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS access_generation"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)"
    )
    conn.execute("INSERT OR IGNORE INTO access_generation (id, n) VALUES (1, 0)")
    conn.execute(
        "CREATE OR REPLACE FUNCTION tandem_access_changed() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN UPDATE access_generation SET n = n + 1 WHERE id = 1; RETURN NULL; END $$"
    )
    for table, events in _ACCESS_TRIGGERS:
        for event in events:
            conn.execute(
                f"CREATE OR REPLACE TRIGGER access_{table}_{event.split()[0].lower()}"
                f" AFTER {event} ON {table} FOR EACH ROW EXECUTE FUNCTION tandem_access_changed()"
            )


def _marks_locale_and_status_postgres(conn: sqlite3.Connection) -> None:
    """Migration 20 on PostgreSQL (``add_marks_locale_and_status`` reads PRAGMA table_info)."""
    conn.execute("ALTER TABLE projects ADD COLUMN IF NOT EXISTS status TEXT")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS mention_marks (project TEXT NOT NULL, task TEXT NOT NULL,"
        " user TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (project, task, user))"
    )
    conn.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS locale TEXT")
    conn.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS time_zone TEXT")


def _email_columns_postgres(conn: sqlite3.Connection) -> None:
    """Migration 18 on PostgreSQL (``add_email_columns`` reads SQLite's PRAGMA table_info)."""
    conn.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS email TEXT")
    conn.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS digest TEXT NOT NULL DEFAULT 'daily'")


# PostgreSQL's version of a migration, by number, where SQLite's does not translate (see
# postgres.translate for what does): every Python migration needs an entry here (the same
# function if it only runs portable SQL through ``conn.execute``); a plain-SQL one only if
# it uses something the translation does not cover (a trigger, a PRAGMA).
POSTGRES_STEPS: dict[int, Migration] = {
    8: _add_checksums,  # portable: ALTER, SELECT, UPDATE through the translation
    9: _access_generation_postgres,
    18: _email_columns_postgres,
    20: _marks_locale_and_status_postgres,
    21: lambda conn: _encrypt_webhook_secrets(conn, postgres=True),
}

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with Tandem's pragmas; transactions are explicit (autocommit mode).

    ``path`` may be a ``postgresql://`` URL: then a ``postgres.PgConnection`` (the same
    shape; ``synchronous`` is the server's business there: commits are durable)."""
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    if postgres.is_postgres(path):
        return cast(sqlite3.Connection, postgres.PgConnection(str(path)))
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def is_locked(error: sqlite3.Error) -> bool:
    """Whether ``error`` is SQLite's busy timeout running out (another writer held the lock)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def is_full(error: sqlite3.Error) -> bool:
    """Whether ``error`` is SQLite finding the disk (or the file's size limit) full."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_FULL
    return "full" in str(error)


def storage_trouble(error: BaseException | None) -> tuple[bool, str, int]:
    """A write that could not be stored, for people: whether it is temporary (a full disk,
    a lock held past the busy timeout: retrying later will do), what happened, and in how
    many seconds to retry. REST answers with it (507 / 503) and room sockets close with it."""
    if isinstance(error, sqlite3.OperationalError) and postgres.is_connection_error(error):
        return True, "the database cannot be reached", 5
    if isinstance(error, sqlite3.Error) and is_full(error):
        return True, "the server's disk is full", 60
    if isinstance(error, sqlite3.Error) and is_locked(error):
        return True, "the database is locked by another process", 5
    return False, "the change could not be stored", 5


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
    if isinstance(conn, postgres.PgConnection):
        return _migrate_postgres(conn)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    while version < len(MIGRATIONS):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have migrated meanwhile
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current == version:
                step = MIGRATIONS[version]
                if callable(step):
                    step(conn)
                else:
                    for statement in _statements(step):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
                conn.execute("ROLLBACK")
            raise
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _migrate_postgres(conn: postgres.PgConnection) -> int:
    """PostgreSQL: the version in table ``schema_version``; the same MIGRATIONS in the same
    order (translated, or POSTGRES_STEPS' version), each in its own transaction, under a
    session advisory lock so that nodes starting at once migrate one after the other."""
    raw = conn.raw
    raw.execute("SELECT pg_advisory_lock(%s)", (postgres.MIGRATION_LOCK_KEY,))
    try:
        raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = raw.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            raw.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = int(row[0]) if row else 0
        while version < len(MIGRATIONS):
            number = version + 1
            step = POSTGRES_STEPS.get(number, MIGRATIONS[version])
            if callable(step) and number not in POSTGRES_STEPS:
                raise RuntimeError(
                    f"migration {number} is Python code with no PostgreSQL version:"
                    " add one to POSTGRES_STEPS"
                )
            raw.execute("BEGIN")
            try:
                if callable(step):
                    step(cast(sqlite3.Connection, conn))
                else:
                    for statement in _statements(step):
                        conn.execute(statement)
                raw.execute("UPDATE schema_version SET version = %s", (number,))
                raw.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            version = number
        return version
    finally:
        if not raw.closed:
            raw.execute("SELECT pg_advisory_unlock(%s)", (postgres.MIGRATION_LOCK_KEY,))


def schema_version(conn: sqlite3.Connection) -> int:
    """The version a database's schema is at (either engine)."""
    if isinstance(conn, postgres.PgConnection):
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def open_database(path: str | Path, synchronous: str = "FULL") -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database (file, or PostgreSQL URL)."""
    conn = connect(path, synchronous)
    migrate(conn)
    if isinstance(conn, postgres.PgConnection):  # only ``.conn`` of it is used
        return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    return sqlite_utils.Database(conn)


class SQLiteWorker:
    """One connection and one thread of its own: SQLite work off the event loop, in order.

    A write waits for SQLite's write lock (``busy_timeout``) and a commit may
    fsync; on the event loop either stalls every connection of the server.

    Calls run one at a time, in the order they were made, on the worker's thread.
    The hand-off is a ``queue.SimpleQueue`` and ``call_soon_threadsafe``: about half
    the event loop's time per call of ``anyio.to_thread.run_sync`` with a limiter of
    one (a CancelScope, a context copy and a ``queue.Queue`` whose Condition is
    Python code), and the room's appends and every feed consumer's reads make hundreds
    of calls a second. A caller cancelled before its call started cancels the call; one
    cancelled while it runs gets its cancellation at once, and the call runs to its
    end (calls keep their order: nothing queued later overtakes it). The thread ends after
    ``IDLE_SECONDS`` without work and is started again by the next call (a worker
    nobody closes leaves no thread behind).
    """

    IDLE_SECONDS = 10.0

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        job = (loop, done, contextvars.copy_context(), fn, args)
        with self._lock:  # (the thread ends only under the lock, when nothing is queued)
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"sqlite-worker-{id(self):x}", daemon=True
                )
                self._thread.start()
        del job
        try:
            return await done
        finally:
            del done  # (a raised error's traceback holds this frame: no cycle through it)

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            try:
                job = jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if jobs.empty():
                        self._thread = None
                        return
                continue
            _run_job(job)
            del job  # a finished call's arguments and result are not kept while idle

    async def close(self) -> None:
        await self.run(self.conn.close)


_Job = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple
]


def _run_job(job: _Job) -> None:
    """Run one call on the worker's thread and hand its outcome to its event loop."""
    loop, done, context, fn, args = job
    if done.cancelled():  # its caller was cancelled before it started: not run
        return
    try:
        outcome: tuple[bool, object] = (True, context.run(fn, *args))
    except BaseException as e:
        outcome = (False, e)
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for it
        loop.call_soon_threadsafe(_settle, done, outcome)
    # An exception's traceback holds this frame: without these, the frame would hold the
    # exception (and the future holding it) in a cycle only the collector frees.
    del job, done, outcome


def _settle(done: asyncio.Future[Any], outcome: tuple[bool, object]) -> None:
    if done.cancelled():
        return
    ok, value = outcome
    if ok:
        done.set_result(value)
    else:
        done.set_exception(cast(BaseException, value))


class DeferredWrites:
    """Writes nobody waits for (a token's last use, audit rows), off the event loop.

    ``submit`` queues ``fn(conn, *args)`` and returns at once; a task commits
    everything queued meanwhile in one transaction on the worker's thread. While
    another process holds the write lock past the busy timeout, the batch waits
    and is tried again; past ``max_pending`` queued writes the oldest are dropped
    (and logged), so a lock held for hours cannot grow the server's memory.
    """

    def __init__(
        self, worker: SQLiteWorker, *, retry_seconds: float = 1.0, max_pending: int = 100_000
    ) -> None:
        self.worker = worker
        self.retry_seconds = retry_seconds
        self.max_pending = max_pending
        self._pending: list[tuple[Callable[..., object], tuple]] = []
        self._task: asyncio.Task | None = None

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        self._pending.append((fn, args))
        if len(self._pending) > self.max_pending:
            dropped = len(self._pending) - self.max_pending
            del self._pending[:dropped]
            log.error("dropped %d deferred write(s): the database stayed locked", dropped)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="deferred")

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.worker.run(self._commit, batch)
            except sqlite3.Error as e:
                if not is_locked(e):
                    log.exception("deferred writes failed; %d dropped", len(batch))
                    continue
                self._pending[:0] = batch  # try again once the lock is free
                await asyncio.sleep(self.retry_seconds)

    def _commit(self, batch: list[tuple[Callable[..., object], tuple]]) -> None:
        conn = self.worker.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, args in batch:
                fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
                conn.execute("ROLLBACK")
            raise

    async def flush(self) -> None:
        """Return once everything submitted so far is committed (or given up on)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self, timeout: float = 15.0) -> None:
        """Commit what is queued, waiting at most ``timeout`` for a held lock to go."""
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            if self._task is not None:
                self._task.cancel()
            log.error("shut down with %d deferred write(s) not stored", len(self._pending))
        await self.worker.close()
