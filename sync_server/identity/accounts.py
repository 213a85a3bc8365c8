"""Local accounts and personal API tokens.

Passwords are hashed with Argon2id (argon2-cffi, memory-hard). API tokens are
random 256-bit secrets shown once; only their SHA-256 is stored, so a copy of
the database does not hand out working tokens. Tokens can be listed (with
their last use) and revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOKEN_PREFIX = "tdm_"
SESSION_PREFIX = "tds_"
SESSION_SECONDS = 12 * 3600
LAST_USED_RESOLUTION_SECONDS = 60  # do not write on every request

_hasher = PasswordHasher()


class AccountError(ValueError):
    """A clear, user-facing reason an account operation was refused."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    display_name: str


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    expires_at: float | None = None


@dataclass(frozen=True)
class Credential:
    """Who a token speaks for, and until when (None: until it is revoked)."""

    user: User
    expires_at: float | None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_username(name: str) -> str:
    if not USERNAME_RE.fullmatch(name):
        raise AccountError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def create_user(
    conn: sqlite3.Connection, name: str, password: str | None = None, display_name: str = ""
) -> User:
    validate_username(name)
    if password is not None and len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    pw_hash = _hasher.hash(password) if password is not None else None
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO users (name, display_name, password_hash, created_at)"
                " VALUES (?, ?, ?, ?)",
                (name, display_name or name, pw_hash, time.time()),
            )
    except sqlite3.IntegrityError as e:
        raise AccountError(f"user {name!r} already exists") from e
    return User(int(cur.lastrowid or 0), name, display_name or name)


def get_user(conn: sqlite3.Connection, name: str) -> User | None:
    row = conn.execute(
        "SELECT id, name, display_name FROM users WHERE name = ?", (name,)
    ).fetchone()
    return User(*row) if row else None


def verify_password(conn: sqlite3.Connection, name: str, password: str) -> User | None:
    row = conn.execute(
        "SELECT id, name, display_name, password_hash FROM users WHERE name = ?", (name,)
    ).fetchone()
    if row is None or row[3] is None:
        _hasher.hash(password)  # same cost whether or not the user exists
        return None
    try:
        _hasher.verify(row[3], password)
    except (VerificationError, InvalidHashError):
        return None
    return User(row[0], row[1], row[2])


MAX_TOKEN_DAYS = 3650


def create_token(
    conn: sqlite3.Connection, user_name: str, label: str = "", expires_in_days: float | None = None
) -> str:
    """Create an API token for ``user_name`` and return it (the only time it is shown).

    With ``expires_in_days`` it stops working that long from now (open sockets close then).
    """
    return create_token_info(conn, user_name, label, expires_in_days)[0]


def create_token_info(
    conn: sqlite3.Connection, user_name: str, label: str = "", expires_in_days: float | None = None
) -> tuple[str, TokenInfo]:
    user = get_user(conn, user_name)
    if user is None:
        raise AccountError(f"no user named {user_name!r}")
    if expires_in_days is not None and not 0 < expires_in_days <= MAX_TOKEN_DAYS:
        raise AccountError(f"a token expires in more than 0 and at most {MAX_TOKEN_DAYS} days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    expires_at = now + expires_in_days * 86400 if expires_in_days is not None else None
    with conn:
        cur = conn.execute(
            "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user.id, _hash_token(token), label, now, expires_at),
        )
    return token, TokenInfo(int(cur.lastrowid or 0), user.name, label, now, None, None, expires_at)


TokenTouch = Callable[[int, float], None]
"""Records that token ``id`` was used at ``time``; the server defers the write (see app.py)."""


def touch_token(conn: sqlite3.Connection, token_id: int, now: float) -> None:
    """Record a token's last use (inside the caller's transaction)."""
    conn.execute(
        "UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
        (now, token_id),
    )


def authenticate_token(
    conn: sqlite3.Connection, token: str, touch: TokenTouch | None = None
) -> User | None:
    """The user a valid, unrevoked, unexpired token belongs to; records its use (at minute
    resolution), through ``touch`` if given, else at once on ``conn``."""
    found = token_credential(conn, token, touch)
    return found.user if found else None


def token_credential(
    conn: sqlite3.Connection, token: str, touch: TokenTouch | None = None, *, record: bool = True
) -> Credential | None:
    """As authenticate_token, with the token's expiry; ``record=False`` records no use."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = time.time()
    row = conn.execute(
        "SELECT t.id, t.last_used_at, u.id, u.name, u.display_name, t.expires_at FROM api_tokens t"
        " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.revoked_at IS NULL"
        " AND (t.expires_at IS NULL OR t.expires_at > ?)",
        (_hash_token(token), now),
    ).fetchone()
    if row is None:
        return None
    if record and (row[1] is None or now - row[1] > LAST_USED_RESOLUTION_SECONDS):
        if touch is not None:
            touch(row[0], now)
            return Credential(User(row[2], row[3], row[4]), row[5])
        try:
            with conn:
                conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row[0]))
        except sqlite3.OperationalError:
            pass  # a busy database must not refuse a valid token; the timestamp is advisory
    return Credential(User(row[2], row[3], row[4]), row[5])


def session_secret(conn: sqlite3.Connection) -> str:
    """The secret that signs session tokens, made on first use and kept in the database
    (the server makes it at startup: later, only reads)."""
    row = conn.execute("SELECT value FROM server_secrets WHERE name = 'session'").fetchone()
    if row is None:
        with conn:
            conn.execute(
                "INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('session', ?)",
                (secrets.token_urlsafe(48),),
            )
        row = conn.execute("SELECT value FROM server_secrets WHERE name = 'session'").fetchone()
    return row[0]


def _serializer(conn: sqlite3.Connection) -> URLSafeTimedSerializer:
    """Signs session tokens with the database's session secret."""
    return URLSafeTimedSerializer(session_secret(conn), salt="tandem-session")


def login(
    conn: sqlite3.Connection, name: str, password: str, seconds: int = SESSION_SECONDS
) -> tuple[str, float] | None:
    """A signed session token and its expiry for a correct password, else None."""
    user = verify_password(conn, name, password)
    if user is None:
        return None
    session_id = secrets.token_urlsafe(16)
    now = time.time()
    with conn:
        conn.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (session_id, user.id, now, now + seconds),
        )
    return SESSION_PREFIX + _serializer(conn).dumps({"sid": session_id}), now + seconds


def authenticate_session(conn: sqlite3.Connection, token: str) -> User | None:
    found = session_credential(conn, token)
    return found.user if found else None


def session_credential(conn: sqlite3.Connection, token: str) -> Credential | None:
    try:
        data = _serializer(conn).loads(token[len(SESSION_PREFIX) :], max_age=SESSION_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    row = conn.execute(
        "SELECT u.id, u.name, u.display_name, s.expires_at FROM sessions s"
        " JOIN users u ON u.id = s.user_id"
        " WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
        (data.get("sid") if isinstance(data, dict) else None, time.time()),
    ).fetchone()
    return Credential(User(row[0], row[1], row[2]), row[3]) if row else None


def credential_of(conn: sqlite3.Connection, token: str | None) -> tuple[str | None, str | None]:
    """(session id, API token hash) of a session or API token, to bind something to that
    credential for as long as it lasts (:func:`live_credential`); (None, None) for anything
    else (an identity another extension vouched for)."""
    if token and token.startswith(SESSION_PREFIX):
        try:
            data = _serializer(conn).loads(token[len(SESSION_PREFIX) :], max_age=SESSION_SECONDS)
        except (BadSignature, SignatureExpired):
            return None, None
        sid = data.get("sid") if isinstance(data, dict) else None
        return (sid, None) if isinstance(sid, str) else (None, None)
    if token and token.startswith(TOKEN_PREFIX):
        return None, _hash_token(token)
    return None, None


def live_credential(row: str) -> str:
    """A SQL condition: the credential a row of table alias ``row`` was bound to (its
    ``session_id`` / ``token_hash`` columns, from credential_of) is still valid at ``:now``
    (a row bound to none: always)."""
    return (
        f"(({row}.session_id IS NULL AND {row}.token_hash IS NULL)"
        f" OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = {row}.session_id"
        " AND s.revoked_at IS NULL AND s.expires_at > :now)"
        f" OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.token_hash = {row}.token_hash"
        " AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > :now)))"
    )


def logout(conn: sqlite3.Connection, token: str) -> bool:
    try:
        data = _serializer(conn).loads(token[len(SESSION_PREFIX) :])
    except BadSignature:
        return False
    with conn:
        cur = conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), data.get("sid") if isinstance(data, dict) else None),
        )
    return cur.rowcount > 0


def authenticate(
    conn: sqlite3.Connection, token: str | None, touch: TokenTouch | None = None
) -> User | None:
    """The user behind an API token or a session token (``touch``: see authenticate_token)."""
    found = credential(conn, token, touch)
    return found.user if found else None


def credential(
    conn: sqlite3.Connection,
    token: str | None,
    touch: TokenTouch | None = None,
    *,
    record: bool = True,
) -> Credential | None:
    """The user behind an API or session token, and when it expires; None if it is not valid
    (unknown, revoked, expired). An API token's use is recorded through ``touch`` (else at
    once on ``conn``) unless ``record`` is False."""
    if not token:
        return None
    if token.startswith(SESSION_PREFIX):
        return session_credential(conn, token)
    return token_credential(conn, token, touch, record=record)


def list_tokens(conn: sqlite3.Connection, user_name: str) -> list[TokenInfo]:
    rows = conn.execute(
        "SELECT t.id, u.name, t.label, t.created_at, t.last_used_at, t.revoked_at, t.expires_at"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = ? ORDER BY t.id",
        (user_name,),
    ).fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke_token(conn: sqlite3.Connection, token_id: int) -> bool:
    with conn:
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), token_id),
        )
    return cur.rowcount > 0


def revoke_own_token(conn: sqlite3.Connection, user_name: str, token_id: int) -> bool | None:
    """Revoke ``user_name``'s token ``token_id``: True if it was active, False if it was
    revoked already, None if ``user_name`` has no token of that id (another user's token is
    answered as missing, so its id tells nothing)."""
    if not 0 < token_id < 2**63:
        return None  # SQLite's integers are 64-bit: a wider id names no token
    with conn:
        row = conn.execute(
            "SELECT t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.id = ? AND u.name = ?",
            (token_id, user_name),
        ).fetchone()
        if row is None:
            return None
        if row[0] is not None:
            return False
        conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (time.time(), token_id))
    return True


# -- e-mail address and digest preference (migration 18) ---------------------------------

DIGEST_CHOICES = ("daily", "off")
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class Profile:
    """What an account says about itself: only its owner (and the server) sees the address."""

    name: str
    display_name: str
    email: str | None
    digest: str  # "daily" | "off"; a digest goes out only with an address
    locale: str | None = None  # a BCP 47 tag (identity.locales); None: the server's default
    time_zone: str | None = None  # an IANA name; None: UTC


_PROFILE = "name, display_name, email, digest, locale, time_zone"


def _profile(row: tuple) -> Profile:
    return Profile(row[0], row[1], row[2], row[3] or "daily", row[4], row[5])


def normalize_email(address: str) -> str:
    """``address`` checked (syntax only: no DNS lookup) and normalized; AccountError if it is
    not an e-mail address."""
    from email_validator import EmailNotValidError, validate_email

    if not isinstance(address, str) or len(address) > MAX_EMAIL_LENGTH:
        raise AccountError(f"not an e-mail address (at most {MAX_EMAIL_LENGTH} characters)")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise AccountError(f"not an e-mail address: {address!r}: {e}") from e


def get_profile(conn: sqlite3.Connection, name: str) -> Profile | None:
    row = conn.execute(f"SELECT {_PROFILE} FROM users WHERE name = ?", (name,)).fetchone()
    return _profile(row) if row else None


def set_locale(conn: sqlite3.Connection, name: str, fields: dict[str, str | None]) -> Profile:
    """Set (None: clear) ``name``'s ``locale`` and / or ``time_zone`` (the keys given), each
    checked first (identity.locales); AccountError naming the field for a bad one."""
    from sync_server.identity.locales import LocaleInvalid, normalize_locale, normalize_time_zone

    checks = {"locale": normalize_locale, "time_zone": normalize_time_zone}
    values: dict[str, str | None] = {}
    for field_name, value in fields.items():
        try:
            values[field_name] = checks[field_name](value) if value is not None else None
        except LocaleInvalid as e:
            raise AccountError(f"{field_name}: {e}") from e
    with conn:
        for field_name, value in values.items():
            cur = conn.execute(f"UPDATE users SET {field_name} = ? WHERE name = ?", (value, name))
            if cur.rowcount == 0:
                raise AccountError(f"no user named {name!r}")
    profile = get_profile(conn, name)
    if profile is None:
        raise AccountError(f"no user named {name!r}")
    return profile


def locales_of(
    conn: sqlite3.Connection, names: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """{user: (locale, time zone)} of those of ``names`` whose account sets either."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for user, locale, zone in conn.execute(
            f"SELECT name, locale, time_zone FROM users WHERE name IN ({marks})"
            " AND (locale IS NOT NULL OR time_zone IS NOT NULL)",
            chunk,
        ):
            out[user] = (locale, zone)
    return out


def set_email(conn: sqlite3.Connection, name: str, address: str | None) -> Profile:
    """Set (or with None, clear) ``name``'s e-mail address; AccountError for a bad one."""
    value = normalize_email(address) if address is not None else None
    with conn:
        cur = conn.execute("UPDATE users SET email = ? WHERE name = ?", (value, name))
    if cur.rowcount == 0:
        raise AccountError(f"no user named {name!r}")
    profile = get_profile(conn, name)
    assert profile is not None
    return profile


def set_digest(conn: sqlite3.Connection, name: str, choice: str) -> Profile:
    if choice not in DIGEST_CHOICES:
        raise AccountError(f"digest must be one of {', '.join(DIGEST_CHOICES)}")
    with conn:
        cur = conn.execute("UPDATE users SET digest = ? WHERE name = ?", (choice, name))
    if cur.rowcount == 0:
        raise AccountError(f"no user named {name!r}")
    profile = get_profile(conn, name)
    assert profile is not None
    return profile


def email_addresses(conn: sqlite3.Connection, names: list[str]) -> dict[str, str]:
    """{user: address} of those of ``names`` whose account has an address."""
    out: dict[str, str] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for user, email in conn.execute(
            f"SELECT name, email FROM users WHERE email IS NOT NULL AND name IN ({marks})", chunk
        ):
            out[user] = email
    return out


def digest_subscribers(conn: sqlite3.Connection) -> list[Profile]:
    """Accounts with an address that did not turn the daily digest off."""
    return [
        _profile(r)
        for r in conn.execute(
            f"SELECT {_PROFILE} FROM users WHERE email IS NOT NULL AND digest = 'daily'"
            " ORDER BY name"
        )
    ]


def add_email_columns(conn: sqlite3.Connection) -> None:
    """Migration 18: ``users.email`` (nullable) and ``users.digest`` ('daily' | 'off')."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
    if "email" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN email TEXT")
    if "digest" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN digest TEXT NOT NULL DEFAULT 'daily'")


def add_locale_columns(conn: sqlite3.Connection) -> None:
    """Part of migration 20: ``users.locale`` (a BCP 47 tag) and ``users.time_zone`` (an
    IANA name), both nullable: unset, the server writes dates in UTC and numbers plainly."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
    if "locale" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN locale TEXT")
    if "time_zone" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN time_zone TEXT")


ACCOUNT_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
"""
