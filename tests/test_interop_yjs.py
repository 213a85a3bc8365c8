"""Unmodified Yjs clients (yjs + y-websocket from npm, in Node) sync through Tandem."""

from __future__ import annotations

import json

import pytest
from pycrdt import Map

from .conftest import node_available, run_node, stored_doc

pytestmark = pytest.mark.skipif(
    not node_available(), reason="run `make setup` for the Node clients"
)


def test_offline_client_and_online_client_converge_with_the_server(server) -> None:
    server.grant("alice", "interop", "manager")
    server.grant("bob", "interop", "manager")
    out = run_node(
        "offline_merge.mjs",
        server.ws_url,
        "p/interop",
        server.token("alice"),
        server.token("bob"),
    )
    clients = json.loads(out.stdout.strip().splitlines()[-1])
    assert clients["t1"]["title"] == "Draft: Write the spec (reviewed)"
    assert clients["t1"]["status"] == "in_progress"
    assert clients["t1"]["priority"] == "high"
    assert clients["t1"]["description"] == "written offline"
    assert clients["t2"]["title"] == "Offline task"

    server.stop()  # the server's copy, as durably stored
    stored = stored_doc(server.db, "p/interop").get("tasks", type=Map).to_py()
    assert stored == clients
