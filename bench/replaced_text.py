"""Replaced text: a busy room's encoded size while clients replace 4 KB descriptions.

    .venv/bin/python -m bench.replaced_text [--minutes 10] [--clients 4] [--rate 1]
        [--old-tree /tmp/old-tandem] [--sample-seconds 60]

--clients pycrdt clients (tests/raw_client.py, real WebSockets) each own one task in one
project and replace its whole 4 KB description (delete all, insert 4 KB) --rate times a
second, each waiting for the server's ack, for --minutes. Every --sample-seconds a fresh
client connects and takes its first sync; reported per sample: the bytes it received
(the room's encoded state, what every new client downloads), the content size (the same
state re-encoded by a fresh Doc, which collects everything deleted) and their ratio, and
the server's RSS.

With --old-tree, the same load goes to a second server run from that checkout (e.g. a
worktree at 55194b2, before Room._collect_garbage), interleaved in the same loop: every
tick sends each server its replacement, so both see the same edits at the same time on
the same machine. Each server is set up (user, token, grant) by its own tree's code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from pycrdt import Doc, Map, Text

from doc_model import TaskCreate, create_task
from sync_server.core.protocol import SyncStep2, encode_sync_step1
from tests.conftest import free_port
from tests.raw_client import RawClient

from .common import report
from .fanout_peers import rss_mb, wait_port

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION_BYTES = 4096
PROJECT = "replacedtext01"
DOC = f"p/{PROJECT}"

SETUP = (
    "import sys; from pathlib import Path; from tests.conftest import make_token, grant_role; "
    "db = Path(sys.argv[1]); token = make_token(db, 'bench'); "
    "grant_role(db, 'bench', sys.argv[2], 'manager'); print(token)"
)


class Server:
    """`tandem serve` run from ``tree`` (its own code, this venv's interpreter)."""

    def __init__(self, label: str, tree: Path, tmp: Path) -> None:
        self.label = label
        self.tree = tree
        self.db = tmp / f"{label}.db"
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "TANDEM_LOG_LEVEL": "WARNING",
            "TANDEM_ROOM_IDLE_SECONDS": "600",
        }
        out = subprocess.run(
            [sys.executable, "-c", SETUP, str(self.db), PROJECT],
            cwd=tree,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self._token = out.stdout.strip().splitlines()[-1]
        self.log_path = tmp / f"{label}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        serve = ["serve", "--db", str(self.db), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync_server.shell.cli", *serve],
            cwd=tree,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port, self.proc)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"

    def token(self, user: str) -> str:
        return self._token

    def errors(self) -> int:
        text = self.log_path.read_text(errors="replace")
        return sum(1 for ln in text.splitlines() if "Traceback" in ln or " ERROR" in ln)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def content_size(update: bytes) -> int:
    doc: Doc = Doc()
    doc.apply_update(update)
    return len(doc.get_update())


async def first_sync(server: Server) -> bytes:
    async with RawClient.connect(server, DOC, "bench", token=server.token("bench")) as c:
        await c.send(encode_sync_step1(b"\x00"))
        while True:
            msg = await c.recv(timeout=60)
            assert msg is not None, c.closed
            if isinstance(msg, SyncStep2):
                return msg.update


async def reader(client: RawClient) -> None:
    while await client.recv(timeout=3600) is not None:
        pass


async def acked(client: RawClient, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(p.get("n") == n for p in client.tandem):
        if client.closed or time.monotonic() > deadline:
            raise RuntimeError(f"no ack for update {n}: {client.closed}")
        await asyncio.sleep(0.005)
    outcome = next(p for p in client.tandem if p.get("n") == n)
    client.tandem.clear()
    if outcome.get("type") != "ack":
        raise RuntimeError(f"update refused: {outcome}")


def replace(client: RawClient, task: str, i: int) -> bytes:
    def fn(doc: Doc) -> None:
        text = doc.get("tasks", type=Map)[task]["description"]
        assert isinstance(text, Text)
        del text[0 : len(text)]
        text += (f"{task}-{i:07d} " * DESCRIPTION_BYTES)[:DESCRIPTION_BYTES]

    return client.edit(fn)


async def drive(servers: list[Server], clients: int, rate: float, minutes: float, every: float):
    samples: dict[str, list[dict]] = {s.label: [] for s in servers}
    done = {s.label: 0 for s in servers}
    async with AsyncExitStack() as stack:
        conns: dict[str, list[RawClient]] = {}
        readers = []
        for s in servers:
            conns[s.label] = []
            for _ in range(clients):
                cl = await stack.enter_async_context(
                    RawClient.connect(s, DOC, "bench", token=s.token("bench"))
                )
                await cl.sync()
                conns[s.label].append(cl)
            for c, cl in enumerate(conns[s.label]):
                n = await cl.send_update(
                    cl.edit(
                        lambda d, c=c: create_task(
                            d, TaskCreate(title=f"spec {c}"), created_by="bench", task_id=f"t{c}"
                        )
                    )
                )
                await cl.outcome(n, timeout=30)
                cl.tandem.clear()
            for cl in conns[s.label]:
                readers.append(asyncio.create_task(reader(cl)))

        async def one(label: str, c: int, i: int) -> None:
            cl = conns[label][c]
            n = await cl.send_update(replace(cl, f"t{c}", i))
            await acked(cl, n)
            done[label] += 1

        async def sample(t: float) -> None:
            for s in servers:
                t0 = time.monotonic()
                update = await first_sync(s)
                sync_s = time.monotonic() - t0
                live = content_size(update)
                row = {
                    "seconds": round(t),
                    "replacements": done[s.label],
                    "first_sync_bytes": len(update),
                    "content_bytes": live,
                    "ratio": round(len(update) / live, 2),
                    "first_sync_s": round(sync_s, 3),
                    "rss_mb": rss_mb(s.proc.pid),
                }
                samples[s.label].append(row)
                print(s.label, row, flush=True)

        start = time.monotonic()
        await sample(0)
        next_sample = every
        tick = 0
        period = 1 / rate
        behind = 0
        while (now := time.monotonic() - start) < minutes * 60:
            if now >= next_sample:
                await sample(now)
                next_sample += every
            # every client of every server replaces its description once per period
            await asyncio.gather(*(one(s.label, c, tick) for s in servers for c in range(clients)))
            tick += 1
            wait = start + tick * period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                behind += 1
        await sample(time.monotonic() - start)
        for r in readers:
            r.cancel()
    return samples, tick, behind


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1.0, help="replacements/s per client")
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument("--old-tree", default="", help="a checkout of the code before the fix")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        servers = [Server("this", ROOT, Path(tmp))]
        try:
            if args.old_tree:
                servers.append(Server("old", Path(args.old_tree), Path(tmp)))
            samples, ticks, behind = asyncio.run(
                drive(servers, args.clients, args.rate, args.minutes, args.sample_seconds)
            )
            errors = {s.label: s.errors() for s in servers}
        finally:
            for s in servers:
                s.stop()
    old_rev = ""
    if args.old_tree:
        old_rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=args.old_tree,
            capture_output=True,
            text=True,
        ).stdout.strip()
    summary: dict = {
        "load_average_at_start": [round(x, 2) for x in load_before],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "ticks": ticks,
        "ticks_behind_schedule": behind,
        "old_tree_commit": old_rev,
        "server_log_errors": errors,
    }
    for label, rows in samples.items():
        last = rows[-1]
        summary[label] = {
            "replacements": last["replacements"],
            "deleted_text_mb": round(last["replacements"] * DESCRIPTION_BYTES / 2**20, 1),
            "first_sync_bytes_end": last["first_sync_bytes"],
            "content_bytes_end": last["content_bytes"],
            "ratio_end": last["ratio"],
            "ratio_max": max(r["ratio"] for r in rows),
            "first_sync_s_end": last["first_sync_s"],
            "rss_mb_start": rows[0]["rss_mb"],
            "rss_mb_end": last["rss_mb"],
        }
    if "old" in samples:
        summary["first_sync_bytes_this_over_old_end"] = round(
            samples["this"][-1]["first_sync_bytes"] / samples["old"][-1]["first_sync_bytes"], 3
        )
    report("replaced_text", args, summary, samples)


if __name__ == "__main__":
    main()
