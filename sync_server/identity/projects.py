"""The project registry: which projects exist, their names, who made them.

Documents are the truth about a project; this table lets the API list a
user's projects without loading a document per project. Names and statuses
follow the document: :class:`activity.ActivityRecorder` updates them when
``meta/name`` or ``meta/status`` changes, whoever changed it (API, WebSocket
client, CLI); the REST API also writes a status it changed at once. A status
of None was never read from the document (a project from before migration 20,
or seeded by the CLI): the API reads it from the document once and stores it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectEntry:
    id: str
    name: str
    created_by: str | None
    created_at: float
    updated_at: float
    status: str | None = None  # meta/status of the document; None: not known yet


_COLUMNS = "id, name, created_by, created_at, updated_at, status"


def _entry(row: tuple) -> ProjectEntry:
    return ProjectEntry(row[0], row[1], row[2], row[3], row[4], row[5])


def register_project(
    conn: sqlite3.Connection,
    project: str,
    name: str,
    created_by: str | None,
    status: str | None = None,
) -> bool:
    """Add a project; False if the id is taken (by a live or a deleted project).

    The demo and the CLI call it for projects they seed directly (already there: no-op)."""
    now = time.time()
    cursor = conn.execute(
        "INSERT OR IGNORE INTO projects (id, name, created_by, created_at, updated_at, status)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (project, name, created_by, now, now, status),
    )
    return cursor.rowcount == 1


def get_project(conn: sqlite3.Connection, project: str) -> ProjectEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM projects WHERE id = ? AND deleted_at IS NULL",
        (project,),
    ).fetchone()
    return _entry(row) if row else None


def projects_of(conn: sqlite3.Connection, user: str) -> list[ProjectEntry]:
    """Live projects where ``user`` holds a grant, by name."""
    rows = conn.execute(
        "SELECT p.id, p.name, p.created_by, p.created_at, p.updated_at, p.status FROM projects p"
        " JOIN grants g ON g.project = p.id AND g.user = ?"
        " WHERE p.deleted_at IS NULL ORDER BY lower(p.name), p.id",
        (user,),
    ).fetchall()
    return [_entry(r) for r in rows]


def rename_project(conn: sqlite3.Connection, project: str, name: str) -> None:
    conn.execute(
        "UPDATE projects SET name = ?, updated_at = ? WHERE id = ? AND name != ?",
        (name, time.time(), project, name),
    )


def set_project_status(conn: sqlite3.Connection, project: str, status: str) -> None:
    conn.execute(
        "UPDATE projects SET status = ? WHERE id = ? AND status IS NOT ?",
        (status, project, status),
    )


def touch_project(conn: sqlite3.Connection, project: str) -> None:
    conn.execute("UPDATE projects SET updated_at = ? WHERE id = ?", (time.time(), project))


def mark_deleted(conn: sqlite3.Connection, project: str) -> None:
    """Retire the id (it is never reused) and drop every grant on it, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("UPDATE projects SET deleted_at = ? WHERE id = ?", (time.time(), project))
        conn.execute("DELETE FROM grants WHERE project = ?", (project,))
        conn.execute("DELETE FROM roles WHERE project = ?", (project,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
            conn.execute("ROLLBACK")
        raise
