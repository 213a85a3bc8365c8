"""Reconnect storm: 500 stock y-websocket clients (Node) drop at once and reconnect at once.

Every socket is terminated without a close frame (a network cut), every client edits
while offline, and y-websocket reconnects them all together against a real
`tandem serve`. All clients and the durably stored document must converge, and the
server's log must hold no warning or error.

The clients carry no presence state here: with y-websocket's default (empty) presence,
each of the 500 announces itself on every connect and the server fans that out to the
499 others, which costs the server far more CPU than the storm itself and would push
this test past CI's time on a 2-core machine. `python -m bench.reconnect_storm` runs
the same storm with presence on and reports its cost.
"""

from __future__ import annotations

import json

from pycrdt import Map

from .conftest import run_node, stored_doc

CLIENTS = 500


def bad_lines(log: str) -> list[str]:
    return [
        ln for ln in log.splitlines() if any(w in ln for w in ("ERROR", "WARNING", "Traceback"))
    ]


def test_500_clients_drop_and_reconnect_at_once_and_converge(server) -> None:
    server.grant("storm", "storm", "manager")
    out = run_node(
        "reconnect_storm.mjs",
        server.ws_url,
        "p/storm",
        server.token("storm"),
        str(CLIENTS),
        "off",
        timeout=150,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    custom = result.pop("custom")
    print(json.dumps(result))
    assert result["reconnects"] >= CLIENTS
    assert result["distinct_texts"] == 1
    assert result["distinct_state_vectors"] == 1
    assert custom == {f"c{i}": "off" for i in range(CLIENTS)}
    assert not bad_lines(server.log()), "\n".join(bad_lines(server.log())[:20])

    server.stop()  # what was durably stored is what every client has
    stored = stored_doc(server.db, "p/storm").get("tasks", type=Map).to_py()
    assert stored["storm"]["custom"] == custom
    assert not bad_lines(server.log()), "\n".join(bad_lines(server.log())[:20])
