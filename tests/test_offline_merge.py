"""Offline work that Yjs merges is never refused: concurrent writes are valid writes."""

from __future__ import annotations

import json

import anyio
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task, set_task_field

from .conftest import node_available, run_node, stored_doc, without_keys
from .raw_client import RawClient

pytestmark = pytest.mark.skipif(
    not node_available(), reason="run `make setup` for the Node clients"
)


def test_an_offline_write_that_loses_to_a_concurrent_one_does_not_sink_its_transaction(
    server,
) -> None:
    """Bob, offline, creates a task and sets t1's priority; Alice, online, set the same
    priority meanwhile. Bob's write loses in Yjs's order (lower client id), which yrs
    reports as a map event with no keys; the server used to take that for list content
    in a map and refuse Bob's whole transaction, his new task with it."""
    server.grant("alice", "conflict", "manager")
    server.grant("bob", "conflict", "manager")
    out = run_node(
        "offline_conflict.mjs",
        server.ws_url,
        "p/conflict",
        server.token("alice"),
        server.token("bob"),
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["denials"] == []
    assert seen["converged"], seen
    assert seen["a"] == seen["b"]
    assert seen["a"]["t2"]["title"] == "Offline task"
    assert seen["a"]["t1"]["priority"] == "urgent"  # Yjs's winner, on every client
    assert "rejected update" not in server.log()

    server.stop()
    stored = stored_doc(server.db, "p/conflict").get("tasks", type=Map).to_py()
    assert without_keys(stored) == without_keys(seen["a"])


def test_a_stock_clients_offline_batch_keeps_the_allowed_task_and_reverts_only_the_rename(
    server,
) -> None:
    """Bob (a member) creates a task offline and renames Alice's task, which he may not.
    y-websocket sends both in one update: the new task lands on every client, the rename
    is reverted on every client, and Bob's client is told why."""
    server.grant("alice", "mixed", "manager")
    server.grant("bob", "mixed", "member")
    out = run_node(
        "offline_mixed.mjs",
        server.ws_url,
        "p/mixed",
        server.token("alice"),
        server.token("bob"),
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["converged"], seen
    assert seen["a"] == seen["b"]
    assert seen["a"]["t2"]["title"] == "Written offline"
    assert seen["a"]["t2"]["priority"] == "high"
    assert seen["a"]["t1"]["title"] == "Design checkout flow"
    assert len(seen["denials"]) == 1
    assert "edit_all_tasks" in seen["denials"][0]

    server.stop()
    stored = stored_doc(server.db, "p/mixed").get("tasks", type=Map).to_py()
    assert without_keys(stored) == without_keys(seen["a"])


async def _mixed_batch_from_a_pycrdt_client(server) -> None:
    async with (
        RawClient.connect(server, "p/mixedpy", "alice", role="manager") as alice,
        RawClient.connect(server, "p/mixedpy", "carol", role="viewer") as carol,
    ):
        await alice.sync()
        theirs = "theirs"
        n = await alice.send_update(
            alice.edit(
                lambda d: create_task(
                    d, TaskCreate(title="Design checkout flow"), created_by="alice", task_id=theirs
                )
            )
        )
        assert (await alice.outcome(n))["type"] == "ack"
        await carol.sync()
        async with RawClient.connect(server, "p/mixedpy", "bob", role="member") as bob:
            await bob.sync()
            # offline: four transactions, sent as one update (as a client's sync step 2 is)
            before = bob.doc.get_state()
            tasks = bob.doc.get("tasks", type=Map)
            with bob.doc.transaction():
                mine = create_task(bob.doc, TaskCreate(title="Written offline"), created_by="bob")
            with bob.doc.transaction():
                tasks[theirs]["title"].insert(0, "Renamed: ")
            with bob.doc.transaction():  # builds on the refused rename: refused with it
                tasks[theirs]["title"].insert(len("Renamed: "), "really ")
            with bob.doc.transaction():  # builds on the allowed task: kept with it
                set_task_field(bob.doc, mine, "priority", "urgent")
            n = await bob.send_update(bob.doc.get_update(before))
            outcome = await bob.outcome(n)
            assert outcome["type"] == "rejected"
            assert outcome["partial"] is True
            assert outcome["permission"] == "edit_all_tasks"
            assert outcome["path"] == f"tasks/{theirs}/title"
            await bob.drain()
            mine_seen = bob.doc.get("tasks", type=Map).to_py()
        await carol.drain()
        for client_view in (mine_seen, carol.doc.get("tasks", type=Map).to_py()):
            assert client_view[theirs]["title"] == "Design checkout flow"
            assert client_view[mine]["title"] == "Written offline"
            assert client_view[mine]["priority"] == "urgent"
        assert mine_seen == carol.doc.get("tasks", type=Map).to_py()
    server.stop()
    stored = stored_doc(server.db, "p/mixedpy").get("tasks", type=Map).to_py()
    assert stored == mine_seen


def test_a_pycrdt_clients_mixed_batch_keeps_what_it_may_and_tells_why(server) -> None:
    anyio.run(_mixed_batch_from_a_pycrdt_client, server)
