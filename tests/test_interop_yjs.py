"""Unmodified Yjs clients (yjs + y-websocket from npm, in Node) sync through Tandem."""

from __future__ import annotations

import json

import pytest
from pycrdt import Map

from .conftest import node_available, run_node, stored_doc, without_keys

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
    assert without_keys(stored) == without_keys(clients)


def test_a_burst_of_typing_reaches_another_client_as_one_item(server) -> None:
    """Keystrokes that land in one batch are broadcast squashed: bob's Yjs integrates
    one item for alice's line, not one per character, and reads the same line."""
    server.grant("alice", "burst", "manager")
    server.grant("bob", "burst", "manager")
    line = "Ship the beta — café 中文 🚀"
    out = run_node(
        "typing_burst.mjs",
        server.ws_url,
        "p/burst",
        server.token("alice"),
        server.token("bob"),
        line,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["alice"] == seen["bob"] == line
    assert seen["characters"] == len(line.encode("utf-16-le")) // 2
    assert 1 <= seen["items"] < len(line) / 4  # one per batch, not one per keystroke
    server.stop()
    title = stored_doc(server.db, "p/burst").get("tasks", type=Map)["t1"]["title"]
    assert str(title) == line
