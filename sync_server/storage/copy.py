"""``tandem migrate-storage``: copy an installation's data to another storage, and prove it.

Every table the migrations made is copied row for row (documents' snapshots and
update logs byte for byte, with their sequence numbers and checksums), from one
consistent read of the source (a read transaction: a server may go on writing
meanwhile; what it writes after that read is not in the copy, so stop the server
before the copy that you switch over to). Identity counters are then set past
every number the source ever gave (SQLite's AUTOINCREMENT memory and every
snapshot's seq included), so no update seq or change-feed id is ever reused.

The copy is then verified: every document is rebuilt from each side and their
state vectors, encoded states and content compared, and every table's row count.
A target that already holds data is refused unless ``replace`` is given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc

from doc_model import InvalidDocName, declare_roots, parse_doc_name
from integrations.secrets import key_file_for
from sync_server.core import state_vectors
from sync_server.storage.database import connect, migrate
from sync_server.storage.postgres import PgConnection, display_target, is_postgres

# the bookkeeping of each engine, not Tandem's data
_INTERNAL = {"sqlite_sequence", "sqlite_stat1", "sqlite_stat4", "schema_version"}
# tables whose rows a fresh (migrated) database already has: set, not inserted
_SINGLETONS = {"access_generation"}
# parents first (foreign keys): every other table in creation order
_FIRST = ("users",)
BATCH_ROWS = 1000


class CopyError(Exception):
    """The copy cannot be made (or did not verify): a message for the person running it."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    documents: int = 0
    key_file: str | None = None  # where the secrets' key file was copied to, if it was

    def describe(self) -> str:
        total = sum(self.rows.values())
        lines = [
            f"copied {total} rows of {len(self.rows)} tables; {self.documents} documents verified"
            " (state vectors and content equal)"
        ]
        if self.key_file:
            lines.append(f"the secrets' key file was copied to {self.key_file}")
        return "\n".join(lines)


def tables(conn: sqlite3.Connection) -> list[str]:
    """Tandem's tables in ``conn``'s database, parents first."""
    if isinstance(conn, PgConnection):
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ]
    else:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
            )
        ]
    names = [n for n in names if n not in _INTERNAL and not n.startswith("sqlite_")]
    return [n for n in _FIRST if n in names] + [n for n in names if n not in _FIRST]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    if isinstance(conn, PgConnection):
        return [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        ]
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _name(column: str) -> str:
    return f'"{column}"'


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _held(conn: sqlite3.Connection) -> dict[str, int]:
    """Tables of the target that hold rows (a fresh database's own rows aside)."""
    return {t: n for t in tables(conn) if t not in _SINGLETONS and (n := count(conn, t)) > 0}


def copy_storage(
    source: str,
    target: str,
    *,
    replace: bool = False,
    secret_key_configured: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> CopyReport:
    if source == target:
        raise CopyError("--from and --to are the same storage")
    if not is_postgres(source) and not os.path.exists(source):
        raise CopyError(f"no database file {source!r}")
    if not secret_key_configured:
        _check_key_file(source, target)
    src = connect(source)
    dst = connect(target)
    try:
        migrate(src)  # what the server does on start: both sides at one schema version
        migrate(dst)
        held = _held(dst)
        if held and not replace:
            listed = ", ".join(f"{t} ({n})" for t, n in sorted(held.items()))
            raise CopyError(
                f"{display_target(target)} already holds data: {listed}. Give --replace to"
                " delete it and copy over it, or name an empty database"
            )
        report = CopyReport()
        src.execute("BEGIN")  # one consistent read of everything
        try:
            _copy_tables(src, dst, report, replace, progress)
            report.documents = verify(src, dst, progress)
        finally:
            src.execute("COMMIT")
    finally:
        src.close()
        dst.close()
    if not secret_key_configured:
        report.key_file = _copy_key_file(source, target)
    return report


def _copy_tables(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    report: CopyReport,
    replace: bool,
    progress: Callable[[str], None],
) -> None:
    wanted = tables(src)
    missing = set(wanted) - set(tables(dst))
    if missing:
        raise CopyError(f"the target has no table {', '.join(sorted(missing))}")
    dst.execute("BEGIN IMMEDIATE")
    try:
        if replace:
            for table in reversed(tables(dst)):
                if table not in _SINGLETONS:
                    dst.execute(f"DELETE FROM {table}")
        for table in wanted:
            names = columns(src, table)
            kept = set(columns(dst, table))
            lost = [c for c in names if c not in kept]
            if lost:
                raise CopyError(f"the target's {table} has no column {', '.join(lost)}")
            listed = ", ".join(_name(c) for c in names)
            if table in _SINGLETONS:
                report.rows[table] = _copy_singleton(src, dst, table, names)
                continue
            insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(names))})"
            cur = src.execute(f"SELECT {listed} FROM {table}")
            copied = 0
            while True:
                rows = _fetch(cur, BATCH_ROWS)
                if not rows:
                    break
                dst.executemany(insert, rows)
                copied += len(rows)
            report.rows[table] = copied
            progress(f"{table}: {copied} rows")
        _advance_counters(src, dst)
        dst.execute("COMMIT")
    except BaseException:
        if dst.in_transaction:
            dst.execute("ROLLBACK")
        raise


def _fetch(cur: Any, n: int) -> list[tuple]:
    fetchmany = getattr(cur, "fetchmany", None)
    if fetchmany is not None:
        return list(fetchmany(n))
    rows = []
    for _ in range(n):
        row = cur.fetchone()
        if row is None:
            break
        rows.append(row)
    return rows


def _copy_singleton(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, names: list[str]
) -> int:
    """access_generation: the target's own row set past the source's (so that anything
    that remembered a generation sees a change)."""
    row = src.execute("SELECT n FROM access_generation WHERE id = 1").fetchone()
    if row is not None:
        dst.execute("UPDATE access_generation SET n = max(n, ?) + 1 WHERE id = 1", (int(row[0]),))
    return 1 if row is not None else 0


def _counters(src: sqlite3.Connection) -> dict[str, int]:
    """The highest number each AUTOINCREMENT table ever gave (deleted rows included)."""
    out: dict[str, int] = {}
    if isinstance(src, PgConnection):
        return out  # a PostgreSQL source: its sequences' values below
    exists = src.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ).fetchone()
    if exists:
        out.update(
            {name: int(seq) for name, seq in src.execute("SELECT name, seq FROM sqlite_sequence")}
        )
    return out


def _advance_counters(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    """Identity columns continue past every number the source gave: a seq folded into a
    snapshot (and deleted from the log) or a pruned feed id is never given again."""
    given = _counters(src)
    snapshot = src.execute("SELECT coalesce(max(snapshot_seq), 0) FROM documents").fetchone()[0]
    given["updates"] = max(given.get("updates", 0), int(snapshot))
    if isinstance(dst, PgConnection):
        identities = dst.raw.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        ).fetchall()
        for table, column in identities:
            if isinstance(src, PgConnection):
                row = src.raw.execute(
                    "SELECT last_value FROM pg_sequences WHERE sequencename ="
                    " split_part(pg_get_serial_sequence(%s, %s), '.', 2)",
                    (table, column),
                ).fetchone()
                given[table] = max(given.get(table, 0), int(row[0] or 0) if row else 0)
            top = dst.raw.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()[0]
            value = max(int(top), given.get(table, 0))
            dst.raw.execute(
                "SELECT setval(pg_get_serial_sequence(%s, %s), %s, %s)",
                (table, column, max(value, 1), value > 0),
            )
    else:
        for table, value in given.items():
            dst.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (value, table)
            )
            dst.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (table, value, table),
            )


def _document(conn: sqlite3.Connection, name: str) -> Doc:
    row = conn.execute(
        "SELECT snapshot, snapshot_seq FROM documents WHERE name = ?", (name,)
    ).fetchone()
    snapshot, since = row if row else (None, 0)
    doc: Doc = Doc()
    with contextlib.suppress(InvalidDocName):  # a name no room opens: its roots as stored
        declare_roots(doc, parse_doc_name(name).kind)
    with doc.transaction():
        if snapshot is not None:
            doc.apply_update(bytes(snapshot))
        for (data,) in conn.execute(
            "SELECT data FROM updates WHERE doc = ? AND seq > ? ORDER BY seq", (name, since)
        ).fetchall():
            doc.apply_update(bytes(data))
    return doc


def _content(doc: Doc) -> dict[str, Any]:
    return {key: doc[key].to_py() for key in sorted(doc.keys())}


def verify(
    src: sqlite3.Connection, dst: sqlite3.Connection, progress: Callable[[str], None]
) -> int:
    """Every document equal on both sides (state vector, encoded state, content) and every
    table's row count; returns how many documents were compared. Raises CopyError."""
    names = [
        r[0]
        for r in src.execute(
            "SELECT name FROM documents UNION SELECT DISTINCT doc FROM updates ORDER BY 1"
        ).fetchall()
    ]
    for name in names:
        a, b = _document(src, name), _document(dst, name)
        if state_vectors.decode(a.get_state()) != state_vectors.decode(b.get_state()):
            raise CopyError(f"document {name}: state vectors differ after the copy")
        if a.get_update() != b.get_update() or _content(a) != _content(b):
            raise CopyError(f"document {name}: content differs after the copy")
    for table in tables(src):
        if table in _SINGLETONS:
            continue
        if count(src, table) != count(dst, table):
            raise CopyError(f"table {table}: {count(src, table)} rows, {count(dst, table)} copied")
    progress(f"{len(names)} documents verified")
    return len(names)


def _check_key_file(source: str, target: str) -> None:
    have, want = key_file_for(source), key_file_for(target)
    if have.exists() and want.exists() and want.read_bytes() != have.read_bytes():
        raise CopyError(
            f"{want} exists with another key: the secrets to copy are encrypted with {have}"
            " (move it away, or set TANDEM_SECRET_KEY)"
        )


def _copy_key_file(source: str, target: str) -> str | None:
    """The secrets (webhook URLs, tokens) stay encrypted with the source's key: its key file
    goes where the target's server looks for it (unless it is there already)."""
    have, want = key_file_for(source), key_file_for(target)
    if not have.exists() or want.exists():
        return None
    shutil.copy2(have, want)
    os.chmod(want, 0o600)
    return str(want)
