"""Reconnect storm: 500 stock y-websocket clients (Node) drop at once and reconnect at once.

Every socket is terminated without a close frame (a network cut), every client edits
while offline, and y-websocket reconnects them all together against a real
`tandem serve`. All clients and the durably stored document must converge, and the
server's log must hold no warning or error.

Every client carries a presence state, as an app's does, announces it on every connect,
and the server relays it to the 499 others (coalesced per room: see
docs/architecture.md, "Identity"). `python -m bench.reconnect_storm` runs the same storm
with presence off and on and reports what presence costs.

The storm's server runs in asyncio debug mode (TANDEM_ASYNCIO_DEBUG=1), which logs every
callback that held the event loop 50 ms or more, with where the time went
(sync_server/shell/loop_debug.py): its own CPU, garbage collection, waiting for a core, or
blocked. A callback that computed, or waited for another of the server's threads, for 50 ms
fails the test, and so does a collection of 100 ms; one slow only because the machine's
other processes kept it off the CPU (run-queue wait) is printed, not failed: on a loaded
2-core CI machine that is the neighbours' doing, not the server's.

The Node process driving the storm's clients runs at a lower CPU priority (``nice``,
NODE_NICE): its 250 clients use about twice the server's CPU, and at equal priority on 2
cores it took the loop's core away in the middle of callbacks. The test judges the server's
loop, not its load generator, which still gets every idle cycle (bench/README.md, "Slow
callbacks in the reconnect storm", has the counts with and without).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from pycrdt import Map

from .conftest import NODE_DIR, run_node, start_server, stored_doc

CLIENTS = 500
# Debug mode costs the server several times its CPU: its storm is half the size, so that
# on a busy CI machine the clients still sync in time (the callbacks judged are the same)
DEBUG_CLIENTS = 250
SLOW_CALLBACK_S = 0.05
NODE_NICE = 10  # the storm's clients yield the CPU to the server (see above)
SLOW = re.compile(
    r"Executing (?P<handle>.*) took (?P<wall>[0-9.]+) seconds "
    r"\(cpu (?P<cpu>[0-9.]+) s, runqueue (?P<runqueue>[0-9.]+) s, "
    r"gc (?P<gc>[0-9.]+) s, blocked (?P<blocked>[0-9.]+) s, others (?P<others>[0-9.]+) s\)"
)


def bad_lines(log: str) -> list[str]:
    return [
        ln
        for ln in log.splitlines()
        if any(w in ln for w in ("ERROR", "WARNING", "Traceback")) and "Executing " not in ln
    ]


def slow_callbacks(log: str) -> list[dict]:
    """asyncio debug mode's slow-callback lines, with their time split (loop_debug)."""
    out = []
    for ln in log.splitlines():
        if "Executing " in ln:
            m = SLOW.search(ln.replace('\\"', '"'))
            assert m, f"a slow-callback line without its time split: {ln}"
            row = {k: float(v) for k, v in m.groupdict().items() if k != "handle"}
            out.append({**row, "handle": m["handle"][:300]})
    return out


def own_code(rows: list[dict]) -> list[dict]:
    """Slow callbacks this process's code caused: computing (GC apart: the GC test below
    judges each collection), or waiting while another of its threads ran (the GIL). A
    callback blocked while no other thread of ours ran was waiting on a preempted GIL
    holder or a blocking call: printed, not failed."""
    return [
        r
        for r in rows
        if r["cpu"] - r["gc"] >= SLOW_CALLBACK_S
        or min(r["blocked"], r["others"]) >= SLOW_CALLBACK_S
    ]


def gc_pauses(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["gc"] >= SLOW_CALLBACK_S]


def test_asyncio_debug_mode_logs_slow_callbacks_with_where_the_time_went(tmp_path) -> None:
    """The checks below can fail: at a 0.01 ms threshold every callback is slow, and each
    line carries its CPU / run-queue / gc / blocked split."""
    import httpx

    srv = start_server(tmp_path, TANDEM_ASYNCIO_DEBUG="1", TANDEM_ASYNCIO_SLOW_CALLBACK_MS="0.01")
    try:
        for _ in range(5):
            assert httpx.get(srv.http_url + "/healthz", timeout=10).status_code == 200
    finally:
        srv.stop()
    rows = slow_callbacks(srv.log())
    assert "asyncio debug mode on" in srv.log()
    assert len(rows) >= 5, srv.log()[-2000:]  # each request runs several callbacks


@pytest.fixture(scope="module")
def debug_storm(tmp_path_factory) -> dict:
    """The storm below, once, against a server in asyncio debug mode; its slow callbacks."""
    server = start_server(
        tmp_path_factory.mktemp("debug_storm"),
        TANDEM_ASYNCIO_DEBUG="1",
        TANDEM_ASYNCIO_SLOW_CALLBACK_MS=str(SLOW_CALLBACK_S * 1000),
    )
    try:
        assert "asyncio debug mode on" in server.log()
        server.grant("storm", "storm", "manager")
        # Debug mode costs the server several times its CPU: on a loaded machine the
        # script's own 60 s waits may run out. Convergence is the plain storm test's job;
        # this one judges the callbacks of whatever storm took place.
        args = [server.ws_url, "p/storm", server.token("storm"), str(DEBUG_CLIENTS), "on"]
        out = subprocess.run(
            ["nice", "-n", str(NODE_NICE), "node", str(NODE_DIR / "reconnect_storm.mjs"), *args],
            capture_output=True,
            text=True,
            cwd=NODE_DIR,
            timeout=300,
        )
    finally:
        server.stop()
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"failed": out.stderr.strip()[-300:]}
    result.pop("custom", None)
    slow = slow_callbacks(server.log())
    print(json.dumps(result))
    for r in slow:  # the record of what was seen, starvation included
        print("slow callback:", json.dumps(r))
    return {"result": result, "slow": slow, "log": server.log()}


def test_a_storm_in_asyncio_debug_mode_has_no_slow_callback_of_its_own_code(debug_storm) -> None:
    """No callback computed (GC apart) or blocked for 50 ms during the storm. Callbacks
    slow only because the machine kept the loop's thread waiting for a core are printed
    by the fixture, not failed."""
    result = debug_storm["result"]
    # the storm took place: every client reconnected (a later wait may have run out)
    assert result.get("reconnects", 0) >= DEBUG_CLIENTS or "offline edits everywhere" in result.get(
        "failed", ""
    ), result
    assert not bad_lines(debug_storm["log"]), "\n".join(bad_lines(debug_storm["log"])[:20])
    slow = own_code(debug_storm["slow"])
    assert not slow, "\n".join(json.dumps(r) for r in slow[:20])


GC_LINE = re.compile(r"gc generation (\d) took ([0-9.]+) s")
GC_PAUSE_LIMIT_S = 0.1


def test_a_storm_in_asyncio_debug_mode_has_no_gc_pause_of_100_ms(debug_storm) -> None:
    """Every cyclic-GC collection on the loop's thread during the debug storm took under
    100 ms of CPU (loop_debug logs each of 10 ms or more). Debug mode kept 10 or more frames
    of the stack where each future, task and handle was made, which were half the objects a
    full collection walks: 50-150 ms pauses at 250 clients; it keeps 3, as plain tuples,
    now (loop_debug). The startup's full collection runs before the loop does, and the
    clients' Node process no longer competes for the cores at the server's priority (at
    equal priority it made the same collections take up to 100 ms). Measured since: the
    longest full collection per storm was 34-48 ms at load 14-16 and 50-82 ms at load 20 on
    the shared 2-core machine (bench/README.md, "Slow callbacks in the reconnect storm"),
    and 19-118 ms on a quiet one on 2026-12-03, until an ended connection stopped waiting
    for the collector (test_memory's ..._freed_without_the_cycle_collector): 12-22 ms."""
    pauses = [(int(g), float(t)) for g, t in GC_LINE.findall(debug_storm["log"])]
    full = sorted(t for g, t in pauses if g == 2)
    print(
        f"gc pauses of 10 ms or more: {len(pauses)}; full collections (ms): "
        f"{[round(t * 1000) for t in full]}"
    )
    assert all(t < GC_PAUSE_LIMIT_S for _, t in pauses), pauses
    # and no callback of the storm computed for 100 ms, GC included (run-queue waits apart)
    heavy = [r for r in debug_storm["slow"] if r["cpu"] >= GC_PAUSE_LIMIT_S]
    assert not heavy, "\n".join(json.dumps(r) for r in heavy[:20])


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
