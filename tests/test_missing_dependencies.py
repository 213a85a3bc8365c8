"""Updates that build on what the server does not have: never kept pending, the sender resyncs.

Yjs keeps such structs and deletions pending and applies them whenever the
missing piece arrives, inside whoever's transaction brings it. The gate would
then judge them under that other user's permissions. So the server keeps
none of it: it drops the update, reloads the document from storage, and sends
the sender its state vector; an honest client answers with a sync step 2
holding everything, which the gate judges under the sender's own identity.
"""

from __future__ import annotations

import json

import pytest
from pycrdt import Map, Text

from doc_model import TaskCreate, create_task
from sync_server.core.protocol import varuint

from .conftest import node_available, run_node, stored_doc, without_keys
from .raw_client import RawClient

pytestmark = pytest.mark.anyio

DOC = "p/deps"


def _delete_set_update(client: int, clock: int, length: int) -> bytes:
    """A Yjs v1 update with no structs and one delete range."""
    return b"\x00" + varuint(1) + varuint(client) + varuint(1) + varuint(clock) + varuint(length)


def _titles(doc) -> set[str]:
    return {str(t["title"]) for t in doc.get("tasks", type=Map).values()}


async def test_deleting_items_the_server_does_not_have_yet_is_refused(server) -> None:
    """A viewer cannot plant a deletion of an owner's future edit."""
    async with (
        RawClient.connect(server, DOC, "olga") as olga,
        RawClient.connect(server, DOC, "vic", role="viewer") as vic,
    ):
        await olga.sync()
        await vic.sync()
        olga_client = olga.doc.client_id
        next_clock = olga.doc.get_state()  # empty: olga has written nothing yet
        assert next_clock == b"\x00"
        n = await vic.send_update(_delete_set_update(olga_client, 0, 500))
        outcome = await vic.outcome(n)
        assert outcome["type"] == "resync"
        assert "deletes changes the server does not have" in outcome["reason"]

        update = olga.edit(lambda d: create_task(d, TaskCreate(title="survives"), created_by="o"))
        assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
        await vic.drain()
        assert "survives" in _titles(vic.doc)
    server.stop()
    assert "survives" in _titles(stored_doc(server.db, DOC))


async def test_a_gapped_forbidden_edit_is_not_applied_when_its_gap_is_filled(server) -> None:
    """A viewer's edit that skips its own first struct is not kept; the resync is judged."""
    async with (
        RawClient.connect(server, DOC, "olga") as olga,
        RawClient.connect(server, DOC, "vic", role="viewer") as vic,
    ):
        await olga.sync()
        update = olga.edit(lambda d: create_task(d, TaskCreate(title="plan"), created_by="o"))
        assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
        await vic.sync()
        task = next(iter(vic.doc.get("tasks", type=Map).values()))
        title: Text = task["title"]
        vic.edit(lambda d: title.insert(len(title), " A"))  # kept back
        second = vic.edit(lambda d: title.insert(len(title), " B"))  # builds on the first
        n = await vic.send_update(second)
        outcome = await vic.outcome(n)
        assert outcome["type"] == "resync"
        assert "depends on changes the server does not have" in outcome["reason"]
        # the server asked for a step 2 (RawClient answers it): now judged as vic's, and refused
        rejected = await vic.outcome(n + 1)
        assert rejected["type"] == "rejected"
        assert rejected["permission"] == "edit_all_tasks"
        await olga.drain()
        assert _titles(olga.doc) == {"plan"}
    server.stop()
    assert _titles(stored_doc(server.db, DOC)) == {"plan"}


async def test_an_honest_edit_sent_before_its_step_2_lands_after_a_resync(server) -> None:
    """Stock y-websocket sends edits as soon as the socket opens, ahead of its step 2."""
    async with (
        RawClient.connect(server, DOC, "olga") as olga,
        RawClient.connect(server, DOC, "bob", role="member") as bob,
    ):
        await olga.sync()
        first = olga.edit(lambda d: create_task(d, TaskCreate(title="offline one"), created_by="o"))
        second = olga.edit(
            lambda d: create_task(d, TaskCreate(title="offline two"), created_by="o")
        )
        assert first and second
        third = olga.edit(lambda d: create_task(d, TaskCreate(title="online"), created_by="o"))
        n = await olga.send_update(second)  # the first never went out
        n3 = await olga.send_update(third)
        assert (await olga.outcome(n))["type"] == "resync"
        # while the resync is outstanding, further edits are skipped: the step 2 carries them
        assert (await olga.outcome(n3))["type"] == "resync"
        # the server's state vector arrived; RawClient answered with all the server lacks
        assert (await olga.outcome(n3 + 1))["type"] == "ack"
        await bob.sync()
        await bob.drain()
        assert _titles(bob.doc) == {"offline one", "offline two", "online"}
    server.stop()
    assert _titles(stored_doc(server.db, DOC)) == {"offline one", "offline two", "online"}


@pytest.mark.skipif(not node_available(), reason="run `make setup` for the Node clients")
def test_a_yjs_clients_second_update_without_its_first_is_never_half_applied(server) -> None:
    """Real Yjs: Alice's second update alone (a raw socket) gets a sync step 1 back, and
    nothing of hers reaches Bob (a stock y-websocket client, who never holds a pending
    struct) until her step 2 brings the first; the same again with the socket dropped
    and her Y.Doc back through a stock provider, whose resync converges."""
    server.grant("alice", "gap", "manager")
    server.grant("bob", "gap", "manager")
    out = run_node(
        "clock_gap.mjs", server.ws_url, "p/gap", server.token("alice"), server.token("bob")
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["step1Replies"] == [0]  # the resync request: the server has none of hers
    assert seen["earlySeen"] == []
    assert seen["beforeReconnect"] == ["t1"]
    assert seen["pendingSeen"] is False
    assert seen["converged"] == [True, True]
    assert seen["tasks"]["t2"]["title"] == "Third and fourth"
    assert "rejected update" not in server.log()
    server.stop()
    stored = stored_doc(server.db, "p/gap").get("tasks", type=Map).to_py()
    assert without_keys(stored) == without_keys(seen["tasks"])
