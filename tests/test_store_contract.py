"""The DocumentStore contract (sync_server/interfaces.py), run against every implementation.

Each test takes ``make_store``: SQLiteStore on a real file, the same store on a real
PostgreSQL server (a fresh database per store; tests/postgres_server.py), and MemoryStore.
A new backend joins by adding one entry to ``STORES``. Everything here is what
callers rely on: rooms (load, append, catch up with updates_since and last_seq, compact
on unload), the REST API (exists, delete_document on project deletion) and listings
(document_names). The last test serves a real app on MemoryStore over a real WebSocket.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from hypercorn.asyncio import serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from doc_model import TaskCreate, create_task, parse_doc_name
from sync_server.core import state_vectors
from sync_server.interfaces import DocumentStore, StoredUpdate, UpdateRecord
from sync_server.shell.app import create_app
from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
from sync_server.shell.settings import Settings
from sync_server.storage.memory_store import MemoryStore
from sync_server.storage.sqlite_store import SQLiteStore, build_document
from tests.conftest import InProcessServer, free_port
from tests.postgres_server import PostgresServer
from tests.raw_client import RawClient

DOC = "p/contract"
OTHER = "p/other"

StoreFactory = Callable[[], AbstractAsyncContextManager[DocumentStore]]
_files = itertools.count()


def _sqlite(tmp: Path) -> DocumentStore:
    # automatic compaction off: the contract calls compact itself (past the threshold the
    # store folds on its own, in the background; test_storage covers that)
    return SQLiteStore(tmp / f"contract-{next(_files)}.db", compact_threshold=10**9)


def _postgresql(tmp: Path) -> DocumentStore:
    assert _server is not None
    return SQLiteStore(_server.create_database(), compact_threshold=10**9)


def _memory(tmp: Path) -> DocumentStore:
    return MemoryStore(compact_threshold=None)


STORES: dict[str, Callable[[Path], DocumentStore]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "memory": _memory,
}
_server: PostgresServer | None = None


def factory(kind: str, tmp: Path, request: pytest.FixtureRequest) -> StoreFactory:
    if kind == "postgresql":  # skipped, saying why, where PostgreSQL is not installed
        global _server
        _server = request.getfixturevalue("postgres_server")

    @asynccontextmanager
    async def open_store() -> AsyncIterator[DocumentStore]:
        store = STORES[kind](tmp)
        try:
            yield store
        finally:
            await store.close()

    return open_store


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return factory(request.param, tmp_path, request)


def edits(n: int, client_id: int = 1, seed: int = 0) -> tuple[list[bytes], Doc]:
    """n small updates of a project's tasks from one client, and the doc that made them."""
    doc: Doc = Doc(client_id=client_id)
    tasks = doc.get("tasks", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(n):
        key = f"t{(i * 7 + seed) % 13}"
        if key in tasks and i % 3 == 0:
            del tasks[key]
        elif key in tasks and i % 3 == 1:
            tasks[key]["title"] += f" {i}"
        else:
            tasks[key] = Map({"title": Text(f"v{i}"), "status": "todo"})
    return updates, doc


def records(updates: list[bytes], actor: str = "alice") -> list[UpdateRecord]:
    return [UpdateRecord(u, actor) for u in updates]


def same_document(a: Doc, b: Doc) -> None:
    assert state_vectors.decode(a.get_state()) == state_vectors.decode(b.get_state())
    assert a.get("tasks", type=Map).to_py() == b.get("tasks", type=Map).to_py()


async def rebuilt(store: DocumentStore, name: str = DOC) -> Doc:
    return build_document(await store.load(name), parse_doc_name(name))


def applied(updates: list[StoredUpdate] | list[bytes], doc: Doc | None = None) -> Doc:
    doc = doc if doc is not None else Doc()
    with doc.transaction():
        for u in updates:
            doc.apply_update(u.data if isinstance(u, StoredUpdate) else u)
    return doc


pytestmark = pytest.mark.anyio


async def test_a_new_document_is_empty(make_store: StoreFactory) -> None:
    async with make_store() as store:
        stored = await store.load(DOC)
        assert (stored.snapshot, stored.updates, stored.last_seq) == (None, [], 0)
        assert await store.last_seq(DOC) == 0
        assert await store.updates_since(DOC, 0) == []
        assert not await store.exists(DOC)
        assert await store.compact(DOC) is False
        assert await store.document_names() == []
        assert await store.append(DOC, []) == 0  # nothing to store: nothing is created
        assert not await store.exists(DOC)


async def test_append_returns_increasing_seqs_and_the_log_keeps_them_in_order(
    make_store: StoreFactory,
) -> None:
    updates, _ = edits(30)
    async with make_store() as store:
        returned = []
        for batch in (updates[:1], updates[1:11], updates[11:12], updates[12:]):
            before = await store.last_seq(DOC)
            last = await store.append(DOC, records(batch))
            assert last > before
            assert await store.last_seq(DOC) == last
            since = await store.updates_since(DOC, before)
            assert [u.data for u in since] == batch  # exactly this batch, in order
            assert since[-1].seq == last
            returned.append(last)
        assert returned == sorted(set(returned))
        logged = await store.updates_since(DOC, 0)
        assert [u.data for u in logged] == updates
        seqs = [u.seq for u in logged]
        assert seqs == sorted(set(seqs))  # distinct and increasing
        assert await store.append(DOC, []) == returned[-1]
        assert await store.exists(DOC)


async def test_load_rebuilds_the_same_document(make_store: StoreFactory) -> None:
    updates, source = edits(40)
    async with make_store() as store:
        await store.append(DOC, records(updates))
        stored = await store.load(DOC)
        assert stored.last_seq == await store.last_seq(DOC)
        same_document(await rebuilt(store), source)
        same_document(applied(await store.updates_since(DOC, 0)), source)


async def test_compact_keeps_the_state_and_says_whether_it_folded(
    make_store: StoreFactory,
) -> None:
    updates, source = edits(50)
    async with make_store() as store:
        await store.append(DOC, records(updates[:30]))
        last = await store.last_seq(DOC)
        assert await store.compact(DOC) is True
        assert await store.compact(DOC) is False  # nothing left to fold
        stored = await store.load(DOC)
        assert stored.snapshot is not None and stored.updates == []
        assert stored.last_seq == last == await store.last_seq(DOC)
        if stored.snapshot_state is not None:  # optional; if kept, it is the snapshot's
            snapshot_doc = applied([stored.snapshot])
            assert state_vectors.decode(stored.snapshot_state) == state_vectors.decode(
                snapshot_doc.get_state()
            )
        # the log goes on after the snapshot
        more = await store.append(DOC, records(updates[30:]))
        assert more > last
        stored = await store.load(DOC)
        assert stored.snapshot is not None and len(stored.updates) == len(updates) - 30
        assert stored.last_seq == more
        same_document(await rebuilt(store), source)
        assert await store.compact(DOC) is True
        same_document(await rebuilt(store), source)


async def test_updates_since_a_folded_seq_starts_with_the_snapshot(
    make_store: StoreFactory,
) -> None:
    updates, source = edits(30)
    async with make_store() as store:
        first = await store.append(DOC, records(updates[:10]))
        reader = applied(await store.updates_since(DOC, 0))  # a room that read up to `first`
        await store.append(DOC, records(updates[10:20]))
        await store.compact(DOC)  # folds past what the reader has
        last = await store.append(DOC, records(updates[20:]))
        since = await store.updates_since(DOC, first)
        assert since[-1].seq == last
        assert [u.seq for u in since] == sorted({u.seq for u in since})
        same_document(applied(since, reader), source)
        # from the newest seq on there is nothing
        assert await store.updates_since(DOC, last) == []


async def test_documents_are_independent(make_store: StoreFactory) -> None:
    mine, mine_doc = edits(10, client_id=1)
    theirs, theirs_doc = edits(12, client_id=2, seed=5)
    async with make_store() as store:
        await store.append(DOC, records(mine[:5]))
        await store.append(OTHER, records(theirs))
        await store.append(DOC, records(mine[5:]))
        await store.compact(OTHER)
        same_document(await rebuilt(store, DOC), mine_doc)
        assert [u.data for u in await store.updates_since(DOC, 0)] == mine
        other = build_document(await store.load(OTHER), parse_doc_name(OTHER))
        assert other.get("tasks", type=Map).to_py() == theirs_doc.get("tasks", type=Map).to_py()


async def test_delete_document_forgets_it_and_never_reuses_its_seqs(
    make_store: StoreFactory,
) -> None:
    updates, _ = edits(20)
    async with make_store() as store:
        await store.append(DOC, records(updates[:10]))
        await store.compact(DOC)
        last = await store.append(DOC, records(updates[10:]))
        await store.append(OTHER, records(updates[:3]))
        await store.delete_document(DOC)
        stored = await store.load(DOC)
        assert (stored.snapshot, stored.updates, stored.last_seq) == (None, [], 0)
        assert await store.last_seq(DOC) == 0
        assert await store.updates_since(DOC, 0) == []
        assert not await store.exists(DOC)
        assert await store.compact(DOC) is False
        assert await store.document_names("p/") == [OTHER]  # the other one is untouched
        assert len(await store.updates_since(OTHER, 0)) == 3
        await store.delete_document(DOC)  # deleting what is not there is no error
        await store.delete_document("p/never")
        # a new document of the same name starts empty; its seqs continue past the old ones
        again = await store.append(DOC, records(updates[:1]))
        assert again > last
        assert [u.data for u in await store.updates_since(DOC, 0)] == updates[:1]


async def test_document_names_by_prefix(make_store: StoreFactory) -> None:
    update = edits(1)[0]
    names = ["p/a", "p/a/chat", "p/ab", "q/a", "a_b/x", "axb/x", "50%/x", "500/x"]
    async with make_store() as store:
        for name in names:
            await store.append(name, records(update))
        assert await store.document_names() == sorted(names)
        assert await store.document_names("p/") == ["p/a", "p/a/chat", "p/ab"]
        assert await store.document_names("p/a") == ["p/a", "p/a/chat", "p/ab"]
        assert await store.document_names("p/a/") == ["p/a/chat"]
        # LIKE's wildcards are plain characters in a prefix
        assert await store.document_names("a_b") == ["a_b/x"]
        assert await store.document_names("50%") == ["50%/x"]
        assert await store.document_names("nothing") == []


async def test_concurrent_appends_get_distinct_ordered_seqs(make_store: StoreFactory) -> None:
    writers = 6
    streams = [edits(12, client_id=w + 1, seed=w)[0] for w in range(writers)]
    async with make_store() as store:
        got: dict[int, bytes] = {}  # returned seq -> what that append stored

        async def write(stream: list[bytes]) -> None:
            for update in stream:  # each client's own updates in order, the clients interleaved
                got[await store.append(DOC, records([update]))] = update
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            for stream in streams:
                tg.start_soon(write, stream)
        assert len(got) == sum(map(len, streams))  # every append its own seq
        logged = await store.updates_since(DOC, 0)
        assert [u.seq for u in logged] == sorted(got)
        assert [u.data for u in logged] == [got[s] for s in sorted(got)]
        same_document(await rebuilt(store), applied([u for st_ in streams for u in st_]))


async def test_appends_during_a_compaction_are_kept(make_store: StoreFactory) -> None:
    updates, source = edits(120)
    async with make_store() as store:
        await store.append(DOC, records(updates[:80]))
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.compact, DOC)  # folds on another thread meanwhile
            for u in updates[80:]:
                await store.append(DOC, records([u]))
                await anyio.sleep(0)
        same_document(await rebuilt(store), source)
        assert [u.data for u in await store.updates_since(DOC, 0)][-1] == updates[-1]
        await store.compact(DOC)
        same_document(await rebuilt(store), source)


async def test_a_document_deleted_during_its_compaction_stays_deleted(
    make_store: StoreFactory,
) -> None:
    updates, _ = edits(120)
    async with make_store() as store:
        await store.append(DOC, records(updates))
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.compact, DOC)
            await anyio.sleep(0)
            await store.delete_document(DOC)
        assert not await store.exists(DOC)
        stored = await store.load(DOC)
        assert (stored.snapshot, stored.updates, stored.last_seq) == (None, [], 0)
        assert await store.document_names() == []


# -- random sequences ---------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 6)),  # client, count
        st.just(("compact", 0, 0)),
        st.just(("load", 0, 0)),
        st.tuples(st.just("since"), st.integers(0, 40), st.just(0)),  # a seq index
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.parametrize("kind", sorted(STORES))
@given(ops=OPS)
def test_any_append_compact_load_sequence_rebuilds_what_was_appended(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str, ops: list[tuple[str, int, int]]
) -> None:
    """Three clients' updates appended interleaved, compactions and reads at any point: the
    stored document always equals the one built by applying every appended update, and a
    reader that had the document at any earlier seq catches up with updates_since."""
    streams = [edits(60, client_id=c + 1, seed=3 * c)[0] for c in range(3)]

    async def run() -> None:
        taken = [0, 0, 0]
        appended: list[bytes] = []
        history: list[tuple[int, int]] = []  # (seq an append returned, updates stored so far)
        unfolded = 0
        async with factory(kind, tmp_path, request)() as store:
            for op, a, b in ops:
                if op == "append":
                    batch = streams[a][taken[a] : taken[a] + b]
                    taken[a] += len(batch)
                    seq = await store.append(DOC, records(batch))
                    if batch:
                        assert not history or seq > history[-1][0]
                        appended += batch
                        unfolded += len(batch)
                        history.append((seq, len(appended)))
                    else:
                        assert seq == (history[-1][0] if history else 0)
                elif op == "compact":
                    assert await store.compact(DOC) is (unfolded > 0)
                    unfolded = 0
                elif op == "since" and history:
                    start, count = history[a % len(history)]
                    since = await store.updates_since(DOC, start)
                    assert all(u.seq > start for u in since)
                    same_document(applied(since, applied(appended[:count])), applied(appended))
                stored = await store.load(DOC)
                assert stored.last_seq == (history[-1][0] if history else 0)
                assert len(stored.updates) == unfolded
                same_document(build_document(stored, parse_doc_name(DOC)), applied(appended))

    anyio.run(run)


# -- MemoryStore's own ----------------------------------------------------------------------


async def test_memory_store_compacts_past_its_threshold_in_the_background() -> None:
    updates, source = edits(200)
    store = MemoryStore(compact_threshold=50)
    for u in updates:
        await store.append(DOC, records([u]))
    await store.wait_for_compactions()
    stored = await store.load(DOC)
    assert stored.snapshot is not None and stored.snapshot_state is not None
    assert len(stored.updates) <= 50
    same_document(await rebuilt(store), source)
    await store.close()  # waits for compactions; the store refuses work afterwards
    with pytest.raises(RuntimeError, match="closed"):
        await store.load(DOC)


async def test_memory_store_refuses_an_update_that_is_not_bytes() -> None:
    store = MemoryStore()
    with pytest.raises(TypeError, match="must be bytes"):
        await store.append(DOC, [UpdateRecord("not bytes", "alice")])  # type: ignore[arg-type]
    assert not await store.exists(DOC)


# -- the app on the in-memory store -------------------------------------------------------


async def test_the_app_syncs_and_deletes_projects_on_the_memory_store(tmp_path: Path) -> None:
    """REST write, WebSocket sync and edit, unload (compaction), a cold load and the
    project's deletion, all on MemoryStore; nothing of the document reaches SQLite."""
    project = "5b0e7f3a-2c44-4d1e-9f60-8a1d2b3c4e5f"  # a chosen project id is a UUID
    name = f"p/{project}"
    settings = Settings(db=str(tmp_path / "accounts.db"), port=free_port(), room_idle_seconds=0.3)
    store = MemoryStore()
    refuse_permessage_deflate()
    app = create_app(settings, store=store)
    srv = InProcessServer(Path(settings.db), settings.port)
    token = await anyio.to_thread.run_sync(srv.token, "alice")
    base = f"http://127.0.0.1:{settings.port}"
    auth = {"Authorization": f"Bearer {token}"}
    stop = anyio.Event()
    async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=base) as http:
        tg.start_soon(lambda: serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait))
        with anyio.fail_after(10):
            while True:
                try:
                    if (await http.get("/healthz")).is_success:
                        break
                except httpx.HTTPError:
                    await anyio.sleep(0.05)
        r = await http.post("/api/v1/projects/", headers=auth, json={"id": project, "name": "M"})
        assert r.status_code == 201, r.text
        r = await http.post(
            f"/api/v1/projects/{project}/tasks/", headers=auth, json={"title": "by REST"}
        )
        assert r.status_code == 201, r.text
        async with RawClient.connect(srv, name, "alice", role=None) as client:
            await client.sync()
            titles = {str(t["title"]) for t in client.doc.get("tasks", type=Map).values()}
            assert titles == {"by REST"}
            update = client.edit(
                lambda d: create_task(d, TaskCreate(title="by socket"), created_by="alice")
            )
            assert (await client.outcome(await client.send_update(update)))["type"] == "ack"
        stored = build_document(await store.load(name), parse_doc_name(name))
        titles = {str(t["title"]) for t in stored.get("tasks", type=Map).values()}
        assert titles == {"by REST", "by socket"}
        with anyio.fail_after(10):  # the idle room unloads and compacts its document
            while (await store.load(name)).snapshot is None:
                await anyio.sleep(0.05)
        async with RawClient.connect(srv, name, "alice", role=None) as cold:
            await cold.sync()  # a room loaded again, from the snapshot
            titles = {str(t["title"]) for t in cold.doc.get("tasks", type=Map).values()}
            assert titles == {"by REST", "by socket"}
            r = await http.delete(f"/api/v1/projects/{project}/", headers=auth)
            assert r.status_code == 204, r.text
            assert (await cold.wait_closed()).code == 4404
        assert not await store.exists(name)
        assert await store.document_names(f"p/{project}") == []
        stop.set()
    with sqlite3.connect(settings.db) as db:
        (rows,) = db.execute("SELECT count(*) FROM updates WHERE doc LIKE 'p/%'").fetchone()
    assert rows == 0
