"""deploy/: three real `tandem serve` nodes sharing ONE SQLite file behind Debian's HAProxy,
run with deploy/haproxy.cfg itself (its addresses come from the environment).

Clients through the balancer land on different nodes and converge (a node applies the
others' stored updates within TANDEM_EXTERNAL_POLL_SECONDS); REST works through it; a node
killed with SIGKILL is taken out by the balancer's /readyz checks and its client, on
reconnecting, converges through another node; a node whose SQLite file another process
has locked says 503 on /readyz while /healthz still answers."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest

from doc_model import TaskCreate, create_task
from tests.conftest import ROOT, ServerProcess, api_client, free_port, wait_until
from tests.raw_client import RawClient

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
)
CONFIG = ROOT / "deploy" / "haproxy.cfg"

pytestmark = pytest.mark.skipif(
    HAPROXY is None,
    reason="haproxy is not installed (Debian: `make haproxy` or apt-get install haproxy)",
)


@dataclass
class Balancer(ServerProcess):
    """HAProxy run as a ServerProcess (started once /healthz answers through it): its URLs
    are what clients use; accounts, tokens and grants are the shared file's (``db``)."""

    stats_port: int = 0
    nodes: list[ServerProcess] = field(default_factory=list)

    def command(self) -> list[str]:
        assert HAPROXY is not None
        return [HAPROXY, "-db", "-f", str(CONFIG)]

    def states(self) -> dict[str, str]:
        """node name -> HAProxy's status of it (UP, DOWN, "UP 1/2", ...)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.stats_port}/;csv").text.lstrip("# ")
        except httpx.HTTPError:
            return {}
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == "tandem_nodes" and row["svname"].startswith("node")
        }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Balancer]:
    env = dict(os.environ)
    env.update({"TANDEM_ROOM_IDLE_SECONDS": "2", "TANDEM_EXTERNAL_POLL_SECONDS": "0.2"})
    env["TANDEM_DRAIN_SECONDS"] = "3"  # as deploy/tandem.env, shorter: /readyz 503, then stop
    db = tmp_path / "tandem.db"
    nodes = [
        ServerProcess(db=db, port=free_port(), env=env, log_path=tmp_path / f"node{i}.log")
        for i in (1, 2, 3)
    ]
    lb_env = dict(os.environ)
    port, stats_port = free_port(), free_port()
    lb_env.update(
        TANDEM_LB_BIND=f"127.0.0.1:{port}",
        TANDEM_LB_STATS=f"127.0.0.1:{stats_port}",
        TANDEM_CHECK_INTER="300ms",
        **{f"TANDEM_NODE{i}": f"127.0.0.1:{n.port}" for i, n in enumerate(nodes, 1)},
    )
    lb = Balancer(
        db=db,
        port=port,
        env=lb_env,
        log_path=tmp_path / "haproxy.log",
        stats_port=stats_port,
        nodes=nodes,
    )
    try:
        nodes[0].start()  # makes the schema; the others open the same file together
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServerProcess.start, nodes[1:]))
        lb.start()
        try:
            wait_until(
                lambda: set(lb.states().values()) == {"UP"}, 20, "HAProxy to see three nodes up"
            )
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- haproxy ---\n{lb.log()}") from e
        yield lb
    finally:
        lb.stop()
        with ThreadPoolExecutor(3) as pool:  # each drains for 3 s first
            list(pool.map(ServerProcess.stop, nodes))


def connections(node: ServerProcess) -> int:
    return httpx.get(node.http_url + "/healthz").json()["connections"]


def add_task(title: str):
    def edit(d):
        create_task(d, TaskCreate(title=title), created_by="test")

    return edit


def titles(client: RawClient) -> set[str]:
    return {str(t["title"]) for t in client.doc["tasks"].values()}


async def settle(clients: list[RawClient], want: set[str], timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not all(want <= titles(c) for c in clients):
            for c in clients:
                await c.drain(0.1)


@pytest.mark.anyio
async def test_three_nodes_behind_haproxy(cluster: Balancer):
    lb = cluster
    # REST writes through the balancer: the project every client then edits
    with api_client(lb, "ann") as api:
        created = api.post("/projects/", json={"name": "Balanced"})
        assert created.status_code == 201, created.text
        project = created.json()["id"]
    doc = f"p/{project}"
    # the metrics stay with the operator: the balancer refuses them
    assert httpx.get(lb.http_url + "/metrics").status_code == 404
    assert httpx.get(lb.http_url + "/readyz").status_code == 200
    for user in ("ben", "cat"):
        lb.grant(user, project)
        lb.token(user)
    async with RawClient.connect(lb, doc, "ann", role=None) as ann:
        await ann.sync()
        ann_node = next(i for i, node in enumerate(lb.nodes) if connections(node))
        async with (
            RawClient.connect(lb, doc, "ben", role=None) as ben,
            RawClient.connect(lb, doc, "cat", role=None) as cat,
        ):
            await ben.sync()
            await cat.sync()
            # leastconn: one client on each node (sticky-free, nothing pins a document)
            per_node = [connections(n) for n in lb.nodes]
            assert per_node == [1, 1, 1], per_node
            clients = [ann, ben, cat]
            for c, title in zip(clients, ("from ann", "from ben", "from cat"), strict=True):
                m = await c.send_update(c.edit(add_task(title)))
                assert (await c.outcome(m))["type"] == "ack"
            await settle(clients, {"from ann", "from ben", "from cat"})

            # REST through the balancer reads what the sockets wrote (whichever node answers)
            with api_client(lb, "ann") as api:
                for _ in range(3):
                    listed = api.get(f"/projects/{project}/tasks/")
                    assert listed.status_code == 200, listed.text
                    assert {t["title"] for t in listed.json()["items"]} >= {
                        "from ann",
                        "from ben",
                        "from cat",
                    }
                too_big = api.post(
                    f"/projects/{project}/tasks/",
                    content=b"x" * (2 * 1024 * 1024),
                    headers={"Content-Type": "application/json"},
                )
                assert too_big.status_code == 413

            # kill -9 a node ann is not on: one of ben and cat loses its socket, and HAProxy
            # marks the node down
            victim = next(i for i in range(3) if i != ann_node)
            lb.nodes[victim].kill()
            await anyio.to_thread.run_sync(
                lambda: wait_until(
                    lambda: lb.states()[f"node{victim + 1}"].startswith("DOWN"),
                    10,
                    "HAProxy to take the killed node out",
                )
            )
            survivors = [ben, cat]
            for c in survivors:
                await c.drain(0.3)
            lost = [c for c in survivors if c.closed is not None]
            assert len(lost) == 1, [c.closed for c in survivors]
            kept = next(c for c in survivors if c.closed is None)
            # the lost client reconnects through the balancer (to a live node) and converges
            async with RawClient.connect(lb, doc, "cat", role=None) as back:
                back.doc = lost[0].doc  # its own offline state, as a provider keeps it
                await back.sync()
                m = await back.send_update(back.edit(add_task("after the kill")))
                assert (await back.outcome(m))["type"] == "ack"
                want = {"from ann", "from ben", "from cat", "after the kill"}
                await settle([ann, kept, back], want)
                assert sorted(titles(ann)) == sorted(titles(kept)) == sorted(titles(back))
            # every new request goes to the live nodes
            for _ in range(6):
                assert httpx.get(lb.http_url + "/readyz").status_code == 200


def test_a_stopping_node_is_taken_out_while_it_drains(cluster: Balancer):
    lb = cluster
    node = lb.nodes[2]
    assert node.proc is not None
    node.proc.send_signal(signal.SIGTERM)
    # HAProxy marks it down from its /readyz while the node still serves (3 s of drain)
    wait_until(lambda: lb.states()["node3"].startswith("DOWN"), 3, "HAProxy to take it out")
    assert httpx.get(node.http_url + "/healthz").status_code == 200
    assert httpx.get(node.http_url + "/readyz").status_code == 503
    # new requests through the balancer all go to the other two
    for _ in range(6):
        assert httpx.get(lb.http_url + "/readyz").status_code == 200
    node.proc.wait(timeout=20)


def test_locked_storage_makes_nodes_not_ready_but_alive(cluster: Balancer):
    lb = cluster
    node = lb.nodes[1]
    other = sqlite3.connect(node.db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the shared file's write lock
        ready = httpx.get(node.http_url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert "storage" in ready.json()["detail"] and "write lock" in ready.json()["detail"]
        assert httpx.get(node.http_url + "/healthz").status_code == 200
        # every node shares the file: the balancer takes them all out rather than send
        # clients to nodes that cannot store an edit
        wait_until(
            lambda: all(s.startswith("DOWN") for s in lb.states().values()),
            10,
            "HAProxy to mark the nodes down",
        )
        assert httpx.get(lb.http_url + "/healthz").status_code == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_until(lambda: set(lb.states().values()) == {"UP"}, 15, "the nodes to come back up")
    assert httpx.get(lb.http_url + "/readyz").status_code == 200
