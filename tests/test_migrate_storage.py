"""``tandem migrate-storage``: a real demo installation on SQLite, edited by real clients
while its server runs, copied to a real PostgreSQL database and served from there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task
from sync_server.core import state_vectors
from sync_server.interfaces import UpdateRecord
from sync_server.storage.copy import CopyError, copy_storage
from sync_server.storage.database import open_database
from sync_server.storage.sqlite_store import SQLiteStore

from .conftest import ROOT, TANDEM, ServerProcess, api_client, free_port, stored_doc, tandem
from .raw_client import RawClient
from .test_store_contract import edits

DOC = "p/demo"


def migrate_storage(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_SECRET_KEY"}
    return subprocess.run(
        [*TANDEM, "migrate-storage", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def serve(db: str | Path, tmp_path: Path, name: str) -> ServerProcess:
    """A server whose secrets' key is the key file (no TANDEM_SECRET_KEY), run in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_SECRET_KEY"}
    env.update(TANDEM_ROOM_IDLE_SECONDS="1", PYTHONPATH=str(ROOT))
    server = ServerProcess(
        db=db,  # type: ignore[arg-type]
        port=free_port(),
        env=env,
        log_path=tmp_path / f"{name}.log",
        cwd=tmp_path,
    )
    server.start()
    return server


def tasks_of(doc) -> dict:
    return doc.get("tasks", type=Map).to_py()


async def add_tasks(server: ServerProcess, titles: list[str]) -> None:
    async with RawClient.connect(server, DOC, "alice") as client:
        await client.sync()
        for title in titles:
            n = await client.send_update(
                client.edit(lambda d, t=title: create_task(d, TaskCreate(title=t), created_by="a"))
            )
            assert (await client.outcome(n))["type"] == "ack"


def test_a_running_demo_installation_moves_to_postgresql_without_loss(
    tmp_path: Path, postgres_url: str
) -> None:
    db = tmp_path / "tandem.db"
    tandem("demo", db=db)
    sqlite_server = serve(db, tmp_path, "sqlite")
    try:
        token = sqlite_server.token("alice")
        anyio.run(add_tasks, sqlite_server, [f"before {i}" for i in range(30)])
        with api_client(sqlite_server, "alice") as api:  # the REST path, and a secret
            created = api.post("/projects/demo/tasks/", json={"title": "by rest"})
            assert created.status_code == 201, created.text
        webhook = tandem("webhook", "create", "github", "--project", "demo", db=db)
        # copied while the server runs: one consistent read, verified
        first = migrate_storage("--from", f"sqlite:///{db}", "--to", postgres_url, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "documents verified (state vectors and content equal)" in first.stdout
        anyio.run(add_tasks, sqlite_server, [f"after {i}" for i in range(10)])
    finally:
        sqlite_server.stop()  # (its rooms compact on the way out)
    served_by_sqlite = stored_doc(db, DOC)
    assert {f"after {i}" for i in range(10)} <= {
        t["title"] for t in tasks_of(served_by_sqlite).values()
    }

    # the target is not empty now: refused, saying so, and nothing changes
    refused = migrate_storage("--from", str(db), "--to", postgres_url, cwd=tmp_path)
    assert refused.returncode == 2
    assert "already holds data" in refused.stderr and "--replace" in refused.stderr
    # the final copy, the server stopped
    final = migrate_storage("--from", str(db), "--to", postgres_url, "--replace", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    assert (tmp_path / f"{postgres_url.rsplit('/', 1)[1]}.postgresql.key").exists()

    copied = stored_doc(postgres_url, DOC)  # type: ignore[arg-type]
    assert state_vectors.decode(copied.get_state()) == state_vectors.decode(
        served_by_sqlite.get_state()
    )
    assert tasks_of(copied) == tasks_of(served_by_sqlite)

    pg_server = serve(postgres_url, tmp_path, "postgresql")
    try:
        pg_server.tokens["alice"] = token  # the same token signs in
        with api_client(pg_server, "alice") as api:
            listed = api.get("/projects/demo/tasks/", params={"limit": 1000})
            assert listed.status_code == 200, listed.text
        anyio.run(add_tasks, pg_server, ["on postgresql"])
        hooks = tandem("webhook", "list", "--project", "demo", db=postgres_url)  # type: ignore[arg-type]
        assert webhook.splitlines()[-2] in hooks  # the endpoint's path
        pg_server.restart()
        titles = {t["title"] for t in tasks_of(stored_doc(postgres_url, DOC)).values()}  # type: ignore[arg-type]
        assert {"on postgresql", "by rest", "before 0", "after 9"} <= titles
    finally:
        pg_server.stop()
    assert "Traceback" not in pg_server.log(), pg_server.log()[-3000:]


def test_seqs_continue_past_every_seq_the_source_gave(tmp_path: Path, postgres_url: str) -> None:
    """A log folded into its snapshot (and so deleted) or a deleted document: the copy's
    next seq is past them, or a later update would hide behind the snapshot."""
    updates, source_doc = edits(40)

    async def fill() -> int:
        store = SQLiteStore(tmp_path / "s.db", compact_threshold=10**9)
        try:
            last = await store.append(DOC, [UpdateRecord(u, "alice") for u in updates[:30]])
            assert await store.compact(DOC)
            await store.append("p/gone", [UpdateRecord(updates[0], "alice")])
            await store.delete_document("p/gone")
            return last
        finally:
            await store.close()

    last = anyio.run(fill)
    report = copy_storage(str(tmp_path / "s.db"), postgres_url, secret_key_configured=True)
    assert report.documents == 1

    async def continue_on_postgresql() -> None:
        store = SQLiteStore(postgres_url)
        try:
            seq = await store.append(DOC, [UpdateRecord(u, "alice") for u in updates[30:]])
            assert seq > last + 1  # past p/gone's too
            stored = await store.load(DOC)
            assert len(stored.updates) == len(updates) - 30
        finally:
            await store.close()

    anyio.run(continue_on_postgresql)
    assert tasks_of(stored_doc(postgres_url, DOC)) == tasks_of(source_doc)  # type: ignore[arg-type]


def test_bad_targets_are_refused_with_a_clear_message(tmp_path: Path, postgres_url: str) -> None:
    missing = migrate_storage(
        "--from", str(tmp_path / "nope.db"), "--to", postgres_url, cwd=tmp_path
    )
    assert missing.returncode == 2 and "no database file" in missing.stderr
    unknown = migrate_storage("--from", "mysql://x/y", "--to", postgres_url, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown storage" in unknown.stderr
    with pytest.raises(CopyError, match="same storage"):
        copy_storage(postgres_url, postgres_url)
    open_database(tmp_path / "empty.db").conn.close()
    unreachable = migrate_storage(
        "--from",
        str(tmp_path / "empty.db"),
        "--to",
        "postgresql://x@127.0.0.1:1/none",
        cwd=tmp_path,
    )
    assert unreachable.returncode == 2 and "the copy failed" in unreachable.stderr
