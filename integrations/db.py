"""What the integrations need of a SQLite connection: one used off the event loop.

``integrations`` imports no ``sync_server`` module, so it names the shape it
needs instead of the class: ``sync_server.storage.database.SQLiteWorker`` has
it (a connection and ``run(fn, *args)``, which runs ``fn`` on a worker thread
that alone uses the connection). The tables come from the server's migrations
(13: ``secrets``, ``outbox``); the connection is in autocommit mode, so code
here opens its own transactions where it needs more than one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class DatabaseWorker(Protocol):
    conn: sqlite3.Connection

    async def run(self, fn: Callable[..., T], *args: object) -> T: ...


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
