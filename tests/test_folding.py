"""Compaction folds in a child process: it outlives neither the store nor its own failures."""

from __future__ import annotations

import os
import signal
import threading
import time

import anyio
import pytest
from pycrdt import Doc, Map

from sync_server.interfaces import UpdateRecord
from sync_server.storage.folding import FoldFailed, FoldProcess, fold
from sync_server.storage.sqlite_store import SQLiteStore

from .conftest import project_with_tasks
from .test_storage import DOC, edits, loaded


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().split()[2] != "Z"


def test_the_child_folds_exactly_what_a_fold_here_makes() -> None:
    updates, source = edits(80)
    folder = FoldProcess()
    try:
        snapshot, state = folder.fold(updates[0], updates[1:])
        assert folder.pid is not None and folder.pid != os.getpid()
    finally:
        folder.close()
    assert (snapshot, state) == fold(updates[0], updates[1:])
    doc: Doc = Doc()
    doc.apply_update(snapshot)
    assert doc.get("tasks", type=Map).to_py() == source.get("tasks", type=Map).to_py()
    assert state == doc.get_state()


def test_corrupt_stored_data_fails_that_fold_with_a_reason_and_the_child_goes_on() -> None:
    updates, _ = edits(5)
    folder = FoldProcess()
    try:
        with pytest.raises(FoldFailed, match="does not fold"):
            folder.fold(None, [updates[0], b"\x01\xff\xff\xff not an update"])
        pid = folder.pid
        snapshot, _ = folder.fold(None, updates)
        assert folder.pid == pid  # the same child, still serving
        assert snapshot == fold(None, updates)[0]
    finally:
        folder.close()


def test_a_killed_child_fails_one_fold_and_the_next_starts_a_new_one() -> None:
    updates, _ = edits(20)
    folder = FoldProcess()
    try:
        folder.fold(None, updates[:5])
        first = folder.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with pytest.raises(FoldFailed, match="fold process failed"):
            folder.fold(None, updates)
        assert folder.pid is None and not alive(first)
        snapshot, _ = folder.fold(None, updates)
        assert folder.pid not in (None, first)
        assert snapshot == fold(None, updates)[0]
    finally:
        folder.close()


def test_the_store_compacts_through_a_killed_child_and_loses_nothing(tmp_path) -> None:
    db = tmp_path / "killed.db"
    updates, source = edits(120)

    async def run() -> None:
        store = SQLiteStore(db, compact_threshold=30)
        try:
            for u in updates[:40]:
                await store.append(DOC, [UpdateRecord(u, "t")])
            await store.wait_for_compactions()
            pid = store._folder.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            for u in updates[40:80]:  # the next compaction fails (its child is dead)...
                await store.append(DOC, [UpdateRecord(u, "t")])
            await store.wait_for_compactions()
            assert len((await store.load(DOC)).updates) > 30
            for u in updates[80:]:  # ...and the one after the next appends succeeds
                await store.append(DOC, [UpdateRecord(u, "t")])
            await store.wait_for_compactions()
            stored = await store.load(DOC)
            assert stored.snapshot is not None and len(stored.updates) <= 30
        finally:
            await store.close()

    anyio.run(run)
    assert loaded(db) == source.get("tasks", type=Map).to_py()


def test_closing_the_store_ends_its_child(tmp_path) -> None:
    updates, _ = edits(20)

    async def run() -> int:
        store = SQLiteStore(tmp_path / "close.db", compact_threshold=5)
        await store.append(DOC, [UpdateRecord(u, "t") for u in updates])
        await store.compact(DOC)
        pid = store._folder.pid
        assert pid is not None and alive(pid)
        await store.close()
        return pid

    pid = anyio.run(run)
    assert not alive(pid)


def test_a_fold_leaves_the_event_loop_running() -> None:
    """pycrdt holds the GIL while it decodes: folded on a thread, a big document stops every
    other thread until it is done; folded in the child, the caller's thread only waits."""
    big = project_with_tasks(20_000).get_update()
    folder = FoldProcess()
    folder.fold(None, [])  # started before timing

    def longest_pause_while(work) -> tuple[float, float]:
        pauses: list[float] = []
        thread = threading.Thread(target=work)
        last = time.perf_counter()
        started = last
        thread.start()
        while thread.is_alive():
            time.sleep(0.001)
            now = time.perf_counter()
            pauses.append(now - last)
            last = now
        thread.join()
        return max(pauses), time.perf_counter() - started

    try:
        here_pause, here_total = longest_pause_while(lambda: fold(big, []))
        child_pause, child_total = longest_pause_while(lambda: folder.fold(big, []))
    finally:
        folder.close()
    # Folded here, the waiting thread is stopped for most of the fold; in the child it
    # keeps ticking (generous bounds: the machine is shared).
    assert here_pause > 0.5 * here_total
    assert child_pause < 0.5 * child_total
