"""The durable change feed: rows written with every stored update, consumers in tasks of
their own, at-least-once from stored cursors, across a kill -9 and other processes' writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import FrozenInstanceError, dataclass, field

import anyio
import httpx
import pytest
from hypercorn.asyncio import serve
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Map

from doc_model import Change, DomainEvent, TaskCreate, create_task
from sync_server.extensions.feed import (
    CURSOR_STORE_SECONDS,
    ChangeFeed,
    parse_actor,
    parse_changes,
    parse_events,
)
from sync_server.interfaces import Actor, DocumentChanged, UpdateRecord
from sync_server.shell.app import create_app
from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
from sync_server.shell.settings import Settings
from sync_server.storage.sqlite_store import SQLiteStore, feed_columns

from .conftest import KEY_WRITER, ROOT, InProcessServer, free_port, start_server, tandem
from .raw_client import RawClient

pytestmark = pytest.mark.anyio


@dataclass
class Recorder:
    name: str = "recorder"
    seen: list[DocumentChanged] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        self.calls.append(time.monotonic())
        self.seen.extend(e for e in events if str(e.actor) != KEY_WRITER)


@dataclass
class Flaky(Recorder):
    """Raises on its first ``failures`` calls."""

    name: str = "flaky"
    failures: int = 3

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"flaky failure {len(self.calls)}")
        self.seen.extend(e for e in events if str(e.actor) != KEY_WRITER)


@contextlib.asynccontextmanager
async def running(tmp_path, observers, users=("alice",)) -> AsyncIterator[InProcessServer]:
    settings = Settings(db=str(tmp_path / "feed.db"), port=free_port())
    refuse_permessage_deflate()
    app = create_app(settings, observers=observers)
    srv = InProcessServer(tmp_path / "feed.db", settings.port)
    for user in users:
        await anyio.to_thread.run_sync(srv.token, user)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait))
        with anyio.fail_after(10):
            while True:
                try:
                    async with httpx.AsyncClient() as http:
                        if (await http.get(f"http://127.0.0.1:{settings.port}/healthz")).is_success:
                            break
                except httpx.HTTPError:
                    await anyio.sleep(0.05)
        try:
            yield srv
        finally:
            stop.set()


def feed_rows(db) -> list[tuple]:
    """The feed's rows, but for the server's task-key writes (one follows each new task)."""
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute(
            "SELECT id, doc_name, seq, actor, changes FROM change_feed WHERE actor != ?"
            " ORDER BY id",
            (KEY_WRITER,),
        ).fetchall()
    finally:
        conn.close()


async def wait_for(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.02)


def new_task(title: str, user: str = "alice"):
    return lambda d: create_task(d, TaskCreate(title=title), created_by=user)


# -- through a real server ------------------------------------------------------------


async def test_a_consumer_sees_every_accepted_transaction_once_in_order_with_changes(
    tmp_path,
) -> None:
    recorder = Recorder()
    async with (
        running(tmp_path, [recorder]) as srv,
        RawClient.connect(srv, "p/feed", "alice") as client,
    ):
        await client.sync()
        for i in range(30):
            n = await client.send_update(client.edit(new_task(f"t{i}")))
            if i == 10:  # a rejected transaction is stored as its revert, never observed
                bad = client.edit(lambda d: d.get("tasks", type=Map).__setitem__("x", 1))
                assert (await client.outcome(await client.send_update(bad)))["type"] == "rejected"
        assert (await client.outcome(n))["type"] == "ack"
        await wait_for(lambda: len(recorder.seen) >= 30, what="30 changes")
        await anyio.sleep(0.3)  # nothing more comes
    rows = feed_rows(srv.db)
    assert len(recorder.seen) == 30
    ids = [e.feed_id for e in recorder.seen if e.feed_id is not None]
    assert len(ids) == len(recorder.seen)
    assert ids == sorted(set(ids)), "each once, in commit order"
    with_changes = [r[0] for r in rows if r[4] != "[]"]
    assert ids == with_changes
    assert len(rows) == 31, "the revert has a row of its own (no changes), passed over"
    for event in recorder.seen:
        assert event.doc_name == "p/feed"
        assert event.actor == Actor("alice")
        assert event.update == b""
        assert event.seq is not None and event.seq > 0
        assert [(c.root, c.action) for c in event.changes][:1] == [("tasks", "add")]
    assert len({e.changes[0].path[1] for e in recorder.seen}) == 30  # 30 different tasks


async def test_a_raising_consumer_is_retried_with_backoff_and_delays_nobody(tmp_path) -> None:
    flaky = Flaky(failures=3)
    recorder = Recorder()
    async with (
        running(tmp_path, [flaky, recorder]) as srv,
        RawClient.connect(srv, "p/retry", "alice") as client,
    ):
        await client.sync()
        started = time.monotonic()
        n = await client.send_update(client.edit(new_task("first")))
        assert (await client.outcome(n))["type"] == "ack"
        await wait_for(lambda: len(recorder.seen) == 1, what="the healthy consumer")
        healthy_lag = time.monotonic() - started
        await wait_for(lambda: len(flaky.calls) >= 2, what="the first retry")
        # while the flaky consumer backs off, edits and the other consumer go on
        t0 = time.monotonic()
        for i in range(10):
            n = await client.send_update(client.edit(new_task(f"more {i}")))
        assert (await client.outcome(n))["type"] == "ack"
        edits_took = time.monotonic() - t0
        await wait_for(lambda: len(recorder.seen) == 11, what="the later edits")
        assert len(flaky.seen) == 0, "still backing off"
        await wait_for(lambda: len(flaky.seen) == 11, timeout=15, what="the flaky consumer")
    assert healthy_lag < 1.0
    assert edits_took < 1.0
    gaps = [b - a for a, b in zip(flaky.calls, flaky.calls[1:], strict=False)]
    # 0.5 s, then 1 s, then 2 s (doubling) between the failed calls and the one that worked
    assert gaps[0] == pytest.approx(0.5, abs=0.25)
    assert gaps[1] == pytest.approx(1.0, abs=0.3)
    assert gaps[2] == pytest.approx(2.0, abs=0.4)
    # the failed batch was the first edit alone; it was delivered again, then the rest
    assert [e.feed_id for e in flaky.seen] == [e.feed_id for e in recorder.seen]


async def test_a_cli_write_reaches_a_consumer_with_its_changes(tmp_path) -> None:
    recorder = Recorder()
    async with (
        running(tmp_path, [recorder]) as srv,
        RawClient.connect(srv, "p/cli", "alice") as client,
    ):
        await client.sync()
        n = await client.send_update(client.edit(new_task("before")))
        assert (await client.outcome(n))["type"] == "ack"
        await wait_for(lambda: len(recorder.seen) == 1, what="the client's edit")
        # another process: the real CLI, writing the members map of p/cli
        await anyio.to_thread.run_sync(
            lambda: tandem(
                "user", "create", "zed", "--project", "cli", "--role", "member",
                db=srv.db, stdin="",
            )
        )  # fmt: skip
        await wait_for(lambda: len(recorder.seen) == 2, what="the CLI's write")
    event = recorder.seen[1]
    assert event.doc_name == "p/cli"
    assert event.actor.kind == "system"
    assert Change(("members", "zed"), "add") in event.changes
    first = recorder.seen[0].feed_id
    assert event.feed_id is not None and first is not None and event.feed_id > first


# -- kill -9 ----------------------------------------------------------------------------


def read_ids(path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().splitlines() if line.strip()]


async def test_kill_9_resumes_every_consumer_from_its_cursor(tmp_path) -> None:
    log = tmp_path / "consumed.txt"
    env = {
        "TANDEM_EXTENSIONS": "tests.feed_consumer:FileConsumer",
        "TANDEM_TEST_FEED_LOG": str(log),
        "TANDEM_TEST_FEED_DELAY": "0.05",  # 5 changes per 50 ms: well behind the editors
    }
    server = start_server(tmp_path, **env)
    try:
        async with RawClient.connect(server, "p/kill", "alice") as client:
            await client.sync()
            for i in range(300):
                n = await client.send_update(client.edit(new_task(f"k{i}")))
            assert (await client.outcome(n, timeout=30))["type"] == "ack"
            # the consumer is slow: kill while it is part of the way through
            await wait_for(lambda: len(read_ids(log)) >= 40, timeout=30, what="some consumed")
            server.kill()
        stored = [r[0] for r in feed_rows(server.db)]
        consumed_before = read_ids(log)
        assert len(stored) == 300
        assert len(set(consumed_before)) < len(stored), "killed with changes still pending"
        server.start()
        await wait_for(
            lambda: set(read_ids(log)) >= set(stored), timeout=60, what="the rest after restart"
        )
    finally:
        server.stop()
    consumed = [i for i in read_ids(log) if i in set(stored)]  # not the task keys' rows
    deduped = list(dict.fromkeys(consumed))
    assert deduped == stored, "every row, each exactly once after dedup by id, in order"
    # at-least-once: anything seen twice was delivered after the cursor's last store
    # before the kill; a busy consumer stores it at most every CURSOR_STORE_SECONDS, so
    # at most that long of batches (5 per 50 ms here) comes again, never the whole feed
    again = len(consumed) - len(deduped)
    per_second = 5 / 0.05
    assert again <= per_second * (CURSOR_STORE_SECONDS + 0.5), again


# -- the feed itself, on a store -------------------------------------------------------


async def append(store: SQLiteStore, doc: str, n: int, actor: str = "alice") -> int:
    records = [
        UpdateRecord(
            f"u{i}".encode(),
            actor,
            changes=(Change(("tasks", f"t{i}"), "add"),),
            events=(DomainEvent("task_created", entity=f"t{i}", after={"title": f"t{i}"}),),
        )
        for i in range(n)
    ]
    return await store.append(doc, records)


async def test_rows_are_written_with_their_updates_and_never_without(tmp_path) -> None:
    db = tmp_path / "rows.db"
    store = SQLiteStore(db, compact_threshold=10**6)
    try:
        last = await append(store, "p/a", 3)
        with pytest.raises(sqlite3.IntegrityError):  # the update fails: no feed row either
            await store.append("p/a", [UpdateRecord(b"x", None)])  # type: ignore[arg-type]
        await append(store, "p/b", 2, actor="system:team")
    finally:
        await store.close()
    rows = feed_rows(db)
    assert [(r[1], r[2]) for r in rows] == [
        ("p/a", last - 2),
        ("p/a", last - 1),
        ("p/a", last),
        ("p/b", last + 1),
        ("p/b", last + 2),
    ]
    conn = sqlite3.connect(str(db))
    seqs = [r[0] for r in conn.execute("SELECT seq FROM updates ORDER BY seq")]
    conn.close()
    assert seqs == [r[2] for r in rows], "one row per stored update, with its seq"


async def test_compaction_leaves_the_feed_alone(tmp_path) -> None:
    db = tmp_path / "compact.db"
    store = SQLiteStore(db, compact_threshold=10**6)
    try:
        from pycrdt import Doc, Text

        doc: Doc = Doc()
        updates: list[bytes] = []
        doc.observe(lambda e: updates.append(e.update))
        text = doc.get("t", type=Text)
        for i in range(5):
            text += str(i)
        await store.append("p/c", [UpdateRecord(u, "alice") for u in updates])
        assert await store.compact("p/c")
    finally:
        await store.close()
    assert len(feed_rows(db)) == 5


async def test_cursors_new_consumers_start_at_the_newest_row_and_resume_after_restart(
    tmp_path,
) -> None:
    db = tmp_path / "cursor.db"
    store = SQLiteStore(db)
    await append(store, "p/a", 4)  # before any consumer: not replayed to new ones
    feed = ChangeFeed(db, poll_seconds=0.05)
    durable, volatile = Recorder("durable"), Recorder("volatile")
    feed.subscribe("durable", durable.documents_changed)
    feed.subscribe("volatile", volatile.documents_changed, durable=False)
    await feed.start()
    await wait_for(lambda: feed.position("durable") == 4 and feed.position("volatile") == 4)
    await append(store, "p/a", 3)
    feed.wake()
    await wait_for(lambda: len(durable.seen) == 3 and len(volatile.seen) == 3)
    await feed.close()
    await append(store, "p/a", 2)  # while nobody runs
    feed = ChangeFeed(db, poll_seconds=0.05)
    durable2, volatile2 = Recorder("durable"), Recorder("volatile")
    feed.subscribe("durable", durable2.documents_changed)
    feed.subscribe("volatile", volatile2.documents_changed, durable=False)
    await feed.start()
    try:
        await wait_for(lambda: len(durable2.seen) == 2, what="the durable one to resume")
        await anyio.sleep(0.2)
        assert [e.feed_id for e in durable2.seen] == [8, 9]
        assert volatile2.seen == [], "a non-durable consumer starts at the newest row"
        assert [e.seq for e in durable2.seen] == [8, 9]
        assert durable2.seen[0].events[0].kind == "task_created"
    finally:
        await feed.close()
        await store.close()


async def test_another_process_writes_reach_consumers_by_polling(tmp_path) -> None:
    db = tmp_path / "poll.db"
    SQLiteStore(db)  # migrated
    feed = ChangeFeed(db, poll_seconds=0.1)
    recorder = Recorder()
    feed.subscribe("r", recorder.documents_changed)
    await feed.start()
    try:
        await wait_for(lambda: feed.position("r") == 0)
        script = (
            "import asyncio\n"
            "from doc_model import create_project_meta\n"
            "from sync_server.storage.sqlite_store import SQLiteStore\n"
            "from sync_server.storage.offline_edit import edit_stored_document\n"
            "async def main():\n"
            f"    store = SQLiteStore({str(db)!r})\n"
            "    await edit_stored_document(store, 'p/other', 'system:cli',\n"
            "        lambda d: create_project_meta(d, 'Other'))\n"
            "    await store.close()\n"
            "asyncio.run(main())\n"
        )
        await anyio.to_thread.run_sync(
            lambda: subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)
        )
        await wait_for(lambda: len(recorder.seen) == 1, what="the other process's write")
    finally:
        await feed.close()
    event = recorder.seen[0]
    assert event.actor == Actor("cli", kind="system")
    assert event.doc_name == "p/other"
    assert any(c.root == "meta" for c in event.changes)


async def test_retention_prunes_only_rows_every_cursor_passed_and_old_enough(tmp_path) -> None:
    db = tmp_path / "prune.db"
    store = SQLiteStore(db)
    feed = ChangeFeed(db, retention_seconds=100, prune_interval_seconds=0)
    slow_calls: list[int] = []
    release = asyncio.Event()

    async def slow(events) -> None:
        slow_calls.append(len(events))
        await release.wait()

    feed.subscribe("fast", Recorder().documents_changed, batch=1)
    feed.subscribe("slow", slow, batch=2)
    await feed.start()
    try:
        await wait_for(lambda: feed.position("slow") == 0 and feed.position("fast") == 0)
        await append(store, "p/a", 6)
        feed.wake()
        await wait_for(lambda: feed.position("fast") == 6 and slow_calls == [2])
        assert await feed.prune(now=time.time()) == 0, "not old enough"
        # old enough, but the slow consumer's stored cursor is still at 0
        assert await feed.prune(now=time.time() + 1000) == 0
        release.set()
        await wait_for(lambda: feed.position("slow") == 6)
        await anyio.sleep(0.1)  # its cursor is stored once the position moved
        assert await feed.prune(now=time.time() + 1000) == 6
        assert feed_rows(db) == []
    finally:
        await feed.close()
        await store.close()


async def test_a_cursor_nobody_advances_holds_rows_only_up_to_the_hard_cap(
    tmp_path, caplog
) -> None:
    db = tmp_path / "cap.db"
    store = SQLiteStore(db)
    feed = ChangeFeed(db, retention_seconds=100, max_retention_seconds=1000)
    feed.subscribe("live", Recorder().documents_changed)
    await feed.start()
    try:
        conn = sqlite3.connect(str(db))
        conn.execute("INSERT INTO feed_cursors VALUES ('removed-extension', 0, 0)")
        conn.commit()
        conn.close()
        await append(store, "p/a", 4)
        feed.wake()
        await wait_for(lambda: feed.position("live") == 4)
        assert await feed.prune(now=time.time() + 500) == 0, "held back by the stale cursor"
        assert len(feed_rows(db)) == 4
        assert await feed.prune(now=time.time() + 2000) == 4, "past the hard cap"
        assert "removed-extension" in caplog.text
    finally:
        await feed.close()
        await store.close()


def test_subscribe_refuses_bad_arguments(tmp_path) -> None:
    feed = ChangeFeed(tmp_path / "x.db")

    async def handler(events) -> None:
        pass

    feed.subscribe("a", handler)
    with pytest.raises(ValueError, match="already subscribed"):
        feed.subscribe("a", handler)
    with pytest.raises(ValueError, match="needs a name"):
        feed.subscribe("", handler)
    with pytest.raises(ValueError, match="batch"):
        feed.subscribe("b", handler, batch=0)


# -- the row format: what the store writes, the feed reads back ---------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
paths = st.lists(st.text(max_size=10) | st.integers(0, 1000), min_size=1, max_size=4).map(tuple)
changes = st.builds(Change, paths, st.sampled_from(["add", "update", "delete", "edit"]))
events = st.builds(
    DomainEvent,
    kind=st.text(min_size=1, max_size=20),
    entity=st.none() | st.text(max_size=10),
    field=st.none() | st.text(max_size=10),
    before=json_values,
    after=json_values,
    detail=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(changes, max_size=5), st.lists(events, max_size=4))
def test_a_rows_changes_and_events_read_back_as_written(cs, es) -> None:
    columns = feed_columns(UpdateRecord(b"", "alice", changes=cs, events=es))
    assert list(parse_changes(columns[0])) == cs
    back = list(parse_events(columns[1]))
    assert [e.to_json() for e in back] == [json.loads(json.dumps(e.to_json())) for e in es]


@given(
    st.text(min_size=1, max_size=20).filter(lambda s: ":" not in s and "|" not in s),
    st.from_regex(r"automation:[A-Za-z0-9_-]{1,8}:[0-9]{1,2}", fullmatch=True),
)
def test_actors_read_back_as_written(user, via) -> None:
    """Names hold neither ':' nor '|' (accounts.USERNAME_RE); a rule's write says which rule
    wrote it at which chain depth after the '|'."""
    for actor in (
        Actor(user),
        Actor(user, kind="system"),
        Actor(user, via=via),
        Actor(user, kind="system", via=via),
    ):
        assert parse_actor(str(actor)) == actor


def test_feed_consumer_module_is_importable_by_the_server() -> None:
    env = dict(os.environ, TANDEM_TEST_FEED_LOG="/dev/null")
    subprocess.run(
        [sys.executable, "-c", "import tests.feed_consumer as m; m.FileConsumer()"],
        cwd=ROOT,
        env=env,
        check=True,
    )


# -- at-least-once, in order, whatever fails when -----------------------------------------

steps = st.lists(
    st.tuples(
        st.integers(0, 6),  # rows appended
        st.integers(0, 2),  # handler calls that raise next
        st.sampled_from(["run", "restart", "stop"]),  # then: go on, restart, or stop abruptly
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=15, deadline=None)
@given(steps)
def test_every_row_is_delivered_at_least_once_in_order_across_failures_and_restarts(
    tmp_path_factory, plan
) -> None:
    db = tmp_path_factory.mktemp("feedprop") / "p.db"

    async def scenario() -> tuple[list[int], list[int]]:
        store = SQLiteStore(db)
        seen: list[int] = []
        raise_next = 0

        async def handler(events) -> None:
            nonlocal raise_next
            await asyncio.sleep(0)  # a point where a stop can cancel it
            if raise_next:
                raise_next -= 1
                raise RuntimeError("planned failure")
            seen.extend(e.feed_id for e in events)

        def new_feed() -> ChangeFeed:
            feed = ChangeFeed(db, poll_seconds=0.02, retry_first_seconds=0.01)
            feed.subscribe("c", handler, batch=3)
            return feed

        feed = new_feed()
        await feed.start()
        try:
            for rows, failures, then in plan:
                raise_next += failures
                if rows:
                    await append(store, "p/a", rows)
                    feed.wake()
                await asyncio.sleep(0.03)
                if then != "run":
                    # "stop": no draining, the handler may be cut off mid-batch (a crash)
                    await feed.close(drain_seconds=0 if then == "stop" else 5)
                    feed = new_feed()
                    await feed.start()
            raise_next = 0
            newest = feed._newest(sqlite3.connect(str(db)))
            await wait_for(lambda: feed.position("c") >= newest, what="the consumer to catch up")
        finally:
            await feed.close()
            await store.close()
        stored = [r[0] for r in feed_rows(db)]
        return seen, stored

    seen, stored = asyncio.run(scenario())
    assert list(dict.fromkeys(seen)) == stored


# -- reading: one read and one parse shared by the consumers, kinds filtered ---------------

TYPING = (DomainEvent("task_field_changed", "t", "description", detail={"unvalued": True}),)
KINDS = ["task_created", "mention", "task_field_changed"]


def _record(i: int, kind: str, shared: bool) -> UpdateRecord:
    """An update whose row has one event of ``kind`` (""; none, as a revert's row)."""
    if not kind:
        return UpdateRecord(f"r{i}".encode(), "alice")
    if shared and kind == "task_field_changed":  # a keystroke: the gate's very same tuple
        events: tuple[DomainEvent, ...] = TYPING
    else:
        events = (DomainEvent(kind, entity=f"t{i % 3}", after={"n": i % 2}),)
    changes = (Change(("tasks", f"t{i % 3}", "description"), "edit"),)
    return UpdateRecord(f"u{i}".encode(), "alice" if i % 4 else "system:team", changes, events)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("append"),
                st.lists(st.sampled_from(["", *KINDS]), min_size=1, max_size=12),
                st.booleans(),
            ),
            st.tuples(st.just("read"), st.integers(0, 2), st.integers(1, 9)),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_consumers_reading_the_same_rows_each_get_exactly_what_the_file_holds(
    tmp_path_factory, steps
) -> None:
    """Three consumers at their own positions (one of them interested in two kinds only)
    read in random turns while rows are appended; the reader keeps a window of the rows
    read last and reads only what lies beyond it. Each read must return exactly the rows
    a plain query of the file returns after that consumer's position (up to its batch),
    parsed as written, and the last id read; nothing skipped, nothing twice."""
    db = tmp_path_factory.mktemp("window") / "w.db"

    async def run() -> None:
        store = SQLiteStore(db, compact_threshold=10**6)
        feed = ChangeFeed(db)
        await feed.start()
        assert feed._reader is not None
        plain = sqlite3.connect(str(db))
        positions = [0, 0, 0]
        kinds = [None, None, frozenset({"task_created", "mention"})]
        written: dict[int, UpdateRecord] = {}
        try:
            n = 0
            for step in steps:
                if step[0] == "append":
                    records = [_record(n + i, k, step[2]) for i, k in enumerate(step[1])]
                    n += len(records)
                    last = await store.append("p/w", records)
                    for offset, record in enumerate(records):
                        written[last - len(records) + 1 + offset] = record
                    continue
                _, who, limit = step
                last_id, got = await feed._reader.run(
                    feed._read_changed, positions[who], limit, kinds[who]
                )
                rows = plain.execute(
                    "SELECT id, changes, events FROM change_feed WHERE id > ? ORDER BY id LIMIT ?",
                    (positions[who], limit),
                ).fetchall()
                assert last_id == (rows[-1][0] if rows else None)
                telling = [r for r in rows if r[1] != "[]" or r[2] != "[]"]
                if kinds[who] is not None:
                    telling = [
                        r for r in telling if any(e["kind"] in kinds[who] for e in json.loads(r[2]))
                    ]
                assert [c.feed_id for c in got] == [r[0] for r in telling]
                for c in got:
                    assert c.feed_id is not None
                    record = written[c.feed_id]
                    assert list(c.changes) == list(record.changes)
                    assert list(c.events) == list(record.events)
                    assert str(c.actor) == record.actor
                if last_id is not None:
                    positions[who] = last_id
        finally:
            plain.close()
            await feed.close(drain_seconds=0)
            await store.close()

    anyio.run(run)


def test_a_burst_of_equal_rows_is_parsed_once_and_written_as_one_json(tmp_path) -> None:
    """A typing burst: the store writes the same tuple of events as the same JSON, and the
    reader parses those texts once; the consumers get equal values (the same objects)."""

    async def run() -> None:
        store = SQLiteStore(tmp_path / "b.db", compact_threshold=10**6)
        feed = ChangeFeed(tmp_path / "b.db")
        await feed.start()
        assert feed._reader is not None
        try:
            changes = (Change(("tasks", "t", "description"), "edit"),)
            burst = [UpdateRecord(f"u{i}".encode(), "alice", changes, TYPING) for i in range(50)]
            other = UpdateRecord(b"x", "alice", changes, (DomainEvent("mention", "bob"),))
            await store.append("p/b", [*burst[:25], other, *burst[25:]])
            last, got = await feed._reader.run(feed._read_changed, 0, 500, None)
            assert last == 51 and len(got) == 51
            assert len({id(c.events) for c in got}) == 2  # one parse per distinct row text
            assert all(c.events == TYPING for i, c in enumerate(got) if i != 25)
            assert got[25].events == other.events
            _, mentions = await feed._reader.run(feed._read_changed, 0, 500, frozenset({"mention"}))
            assert [c.feed_id for c in mentions] == [26]
        finally:
            await feed.close(drain_seconds=0)
            await store.close()

    anyio.run(run)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(changes, max_size=3), st.lists(events, max_size=2), st.booleans()),
        max_size=12,
    )
)
def test_the_store_writes_every_record_as_feed_columns_would(records) -> None:
    """FeedColumns reuses the JSON of the last shapes it wrote only for the very same
    events tuple with equal changes; whatever the sequence, each record's columns are
    those feed_columns gives it alone."""
    from sync_server.storage.sqlite_store import FeedColumns

    columns = FeedColumns()
    previous: tuple[DomainEvent, ...] = ()
    for cs, es, reuse in records:
        events_tuple = previous if reuse else tuple(es)
        record = UpdateRecord(b"", "alice", changes=tuple(cs), events=events_tuple)
        assert columns(record) == feed_columns(record)
        previous = events_tuple


@given(
    st.text(max_size=20),
    st.sampled_from([Actor("alice"), Actor("team", kind="system"), Actor("bob", via="x")]),
    st.lists(st.sampled_from([Change(("tasks", "t1"), "add"), Change(("columns",), "edit")])),
    st.integers(1, 2**40),
    st.integers(0, 2**40),
)
def test_a_change_read_back_from_the_feed_is_the_value_the_constructor_makes(
    doc_name: str, actor: Actor, changes: list[Change], feed_id: int, seq: int
) -> None:
    """``DocumentChanged.stored`` (the feed reader's fast path) makes an equal and equally
    frozen value."""
    events = (DomainEvent("task_created", "t1", None, None, {"title": "x"}),)
    fast = DocumentChanged.stored(doc_name, actor, tuple(changes), events, feed_id, seq)
    made = DocumentChanged(doc_name, actor, b"", tuple(changes), None, events, feed_id, seq)
    assert fast == made and repr(fast) == repr(made)
    assert fast.update == b"" and fast.doc is None and fast.seq == seq
    with pytest.raises(FrozenInstanceError):
        fast.seq = 1  # type: ignore[misc]
