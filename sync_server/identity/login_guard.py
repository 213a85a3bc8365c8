"""Failed logins, limited per account and per client address, counted in SQLite.

The API's request budget is kept per token, so it cannot stop password
guessing: a login carries no token (or any made-up one). This guard counts
*failed* logins in a moving window under two keys: the account name tried and
the client's address. While either key is at its budget every login on it is
answered 429 with ``Retry-After``, before the password is looked at, so the
answer tells nothing about the password. A successful login clears its
account's failures (not its address's).

The failures are rows of ``login_failures`` (migration 10), not process memory:
a restart (a deploy, a crash, an attacker's way to a fresh budget if they can
cause one) does not forget them, and every server process on the file (and
the CLI) sees the same counts, so running two servers does not double the
budget. They are written and read on the REST writer's thread (a failed login
already waits there for Argon2), never on the event loop; rows older than the
window are deleted as new ones are written. (This replaced the ``limits``
library's in-memory moving window: it has no SQLite storage, and its memory
storage is per process.)

Behind a reverse proxy the address is the proxy's unless Hypercorn is told to
trust forwarded headers; the per-account limit holds either way.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass

from sync_server.identity import accounts


@dataclass(frozen=True)
class LoginRefused:
    """Too many failed logins: on which key, and for how long."""

    scope: str  # "account" | "address"
    retry_after: int  # seconds

    def detail(self, limit: int, window: int) -> str:
        on = "this account" if self.scope == "account" else "this address"
        return (
            f"too many failed logins for {on} ({limit} in {window} s);"
            f" retry in {self.retry_after} s"
        )


class LoginGuard:
    """The limits; every method takes the connection it runs on (the writer's)."""

    def __init__(
        self, per_account: int = 10, per_address: int = 50, window_seconds: int = 900
    ) -> None:
        self.window = window_seconds
        self.limits = {"account": per_account, "address": per_address}

    def check(
        self, conn: sqlite3.Connection, account: str, address: str, now: float | None = None
    ) -> LoginRefused | None:
        """None if a login for ``account`` from ``address`` may be tried now."""
        now = time.time() if now is None else now
        for scope, key in (("account", account), ("address", address)):
            limit = self.limits[scope]
            # the failures still in the window, newest first: the limit-th of them is the
            # one whose expiry brings the count back under the limit
            row = conn.execute(
                "SELECT at FROM login_failures WHERE scope = ? AND key = ? AND at > ?"
                " ORDER BY at DESC LIMIT 1 OFFSET ?",
                (scope, key, now - self.window, limit - 1),
            ).fetchone()
            if row is not None:
                return LoginRefused(scope, max(1, math.ceil(row[0] + self.window - now)))
        return None

    def failed(
        self, conn: sqlite3.Connection, account: str, address: str, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with conn:
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - self.window,))
            conn.executemany(
                "INSERT INTO login_failures (scope, key, at) VALUES (?, ?, ?)",
                [("account", account, now), ("address", address, now)],
            )

    def succeeded(self, conn: sqlite3.Connection, account: str) -> None:
        with conn:
            conn.execute(
                "DELETE FROM login_failures WHERE scope = 'account' AND key = ?", (account,)
            )

    def attempt(
        self, conn: sqlite3.Connection, account: str, password: str, address: str
    ) -> LoginRefused | tuple[str, float] | None:
        """A whole login on ``conn``: refused (the limits), a session token and its expiry,
        or None for a wrong name or password (counted)."""
        refused = self.check(conn, account, address)
        if refused is not None:
            return refused
        result = accounts.login(conn, account, password)
        if result is None:
            self.failed(conn, account, address)
        else:
            self.succeeded(conn, account)
        return result
