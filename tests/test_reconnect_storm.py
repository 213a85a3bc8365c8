"""Reconnect storm: 500 stock y-websocket clients (Node) drop at once and reconnect at once.

Every socket is terminated without a close frame (a network cut), every client edits
while offline, and y-websocket reconnects them all together against a real
`tandem serve`. All clients and the durably stored document must converge, and the
server's log must hold no warning or error.

Every client carries a presence state, as an app's does, announces it on every connect,
and the server relays it to the 499 others (coalesced per room: see
docs/architecture.md, "Identity"). `python -m bench.reconnect_storm` runs the same storm
with presence off and on and reports what presence costs.
"""

from __future__ import annotations

import json

import pytest
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
        "on",
        timeout=150,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    custom = result.pop("custom")
    print(json.dumps(result))
    assert result["reconnects"] >= CLIENTS
    assert result["moves_seen_ms"] is not None, "a move after the storm went unseen for 10 s"
    assert result["distinct_texts"] == 1
    assert result["distinct_state_vectors"] == 1
    assert custom == {f"c{i}": "off" for i in range(CLIENTS)}
    assert not bad_lines(server.log()), "\n".join(bad_lines(server.log())[:20])

    server.stop()  # what was durably stored is what every client has
    stored = stored_doc(server.db, "p/storm").get("tasks", type=Map).to_py()
    assert stored["storm"]["custom"] == custom
    assert not bad_lines(server.log()), "\n".join(bad_lines(server.log())[:20])


def test_clients_connecting_while_the_server_is_busy_wait_in_its_listen_queue(server) -> None:
    """600 clients connect while the server's loop cannot accept (stopped with SIGSTOP, as
    a loop busy with a storm would be): the kernel completes every handshake and queues it.
    With Hypercorn's default backlog of 100 it completed 101 and dropped the other SYNs,
    and those clients waited 1 s, then 3 s, for their retries."""
    import select
    import signal
    import socket

    import httpx

    assert server.proc is not None
    clients = 600
    socks: list[socket.socket] = []
    server.proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(clients):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            socks.append(s)
        connected: set[int] = set()
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLOUT)
        for _ in range(10):  # loopback handshakes take microseconds; drops never complete
            for fd, _events in poller.poll(50):
                poller.unregister(fd)
                connected.add(fd)
        errors = sum(
            1
            for s in socks
            if s.fileno() in connected and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        )
    finally:
        server.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
    assert (len(connected), errors) == (clients, 0)
    assert httpx.get(server.http_url + "/healthz", timeout=10).status_code == 200


def alice_and_bob(server, script: str, project: str, *args: str) -> dict:
    """Run a two-member presence script (alice, then bob) on ``p/<project>``; its result."""
    for user in ("alice", "bob"):
        server.grant(user, project, "member")
    out = run_node(
        script,
        server.ws_url,
        f"p/{project}",
        server.token("alice"),
        server.token("bob"),
        *args,
        timeout=60,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["after-back", "at-once"])
def test_a_stock_client_that_reconnects_is_seen_again_at_once_and_then_moves(server, mode) -> None:
    """y-websocket announces, on reconnect, the presence it had before the cut, at a clock
    its peers saw removed: they would ignore it until the client renews it, 15-30 s later.
    The server answers with that removal, and y-protocols' own rule ("never let a remote
    client remove this local state") makes the client announce itself past it at once.
    A client that moves before that answer reaches it ("at-once") is seen at its new place,
    and keeps that place itself: no relay of its older state overwrites it."""
    result = alice_and_bob(server, "presence_reconnect.mjs", "back", mode)
    assert result["backMs"] is not None, result  # within the script's 5 s wait
    if mode == "after-back":
        assert result["back"] == "t1", result  # the state she left with
    assert result["moved"] and result["user"]["id"] == "alice", result
    assert result["own"] == "t3", result


def test_a_stock_client_that_switches_network_is_seen_moving_before_its_old_socket_closes(
    server,
) -> None:
    """A phone that changes network leaves its old socket open on the server's side; the
    client reconnects on the new one while the server still holds the old. Its moves are
    seen at once (not when TCP gives up on the old socket, minutes later), and the old
    socket's close, when it comes, does not take the user's presence away."""
    result = alice_and_bob(server, "presence_network_switch.mjs", "switch")
    assert result["movedMs"] is not None, result  # within the script's 5 s wait
    assert result["stillThere"] == "t3" and result["own"] == "t3", result
