"""Failed logins, limited per account and per client address.

The API's request budget is kept per token, so it cannot stop password
guessing: a login carries no token (or any made-up one). This guard counts
*failed* logins, in a moving window (the ``limits`` library, in process
memory), under two keys: the account name tried and the client's address.
While either key is over its budget every login on it is answered 429 with
``Retry-After``, before the password is looked at, so the answer tells
nothing about the password. A successful login clears its account's
failures (not its address's).

Behind a reverse proxy the address is the proxy's unless Hypercorn is told to
trust forwarded headers; the per-account limit holds either way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class LoginRefused:
    """Too many failed logins: on which key, and for how long."""

    scope: str  # "account" | "address"
    retry_after: int  # seconds

    def detail(self, limit: int, window: int) -> str:
        on = "this account" if self.scope == "account" else "this address"
        return (
            f"too many failed logins for {on} (more than {limit} in {window} s);"
            f" retry in {self.retry_after} s"
        )


class LoginGuard:
    def __init__(
        self, per_account: int = 10, per_address: int = 50, window_seconds: int = 900
    ) -> None:
        self.window = window_seconds
        self.per_account = RateLimitItemPerSecond(per_account, window_seconds)
        self.per_address = RateLimitItemPerSecond(per_address, window_seconds)
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)

    def _keys(self, account: str, address: str):
        return (
            ("account", self.per_account, ("login-account", account)),
            ("address", self.per_address, ("login-address", address)),
        )

    def check(self, account: str, address: str) -> LoginRefused | None:
        """None if a login for ``account`` from ``address`` may be tried now."""
        for scope, item, key in self._keys(account, address):
            if not self._limiter.test(item, *key):
                reset = self._limiter.get_window_stats(item, *key).reset_time
                return LoginRefused(scope, max(1, math.ceil(reset - time.time())))
        return None

    def failed(self, account: str, address: str) -> None:
        for _scope, item, key in self._keys(account, address):
            self._limiter.hit(item, *key)

    def succeeded(self, account: str) -> None:
        self._limiter.clear(self.per_account, "login-account", account)
