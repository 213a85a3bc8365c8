"""Scale-out through Redis: cross-node delivery latency against same-node, and accepted
updates per second for one server against three, in one run.

    .venv/bin/python -m bench.scale_out [--edits 300] [--rate 50] [--writers 6] [--seconds 8]

Real ``tandem serve`` processes on one SQLite file; the three-node cluster shares a
throwaway ``redis-server`` (Debian's package) with its storage poll set to a minute,
so every cross-node delivery measured came through Redis. Clients are pycrdt
documents over real WebSockets (tests/raw_client.py), all in this process (one clock).

- Latency: one writer makes ``--edits`` edits at ``--rate``/s (a task each); a
  reader on the same server and a reader on another server note when each edit
  arrives. Peers: same-node delivery on the single server (no Redis) and on the
  cluster; cross-node delivery on the cluster.
- Throughput: ``--writers`` writers, spread over the servers, each typing into a
  task of its own as fast as the server accepts (up to 32 unacknowledged
  transactions each) for ``--seconds``; counted: acknowledgements per second.

The machine has 2 cores: three servers, Redis and the clients share them, so the
three-node figure measures coordination cost on one machine, not added capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import anyio
from pycrdt import Map, Text

from doc_model import TaskCreate, create_task
from tests.conftest import REDIS_SERVER, RedisProcess, ServerProcess, free_port
from tests.raw_client import RawClient

from .common import report
from .feed_lag import percentile

DOC = "p/scaleout"


def start_nodes(tmp: Path, count: int, redis: RedisProcess | None) -> list[ServerProcess]:
    tokens: dict[str, str] = {}
    nodes = []
    for i in range(count):
        env = dict(os.environ)
        env.update({"TANDEM_LOG_LEVEL": "WARNING", "TANDEM_ROOM_IDLE_SECONDS": "60"})
        if redis is not None:
            env.update({"TANDEM_REDIS": redis.url, "TANDEM_REDIS_POLL_SECONDS": "60"})
        node = ServerProcess(
            db=tmp / "tandem.db",
            port=free_port(),
            env=env,
            log_path=tmp / f"node{i}.log",
            tokens=tokens,
        )
        node.start()
        nodes.append(node)
    return nodes


def task_ids(doc) -> set[str]:
    return set(doc.get("tasks", type=Map).keys())


async def latency(writer_node, readers: dict[str, ServerProcess], edits: int, rate: int) -> dict:
    """Milliseconds from an edit's sending to its arrival at each reader (p50, p99)."""
    sent: dict[str, float] = {}
    arrived: dict[str, dict[str, float]] = {name: {} for name in readers}
    async with RawClient.connect(writer_node, DOC, "writer") as writer:
        await writer.sync()
        clients = {}
        async with contextlib.AsyncExitStack() as stack:
            for name, node in readers.items():
                clients[name] = await stack.enter_async_context(
                    RawClient.connect(node, DOC, f"reader-{name}")
                )
                await clients[name].sync()

            async def read(name: str, client: RawClient) -> None:
                known: set[str] = set()
                while len(arrived[name]) < edits:
                    if await client.recv(30) is None:
                        return
                    now = time.perf_counter()
                    for title in task_ids(client.doc) - known:
                        known.add(title)
                        if title in sent:
                            arrived[name][title] = now

            async def write() -> None:
                for i in range(edits):
                    title = f"e{i}-{time.time_ns()}"
                    update = writer.edit(
                        lambda d, t=title: create_task(
                            d, TaskCreate(title=t), created_by="bench", task_id=t
                        )
                    )
                    sent[title] = time.perf_counter()
                    await writer.send_update(update)
                    await anyio.sleep(1 / rate)

            async def drain_writer() -> None:
                while await writer.recv(30) is not None and writer.tandem is not None:
                    writer.tandem.clear()
                    if all(len(a) >= edits for a in arrived.values()):
                        return

            with anyio.move_on_after(120):
                async with anyio.create_task_group() as tg:
                    for name, client in clients.items():
                        tg.start_soon(read, name, client)
                    tg.start_soon(write)
                    tg.start_soon(drain_writer)
    out = {}
    for name, got in arrived.items():
        ms = [(got[t] - sent[t]) * 1000 for t in got]
        out[name] = {
            "delivered": len(ms),
            "p50_ms": round(percentile(ms, 0.5), 1) if ms else None,
            "p99_ms": round(percentile(ms, 0.99), 1) if ms else None,
        }
    return out


async def throughput(nodes: list[ServerProcess], writers: int, seconds: float) -> float:
    """Accepted transactions per second, writers spread over ``nodes``."""
    acks = 0

    async def one(index: int) -> None:
        nonlocal acks
        node = nodes[index % len(nodes)]
        async with RawClient.connect(node, DOC, f"typist{index}") as client:
            await client.sync()
            task = f"typing-{index}"
            sent = await client.send_update(
                client.edit(
                    lambda d: create_task(
                        d, TaskCreate(title=task), created_by="bench", task_id=task
                    )
                )
            )
            await client.outcome(sent, timeout=30)
            first = sent
            mine = 0
            deadline = time.perf_counter() + seconds
            done = anyio.Event()

            async def receive() -> None:
                nonlocal mine, acks
                while not done.is_set():
                    if await client.recv(30) is None:
                        return
                    for payload in client.tandem:
                        if payload.get("type") == "ack" and payload["n"] > first:
                            mine += 1
                            if time.perf_counter() <= deadline:
                                acks += 1
                    client.tandem.clear()

            async def send() -> None:
                nonlocal sent
                text = client.doc.get("tasks", type=Map)[task]["description"]
                assert isinstance(text, Text)
                while time.perf_counter() < deadline:
                    if sent - first - mine >= 32:
                        await anyio.sleep(0.001)
                        continue
                    before = client.doc.get_state()
                    with client.doc.transaction():
                        text.insert(0, "x")
                    sent = await client.send_update(client.doc.get_update(before))
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                await send()
                await anyio.sleep(1.0)
                tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for i in range(writers):
            tg.start_soon(one, i)
    return round(acks / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--rate", type=int, default=50, help="edits per second (latency)")
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if not os.path.exists(REDIS_SERVER):
        raise SystemExit(f"{REDIS_SERVER} is not installed (make redis)")
    runs: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("one", "three", "redis"):
            (Path(tmp) / part).mkdir()
        single = start_nodes(Path(tmp) / "one", 1, None)
        try:
            runs["one_node_latency"] = anyio.run(
                latency, single[0], {"same_node": single[0]}, args.edits, args.rate
            )
            runs["one_node_updates_per_s"] = anyio.run(
                throughput, single, args.writers, args.seconds
            )
        finally:
            for node in single:
                node.stop()
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        try:
            cluster = start_nodes(Path(tmp) / "three", 3, redis)
            try:
                runs["three_node_latency"] = anyio.run(
                    latency,
                    cluster[0],
                    {"same_node": cluster[0], "cross_node": cluster[2]},
                    args.edits,
                    args.rate,
                )
                runs["three_node_updates_per_s"] = anyio.run(
                    throughput, cluster, args.writers, args.seconds
                )
            finally:
                for node in cluster:
                    node.stop()
        finally:
            redis.kill()
    one = runs["one_node_latency"]
    three = runs["three_node_latency"]
    assert isinstance(one, dict) and isinstance(three, dict)
    summary = {
        "single_server_same_node_p50_ms": one["same_node"]["p50_ms"],
        "single_server_same_node_p99_ms": one["same_node"]["p99_ms"],
        "cluster_same_node_p50_ms": three["same_node"]["p50_ms"],
        "cluster_same_node_p99_ms": three["same_node"]["p99_ms"],
        "cluster_cross_node_p50_ms": three["cross_node"]["p50_ms"],
        "cluster_cross_node_p99_ms": three["cross_node"]["p99_ms"],
        "cross_vs_same_node_p50_ratio": _ratio(
            three["cross_node"]["p50_ms"], three["same_node"]["p50_ms"]
        ),
        "one_node_updates_per_s": runs["one_node_updates_per_s"],
        "three_nodes_updates_per_s": runs["three_node_updates_per_s"],
        "three_vs_one_node_updates_ratio": _ratio(
            runs["three_node_updates_per_s"], runs["one_node_updates_per_s"]
        ),
        "cores": os.cpu_count(),
    }
    report("scale_out", args, summary, runs)


def _ratio(a: object, b: object) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, 2)
    return None


if __name__ == "__main__":
    main()
