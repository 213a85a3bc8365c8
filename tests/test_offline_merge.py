"""Offline work that Yjs merges is never refused: concurrent writes are valid writes."""

from __future__ import annotations

import json

import pytest
from pycrdt import Map

from .conftest import node_available, run_node, stored_doc

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
    assert stored == seen["a"]
