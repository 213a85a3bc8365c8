"""Bad input gets a clear close code and reason; the document and the other clients are untouched."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text

from doc_model import TaskCreate, create_task
from sync_server.core.protocol import (
    encode_awareness,
    encode_sync_step1,
    encode_update,
    varuint,
    varuint_at,
)

from .conftest import start_server, stored_doc
from .raw_client import RawClient

pytestmark = pytest.mark.anyio

DOC = "p/bad"


async def _observer_with_a_task(server):
    """A second, well-behaved client holding one task, to prove it is never disturbed."""
    ctx = RawClient.connect(server, DOC, "bob")
    bob = await ctx.__aenter__()
    await bob.sync()
    update = bob.edit(lambda d: create_task(d, TaskCreate(title="keep me"), created_by="bob"))
    n = await bob.send_update(update)
    assert (await bob.outcome(n))["type"] == "ack"
    return ctx, bob


async def _assert_undisturbed(server, ctx, bob) -> None:
    update = bob.edit(lambda d: create_task(d, TaskCreate(title="still here"), created_by="bob"))
    n = await bob.send_update(update)
    assert (await bob.outcome(n))["type"] == "ack", "the good client must keep working"
    assert bob.closed is None
    titles = {t["title"] for t in bob.doc.get("tasks", type=Map).to_py().values()}
    assert {"keep me", "still here"} <= titles
    await ctx.__aexit__(None, None, None)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00\x02\xff", "truncated varint"),  # sync update whose length varint never ends
        (b"\x00\x02\x05ab", "runs past the end"),
        (b"\x05", "unknown message type 5"),
        (b"\x00\x00" + b"\xff" * 12, "wider than 53 bits"),
        (encode_update(b"\xff\xff\xff\xff"), "not a Yjs update"),
        (encode_update(b"hello world"), "not a Yjs update"),
        (encode_sync_step1(b"\x05\x01"), "state vector"),
        # its own presence state must be JSON (others' states it echoes back are ignored unread)
        (encode_awareness(varuint(1) + varuint(4242) + varuint(3) + b"\x04{no!"), "not JSON"),
    ],
)
async def test_malformed_frames_close_with_4400_and_a_reason(server, frame, reason) -> None:
    ctx, bob = await _observer_with_a_task(server)
    async with RawClient.connect(server, DOC, "mallory") as mallory:
        await mallory.sync()
        await mallory.send(frame)
        closed = await mallory.wait_closed()
    assert closed.code == 4400
    assert reason in closed.reason
    await _assert_undisturbed(server, ctx, bob)
    assert "closing on bad message" in server.log()


async def test_text_frames_close_with_4400(server) -> None:
    async with RawClient.connect(server, DOC) as client:
        await client.ws.send_text("hello")
        closed = await client.wait_closed()
    assert closed.code == 4400
    assert "binary" in closed.reason


async def test_oversized_message_closes_with_1009_and_says_the_limit(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_MAX_MESSAGE_BYTES="4096")
    try:
        ctx, bob = await _observer_with_a_task(server)
        async with RawClient.connect(server, DOC, "mallory") as mallory:
            await mallory.sync()
            big = mallory.edit(
                lambda d: create_task(
                    d, TaskCreate(title="big", description="x" * 10_000), created_by="m"
                )
            )
            await mallory.send_update(big)
            closed = await mallory.wait_closed()
        assert closed.code == 1009
        assert "exceeds the limit of 4096" in closed.reason
        await _assert_undisturbed(server, ctx, bob)
    finally:
        server.stop()
    titles = {
        t["title"] for t in stored_doc(server.db, DOC).get("tasks", type=Map).to_py().values()
    }
    assert "big" not in titles
    assert "keep me" in titles


async def test_schema_break_is_rejected_with_path_and_reverted_everywhere(server) -> None:
    ctx, bob = await _observer_with_a_task(server)
    async with RawClient.connect(server, DOC, "mallory") as mallory:
        await mallory.sync()

        def bad(doc: Doc) -> None:
            doc.get("tasks", type=Map)["evil"] = Map({"title": "plain string", "status": "todo"})

        n = await mallory.send_update(mallory.edit(bad))
        outcome = await mallory.outcome(n)
        assert outcome["type"] == "rejected"
        assert outcome["path"].startswith("tasks/evil")
        assert "Text" in outcome["reason"]
        await mallory.drain()
        assert "evil" not in mallory.doc.get("tasks", type=Map), "the sender's copy is reverted"
        # a later valid change from the same client still lands
        good = mallory.edit(lambda d: create_task(d, TaskCreate(title="honest"), created_by="m"))
        n2 = await mallory.send_update(good)
        assert (await mallory.outcome(n2))["type"] == "ack"
    await bob.drain()
    assert "evil" not in bob.doc.get("tasks", type=Map)
    await _assert_undisturbed(server, ctx, bob)
    server.stop()
    stored = stored_doc(server.db, DOC).get("tasks", type=Map).to_py()
    assert "evil" not in stored
    assert "honest" in {t["title"] for t in stored.values()}


async def test_unknown_root_closes_with_4422_and_never_reaches_anyone(server) -> None:
    ctx, bob = await _observer_with_a_task(server)
    async with RawClient.connect(server, DOC, "mallory") as mallory:
        await mallory.sync()
        before = mallory.doc.get_state()
        mallory.doc.get("sneaky", type=Text).insert(0, "hidden payload")
        await mallory.send_update(mallory.doc.get_update(before))
        closed = await mallory.wait_closed()
    assert closed.code == 4422
    assert "sneaky" in closed.reason
    await _assert_undisturbed(server, ctx, bob)
    async with RawClient.connect(server, DOC, "carol") as carol:
        await carol.sync()
        assert "sneaky" not in list(carol.doc.keys())


async def test_missing_or_bad_token_closes_with_4401_before_any_document_byte(server) -> None:
    for token in ("", "tdm_not-a-real-token", "garbage"):
        async with RawClient.connect(server, DOC, token=token) as client:
            first = await client.recv()
            assert first is None, "no document byte before authentication"
            assert client.closed is not None
            assert client.closed.code == 4401


@pytest.mark.parametrize(
    "name", ["x/demo", "p/demo/%2E%2E/other", "p/demo/secrets", "p/", "p/a//chat"]
)
async def test_unknown_document_names_close_with_4404(server, name) -> None:
    async with RawClient.connect(server, "p/ok", token=server.token("alice")) as _:
        pass
    import httpx
    from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws

    ws: AsyncWebSocketSession
    async with (
        httpx.AsyncClient() as http,
        aconnect_ws(f"{server.ws_url}/{name}", http, params={"token": server.token("alice")}) as ws,
    ):
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_bytes()
    assert info.value.code == 4404


def test_varuint_sanity() -> None:
    assert varuint(300) == b"\xac\x02"


def _list_item(client: int, parent: bytes, text: str) -> bytes:
    """One struct: a list item (no origin, no key) under ``parent`` (encoded parent info)."""
    return (
        varuint(1)
        + varuint(client)
        + varuint(0)
        + b"\x08"
        + parent
        + b"\x01\x77"
        + (varuint(len(text)) + text.encode())
    )


def _root(name: str) -> bytes:
    return b"\x01" + varuint(len(name)) + name.encode()


def _type_id(client: int, clock: int) -> bytes:
    return b"\x00" + varuint(client) + varuint(clock)


@pytest.mark.parametrize("where", ["root", "existing task", "task of the same update"])
async def test_list_content_in_a_map_closes_with_4422_and_is_never_stored(server, where) -> None:
    """A client that declares a map as an array writes items no key shows: invisible to
    every map view and to the schema check. Refused whole, wherever the map is, even
    when the same update also writes a key of that map."""
    ctx, bob = await _observer_with_a_task(server)
    async with RawClient.connect(server, DOC, "mallory") as mallory:
        await mallory.sync()
        mine = mallory.edit(lambda d: create_task(d, TaskCreate(title="mine"), created_by="m"))
        n = await mallory.send_update(mine)
        assert (await mallory.outcome(n))["type"] == "ack"
        me = mallory.doc.client_id
        task_clock = varuint_at(mine, varuint_at(mine, varuint_at(mine, 1)[1])[1])[0]
        if where == "root":
            update = b"\x01" + _list_item(4242, _root("tasks"), "hidden") + b"\x00"
        elif where == "existing task":
            key = (  # a write of the task's priority, beside the list item in the same map
                varuint(1)
                + varuint(4243)
                + varuint(0)
                + b"\x28"
                + _type_id(me, task_clock)
                + varuint(8)
                + b"priority"
                + b"\x01\x77"
                + varuint(3)
                + b"low"
            )
            update = b"\x02" + key + _list_item(4244, _type_id(me, task_clock), "hidden") + b"\x00"
        else:
            fresh = mallory.edit(
                lambda d: create_task(d, TaskCreate(title="fresh"), created_by="m")
            )
            fresh_clock = varuint_at(fresh, varuint_at(fresh, varuint_at(fresh, 1)[1])[1])[0]
            structs = fresh[1 : len(fresh) - 1]  # its one client's structs (no deletions)
            assert fresh[-1] == 0
            update = b"\x02" + structs + _list_item(4245, _type_id(me, fresh_clock), "x") + b"\x00"
        await mallory.send_update(update)
        closed = await mallory.wait_closed()
    assert closed.code == 4422
    assert "list content" in closed.reason
    await _assert_undisturbed(server, ctx, bob)
    server.stop()
    stored = stored_doc(server.db, DOC)
    titles = {t["title"] for t in stored.get("tasks", type=Map).to_py().values()}
    assert {"keep me", "still here", "mine"} <= titles
    assert "fresh" not in titles
    assert str(stored.get_update()).find("hidden") == -1
