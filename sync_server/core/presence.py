"""Presence rules: awareness states carry the sender's real identity, at a bounded rate."""

from __future__ import annotations

import time
from typing import Any


def bind_identity(state: Any, user_id: str, display_name: str) -> Any:
    """The state with ``user.id`` and ``user.name`` set to the authenticated user.

    Clients keep every other field they put in ``user`` (colour, avatar...), but
    nobody can appear as someone else. ``None`` (the client left) stays ``None``.
    """
    if state is None:
        return None
    if not isinstance(state, dict):
        state = {"value": state}
    user = state.get("user")
    user = dict(user) if isinstance(user, dict) else {}
    user["id"] = user_id
    user["name"] = display_name
    return {**state, "user": user}


class TokenBucket:
    """``rate`` events per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_seconds(self) -> float:
        self._refill()
        return max(0.0, (1 - self.tokens) / self.rate)
