"""``tandem doctor``: verify every stored document; optionally recover damaged ones.

A document is its snapshot plus its log of updates (see storage.py). Each is
checked twice: its bytes against the checksum stored when it was written, and
its content by decoding it, in order, into a fresh document. The first update
that fails either is where the document's damage starts.

Recovery (``--recover``, explicit) keeps the snapshot and every update before
that first damaged one, and moves the damaged update and everything after it
out of the log into ``quarantined_updates`` (nothing is deleted). Yjs clients
that still hold those later edits send them again when they next sync, so
recovery loses only what no client holds any more. A damaged snapshot cannot be
recovered this way (there is no good state before it): it is reported, and left
alone.

Runs beside a live server: the check reads in one read transaction per
document (WAL: the server is not blocked), and recovery moves the rows in one
write transaction, re-checking under the write lock first.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from pycrdt import Doc

from sync_server.storage.database import checksum


@dataclass(frozen=True)
class DocumentReport:
    name: str
    updates: int  # in the log
    has_snapshot: bool
    bad_seq: int | None = None  # the first damaged update (None: none, or the snapshot)
    snapshot_bad: bool = False
    reason: str = ""
    later: int = 0  # updates after the first damaged one

    @property
    def ok(self) -> bool:
        return not self.snapshot_bad and self.bad_seq is None

    def describe(self) -> str:
        parts = ("snapshot, " if self.has_snapshot else "") + f"{self.updates} updates"
        if self.ok:
            return f"{self.name}: ok ({parts})"
        if self.snapshot_bad:
            return f"{self.name}: DAMAGED snapshot ({self.reason}); cannot be recovered from here"
        return (
            f"{self.name}: DAMAGED at update {self.bad_seq} ({self.reason}); {self.later} later"
            f" update(s); --recover keeps the {parts.split(',')[0]} and the updates before it"
        )


def _decodes(doc: Doc, data: bytes) -> str | None:
    try:
        doc.apply_update(data)
    except Exception as e:
        return f"does not decode: {e}"
    except BaseException as e:  # pyo3 turns a Rust panic on bad input into a BaseException
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        return f"does not decode: {type(e).__name__}: {e}"
    return None


def check_document(conn: sqlite3.Connection, name: str) -> DocumentReport:
    """Verify one document, reading it in one read transaction."""
    conn.execute("BEGIN")
    try:
        return _check(conn, name)
    finally:
        conn.execute("COMMIT")


def _check(conn: sqlite3.Connection, name: str) -> DocumentReport:
    row = conn.execute(
        "SELECT snapshot, snapshot_seq, snapshot_checksum FROM documents WHERE name = ?",
        (name,),
    ).fetchone()
    snapshot, snapshot_seq, snapshot_sum = row if row else (None, 0, None)
    rows = conn.execute(
        "SELECT seq, data, checksum FROM updates WHERE doc = ? AND seq > ? ORDER BY seq",
        (name, snapshot_seq),
    ).fetchall()
    report = DocumentReport(name, len(rows), snapshot is not None)
    doc: Doc = Doc()
    if snapshot is not None:
        reason = None
        if not isinstance(snapshot, bytes):
            reason = f"stored as {type(snapshot).__name__}"
        elif snapshot_sum is not None and checksum(snapshot) != snapshot_sum:
            reason = "checksum mismatch"
        else:
            reason = _decodes(doc, snapshot)
        if reason is not None:
            return DocumentReport(name, len(rows), True, snapshot_bad=True, reason=reason)
    for i, (seq, data, expected) in enumerate(rows):
        if not isinstance(data, bytes):
            reason = f"stored as {type(data).__name__}"
        elif expected is not None and checksum(data) != expected:
            reason = "checksum mismatch"
        else:
            reason = _decodes(doc, data)
        if reason is not None:
            return DocumentReport(
                name,
                len(rows),
                report.has_snapshot,
                bad_seq=seq,
                reason=reason,
                later=len(rows) - i - 1,
            )
    return report


def document_names(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM documents UNION SELECT DISTINCT doc FROM updates ORDER BY 1"
        )
    ]


def recover(conn: sqlite3.Connection, report: DocumentReport) -> int:
    """Move the damaged update and every later one out of the log; returns how many moved.
    Re-checks under the write lock, so a document changed meanwhile is judged afresh."""
    if report.snapshot_bad or report.bad_seq is None:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = _check(conn, report.name)
        if now.bad_seq is None:
            conn.execute("COMMIT")
            return 0
        conn.execute(
            "INSERT INTO quarantined_updates"
            " (seq, doc, data, actor, created_at, checksum, quarantined_at, reason)"
            " SELECT seq, doc, data, actor, created_at, checksum, ?, ? FROM updates"
            " WHERE doc = ? AND seq >= ?",
            (time.time(), f"tandem doctor: {now.reason}", report.name, now.bad_seq),
        )
        moved = conn.execute(
            "DELETE FROM updates WHERE doc = ? AND seq >= ?", (report.name, now.bad_seq)
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
            conn.execute("ROLLBACK")
        raise
    return moved
