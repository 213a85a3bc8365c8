"""The durable outbox: every outbound message is recorded before it is sent.

``Outbox.enqueue(project, key, channel, target, payload)`` writes one row of
the ``outbox`` table (migration 13) and returns its id, or None when a row
with that idempotency ``key`` exists already (``key`` is UNIQUE: the same key
twice sends once; the automation runner uses ``rule:<rule>:<event>:<action>``,
the digest ``digest:<user>:<date>``). ``target`` is a secret reference
(``"secret:<id>"``, see ``integrations.secrets``) for webhook / Slack / Teams,
empty for email; the URL is read from the SecretStore only when the message is
sent, and only a secret of the row's own project.

The delivery worker (``start()`` / ``stop()``, or ``run_once()`` in tests)
claims due rows, sends them through ``integrations.senders`` and records what
happened. A row's life::

    pending --claim--> sending --2xx--> delivered
                          |--retryable failure--> pending (next_attempt_at: backoff)
                          |--permanent failure, or the max_attempts-th failure--> dead

Claiming a row counts the attempt and leases it (``next_attempt_at`` = now +
``lease_seconds``) in one transaction, before anything is sent. If the process
dies while a row is ``sending``, ``start()`` makes it due again at once (and
without a restart, another worker takes it when the lease runs out), so
delivery to the network is at least once; every attempt of a message carries
the same ``Idempotency-Key`` header, by which the receiver drops a repeat.
``start()`` assumes one delivery worker per database file (the server's);
a second one would at worst send a message twice, with the same key. Several
servers on one database run the worker on one node, the holder of a lease
(``sync_server.scale.leases``), and set ``fence``: a check run inside every
claim's transaction that raises once a newer holder took over, so a node that
lost the lease claims nothing more (its ``start()`` recovered the rows the
previous holder left ``sending``).

Backoff after the n-th failed attempt: ``d = min(cap, base * 2 ** (n - 1))``,
waited ``d * (1 - jitter * u)`` with ``u`` uniform in [0, 1) (so between
``d / 2`` and ``d`` by default: never longer than the cap, never shorter than
half of it, and later waits never shorter than earlier ones drawn with the same
``u``), or longer when the receiver's ``Retry-After`` says so (up to
``max_retry_after``).

``retry(id, project)`` sends a dead message again (attempts start over);
``prune()`` (the worker, hourly) forgets delivered and dead rows older than
``retention_seconds`` (30 days).

SQLite work runs on the worker's thread (``DatabaseWorker``), HTTP on
threads of the senders; the event loop never waits for either. The clock and
the jitter's random source are injectable. Nothing logged or stored in
``last_error`` holds a secret URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from integrations.db import DatabaseWorker, transaction
from integrations.outbound import OutboundPolicy
from integrations.secrets import (
    SecretNotFound,
    SecretStore,
    SecretUnreadable,
    is_ref,
    load_keys,
)
from integrations.senders import Message, Senders, SendResult, SmtpConfig, scrub

log = logging.getLogger("tandem.outbox")

Channel = Literal["webhook", "slack", "teams", "email"]
Status = Literal["pending", "sending", "delivered", "dead"]
CHANNELS: tuple[str, ...] = ("webhook", "slack", "teams", "email")
URL_CHANNELS: tuple[str, ...] = ("webhook", "slack", "teams")
MAX_KEY_CHARS = 500
STORE_ATTEMPTS = 30  # tries to record an outcome while the file stays locked (1 s apart)


@dataclass(frozen=True)
class OutboxConfig:
    """How the worker retries (``TANDEM_OUTBOX_*`` settings)."""

    max_attempts: int = 8  # the attempt that fails this many times makes the row dead
    backoff_base: float = 10.0  # seconds after the first failure
    backoff_cap: float = 3600.0  # never more between attempts (save Retry-After)
    jitter: float = 0.5  # a wait is between (1 - jitter) and 1 times the nominal one
    max_retry_after: float = 86400.0  # a Retry-After longer than this is cut to it
    poll_seconds: float = 1.0  # how often the worker looks for due rows (enqueue wakes it)
    batch: int = 8  # messages in flight at once
    lease_seconds: float = 300.0  # a row claimed this long ago by a worker that died is due
    retention_seconds: float = 30 * 86400.0  # delivered and dead rows are kept this long
    prune_interval_seconds: float = 3600.0  # how often the worker prunes (0: never)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("outbox max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("outbox jitter must be in [0, 1)")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ValueError("outbox backoff: 0 < base <= cap")

    @classmethod
    def from_settings(cls, settings: object) -> OutboxConfig:
        """From an object with ``outbox_*`` attributes (``sync_server`` settings)."""
        names = {
            "max_attempts": "outbox_max_attempts",
            "backoff_base": "outbox_backoff_base_seconds",
            "backoff_cap": "outbox_backoff_cap_seconds",
            "poll_seconds": "outbox_poll_seconds",
        }
        values: dict[str, Any] = {
            field: getattr(settings, attr)
            for field, attr in names.items()
            if hasattr(settings, attr)
        }
        return cls(**values)


def backoff_bounds(attempt: int, config: OutboxConfig) -> tuple[float, float]:
    """The shortest and longest wait after the ``attempt``-th failure (1-based)."""
    exponent = min(max(attempt, 1) - 1, 62)
    nominal = min(config.backoff_cap, config.backoff_base * 2.0**exponent)
    return nominal * (1 - config.jitter), nominal


def backoff_delay(attempt: int, config: OutboxConfig, u: float) -> float:
    """The wait after the ``attempt``-th failure, for ``u`` drawn uniformly from [0, 1)."""
    low, high = backoff_bounds(attempt, config)
    return high - (high - low) * u


@dataclass(frozen=True)
class Delivery:
    """One outbox row as the REST listing shows it (no payload, no secret)."""

    id: int
    project: str
    key: str
    channel: str
    target: str  # the masked URL (``https://hooks.slack.com/…/XXXX``), "" for email
    status: str
    attempts: int
    next_attempt_at: float | None  # pending rows only
    last_error: str | None
    last_status: int | None
    created: float
    delivered_at: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Claimed:
    id: int
    project: str
    key: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int


class Outbox:
    """The outbox of one database file: ``enqueue``, the delivery worker, ``deliveries``."""

    def __init__(
        self,
        worker: DatabaseWorker,
        secrets: SecretStore,
        senders: Senders,
        config: OutboxConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.worker = worker
        self.secrets = secrets
        self.senders = senders
        self.config = config or OutboxConfig()
        self.clock = clock
        self.rng = rng
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        # several servers: raises inside a claim's transaction once this node's lease on
        # the delivery worker was taken over (sync_server.scale.fences.Fence)
        self.fence: Callable[[sqlite3.Connection], None] | None = None

    @classmethod
    def from_settings(
        cls, worker: DatabaseWorker, settings: object, policy: OutboundPolicy | None = None
    ) -> Outbox:
        """The server's outbox, configured from ``sync_server`` settings: secrets' key from
        ``TANDEM_SECRET_KEY`` or the key file next to ``settings.db`` (made on first start),
        ``TANDEM_SMTP_*``, ``TANDEM_OUTBOX_*``, and the outbound policy (the server
        context's ``outbound``). Raises ValueError for a malformed setting."""
        db = str(getattr(settings, "db"))  # noqa: B009 (settings is duck-typed)
        keys = load_keys(db, str(getattr(settings, "secret_key", "") or ""))
        if policy is None:
            policy = OutboundPolicy(
                allow_private=bool(getattr(settings, "outbound_allow_private", False))
            )
        return cls(
            worker,
            SecretStore(worker, keys),
            Senders(policy, SmtpConfig.from_settings(settings)),
            OutboxConfig.from_settings(settings),
        )

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self,
        project: str,
        key: str,
        channel: str,
        target: str,
        payload: Mapping[str, Any],
    ) -> int | None:
        """Record a message to send; its id, or None if ``key`` was queued before (whatever
        became of it). Raises ValueError for a message that could never be sent (an unknown
        channel, a URL where a secret reference belongs, a payload that is not JSON)."""
        _check(key, channel, target, payload)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        row_id = await self.worker.run(
            self._insert, project, key, channel, target, body, self.clock()
        )
        if row_id is not None:
            self.wake()
        return row_id

    def enqueue_sync(
        self,
        conn: sqlite3.Connection,
        project: str,
        key: str,
        channel: str,
        target: str,
        payload: Mapping[str, Any],
    ) -> int | None:
        """``enqueue`` inside a transaction the caller holds on ``conn`` (on its thread), so
        the message is recorded together with what caused it. Call ``wake()`` after commit."""
        _check(key, channel, target, payload)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return _insert_row(conn, project, key, channel, target, body, self.clock())

    def _insert(
        self, project: str, key: str, channel: str, target: str, body: str, now: float
    ) -> int | None:
        return _insert_row(self.worker.conn, project, key, channel, target, body, now)

    # -- listing -----------------------------------------------------------------------------

    async def deliveries(
        self, project: str, limit: int = 50, *, status: str | None = None, before: int | None = None
    ) -> list[Delivery]:
        """The project's messages, newest first (``before``: page back by id)."""
        return await self.worker.run(self._list, project, limit, status, before)

    async def delivery(self, delivery_id: int) -> Delivery | None:
        rows = await self.worker.run(self._list, None, 1, None, None, delivery_id)
        return rows[0] if rows else None

    def _list(
        self,
        project: str | None,
        limit: int,
        status: str | None,
        before: int | None,
        only: int | None = None,
    ) -> list[Delivery]:
        sql = (
            "SELECT o.id, o.project, o.key, o.channel, o.target, o.status, o.attempts,"
            " o.next_attempt_at, o.last_error, o.last_status, o.created, o.delivered_at, s.hint"
            " FROM outbox o LEFT JOIN secrets s"
            " ON o.target LIKE 'secret:%' AND s.id = substr(o.target, 8) WHERE 1 = 1"
        )
        args: list[Any] = []
        if project is not None:
            sql += " AND o.project = ?"
            args.append(project)
        if status is not None:
            sql += " AND o.status = ?"
            args.append(status)
        if before is not None:
            sql += " AND o.id < ?"
            args.append(before)
        if only is not None:
            sql += " AND o.id = ?"
            args.append(only)
        sql += " ORDER BY o.id DESC LIMIT ?"
        args.append(max(1, min(int(limit), 1000)))
        out = []
        for r in self.worker.conn.execute(sql, args):
            target = r[12] or ("" if r[3] == "email" else "(deleted secret)")
            out.append(
                Delivery(
                    id=r[0],
                    project=r[1],
                    key=r[2],
                    channel=r[3],
                    target=target,
                    status=r[5],
                    attempts=r[6],
                    next_attempt_at=r[7] if r[5] == "pending" else None,
                    last_error=r[8],
                    last_status=r[9],
                    created=r[10],
                    delivered_at=r[11],
                )
            )
        return out

    async def retry(self, delivery_id: int, project: str) -> bool:
        """Send a dead message of ``project`` again (attempts start over); False if there is
        no such dead message."""
        done = await self.worker.run(self._revive, delivery_id, project, self.clock())
        if done:
            self.wake()
        return done

    def _revive(self, delivery_id: int, project: str, now: float) -> bool:
        return (
            self.worker.conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
                " WHERE id = ? AND project = ? AND status = 'dead'",
                (now, delivery_id, project),
            ).rowcount
            > 0
        )

    async def prune(self, older_than: float | None = None) -> int:
        """Forget delivered and dead messages created more than ``older_than`` seconds ago
        (default ``retention_seconds``); returns how many. Their keys can be queued again
        after that, so keep it longer than anything may repeat (the runner's runs are
        unique per rule and event besides)."""
        age = self.config.retention_seconds if older_than is None else older_than
        return await self.worker.run(self._prune, self.clock() - age)

    def _prune(self, before: float) -> int:
        return self.worker.conn.execute(
            "DELETE FROM outbox WHERE status IN ('delivered', 'dead') AND created < ?", (before,)
        ).rowcount

    # -- the worker ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume: rows left ``sending`` by a process that died are due now; then run the
        delivery worker as a task of the running loop until ``stop()``."""
        if self._task is not None:
            return
        recovered = await self.worker.run(self._recover, self.clock())
        if recovered:
            log.info("outbox: %d delivery(ies) interrupted by a stop are due again", recovered)
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        """Stop the worker; sends under way are abandoned (their rows are retried on start)."""
        task, self._task = self._task, None
        self._stopping = True
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        inflight = list(self._inflight)
        for sending in inflight:
            sending.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)

    def wake(self) -> None:
        """Look for due rows now (enqueue calls it)."""
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        """Keep up to ``batch`` messages in flight: claim as many due rows as there are free
        places, each sent by a task of its own (a slow receiver holds only its place), and
        sleep until a place frees, something is enqueued, or ``poll_seconds`` pass."""
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        pruned_at = time.monotonic()
        while not self._stopping:
            interval = self.config.prune_interval_seconds
            if interval and time.monotonic() - pruned_at >= interval:
                pruned_at = time.monotonic()
                try:
                    await self.prune()
                except Exception:
                    log.exception("outbox: pruning old messages failed")
            wake.clear()  # before claiming: a wake-up during the claim is not lost
            free = self.config.batch - len(self._inflight)
            if free > 0:
                try:
                    claimed = await self.worker.run(self._claim, self.clock(), free)
                except Exception:
                    log.exception("outbox: looking for due messages failed; trying again")
                    claimed = []
                for row in claimed:
                    sending = loop.create_task(self._deliver_logged(row), name=f"outbox-{row.id}")
                    self._inflight.add(sending)
                    sending.add_done_callback(self._finished)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.config.poll_seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.wake()

    async def _deliver_logged(self, row: _Claimed) -> None:
        try:
            await self._deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # the row stays leased: retried when the lease runs out or at start
            log.error("outbox: the outcome of message %d could not be recorded: %r", row.id, e)

    async def run_once(self) -> int:
        """Claim the due rows (at most ``batch``), send them concurrently, record what
        happened; returns how many were attempted. (Tests; the worker pipelines instead.)"""
        claimed = await self.worker.run(self._claim, self.clock(), self.config.batch)
        await asyncio.gather(*(self._deliver_logged(row) for row in claimed))
        return len(claimed)

    def _recover(self, now: float) -> int:
        return self.worker.conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'sending'",
            (now,),
        ).rowcount

    def _claim(self, now: float, limit: int) -> list[_Claimed]:
        conn = self.worker.conn
        with transaction(conn):
            if self.fence is not None:
                self.fence(conn)
            rows = conn.execute(
                "SELECT id, project, key, channel, target, payload, attempts FROM outbox"
                " WHERE status IN ('pending', 'sending') AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
            out = []
            for r in rows:
                conn.execute(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"
                    " next_attempt_at = ? WHERE id = ?",
                    (now + self.config.lease_seconds, r[0]),
                )
                try:
                    payload = json.loads(r[5])
                except ValueError:
                    payload = None
                out.append(
                    _Claimed(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        payload if isinstance(payload, dict) else {},
                        r[6] + 1,
                    )
                )
        return out

    async def _deliver(self, row: _Claimed) -> None:
        url: str | None = None
        try:
            message, url = await self._message(row)
            result = await self.senders.send(message)
        except (SecretNotFound, SecretUnreadable) as e:
            result = SendResult("dead", error=str(e))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a sender bug: keep the row, retry later
            log.exception("outbox: sending delivery %d failed unexpectedly", row.id)
            result = SendResult("retry", error=f"internal error: {type(e).__name__}")
        error = scrub(result.error, [url]) if result.error else None
        now = self.clock()
        if result.outcome == "delivered":
            await self._store(row.id, "delivered", None, None, result.status, now)
            log.info(
                "delivered %s message %d (attempt %d)",
                row.channel,
                row.id,
                row.attempts,
                extra={"project": row.project},
            )
            return
        if result.outcome == "retry" and row.attempts < self.config.max_attempts:
            wait = backoff_delay(row.attempts, self.config, self.rng())
            if result.retry_after is not None:
                wait = max(wait, min(result.retry_after, self.config.max_retry_after))
            await self._store(row.id, "pending", now + wait, error, result.status, None)
            log.warning(
                "%s message %d failed (attempt %d), retrying in %.0f s: %s",
                row.channel,
                row.id,
                row.attempts,
                wait,
                error,
                extra={"project": row.project},
            )
            return
        if result.outcome == "retry":
            error = f"gave up after {row.attempts} attempts: {error}"
        await self._store(row.id, "dead", None, error, result.status, None)
        log.warning(
            "%s message %d is dead (attempt %d): %s",
            row.channel,
            row.id,
            row.attempts,
            error,
            extra={"project": row.project},
        )

    async def _message(self, row: _Claimed) -> tuple[Message, str | None]:
        url = signing = None
        if row.channel in URL_CHANNELS:
            url = await self.secrets.get(row.target, project=row.project)
            if row.channel == "webhook":
                signing = await self.secrets.signing_secret(row.project)
        message = Message(
            id=row.id,
            project=row.project,
            key=row.key,
            channel=row.channel,
            payload=row.payload,
            url=url,
            signing_secret=signing,
        )
        return message, url

    async def _store(
        self,
        row_id: int,
        status: str,
        next_attempt_at: float | None,
        error: str | None,
        http_status: int | None,
        delivered_at: float | None,
    ) -> None:
        """Record an outcome, waiting out a write lock held by another process (the
        message was sent: losing its outcome would send it again)."""
        for attempt in range(STORE_ATTEMPTS):
            try:
                await self.worker.run(
                    self._record, row_id, status, next_attempt_at, error, http_status, delivered_at
                )
                return
            except sqlite3.OperationalError as e:
                if attempt == STORE_ATTEMPTS - 1 or not _is_locked(e):
                    raise
                await asyncio.sleep(1.0)

    def _record(
        self,
        row_id: int,
        status: str,
        next_attempt_at: float | None,
        error: str | None,
        http_status: int | None,
        delivered_at: float | None,
    ) -> None:
        self.worker.conn.execute(
            "UPDATE outbox SET status = ?, next_attempt_at = coalesce(?, next_attempt_at),"
            " last_error = ?, last_status = ?, delivered_at = ? WHERE id = ?",
            (status, next_attempt_at, error, http_status, delivered_at, row_id),
        )


def _is_locked(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)


def _check(key: str, channel: str, target: str, payload: Mapping[str, Any]) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"an outbox key is a string of 1 to {MAX_KEY_CHARS} characters")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (one of {', '.join(CHANNELS)})")
    if channel in URL_CHANNELS and not is_ref(target):
        raise ValueError(f"a {channel} target is a secret reference (secret:<id>), never a URL")
    if channel == "email" and target:
        raise ValueError("an email's target is empty (payload.to names the addresses)")
    if not isinstance(payload, Mapping):
        raise ValueError("an outbox payload is a JSON object")
    if channel == "email":
        to = payload.get("to")
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(a, str) and "@" in a for a in to)
        ):
            raise ValueError("an email's payload.to lists one or more addresses")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as e:
        raise ValueError(f"an outbox payload must be JSON: {e}") from e


def _insert_row(
    conn: sqlite3.Connection,
    project: str,
    key: str,
    channel: str,
    target: str,
    body: str,
    now: float,
) -> int | None:
    cursor = conn.execute(
        "INSERT INTO outbox (project, key, channel, target, payload, status, attempts,"
        " next_attempt_at, created) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        (project, key, channel, target, body, now, now),
    )
    return cursor.lastrowid if cursor.rowcount > 0 else None


def depth(conn: sqlite3.Connection) -> dict[str, int]:
    """Deliveries not finished yet, by status ("pending": waiting for their next attempt,
    "sending": claimed by a worker), for monitoring."""
    counts = dict.fromkeys(("pending", "sending"), 0)
    for status, n in conn.execute(
        "SELECT status, count(*) FROM outbox WHERE status IN ('pending', 'sending') GROUP BY status"
    ):
        counts[status] = int(n)
    return counts
