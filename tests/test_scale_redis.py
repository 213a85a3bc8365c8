"""Several `tandem serve` processes on one SQLite file, coordinated through a real Redis
(sync_server.scale): cross-node fan-out of updates and presence, catching up from storage
after Redis is lost, and one node at a time running the change-feed consumers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from cryptography.fernet import Fernet
from pycrdt import Array, Map

from doc_model import TaskCreate, create_task
from integrations.outbox import OutboxConfig
from sync_server.storage.database import connect

from .conftest import (
    RedisProcess,
    ServerProcess,
    free_port,
    node_available,
    run_node,
    running_redis,
    stored_doc,
    wait_until,
)
from .postgres_server import storage_for_tests
from .raw_client import RawClient
from .test_api_v1 import new_project
from .test_automation import Receiver, make_rule

DOC = "p/scale"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster_storage(request) -> Callable[[], str | None]:
    """Where each cluster's nodes store: one SQLite file in its directory (None), then, for
    the second round of every test, one fresh database of a real PostgreSQL server."""
    if request.param == "sqlite":
        return storage_for_tests  # None, unless TANDEM_TEST_STORAGE=postgresql
    return request.getfixturevalue("postgres_server").create_database


def start_cluster(
    tmp_path: Path,
    redis: RedisProcess,
    storage: str | None = None,
    n: int = 3,
    env_overrides: dict[str, str] | None = None,
) -> list[ServerProcess]:
    """``n`` real servers on one storage (``storage``: a PostgreSQL URL; None: one SQLite
    file in ``tmp_path``) and one Redis. Their storage poll (the safety
    net for writers that publish nothing) is set to a minute, so whatever reaches another
    node within seconds came through Redis."""
    tokens: dict[str, str] = {}
    nodes = []
    shared: dict[str, str] = {}
    if storage is not None:
        shared["TANDEM_SECRET_KEY"] = Fernet.generate_key().decode()  # one key for all nodes
    for i in range(n):
        env = dict(os.environ)
        env.update(
            {
                "TANDEM_REDIS": redis.url,
                "TANDEM_REDIS_POLL_SECONDS": "60",
                "TANDEM_ROOM_IDLE_SECONDS": "60",
                "TANDEM_LEASE_TTL_SECONDS": "1.5",
            }
        )
        env.update(shared)
        env.update(env_overrides or {})
        node = ServerProcess(
            db=storage if storage is not None else tmp_path / "tandem.db",  # type: ignore[arg-type]
            port=free_port(),
            env=env,
            log_path=tmp_path / f"node{i}.log",
            tokens=tokens,  # one file: a token made through one node works on all
        )
        node.start()  # one after another: the first applies the migrations
        nodes.append(node)
    return nodes


def stop_cluster(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        node.stop()
    for node in nodes:
        tail = node.log()[-3000:]
        if "Traceback" in tail:
            print(f"--- {node.log_path.name} ---\n{tail}")


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisProcess, cluster_storage):
    nodes = start_cluster(tmp_path, redis_server, cluster_storage())
    try:
        yield nodes
    finally:
        stop_cluster(nodes)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory, cluster_storage):
    """Three nodes and a Redis for the tests that neither kill nor restart anything (each
    on a document of its own)."""
    tmp = tmp_path_factory.mktemp("cluster")
    with running_redis(tmp / "redis") as redis:
        nodes = start_cluster(tmp, redis, cluster_storage())
        try:
            yield nodes
        finally:
            stop_cluster(nodes)


def task_titles(doc) -> set[str]:
    return {t["title"] for t in doc.get("tasks", type=Map).to_py().values()}


def new_task(title: str):
    return lambda d: create_task(d, TaskCreate(title=title), created_by="test")


async def pump_until(client: RawClient, predicate, timeout: float, what: str) -> float:
    """Apply what arrives until ``predicate()``; returns the seconds it took."""
    started = time.monotonic()
    with anyio.fail_after(timeout):
        while not predicate():
            if await client.recv(timeout) is None:
                raise AssertionError(f"closed while waiting for {what}: {client.closed}")
    return time.monotonic() - started


@pytest.mark.anyio
async def test_three_nodes_converge_and_an_edit_on_c_reaches_a_through_redis(
    shared_cluster,
) -> None:
    a_node, b_node, c_node = shared_cluster
    async with (
        RawClient.connect(a_node, DOC, "ann") as a,
        RawClient.connect(b_node, DOC, "ben") as b,
        RawClient.connect(c_node, DOC, "cat") as c,
    ):
        for client in (a, b, c):
            await client.sync()
        # one edit on C, seen on A: the storage poll is a minute away, Redis is not
        n = await c.send_update(c.edit(new_task("from C")))
        assert (await c.outcome(n))["type"] == "ack"
        took = await pump_until(a, lambda: "from C" in task_titles(a.doc), 5, "C's task on A")
        assert took < 1.0, f"C's edit took {took:.2f} s to reach A"

        # edits from every side at once
        async def write(client: RawClient, name: str) -> None:
            for i in range(30):
                await client.send_update(client.edit(new_task(f"{name} {i}")))
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            for client, name in ((a, "ann"), (b, "ben"), (c, "cat")):
                tg.start_soon(write, client, name)
        want = {"from C"} | {f"{n} {i}" for n in ("ann", "ben", "cat") for i in range(30)}
        for client in (a, b, c):
            await pump_until(client, lambda cl=client: task_titles(cl.doc) >= want, 15, "all")

        # and converge in full: the task keys the server writes after each new task (one
        # node's task-keys consumer) included
        def views() -> list[dict]:
            return [cl.doc.get("tasks", type=Map).to_py() for cl in (a, b, c)]

        def converged() -> bool:
            v = views()
            return v[0] == v[1] == v[2] and all(t.get("key") for t in v[0].values())

        deadline = time.monotonic() + 20
        while not converged() and time.monotonic() < deadline:
            for client in (a, b, c):
                await client.drain(0.1)
        final = views()
        assert final[0] == final[1] == final[2]
        assert all(t.get("key") for t in final[0].values()), "every task got its key"
    assert task_titles(stored_doc(a_node.db, DOC)) == task_titles(a.doc)


@pytest.mark.skipif(not node_available(), reason="tests/node has no node_modules (make setup)")
def test_stock_yjs_clients_spread_over_three_nodes_converge(shared_cluster) -> None:
    doc = "p/scale-yjs"
    bases = ",".join(node.ws_url for node in shared_cluster)
    token = shared_cluster[0].token("yann")
    shared_cluster[0].grant("yann", doc.split("/")[1], "owner")
    out = run_node("cross_node.mjs", bases, doc, token, "6", "10", timeout=90)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"converged": True, "counts": [60] * 6, "same": True}, result


@pytest.mark.skipif(not node_available(), reason="tests/node has no node_modules (make setup)")
def test_presence_on_a_is_seen_on_b_as_the_user_a_authenticated(shared_cluster) -> None:
    a_node, b_node, _ = shared_cluster
    doc = "p/scale-presence"
    project = doc.split("/")[1]
    for user in ("alice", "bob"):
        a_node.grant(user, project, "owner")
    out = run_node(
        "presence_cross_node.mjs",
        a_node.ws_url,
        b_node.ws_url,
        doc,
        a_node.token("alice"),
        a_node.token("bob"),
        timeout=60,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    seen = result["seen"]
    assert seen is not None and seen["viewing"] == "t1", result
    # the identity is the one node A authenticated, even where alice claims another
    assert seen["user"]["id"] == "alice", result


@pytest.mark.anyio
async def test_redis_restarted_during_edits_loses_no_update(cluster, redis_server) -> None:
    a_node, b_node, _ = cluster
    sent: list[str] = []
    async with (
        RawClient.connect(a_node, DOC, "ann") as writer,
        RawClient.connect(b_node, DOC, "ben") as reader,
    ):
        await writer.sync()
        await reader.sync()

        async def write() -> None:
            for i in range(300):
                title = f"t{i}"
                await writer.send_update(writer.edit(new_task(title)))
                sent.append(title)
                await anyio.sleep(0.01)

        async def restart_redis() -> None:
            while len(sent) < 80:
                await anyio.sleep(0.01)
            redis_server.kill()
            await anyio.sleep(1.0)
            redis_server.start()  # empty: no persistence

        async def read() -> None:
            await reader.drain(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            tg.start_soon(restart_redis)
            tg.start_soon(read)
        await writer.drain(0.5)
        # the reader's node caught up from storage once it listened to Redis again (its
        # storage poll is a minute away), and hears the edits after the restart from Redis
        want = set(sent)
        await pump_until(reader, lambda: task_titles(reader.doc) >= want, 20, "every task")
        n = await writer.send_update(writer.edit(new_task("after")))
        assert (await writer.outcome(n))["type"] == "ack"
        took = await pump_until(reader, lambda: "after" in task_titles(reader.doc), 10, "after")
        assert took < 2.0, took
    assert task_titles(stored_doc(a_node.db, DOC)) >= want | {"after"}


def lease_holders(db: Path) -> dict[str, tuple[int, int]]:
    """Lease name -> (token, pid of the node that claimed it last), from the fences table."""
    conn = connect(db)  # the SQLite file or the PostgreSQL database
    try:
        rows = conn.execute("SELECT name, token, holder FROM lease_fences").fetchall()
    finally:
        conn.close()
    return {name: (token, int(holder.split(":")[1])) for name, token, holder in rows}


AUTOMATION_ENV = {
    "TANDEM_API_RATE_LIMIT": "0",
    "TANDEM_OUTBOUND_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "TANDEM_OUTBOX_POLL_SECONDS": "0.2",
    "TANDEM_FEED_POLL_SECONDS": "0.2",
}


@pytest.mark.anyio
async def test_kill_9_of_the_lease_holder_under_load_moves_the_consumers_and_acts_once(
    tmp_path: Path, redis_server: RedisProcess, cluster_storage
) -> None:
    nodes = start_cluster(tmp_path, redis_server, cluster_storage(), env_overrides=AUTOMATION_ENV)
    receiver = Receiver()
    try:
        await _kill_the_holder(nodes, receiver)
    finally:
        receiver.close()
        for node in nodes:
            node.stop()


async def _kill_the_holder(nodes: list[ServerProcess], receiver: Receiver) -> None:
    first = nodes[0]
    project = new_project(first)
    doc = f"p/{project}"
    rule = make_rule(
        first,
        project,
        {
            "name": "Every new task: a comment and a webhook",
            "enabled": True,
            "trigger": {"type": "task_created"},
            "actions": [
                {"type": "add_comment", "text": "seen"},
                {"type": "webhook", "url": receiver.url + "/hook/scale-out-test"},
            ],
        },
    )
    assert rule["id"]
    holders = lease_holders(first.db)
    token, pid = holders["feed:automation"]
    outbox_token = holders["outbox"][0]
    victim = next(n for n in nodes if n.proc is not None and n.proc.pid == pid)
    survivors = [n for n in nodes if n is not victim]
    per_writer = 40
    made: dict[str, set[str]] = {}
    received: dict[str, set[str]] = {}

    async def writer(index: int, node: ServerProcess) -> RawClient:
        name = f"w{index}"
        made[name], received[name] = set(), set()
        target = node
        i = 0
        state = b""  # the client's document when its server was killed
        while True:
            async with RawClient.connect(target, doc, name) as client:
                if target is not node:  # back after the kill: what it made goes along
                    client.doc.apply_update(state)
                await client.sync()

                async def reader(client: RawClient = client, name: str = name) -> None:
                    while await client.recv(120) is not None:
                        received[name] |= task_titles(client.doc)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(reader)
                    while i < per_writer and client.closed is None:
                        title = f"{name} {i}"
                        update = client.edit(new_task(title))  # made: it goes along anyway
                        made[name].add(title)
                        i += 1
                        try:
                            await client.send_update(update)
                        except Exception:
                            break  # its server is gone
                        await anyio.sleep(0.03)
                    if i >= per_writer:
                        want = {f"w{k} {j}" for k in range(3) for j in range(per_writer)}
                        with anyio.move_on_after(60):
                            while not received[name] >= want and client.closed is None:
                                await anyio.sleep(0.05)
                        missing = sorted(want - received[name])
                        assert not missing, f"{name} on {target.port} misses {missing[:10]}"
                        if received[name] >= want:
                            tg.cancel_scope.cancel()
                            return client
                    state = client.doc.get_update()
                # its server was killed: reconnect to another one, as a client would
                target = survivors[index % 2]

    async def kill_midway() -> None:
        while len(made.get("w0", ())) < 12:
            await anyio.sleep(0.01)
        victim.kill()

    results: list[RawClient] = []

    async def run_writer(index: int, node: ServerProcess) -> None:
        results.append(await writer(index, node))

    ordered = [victim, *survivors]
    async with anyio.create_task_group() as tg:
        for index, node in enumerate(ordered):
            tg.start_soon(run_writer, index, node)
        tg.start_soon(kill_midway)

    everything = {f"w{k} {j}" for k in range(3) for j in range(per_writer)}
    for name, seen in received.items():
        assert seen >= everything, f"{name} misses {sorted(everything - seen)[:5]}"
    assert task_titles(stored_doc(first.db, doc)) >= everything

    # the automation consumer's lease moved to a surviving node, with a newer token
    moved = wait_until(
        lambda: (h := lease_holders(first.db)["feed:automation"])[1] != pid and h,
        15,
        "the automation lease to move",
    )
    assert moved[0] > token
    # and the outbox's (a lease of its own, renewed on its own clock: it may expire later)
    alive = {n.proc.pid for n in survivors if n.proc}
    wait_until(
        lambda: lease_holders(first.db)["outbox"][1] in alive, 15, "the outbox lease to move"
    )

    # every task: one comment, one delivery (by its Idempotency-Key), no more
    tasks = stored_doc(first.db, doc).get("tasks", type=Map).to_py()
    ours = {tid for tid, t in tasks.items() if t["title"] in everything}
    assert len(ours) == len(everything)

    def comments() -> dict[str, int]:
        chat = stored_doc(first.db, f"{doc}/chat").get("messages", type=Array).to_py()
        counts: dict[str, int] = {}
        for message in chat:
            counts[message.get("task")] = counts.get(message.get("task"), 0) + 1
        return counts

    def delivered_tasks() -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {}
        for _, headers, body in list(receiver.requests):
            task = json.loads(body)["task"]["id"]
            keys.setdefault(task, []).append(headers.get("Idempotency-Key", ""))
        return keys

    wait_until(lambda: set(comments()) >= ours, 60, "a comment on every task")
    wait_until(lambda: set(delivered_tasks()) >= ours, 60, "a delivery for every task")
    time.sleep(3)  # a second action or delivery, if any were coming, has come by now
    counts = comments()
    assert {t: counts[t] for t in ours} == dict.fromkeys(ours, 1)
    keys = delivered_tasks()
    assert all(len(set(keys[t])) == 1 and keys[t][0] for t in ours), keys
    # Sent twice, only with the same key, only what was in flight when a holder stopped:
    # the new holder makes the rows left "sending" due again (the network is at least
    # once; a receiver drops a repeated Idempotency-Key, as the outbox documents), at most
    # the worker's in-flight limit per takeover of the outbox's lease
    repeats = sum(len(keys[t]) - 1 for t in ours)
    takeovers = lease_holders(first.db)["outbox"][0] - outbox_token
    assert repeats <= OutboxConfig().batch * takeovers, f"{repeats} repeats, {takeovers} takeovers"
