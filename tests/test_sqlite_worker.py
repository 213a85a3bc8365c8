"""The SQLite worker: calls in order on a thread of its own, cancellation, idle threads."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
import weakref

import pytest

from sync_server.storage.database import SQLiteWorker, connect


@pytest.fixture
def worker(tmp_path):
    return SQLiteWorker(connect(tmp_path / "w.db"))


@pytest.mark.anyio
async def test_calls_run_in_order_off_the_loop_and_raise_what_they_raise(worker) -> None:
    loop_thread = threading.get_ident()
    await worker.run(worker.conn.execute, "CREATE TABLE t (n INTEGER)")
    seen: list[tuple[int, int]] = []

    def insert(n: int) -> int:
        seen.append((n, threading.get_ident()))
        time.sleep(0.001 if n % 3 else 0)
        with worker.conn:
            worker.conn.execute("INSERT INTO t VALUES (?)", (n,))
        return n * 2

    # made all at once: they still run one at a time, in the order they were made
    results = await asyncio.gather(*(worker.run(insert, n) for n in range(50)))
    assert results == [n * 2 for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {t for _, t in seen} != {loop_thread} and len({t for _, t in seen}) == 1
    rows = await worker.run(lambda: worker.conn.execute("SELECT n FROM t").fetchall())
    assert [r[0] for r in rows] == list(range(50))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await worker.run(worker.conn.execute, "SELECT * FROM missing")
    assert await worker.run(lambda: 7) == 7  # an error leaves the worker working
    await worker.close()


@pytest.mark.anyio
async def test_a_cancelled_caller_skips_its_queued_call_and_not_a_running_one(worker) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        ran.append("slow")

    running = asyncio.ensure_future(worker.run(slow))
    queued = asyncio.ensure_future(worker.run(ran.append, "queued"))
    after = asyncio.ensure_future(worker.run(ran.append, "after"))
    await asyncio.to_thread(started.wait, 5)
    running.cancel()
    queued.cancel()
    # the callers' cancellations are theirs at once, while the first call still runs
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert ran == []
    release.set()
    await after
    # the running call ran to its end; the one cancelled before it started never ran
    assert ran == ["slow", "after"]
    await worker.close()


@pytest.mark.anyio
async def test_an_idle_worker_leaves_no_thread_and_starts_one_when_called(worker) -> None:
    worker.IDLE_SECONDS = 0.05
    before = threading.active_count()
    assert await worker.run(lambda: threading.current_thread().name) == (
        f"sqlite-worker-{id(worker):x}"
    )
    deadline = time.monotonic() + 5
    while worker._thread is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert worker._thread is None and threading.active_count() <= before
    # calls made around the moment the thread ends are never lost
    for _ in range(20):
        assert await worker.run(lambda: 1) == 1
        await asyncio.sleep(0.05)
    await worker.close()


class _Failed(Exception):
    made: list = []  # weak references to every one made

    def __init__(self) -> None:
        super().__init__("no")
        _Failed.made.append(weakref.ref(self))


@pytest.mark.anyio
async def test_a_failed_call_leaves_nothing_for_the_cycle_collector(worker) -> None:
    """The error a call raised, its traceback and the future that carried it are freed
    when the caller lets go of them, with the collector off (no cycle through the
    worker thread's frame)."""

    def fail() -> None:
        raise _Failed()

    await worker.run(lambda: None)  # the thread is up
    gc.collect()
    gc.disable()
    try:
        _Failed.made.clear()
        for _ in range(3):
            with pytest.raises(_Failed):
                await worker.run(fail)
        await worker.run(lambda: None)  # the thread has moved on
        alive = [r for r in _Failed.made if r() is not None]
    finally:
        gc.enable()
    assert not alive, f"{len(alive)} error(s) kept alive by a reference cycle"
    await worker.close()
