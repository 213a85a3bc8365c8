"""Damaged bytes on disk are found, refused with a reason, and recovered only when asked."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable

import anyio
import httpx
import pytest
from pycrdt import Doc, Map

from doc_model import TaskCreate, create_project_meta, create_task, declare_roots, parse_doc_name
from sync_server.core.connection import CloseCode
from sync_server.core.protocol import Reader, SyncStep2
from sync_server.identity.projects import register_project
from sync_server.interfaces import UpdateRecord
from sync_server.storage.database import open_database
from sync_server.storage.sqlite_store import SQLiteStore

from .conftest import ROOT, TANDEM
from .raw_client import RawClient

pytestmark = pytest.mark.anyio


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]


def _clock_offset(update: bytes) -> int:
    """Where the first struct run's clock starts: after the client count, the run's struct
    count and its client id (Yjs update v1)."""
    reader = Reader(update)
    reader.varuint()
    reader.varuint()
    reader.varuint()
    return reader.pos


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "text": lambda d: _flip(d, d.index(b"second") + 2),
    "clock": lambda d: _flip(d, _clock_offset(d)),
    "length": lambda d: _flip(d, d.index(b"second") - 1),
    "header": lambda d: _flip(d, 0),
    "truncated": lambda d: d[: len(d) * 2 // 3],
}


def _three_updates(name: str) -> list[bytes]:
    """A project's first three transactions: its metadata and task "first", task "second",
    task "third"."""
    doc: Doc = Doc()
    declare_roots(doc, parse_doc_name(name).kind)
    out: list[bytes] = []
    for i, title in enumerate(("first", "second", "third")):
        before = doc.get_state()
        with doc.transaction():
            if i == 0:
                create_project_meta(doc, name)
            create_task(doc, TaskCreate(title=title), created_by="alice", task_id=title)
        out.append(doc.get_update(before))
    return out


def _seed(db, names: list[str], compacted: list[str]) -> None:
    async def run() -> None:
        store = SQLiteStore(db)
        try:
            for name in names + compacted:
                for update in _three_updates(name):
                    await store.append(name, [UpdateRecord(update, "alice")])
            for name in compacted:
                await store.compact(name)
        finally:
            await store.close()

    anyio.run(run)


def _titles(doc: Doc) -> set[str]:
    return set(doc.get("tasks", type=Map).keys())


def _doctor(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TANDEM, "doctor", "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


async def _refused(server, name: str) -> None:
    """The document is refused with a reason, and no byte of it reaches the client."""
    async with RawClient.connect(server, name, "alice", role=None) as client:
        synced = []
        while (msg := await client.recv()) is not None:
            if isinstance(msg, SyncStep2):
                synced.append(msg)
        assert client.closed is not None
        assert client.closed.code == CloseCode.DOCUMENT_UNREADABLE, client.closed
        assert "tandem doctor" in client.closed.reason
        assert synced == []


async def _served_titles(server, name: str) -> set[str]:
    async with RawClient.connect(server, name, "alice", role=None) as client:
        await client.sync()
        return _titles(client.doc)


async def test_damaged_documents_are_refused_found_by_doctor_and_recovered_on_request(
    server,
) -> None:
    damaged = {f"p/bad-{kind}": damage for kind, damage in DAMAGE.items()}
    names = [*damaged, "p/healthy"]
    await anyio.to_thread.run_sync(_seed, server.db, names, ["p/badsnap"])
    conn = sqlite3.connect(server.db)
    with conn:
        for name, damage in damaged.items():
            seq, data = conn.execute(
                "SELECT seq, data FROM updates WHERE doc = ? ORDER BY seq LIMIT 1 OFFSET 1",
                (name,),
            ).fetchone()
            conn.execute("UPDATE updates SET data = ? WHERE seq = ?", (damage(data), seq))
        (snapshot,) = conn.execute(
            "SELECT snapshot FROM documents WHERE name = 'p/badsnap'"
        ).fetchone()
        conn.execute(
            "UPDATE documents SET snapshot = ? WHERE name = 'p/badsnap'",
            (_flip(snapshot, len(snapshot) // 2),),
        )
    conn.close()
    for name in [*names, "p/badsnap"]:
        server.grant("alice", name.split("/")[1])
    db = open_database(server.db).conn
    register_project(db, "bad-text", "bad text", "alice")
    db.close()

    for name in [*damaged, "p/badsnap"]:
        await _refused(server, name)
    # every other document keeps working, edits included
    async with RawClient.connect(server, "p/healthy", "alice", role=None) as client:
        await client.sync()
        assert _titles(client.doc) == {"first", "second", "third"}
        edit = client.edit(
            lambda d: create_task(d, TaskCreate(title="more"), created_by="alice", task_id="more")
        )
        assert (await client.outcome(await client.send_update(edit)))["type"] == "ack"
    # the REST API answers with problem details naming the document
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        r = await http.get(
            "/api/v1/projects/bad-text/tasks/",
            headers={"Authorization": f"Bearer {server.token('alice')}"},
        )
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["document"] == "p/bad-text" and "tandem doctor" in r.json()["detail"]
    assert "is corrupt at its update" in r.json()["detail"]

    found = await anyio.to_thread.run_sync(_doctor, server.db)
    assert found.returncode == 1, found.stdout + found.stderr
    lines = {line.split(":")[0]: line for line in found.stdout.splitlines()}
    for name in damaged:
        assert "DAMAGED at update" in lines[name], found.stdout
    assert "DAMAGED snapshot" in lines["p/badsnap"]
    assert lines["p/healthy"].startswith("p/healthy: ok")

    fixed = await anyio.to_thread.run_sync(_doctor, server.db, "--recover")
    assert fixed.returncode == 1, fixed.stdout  # the damaged snapshot stays damaged
    for name in damaged:
        assert f"{name}: recovered: 2 update(s) moved to quarantined_updates" in fixed.stdout
        # served again, up to the last good update: the first transaction only
        assert await _served_titles(server, name) == {"first"}
    await _refused(server, "p/badsnap")
    assert await _served_titles(server, "p/healthy") == {"first", "second", "third", "more"}
    again = await anyio.to_thread.run_sync(_doctor, server.db)
    assert again.stdout.count("DAMAGED") == 1, again.stdout
    conn = sqlite3.connect(server.db)
    quarantined = conn.execute("SELECT count(*) FROM quarantined_updates").fetchone()[0]
    conn.close()
    assert quarantined == 2 * len(damaged)  # kept for inspection, not deleted
