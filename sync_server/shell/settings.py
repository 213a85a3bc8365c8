"""Server settings: one typed object, filled from flags and TANDEM_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def storage_target(value: str) -> str:
    """What ``--storage`` / ``TANDEM_STORAGE`` name, as ``Settings.db`` holds it: a
    ``postgresql://`` URL as given, ``sqlite:///PATH`` (or a bare path) as the file's path."""
    value = value.strip()
    if value.startswith(("postgresql://", "postgres://")):
        return value
    if value.startswith("sqlite:///"):
        return value[len("sqlite:///") :] or "./tandem.db"
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ValueError(
            f"unknown storage {scheme + '://'!r}: use postgresql://USER@HOST:PORT/DB,"
            " sqlite:///PATH or a file path"
        )
    return value


def default_db_path() -> str:
    """The storage when none is given: $TANDEM_STORAGE, else $TANDEM_DB, else ./tandem.db."""
    storage = os.environ.get("TANDEM_STORAGE")
    if storage:
        return storage_target(storage)
    return os.environ.get("TANDEM_DB") or "./tandem.db"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


@dataclass
class Settings:
    # the storage: a SQLite file's path (the embedded default) or a postgresql:// URL
    # (``--db`` / ``--storage``; TANDEM_STORAGE, TANDEM_DB)
    db: str = field(default_factory=default_db_path)
    host: str = "127.0.0.1"
    port: int = 8000
    listen_backlog: int = 1024  # connections waiting to be accepted (Hypercorn's default: 100)
    max_message_bytes: int = 8 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    max_webhook_body_bytes: int = 25 * 1024 * 1024  # the webhook intake alone (GitHub: 25 MB)
    coalesce_ms: float = 2.0  # a batch is committed this long after its first update
    max_unflushed_updates: int = 512  # gated but not yet durable, before the room waits for them
    room_idle_seconds: float = 30.0
    external_poll_seconds: float = 1.0
    compact_threshold: int = 500
    feed_poll_seconds: float = 0.5  # change feed: how often consumers look for other writers' rows
    feed_retention_seconds: float = 7 * 86400.0  # rows every cursor has passed, kept this long
    feed_max_retention_seconds: float = 90 * 86400.0  # rows kept at most this long, read or not
    feed_prune_interval_seconds: float = 3600.0  # how often old rows are pruned (0: never)
    sqlite_synchronous: str = "FULL"
    send_queue_bytes: int = 32 * 1024 * 1024
    static_dir: str = str(Path(__file__).resolve().parents[2] / "client_pwa" / "dist")
    log_level: str = "INFO"
    log_format: str = "text"  # "text" (key=value) or "json"
    permission_cache_seconds: float = 1.0
    access_poll_seconds: float = 0.25  # how often open sockets look for revoked access
    ping_timeout_seconds: float = 30.0  # a socket silent this long (asked at half) closes; 0: off
    presence_per_second: float = 20.0
    presence_burst: float = 40.0
    api_rate_limit: int = 100  # REST requests per minute per token (or per address without one)
    login_failures_per_account: int = 10  # failed logins per account name per window
    login_failures_per_address: int = 50  # failed logins per client address per window
    login_window_seconds: int = 900
    ws_origins: str = (
        ""  # comma-separated browser origins allowed on /sync besides the server's own
    )
    cors_origins: str = ""  # comma-separated origins allowed to call the REST API from a browser
    outbound_allow_private: bool = False  # let user-given URLs reach private addresses (tests)
    # Fernet key(s), comma-separated, for the secrets table (webhook / Slack / Teams URLs);
    # empty: the key file next to the database (<db>.key), made on first start
    secret_key: str = ""
    # the server's address as browsers reach it (OAuth2 redirect URIs); empty: the request's
    public_url: str = ""
    # how often time trackers' entries are imported (connectors); 0: only on demand
    time_import_interval_seconds: float = 3600.0
    time_import_days: int = 30  # a scheduled import reads this many days back
    outbox_max_attempts: int = 8  # an outbound message failing this many times is dead
    outbox_backoff_base_seconds: float = 10.0  # wait after the first failure (then doubled)
    outbox_backoff_cap_seconds: float = 3600.0  # longest wait between attempts
    outbox_poll_seconds: float = 1.0  # how often the delivery worker looks for due messages
    smtp_host: str = ""  # email (rules, digests) goes to this SMTP server; empty: no email
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"  # "starttls" (port 587), "tls" (port 465) or "none"
    smtp_from: str = ""  # the From address of every mail
    smtp_timeout_seconds: float = 30.0
    # "1"/"on": asyncio debug mode, slow callbacks logged with where their time went;
    # "timing": only the slow-callback log, without debug mode's own costs (loop_debug.py)
    asyncio_debug: str = "off"
    asyncio_slow_callback_ms: float = 50.0  # what debug mode calls a slow callback
    ws_compression: str = (
        "off"  # "on" lets Hypercorn negotiate permessage-deflate (measured: don't)
    )
    # automation (extensions.automation): how often the scheduler looks for fire times that
    # passed, and an offset added to the clock it reads (a test hook: a due date "passes"
    # without waiting for it)
    automation_tick_seconds: float = 1.0
    automation_clock_offset_seconds: float = 0.0
    # the daily e-mail digest (extensions.daily_digest) goes out at this hour, UTC (0-23),
    # covering the previous UTC day, to accounts with an address and digest "daily"
    digest_hour: int = 7
    # @mentions in a task's title or description notify once the typing has paused this
    # long (extensions.mentions): "@al" on the way to "@alice" is never seen settled
    mention_settle_seconds: float = 3.0
    # comma-separated module:Name extensions to load after the built-in ones and the
    # tandem.extensions entry points (``tandem serve --extension`` adds to it)
    extensions: str = ""
    # operations (docs/scale.md): /metrics is readable from loopback (not proxied) or with
    # "Authorization: Bearer <metrics_token>"; /readyz gives each probe this long; on
    # SIGTERM the node answers /readyz with 503 for drain_seconds before it stops
    # accepting connections, so a load balancer's health check takes it out first
    metrics_token: str = ""
    ready_timeout_seconds: float = 2.0
    drain_seconds: float = 0.0

    # several servers on one storage (sync_server.scale, docs/scale.md): redis://host:port/n
    # carries updates and presence between them and the change-feed consumers' leases;
    # empty: a single server
    redis: str = ""
    # with Redis, rooms poll storage for writers that publish nothing (the CLI) this often
    # instead of external_poll_seconds (other servers' updates arrive through Redis)
    redis_poll_seconds: float = 10.0
    # a lease (which node runs a change-feed consumer, the outbox) lasts this long unrenewed:
    # a killed node's consumers move to another node after at most this
    lease_ttl_seconds: float = 3.0

    def check_redis(self) -> None:
        """Raise ValueError with a clear message for a malformed ``redis`` URL."""
        if not self.redis:
            return
        from urllib.parse import urlsplit

        parts = urlsplit(self.redis)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ValueError(
                f"--redis / TANDEM_REDIS must look like redis://HOST:PORT/N, not {self.redis!r}"
            )
        if self.lease_ttl_seconds <= 0:
            raise ValueError("TANDEM_LEASE_TTL_SECONDS must be positive")

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then TANDEM_<FIELD> environment variables, then explicit overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"TANDEM_{f.name.upper()}")
            if raw is None or f.name == "db":
                continue
            kind = type(getattr(cls(), f.name))
            try:
                values[f.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError as e:
                raise ValueError(
                    f"TANDEM_{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from e
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
