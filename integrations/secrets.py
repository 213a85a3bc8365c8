"""Secrets kept outside the shared documents: webhook, Slack and Teams URLs, signing secrets.

Every member of a project can read its document, and an incoming-webhook URL
is a credential (whoever has it can post to the channel). So a rule's document
holds only a reference, ``"secret:<id>"``, and a hint fit to show
(``"https://hooks.slack.com/…/XXXX"``); the value lives in the ``secrets``
table (migration 13), bound to its project, and is read back only when a
message is sent (``integrations.outbox``).

At rest the values are encrypted with Fernet (AES-128-CBC and HMAC-SHA256,
from ``cryptography``), so a copy of the database file (a backup, a file sent
for a bug report) does not give the URLs away. The key is, in this order:

1. ``TANDEM_SECRET_KEY``: one or more Fernet keys, comma-separated; the first
   encrypts, every one decrypts (rotation: put the new key first, run
   ``tandem secrets rotate``, which writes every secret again with it
   (:meth:`SecretStore.reencrypt_sync`), then drop the old key);
2. else the key file next to the database, ``<db>.key`` (``tandem.db.key``),
   created with mode 0600 the first time the server starts. Back it up with
   the database: without it the stored secrets cannot be read (the rules that
   use them must be given their URLs again).

Nothing here logs a value, and ``repr`` of the store shows none.
"""

from __future__ import annotations

import contextlib
import os
import secrets as _random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from integrations.db import DatabaseWorker, transaction

T = TypeVar("T")

REF_PREFIX = "secret:"
SIGNING_KIND = "signing"
WEBHOOK_KIND = "webhook"  # an inbound webhook endpoint's secret (sync_server webhook_store)
ELLIPSIS = "…"


class SecretNotFound(KeyError):
    """No secret by that reference (or not in that project)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such secret"


class SecretUnreadable(Exception):
    """The secret exists but cannot be decrypted with the configured key(s)."""


def key_file_for(db_path: str | os.PathLike[str]) -> Path:
    """Where the key lives when ``TANDEM_SECRET_KEY`` is not set: ``<db>.key``; for a
    PostgreSQL database (a URL), ``<database name>.postgresql.key`` in the working
    directory (several nodes on one database need TANDEM_SECRET_KEY, or this file copied)."""
    target = os.fspath(db_path)
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        name = urlsplit(target).path.strip("/") or "postgres"
        return Path(f"{name}.postgresql.key").absolute()
    db = Path(db_path)
    return db.with_name(db.name + ".key")


def load_keys(db_path: str | os.PathLike[str], configured: str = "") -> MultiFernet:
    """The encryption keys: from ``configured`` (TANDEM_SECRET_KEY) or the key file next to
    the database, created (0600) on first use. Raises ValueError for a malformed key."""
    raw = [k.strip() for k in configured.split(",") if k.strip()]
    if not raw:
        raw = [_key_from_file(key_file_for(db_path))]
    keys = []
    for i, k in enumerate(raw):
        try:
            keys.append(Fernet(k.encode("ascii")))
        except (ValueError, UnicodeError) as e:
            where = f"TANDEM_SECRET_KEY (key {i + 1})" if configured.strip() else "the key file"
            raise ValueError(
                f"{where} is not a Fernet key (32 bytes, URL-safe base64; make one with"
                ' `python -c "from cryptography.fernet import Fernet;'
                ' print(Fernet.generate_key().decode())"`)'
            ) from e
    return MultiFernet(keys)


def _key_from_file(path: Path) -> str:
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    # written whole under another name, then linked into place: a process that reads the
    # file never sees half a key, and two processes starting at once agree on one key
    temp = path.with_name(f"{path.name}.{os.getpid()}.{_random.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(Fernet.generate_key().decode("ascii") + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path.read_text("ascii").strip()


def mask(value: str) -> str:
    """A form of a secret fit to show: a URL's scheme and host and the value's last four
    characters (``https://hooks.slack.com/…/XXXX``); only ``…`` for short values."""
    tail = value[-4:] if len(value) >= 16 else ""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme and host:
        shown_host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{shown_host}/{ELLIPSIS}" + (f"/{tail}" if tail else "")
    return ELLIPSIS + tail


def parse_ref(ref: str) -> str:
    """The id in ``"secret:<id>"``; raises SecretNotFound for anything else."""
    if not isinstance(ref, str) or not ref.startswith(REF_PREFIX) or len(ref) <= len(REF_PREFIX):
        raise SecretNotFound("not a secret reference (secret:<id>)")
    return ref[len(REF_PREFIX) :]


def is_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REF_PREFIX) and len(value) > len(REF_PREFIX)


class ConnectionWorker:
    """A :class:`~integrations.db.DatabaseWorker` over a connection its owner already uses
    on one thread at a time (the CLI's, a worker's): ``run`` takes a thread of anyio's."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


def store_on(conn: sqlite3.Connection, keys: MultiFernet | Fernet) -> SecretStore:
    """A store whose ``*_sync`` methods use ``conn`` (for code already on its thread)."""
    return SecretStore(ConnectionWorker(conn), keys)


class SecretStore:
    """Secrets of each project, in the ``secrets`` table, encrypted; all SQLite work runs
    on ``worker``'s thread. ``put`` returns the reference a document may hold."""

    def __init__(
        self,
        worker: DatabaseWorker,
        keys: MultiFernet | Fernet,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker = worker
        self._fernet = keys
        self._clock = clock

    def __repr__(self) -> str:
        return "SecretStore(<values hidden>)"

    # -- the public API (async: SQLite off the event loop) --------------------------------

    async def put(self, project: str, kind: str, value: str) -> str:
        """Store ``value`` for ``project``; returns its reference, ``"secret:<id>"``."""
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        return await self.worker.run(self.put_sync, project, kind, value)

    async def get(self, ref: str, *, project: str | None = None) -> str:
        """The value; with ``project``, only a secret of that project (a rule of one project
        cannot use another's URL). Raises SecretNotFound / SecretUnreadable."""
        return await self.worker.run(self.get_sync, ref, project)

    async def masked(self, ref: str) -> str:
        """The value's hint (see :func:`mask`); raises SecretNotFound."""
        return await self.worker.run(self.masked_sync, ref)

    async def delete(self, ref: str) -> bool:
        """Forget the secret; False if there was none."""
        return await self.worker.run(self.delete_sync, ref)

    async def signing_secret(self, project: str) -> str:
        """The project's webhook signing secret (HMAC-SHA256 key), made on first use."""
        return await self.worker.run(self.signing_secret_sync, project)

    async def rotate_signing_secret(self, project: str) -> str:
        """A new signing secret for the project (the old one stops signing at once)."""
        return await self.worker.run(self._rotate_signing_sync, project)

    # -- the same, for code already on the worker's thread ---------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        return self.worker.conn

    def put_sync(self, project: str, kind: str, value: str) -> str:
        secret_id = _random.token_urlsafe(16)
        token = self._fernet.encrypt(value.encode("utf-8"))
        self.conn.execute(
            "INSERT INTO secrets (id, project, kind, value, hint, created) VALUES (?, ?, ?, ?, ?, ?)",
            (secret_id, project, kind, token, mask(value), self._clock()),
        )
        return REF_PREFIX + secret_id

    def get_sync(self, ref: str, project: str | None = None) -> str:
        secret_id = parse_ref(ref)
        row = self.conn.execute(
            "SELECT project, value FROM secrets WHERE id = ?", (secret_id,)
        ).fetchone()
        if row is None or (project is not None and row[0] != project):
            raise SecretNotFound(f"{ref} does not exist (it was deleted, or is another project's)")
        return self._decrypt(row[1], ref)

    def masked_sync(self, ref: str) -> str:
        row = self.conn.execute(
            "SELECT hint FROM secrets WHERE id = ?", (parse_ref(ref),)
        ).fetchone()
        if row is None:
            raise SecretNotFound(f"{ref} does not exist")
        return str(row[0])

    def delete_sync(self, ref: str) -> bool:
        try:
            secret_id = parse_ref(ref)
        except SecretNotFound:
            return False
        return self.conn.execute("DELETE FROM secrets WHERE id = ?", (secret_id,)).rowcount > 0

    def signing_secret_sync(self, project: str) -> str:
        row = self.conn.execute(
            "SELECT id, value FROM secrets WHERE project = ? AND kind = ?", (project, SIGNING_KIND)
        ).fetchone()
        if row is not None:
            return self._decrypt(row[1], REF_PREFIX + row[0])
        value = _random.token_hex(32)
        token = self._fernet.encrypt(value.encode("ascii"))
        self.conn.execute(  # two processes at once: the unique index keeps the first
            "INSERT OR IGNORE INTO secrets (id, project, kind, value, hint, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (_random.token_urlsafe(16), project, SIGNING_KIND, token, mask(value), self._clock()),
        )
        return self.signing_secret_sync(project)

    def reencrypt_sync(self) -> int:
        """Key rotation's second step: every secret decrypted with whichever configured key
        made it and encrypted again with the first (``MultiFernet.rotate``), in one
        transaction; afterwards the old key can be dropped from TANDEM_SECRET_KEY. Returns
        how many were written. Raises SecretUnreadable (changing nothing) when one was made
        with no configured key."""
        if not isinstance(self._fernet, MultiFernet):
            return 0
        with transaction(self.conn):
            rows = self.conn.execute("SELECT id, value FROM secrets").fetchall()
            for secret_id, token in rows:
                try:
                    fresh = self._fernet.rotate(bytes(token))
                except InvalidToken as e:
                    raise SecretUnreadable(
                        f"{REF_PREFIX}{secret_id} cannot be decrypted with any configured key:"
                        " keep the key it was made with in TANDEM_SECRET_KEY"
                    ) from e
                self.conn.execute("UPDATE secrets SET value = ? WHERE id = ?", (fresh, secret_id))
        return len(rows)

    def _rotate_signing_sync(self, project: str) -> str:
        self.conn.execute(
            "DELETE FROM secrets WHERE project = ? AND kind = ?", (project, SIGNING_KIND)
        )
        return self.signing_secret_sync(project)

    def _decrypt(self, token: bytes, ref: str) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken as e:
            raise SecretUnreadable(
                f"{ref} cannot be decrypted with the configured key (TANDEM_SECRET_KEY or the"
                " key file next to the database changed?)"
            ) from e
