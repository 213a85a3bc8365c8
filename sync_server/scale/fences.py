"""Fencing tokens, checked in the database where a lease's holder writes.

A lease (``sync_server.scale.leases``) says which node runs a consumer; the token
that came with it says which holding is the newest. Redis's lease can expire
while its old holder still runs (a paused process, a network split), so what
the holder writes is checked against the newest token in the same database
transaction: a takeover first ``claim``s its token here, and from then on every
``check`` of the older token fails, whatever the old holder believes.
"""

from __future__ import annotations

import sqlite3
import time


class FenceLost(RuntimeError):
    """A newer holder claimed the lease: this node must stop acting for it."""


def claim(conn: sqlite3.Connection, name: str, token: int, holder: str) -> int:
    """Record ``token`` as lease ``name``'s newest unless a newer one is recorded; returns
    the token recorded afterwards (``token`` itself when the claim succeeded)."""
    conn.execute(
        "INSERT INTO lease_fences (name, token, holder, claimed) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET token = excluded.token, holder = excluded.holder,"
        " claimed = excluded.claimed WHERE excluded.token > lease_fences.token",
        (name, token, holder, time.time()),
    )
    return current(conn, name)


def current(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT token FROM lease_fences WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def check(conn: sqlite3.Connection, name: str, token: int) -> None:
    """Raise FenceLost unless ``token`` is lease ``name``'s newest (call it inside the write
    transaction it guards)."""
    newest = current(conn, name)
    if newest != token:
        raise FenceLost(f"lease {name}: token {token} was fenced off by token {newest}")


class Fence:
    """One holding of a lease: its name and token, checkable on any connection."""

    def __init__(self, name: str, token: int) -> None:
        self.name = name
        self.token = token

    def __call__(self, conn: sqlite3.Connection) -> None:
        check(conn, self.name, self.token)

    def __repr__(self) -> str:
        return f"<Fence {self.name} #{self.token}>"
