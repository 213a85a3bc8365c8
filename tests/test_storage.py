"""SQLiteStore on a real file: durable appends, compaction that keeps the state, several writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from doc_model import parse_doc_name
from sync_server.interfaces import UpdateRecord
from sync_server.storage.sqlite_store import SQLiteStore, StorageError, build_document

DOC = "p/store"


def edits(n: int, seed: int = 0) -> tuple[list[bytes], Doc]:
    """n small updates from one pycrdt client, and the doc that made them."""
    doc: Doc = Doc()
    tasks = doc.get("tasks", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(n):
        key = f"t{(i * 7 + seed) % 13}"
        if key in tasks and i % 3 == 0:
            del tasks[key]
        else:
            tasks[key] = Map({"title": Text(f"v{i}"), "status": "todo"})
    return updates, doc


def loaded(db: Path) -> dict:
    async def load():
        store = SQLiteStore(db)
        try:
            return await store.load(DOC)
        finally:
            await store.close()

    doc = build_document(anyio.run(load), parse_doc_name(DOC))
    return doc.get("tasks", type=Map).to_py()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(1, 60), st.integers(1, 10), st.lists(st.integers(0, 60), max_size=4))
def test_compaction_at_any_points_keeps_the_state(tmp_path, n, batch, compact_at) -> None:
    db = tmp_path / f"c{n}-{batch}-{'-'.join(map(str, compact_at))}.db"
    updates, source = edits(n)

    async def run():
        store = SQLiteStore(db, compact_threshold=10**9)
        for i in range(0, len(updates), batch):
            await store.append(DOC, [UpdateRecord(u, "t") for u in updates[i : i + batch]])
            if i in compact_at:
                await store.compact(DOC)
        await store.close()

    anyio.run(run)
    assert loaded(db) == source.get("tasks", type=Map).to_py()


def test_automatic_compaction_past_the_threshold(tmp_path) -> None:
    db = tmp_path / "auto.db"
    updates, source = edits(120)

    async def run():
        store = SQLiteStore(db, compact_threshold=50)
        for u in updates:
            await store.append(DOC, [UpdateRecord(u, "t")])
        await store.wait_for_compactions()  # compaction runs after the append returns
        stored = await store.load(DOC)
        await store.close()
        return stored

    stored = anyio.run(run)
    assert stored.snapshot is not None and stored.snapshot_state is not None
    assert len(stored.updates) <= 50
    assert loaded(db) == source.get("tasks", type=Map).to_py()


def test_a_second_writer_is_never_lost_to_compaction(tmp_path) -> None:
    db = tmp_path / "two.db"
    mine, _ = edits(40, seed=1)
    theirs_doc: Doc = Doc()
    theirs_map = theirs_doc.get("tasks", type=Map)
    theirs: list[bytes] = []
    theirs_doc.observe(lambda e: theirs.append(e.update))
    for i in range(40):
        theirs_map[f"other{i}"] = i

    async def run():
        a = SQLiteStore(db, compact_threshold=5)
        b = SQLiteStore(db, compact_threshold=7)
        async with anyio.create_task_group() as tg:

            async def write(store, updates):
                for u in updates:
                    await store.append(DOC, [UpdateRecord(u, "w")])

            tg.start_soon(write, a, mine)
            tg.start_soon(write, b, theirs)
        await a.close()
        await b.close()

    anyio.run(run)
    state = loaded(db)
    assert all(f"other{i}" in state for i in range(40))


def test_an_append_that_returned_survives_kill_9(tmp_path) -> None:
    db = tmp_path / "kill.db"
    script = f"""
import anyio, os, signal, sys
from pycrdt import Doc, Map
from sync_server.storage.sqlite_store import SQLiteStore
from sync_server.interfaces import UpdateRecord
doc = Doc(); ups = []; doc.observe(lambda e: ups.append(e.update))
doc.get("tasks", type=Map)["t1"] = "durable"
async def main():
    store = SQLiteStore({str(db)!r})
    seq = await store.append({DOC!r}, [UpdateRecord(ups[0], "k")])
    print(seq, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
anyio.run(main)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9
    assert proc.stdout.strip() == "1"
    assert loaded(db) == {"t1": "durable"}


def test_corrupt_stored_data_is_reported_with_the_document_name(tmp_path) -> None:
    db = tmp_path / "bad.db"

    async def run():
        store = SQLiteStore(db)
        await store.append(DOC, [UpdateRecord(b"\xff\xff\xff\xff", "x")])
        stored = await store.load(DOC)
        await store.close()
        return stored

    with pytest.raises(StorageError, match="p/store"):
        build_document(anyio.run(run), parse_doc_name(DOC))


def test_updates_since_includes_the_snapshot_when_the_log_was_folded(tmp_path) -> None:
    db = tmp_path / "since.db"
    updates, source = edits(10)

    async def run():
        store = SQLiteStore(db, compact_threshold=10**9)
        for u in updates:
            await store.append(DOC, [UpdateRecord(u, "t")])
        await store.compact(DOC)
        since = await store.updates_since(DOC, 3)
        await store.close()
        return since

    since = anyio.run(run)
    doc: Doc = Doc()
    doc.get("tasks", type=Map)
    for u in updates[:3]:
        doc.apply_update(u)
    for s in since:
        doc.apply_update(s.data)
    assert doc.get("tasks", type=Map).to_py() == source.get("tasks", type=Map).to_py()
