"""Rooms: CLI writes reach live clients, idle rooms unload and compact, presence, observers."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from hypercorn.asyncio import serve
from pycrdt import Map

from doc_model import TaskCreate, create_task
from sync_server.core.protocol import AwarenessEntry, encode_awareness, encode_awareness_update
from sync_server.interfaces import DocumentChanged
from sync_server.shell.app import create_app
from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
from sync_server.shell.settings import Settings

from .conftest import KEY_WRITER, InProcessServer, free_port, start_server, tandem
from .raw_client import RawClient

pytestmark = pytest.mark.anyio


async def test_a_cli_write_while_the_server_runs_reaches_connected_clients(server) -> None:
    async with RawClient.connect(server, "p/live", "alice") as client:
        await client.sync()
        await anyio.to_thread.run_sync(
            lambda: tandem(
                "user",
                "create",
                "zed",
                "--project",
                "live",
                "--role",
                "viewer",
                db=server.db,
                stdin="",
            )
        )
        with anyio.fail_after(5):
            while client.doc.get("members", type=Map).to_py() != {"zed": "viewer"}:
                await client.recv()


async def test_an_idle_room_unloads_and_leaves_a_compacted_snapshot(server) -> None:
    async with RawClient.connect(server, "p/idle", "alice") as client:
        await client.sync()
        for i in range(5):
            n = await client.send_update(
                client.edit(
                    lambda d, i=i: create_task(d, TaskCreate(title=f"t{i}"), created_by="a")
                )
            )
            assert (await client.outcome(n))["type"] == "ack"
    with anyio.fail_after(10):
        while True:
            health = httpx.get(server.http_url + "/healthz").json()
            if health["rooms"] == 0:
                break
            await anyio.sleep(0.2)
    await anyio.sleep(0.5)
    db = sqlite3.connect(server.db)
    snapshot, state = db.execute(
        "SELECT snapshot, snapshot_state FROM documents WHERE name = 'p/idle'"
    ).fetchone()
    assert snapshot and state
    assert db.execute("SELECT count(*) FROM updates WHERE doc = 'p/idle'").fetchone()[0] == 0
    async with RawClient.connect(
        server, "p/idle", "bob"
    ) as again:  # served from the snapshot bytes
        await again.sync()
        titles = {t["title"] for t in again.doc.get("tasks", type=Map).to_py().values()}
    assert titles == {f"t{i}" for i in range(5)}


def presence(client_id: int, clock: int, state) -> bytes:
    return encode_awareness(encode_awareness_update([AwarenessEntry(client_id, clock, state)]))


async def presence_seen(client: RawClient, match, timeout: float = 5) -> AwarenessEntry:
    """The first presence entry ``client`` was told for which ``match(entry)``, waiting."""
    with anyio.fail_after(timeout):
        while True:
            for message in client.awareness:
                for entry in message.entries:
                    if match(entry):
                        return entry
            await client.recv()


async def presence_of(client: RawClient, client_id: int):
    """The first state of ``client_id`` that ``client`` is told, waiting for it."""
    return (await presence_seen(client, lambda e: e.client_id == client_id)).state


def removal_of(client_id: int):
    return lambda e: e.client_id == client_id and e.state is None


async def alice_shows(alice: RawClient, watcher: RawClient) -> None:
    """alice, synced, shows as client 7 (clock 1, viewing t1), and ``watcher`` sees it."""
    await alice.sync()
    await alice.send(presence(7, 1, {"viewing": "t1"}))
    await presence_of(watcher, 7)


async def alice_comes_and_goes(server, doc: str, watcher: RawClient) -> AwarenessEntry:
    """alice connects, shows as client 7 (clock 1) and leaves; the removal ``watcher`` saw."""
    async with RawClient.connect(server, doc, "alice") as alice:
        await alice_shows(alice, watcher)
    return await presence_seen(watcher, removal_of(7))


async def test_presence_is_relayed_and_nobody_can_speak_for_another_client(server) -> None:
    async with (
        RawClient.connect(server, "p/presence", "alice") as alice,
        RawClient.connect(server, "p/presence", "bob") as bob,
    ):
        await alice.sync()
        await bob.sync()
        # alice claims to be Bob: the server stamps her real identity, keeps the rest
        await alice.send(
            presence(42, 1, {"user": {"name": "Bob", "color": "#f00"}, "viewing": "t1"})
        )
        with anyio.fail_after(5):
            while not bob.awareness:
                await bob.recv()
        assert bob.awareness[-1].entries[0].state == {
            "user": {"id": "alice", "name": "alice", "color": "#f00"},
            "viewing": "t1",
        }
        async with RawClient.connect(server, "p/presence", "mallory") as mallory:
            await mallory.sync()
            await mallory.send(presence(42, 9, {"user": "mallory"}))  # alice's client id
            await bob.drain(0.5)
            assert all(e.state["user"]["id"] != "mallory" for m in bob.awareness for e in m.entries)
        bob.awareness.clear()
    # alice left: whoever is still there is told her client is gone
    async with RawClient.connect(server, "p/presence", "carol") as carol:
        await carol.sync()
        await carol.drain(0.3)
        assert not any(e.client_id == 42 and e.state for m in carol.awareness for e in m.entries)


async def test_presence_that_no_peer_would_apply_is_not_relayed(server) -> None:
    """y-protocols' Awareness starts every client at clock 0 and its peers ignore a clock
    they already know (0 for a client they have never heard of), so the server relays a
    state only when it is news: a newer clock, or a removal at the same clock."""
    async with (
        RawClient.connect(server, "p/news", "alice") as alice,
        RawClient.connect(server, "p/news", "bob") as bob,
    ):
        await alice.sync()
        await bob.sync()
        await alice.send(presence(7, 0, {}))  # what every stock client announces on connect
        await bob.drain(0.3)
        assert bob.awareness == []
        await alice.send(presence(7, 1, {"viewing": "t1"}))
        await alice.send(presence(7, 1, {"viewing": "t1"}))  # sent again: not news
        await presence_of(bob, 7)
        await bob.drain(0.3)
        relayed = [(e.client_id, e.clock) for m in bob.awareness for e in m.entries]
        assert relayed == [(7, 1)]
        async with RawClient.connect(server, "p/news", "carol") as carol:
            await carol.sync()  # a newcomer is told the states that are news to it
            await carol.drain(0.3)
            told = [(e.client_id, e.clock) for m in carol.awareness for e in m.entries]
            assert told == [(7, 1)]
        bob.awareness.clear()
        await alice.send(presence(7, 1, None))  # a removal at the same clock is news
        await presence_seen(bob, removal_of(7))
        await bob.drain(0.2)
        assert [(e.client_id, e.state) for m in bob.awareness for e in m.entries] == [(7, None)]


async def test_a_departed_clients_presence_echoed_back_late_is_no_ghost(server) -> None:
    """Stock y-websocket clients send back every state they apply. An echo of alice's state
    that arrives after alice left must not bring her back as bob's (under bob's name), nor
    keep alice from her own presence when she returns with a newer clock."""
    async with RawClient.connect(server, "p/ghost", "bob") as bob:
        await bob.sync()
        await alice_comes_and_goes(server, "p/ghost", bob)
        # bob's echo of alice's old state, late, beside his own (not the frame he was sent)
        await bob.send(
            encode_awareness(
                encode_awareness_update(
                    [
                        AwarenessEntry(8, 1, {"viewing": None}),
                        AwarenessEntry(7, 1, {"viewing": "t1"}),
                    ]
                )
            )
        )
        await presence_of(bob, 8)  # the room took bob's own state from that message
        await bob.drain(0.2)
        async with RawClient.connect(server, "p/ghost", "carol") as carol:
            await carol.sync()
            await carol.drain(0.3)
            told = {e.client_id: e.state for m in carol.awareness for e in m.entries}
            assert 7 not in told and told[8]["user"]["id"] == "bob"
            async with RawClient.connect(server, "p/ghost", "alice") as again:
                await again.sync()
                await again.send(presence(7, 3, {"viewing": "t2"}))  # newer than the removal
                state = await presence_of(carol, 7)
                assert state["user"]["id"] == "alice" and state["viewing"] == "t2"


async def test_a_client_that_reconnects_is_told_its_removal_and_seen_again_past_it(
    server,
) -> None:
    """A reconnecting client announces the state it left with, at a clock its peers saw
    removed; y-protocols peers would ignore it until the client renews it, 15-30 s later.
    The room answers the client (and nobody else) with that removal; a y-protocols client
    then announces itself one clock past it (its own state, its own clock), and that is
    what the peers are told."""
    async with RawClient.connect(server, "p/back", "bob") as bob:
        await bob.sync()
        assert (await alice_comes_and_goes(server, "p/back", bob)).clock == 2
        bob.awareness.clear()
        async with RawClient.connect(server, "p/back", "alice") as again:
            await again.sync()
            again.awareness.clear()
            await again.send(presence(7, 1, {"viewing": "t1"}))  # what y-websocket resends
            told = await presence_seen(again, lambda e: e.client_id == 7)
            assert (told.clock, told.state) == (2, None)  # its removal, to itself
            await bob.drain(0.3)
            assert bob.awareness == []  # the stale announcement went nowhere
            await again.send(presence(7, 3, {"viewing": "t1"}))  # y-protocols' answer
            back = await presence_seen(bob, lambda e: e.client_id == 7)
            assert back.clock == 3 and back.state["viewing"] == "t1"
            assert back.state["user"]["id"] == "alice"


async def test_a_client_that_moves_before_it_hears_its_removal_is_seen_where_it_moved(
    server,
) -> None:
    """The move is made at the removal's own clock, which no peer would apply; the answer
    to the returning client makes it re-announce that newest state past the removal. No
    relay ever carries the older state under a clock the client did not choose."""
    async with RawClient.connect(server, "p/move", "bob") as bob:
        await bob.sync()
        await alice_comes_and_goes(server, "p/move", bob)
        bob.awareness.clear()
        async with RawClient.connect(server, "p/move", "alice") as again:
            await again.sync()
            again.awareness.clear()
            await again.send(presence(7, 1, {"viewing": "t1"}))
            await again.send(presence(7, 2, {"viewing": "t3"}))  # before any answer
            await presence_seen(again, lambda e: e.client_id == 7 and e.state is None)
            await again.send(presence(7, 3, {"viewing": "t3"}))  # y-protocols: clock 2 + 1
            moved = await presence_seen(bob, lambda e: e.client_id == 7)
            assert (moved.clock, moved.state["viewing"]) == (3, "t3")
            await again.drain(0.3)
            relayed = [(e.clock, e.state) for m in again.awareness for e in m.entries]
            assert all(state is None or state["viewing"] == "t3" for _, state in relayed)


async def test_a_client_back_on_a_new_connection_before_its_old_one_is_seen_gone_takes_its_presence_over(
    server,
) -> None:
    """A phone that changes network reconnects while its old socket still looks open to the
    server (no FIN reaches it). The same user's new connection takes its client id's
    presence over at once: its moves are relayed, and the old socket, when it finally goes,
    takes nothing with it. Somebody else still cannot claim that client id."""
    async with (
        RawClient.connect(server, "p/switch", "bob") as bob,
        RawClient.connect(server, "p/switch", "alice") as old,
    ):
        await bob.sync()
        await alice_shows(old, bob)
        bob.awareness.clear()
        async with RawClient.connect(server, "p/switch", "alice") as new:
            await new.sync()
            await new.send(presence(7, 1, {"viewing": "t1"}))  # what y-websocket resends
            await new.send(presence(7, 2, {"viewing": "t3"}))
            moved = await presence_seen(bob, lambda e: e.client_id == 7)
            assert (moved.clock, moved.state["viewing"]) == (2, "t3")
            async with RawClient.connect(server, "p/switch", "mallory") as mallory:
                await mallory.sync()
                await mallory.send(presence(7, 9, {"viewing": "t9"}))
                await old.send(presence(7, 3, {"viewing": "t1"}))  # no longer its own
                await bob.drain(0.4)
                assert [e.state["viewing"] for m in bob.awareness for e in m.entries] == ["t3"]
            bob.awareness.clear()
            await old.ws.close()  # the old socket finally goes
            await bob.drain(0.4)
            assert not any(e.client_id == 7 for m in bob.awareness for e in m.entries)
            async with RawClient.connect(server, "p/switch", "carol") as carol:
                await carol.sync()
                await carol.drain(0.3)
                told = {e.client_id: e.state for m in carol.awareness for e in m.entries}
                assert told[7]["viewing"] == "t3"


async def test_the_same_users_other_tab_echoing_a_state_does_not_take_it_over(server) -> None:
    """Stock clients send back every state they hear: alice's second tab echoes her first
    tab's state. An echo is not news, so the first tab keeps its presence and its moves."""
    async with (
        RawClient.connect(server, "p/tabs", "bob") as bob,
        RawClient.connect(server, "p/tabs", "alice") as first,
    ):
        await bob.sync()
        await alice_shows(first, bob)
        async with RawClient.connect(server, "p/tabs", "alice") as second:
            await second.sync()
            await second.send(presence(8, 1, {"viewing": "t2"}))
            await presence_of(bob, 8)
            bob.awareness.clear()
            await second.send(presence(7, 1, {"viewing": "t1"}))  # the echo
            await bob.drain(0.2)
            await first.send(presence(7, 2, {"viewing": "t3"}))
            moved = await presence_seen(bob, lambda e: e.client_id == 7)
            assert (moved.clock, moved.state["viewing"]) == (2, "t3")


async def test_only_the_departed_clients_own_user_is_told_its_removal(server) -> None:
    """Somebody else sending alice's old state (a late echo) is stale, and answered with
    nothing: the removal goes only to a returning connection of alice's own user."""
    async with RawClient.connect(server, "p/echo", "bob") as bob:
        await bob.sync()
        await alice_comes_and_goes(server, "p/echo", bob)
        async with RawClient.connect(server, "p/echo", "carol") as carol:
            await carol.sync()
            await carol.drain(0.3)
            carol.awareness.clear()
            await carol.send(presence(7, 1, {"viewing": "t1"}))
            await carol.drain(0.3)
            assert carol.awareness == []


@dataclass
class Recorder:
    seen: list[DocumentChanged] = field(default_factory=list)

    async def documents_changed(self, events) -> None:
        # people's changes: not the server's task key that follows a new task
        self.seen.extend(e for e in events if str(e.actor) != KEY_WRITER)


async def test_observers_see_accepted_changes_with_actor_and_paths_but_never_rejected_ones(
    tmp_path,
) -> None:
    settings = Settings(db=str(tmp_path / "obs.db"), port=free_port())
    recorder = Recorder()
    refuse_permessage_deflate()
    app = create_app(settings, observers=[recorder])
    stop = anyio.Event()
    srv = InProcessServer(tmp_path / "obs.db", settings.port)
    await anyio.to_thread.run_sync(srv.token, "alice")
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
        async with RawClient.connect(srv, "p/obs", "alice") as client:
            await client.sync()
            good = client.edit(
                lambda d: create_task(d, TaskCreate(title="seen"), created_by="alice")
            )
            assert (await client.outcome(await client.send_update(good)))["type"] == "ack"
            bad = client.edit(lambda d: d.get("tasks", type=Map).__setitem__("x", "not a task"))
            assert (await client.outcome(await client.send_update(bad)))["type"] == "rejected"
            with anyio.fail_after(5):
                while not recorder.seen:
                    await anyio.sleep(0.02)
            await anyio.sleep(0.2)
        stop.set()
    assert len(recorder.seen) == 1
    event = recorder.seen[0]
    assert event.doc_name == "p/obs"
    assert str(event.actor) == "alice"
    assert [c.root for c in event.changes] == ["tasks"]
    assert event.changes[0].action == "add"


async def test_an_older_document_is_migrated_when_its_room_decodes_it(server) -> None:
    from doc_model import SCHEMA_VERSION, schema_version

    async with RawClient.connect(server, "p/old", "alice") as client:
        await client.sync()

        def old_project(doc):
            from doc_model import create_project_meta

            create_project_meta(doc, "Old")
            del doc.get("meta", type=Map)["schema_version"]  # written before versioning

        n = await client.send_update(client.edit(old_project))
        assert (await client.outcome(n))["type"] == "ack"
    server.restart()
    async with RawClient.connect(server, "p/old", "bob") as bob:
        await bob.sync()
        update = bob.edit(lambda d: create_task(d, TaskCreate(title="x"), created_by="bob"))
        await bob.send_update(update)  # a write makes the room decode, and so migrate
        with anyio.fail_after(5):
            while schema_version(bob.doc) < SCHEMA_VERSION:
                await bob.recv()
    assert "migrated from schema" in server.log()


async def test_presence_is_rate_limited_but_the_last_state_always_arrives(server) -> None:
    async with (
        RawClient.connect(server, "p/busy", "alice") as alice,
        RawClient.connect(server, "p/busy", "bob") as bob,
    ):
        await alice.sync()
        await bob.sync()
        for i in range(200):  # a cursor moving as fast as the client can send
            await alice.send(presence(7, i + 1, {"cursor": i}))
        with anyio.fail_after(10):
            while not any(
                e.state and e.state.get("cursor") == 199 for m in bob.awareness for e in m.entries
            ):
                await bob.recv()
        relayed = len(bob.awareness)
    assert relayed < 100, f"{relayed} presence messages relayed for 200 sent in a burst"


def test_presence_interval_grows_with_the_room_to_bound_relayed_frames() -> None:
    from doc_model import parse_doc_name
    from sync_server.core.room import Room, RoomSettings

    settings = RoomSettings(presence_coalesce_seconds=0.02, presence_frames_per_second=10_000)
    room = Room(parse_doc_name("p/big"), store=None, settings=settings)  # type: ignore[arg-type]
    for n, expected in [(1, 0.02), (200, 0.02), (500, 0.05), (1000, 0.1)]:
        room.connections = dict.fromkeys(range(n))  # type: ignore[assignment]  # stand-ins: only counted
        interval = room.presence_interval()
        assert interval == pytest.approx(expected)
        # what relaying one message per interval to every connection costs, per second
        assert n / interval <= settings.presence_frames_per_second + 1e-6


async def test_a_flooding_client_waits_in_its_socket_while_every_commit_stays_small(
    tmp_path,
) -> None:
    """Flow control: the room gates at most max_unflushed_updates before storing them.

    A client that sends 400 transactions in one burst gets all 400 acked and
    stored, in commits of at most 16 plus one per other connection (the rows of
    one commit share a timestamp),
    while a second client's edit sent in the middle of the burst is stored too.
    Without the bound the room gated the whole burst as it arrived and stored
    it in a few big batches that every other client's edits waited behind.
    """
    srv = start_server(
        tmp_path, TANDEM_MAX_UNFLUSHED_UPDATES="16", TANDEM_COMPACT_THRESHOLD="1000000"
    )
    try:
        async with (
            RawClient.connect(srv, "p/flood", "alice") as flood,
            RawClient.connect(srv, "p/flood", "bob") as other,
        ):
            await flood.sync()
            await other.sync()
            n = await flood.send_update(
                flood.edit(lambda d: create_task(d, TaskCreate(title="t"), created_by="alice"))
            )
            assert (await flood.outcome(n))["type"] == "ack"
            title = next(iter(flood.doc.get("tasks", type=Map).values()))["title"]
            numbers = []
            for i in range(400):
                numbers.append(await flood.send_update(flood.edit(lambda d: title.insert(0, "x"))))
                if i == 200:
                    mine = await other.send_update(
                        other.edit(
                            lambda d: create_task(d, TaskCreate(title="mine"), created_by="bob")
                        )
                    )
            with anyio.fail_after(30):
                outcomes = [await flood.outcome(k, timeout=30) for k in numbers]
            assert {o["type"] for o in outcomes} == {"ack"}
            assert (await other.outcome(mine, timeout=30))["type"] == "ack"
    finally:
        srv.stop()
    db = sqlite3.connect(srv.db)
    sizes = [
        size
        for (size,) in db.execute(
            "SELECT count(*) FROM updates WHERE doc = 'p/flood' GROUP BY created_at"
        )
    ]
    assert sum(sizes) >= 402  # the task, 400 keystrokes, bob's task (and any migration)
    assert max(sizes) <= 16 + 1, sorted(sizes)[-5:]  # bob may add one while alice waits


async def test_a_full_batch_is_stored_and_sent_without_waiting_out_the_coalescing_window(
    tmp_path,
) -> None:
    """With a coalescing window of a minute, the 16th gated update (the flow-control bound)
    makes the room store and send the batch at once: every sender gets its acks and every
    other client the edits, long before the window would have ended. A client's empty sync
    step 2 changes nothing and holds up nobody's sync either."""
    srv = start_server(tmp_path, TANDEM_COALESCE_MS="60000", TANDEM_MAX_UNFLUSHED_UPDATES="16")
    try:
        async with (
            RawClient.connect(srv, "p/full", "alice") as alice,
            RawClient.connect(srv, "p/full", "bob") as bob,
        ):
            with anyio.fail_after(10):
                await alice.sync()
                await alice.drain(0.2)  # its empty step 2 reaches the room
                await bob.sync()  # does not wait a minute for alice's no-op
            numbers = [
                await alice.send_update(
                    alice.edit(
                        lambda d, i=i: create_task(d, TaskCreate(title=f"t{i}"), created_by="alice")
                    )
                )
                for i in range(16)
            ]
            with anyio.fail_after(10):
                outcomes = [await alice.outcome(k, timeout=10) for k in numbers]
                while len(bob.doc.get("tasks", type=Map)) < 16:
                    await bob.recv(timeout=10)
            assert {o["type"] for o in outcomes} == {"ack"}
            titles = {t["title"] for t in bob.doc.get("tasks", type=Map).to_py().values()}
            assert titles == {f"t{i}" for i in range(16)}
    finally:
        srv.stop()
