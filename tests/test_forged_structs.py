"""Forged updates the gate must refuse whole, through a real WebSocket.

An item whose parent is named by id must name a shared type; pycrdt raises
RuntimeError mid-integration when it names a character, after integrating the
update's other structs. The gate refuses such an update as not a Yjs update
(close 4400), the room document exactly as before.
"""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text, merge_updates

from doc_model import TaskCreate, create_task
from sync_server.core import state_vectors
from sync_server.core.protocol import varuint

from .conftest import stored_doc, without_keys
from .raw_client import RawClient

pytestmark = pytest.mark.anyio

DOC = "p/forged"


def forged_child(client: int, clock: int, parent: tuple[int, int], text: str) -> bytes:
    """One string item of ``client`` at ``clock`` with no origins, its parent named by id."""
    out = varuint(1) + varuint(1) + varuint(client) + varuint(clock) + bytes([4])
    out += varuint(0) + varuint(parent[0]) + varuint(parent[1])
    data = text.encode()
    return out + varuint(len(data)) + data + varuint(0)


def _tasks(doc: Doc) -> dict:
    return without_keys(doc.get("tasks", type=Map).to_py())


async def test_an_item_whose_parent_is_a_character_is_refused_whole(server) -> None:
    async with (
        RawClient.connect(server, DOC, "olga") as olga,
        RawClient.connect(server, DOC, "mal") as mal,
    ):
        await olga.sync()
        update = olga.edit(lambda d: create_task(d, TaskCreate(title="plan"), created_by="o"))
        assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
        task = next(iter(olga.doc.get("tasks", type=Map).values()))
        title: Text = task["title"]
        first = state_vectors.decode(olga.doc.get_state())[olga.doc.client_id]
        typed = olga.edit(lambda d: title.insert(0, "abc"))
        assert (await olga.outcome(await olga.send_update(typed)))["type"] == "ack"
        await mal.sync()
        before = _tasks(mal.doc)
        # an honest keystroke and, in the same update, an item whose parent is olga's "a"
        mtitle: Text = next(iter(mal.doc.get("tasks", type=Map).values()))["title"]
        honest = mal.edit(lambda d: mtitle.insert(0, "Q"))
        low = min(mal.doc.client_id, olga.doc.client_id) - 1
        forged = forged_child(low, 0, (olga.doc.client_id, first), "Z")
        await mal.send_update(merge_updates(honest, forged))
        closed = await mal.wait_closed()
        assert closed.code == 4400 and closed.reason.startswith("not a valid Yjs update")
        assert "must be deleted or shared ref type" in closed.reason
        await olga.drain()
        assert _tasks(olga.doc) == before  # nothing of it was broadcast
        async with RawClient.connect(server, DOC, "fresh") as fresh:  # the live room
            await fresh.sync()
            assert _tasks(fresh.doc) == before  # nothing of it was kept (pycrdt had put "Q")
        # the room is as before: the honest keystroke alone, sent again, is new to it
        async with RawClient.connect(server, DOC, "mal") as again:
            again.doc.apply_update(mal.doc.get_update())
            await again.sync()
            assert (await again.outcome(await again.send_update(honest)))["type"] == "ack"
        await olga.drain()
        assert str(title) == "Qabcplan"
        more = olga.edit(lambda d: title.insert(len(title), "!"))
        assert (await olga.outcome(await olga.send_update(more)))["type"] == "ack"
    server.stop()
    assert next(iter(_tasks(stored_doc(server.db, DOC)).values()))["title"] == "Qabcplan!"
    log = server.log()
    assert "closing on bad message: not a valid Yjs update" in log and "doc=p/forged" in log
    assert "Error in ASGI" not in log and "Traceback" not in log
