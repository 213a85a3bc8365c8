"""Memory: server RSS per idle connection, per loaded document, and 1,000 idle connections.

    .venv/bin/python -m bench.memory [--connections 1000] [--docs 20] [--tasks 1000] [--repeat 3]
        [--pycrdt-repeat 1]
    .venv/bin/python -m bench.memory --spread 1000,2000 [--projects 200] [--repeat 3]
        [--peers tandem,hocuspocus]

RSS is read from /proc/<pid>/status (VmRSS) of the server process, each measurement
on a fresh server (freed Python memory is not always returned to the OS).

1. Idle connections: one client syncs a small project (the room is loaded), RSS; then
   --connections more y-websocket clients (no presence state) connect and sync the same
   document and sit idle, RSS again after 2 s. Per connection = delta / connections.
   The server's CPU over the next 10 idle seconds is reported too. Run for Tandem
   (token auth, gate on) and, as reference, Hocuspocus and stock pycrdt-websocket.
2. Loaded documents (Tandem): --docs projects of --tasks tasks each, one client per
   document. RSS after all synced (rooms open in bytes mode: stored bytes only), then
   after one edit per document (each room decodes its Doc), each minus a fresh server's.

With --spread N1,N2 (instead of 1 and 2; written to results/memory_projects.json): N
connections spread evenly over --projects documents, per server, interleaved (tandem,
hocuspocus, tandem, ...), each run on a fresh server. RSS empty; after one client per
project has synced (every room open; Tandem's in bytes mode); after that client adds one
task to each (every room holds a decoded Doc: a loaded room); after the other N - projects
clients have synced and sat 2 s. Per idle connection = the last step's delta / (N -
projects); per loaded room = (loaded - empty) / projects minus one connection's share
(each room's first client), with the raw figure beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sync_server.interfaces import UpdateRecord
from sync_server.shell.demo import seed_demo
from sync_server.storage.offline_edit import load_document
from sync_server.storage.sqlite_store import SQLiteStore
from tests.conftest import start_server

from .common import write_result
from .fanout_peers import NODE, Peer, cpu_seconds, rss_mb


class IdleClients:
    def __init__(self, kind: str, url: str, token: str, per_doc: int, docs: list[str]) -> None:
        self.proc = subprocess.Popen(
            [
                "node",
                str(NODE / "idle_clients.mjs"),
                kind,
                url,
                token,
                str(per_doc),
                ",".join(docs),
            ],
            cwd=NODE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.synced = self.expect("synced")

    def expect(self, phase: str) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                msg = json.loads(line)
                if msg.get("phase") == phase:
                    return msg
        raise RuntimeError(f"idle clients exited before {phase!r} ({self.proc.wait()})")

    def command(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.command("quit")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def settle_rss(pid: int, seconds: float = 2.0) -> float:
    time.sleep(seconds)
    return rss_mb(pid)


def idle_connections(peer_name: str, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer(peer_name, Path(tmp), TANDEM_ROOM_IDLE_SECONDS="600")
        doc = "p/fanout" if peer_name == "tandem" else "fanout"
        clients: list[IdleClients] = []
        try:
            base = settle_rss(peer.pid, 1)
            clients.append(IdleClients(peer.kind, peer.url, peer.token, 1, [doc]))
            rss1 = settle_rss(peer.pid)
            many = IdleClients(peer.kind, peer.url, peer.token, connections, [doc])
            clients.append(many)
            rss_n = settle_rss(peer.pid)
            cpu0 = cpu_seconds(peer.pid)
            time.sleep(10)
            idle_cpu = cpu_seconds(peer.pid) - cpu0
            rss_after = rss_mb(peer.pid)
        finally:
            for c in reversed(clients):
                c.close()
            peer.stop()
    return {
        "server": peer_name,
        "rss_mb_empty": base,
        "rss_mb_one_client": rss1,
        f"rss_mb_{connections}_idle": rss_n,
        "rss_mb_after_10s_idle": rss_after,
        "kb_per_idle_connection": round((rss_n - rss1) * 1024 / connections, 1),
        "connect_ms": many.synced["connect_ms"],
        "idle_cpu_s_per_10s": round(idle_cpu, 2),
    }


def spread_connections(peer_name: str, connections: int, projects: int) -> dict:
    """``connections`` idle clients over ``projects`` loaded rooms (see the docstring)."""
    names = [f"memproject{i:04d}" for i in range(projects)]
    per_doc = connections // projects
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer(peer_name, Path(tmp), TANDEM_ROOM_IDLE_SECONDS="600")
        if peer.tandem is not None:
            for name in names:
                peer.tandem.grant("bench", name, "manager")
            docs = [f"p/{n}" for n in names]
        else:
            docs = names
        clients: list[IdleClients] = []
        try:
            base = settle_rss(peer.pid, 1)
            first = IdleClients(peer.kind, peer.url, peer.token, 1, docs)
            clients.append(first)
            opened = settle_rss(peer.pid)
            first.command("edit")
            first.expect("edited")
            loaded = settle_rss(peer.pid)
            rest = IdleClients(peer.kind, peer.url, peer.token, per_doc - 1, docs)
            clients.append(rest)
            rss_n = settle_rss(peer.pid)
            cpu0 = cpu_seconds(peer.pid)
            time.sleep(5)
            idle_cpu = cpu_seconds(peer.pid) - cpu0
        finally:
            for c in reversed(clients):
                c.close()
            peer.stop()
    extra = projects * (per_doc - 1)
    per_conn_kb = (rss_n - loaded) * 1024 / extra
    return {
        "server": peer_name,
        "connections": projects * per_doc,
        "projects": projects,
        "rss_mb_empty": base,
        "rss_mb_rooms_open": opened,
        "rss_mb_rooms_loaded": loaded,
        "rss_mb_all_connected": rss_n,
        "kb_per_idle_connection": round(per_conn_kb, 1),
        "kb_per_loaded_room": round((loaded - base) * 1024 / projects - per_conn_kb, 1),
        "kb_per_loaded_room_with_its_first_connection": round((loaded - base) * 1024 / projects, 1),
        "connect_ms_rest": rest.synced["connect_ms"],
        "idle_cpu_s_per_5s": round(idle_cpu, 2),
    }


def spread_main(args: argparse.Namespace) -> None:
    peers = args.peers.split(",")
    sizes = [int(n) for n in args.spread.split(",")]
    runs: dict[str, dict[str, list[dict]]] = {str(n): {p: [] for p in peers} for n in sizes}
    load = [round(x, 2) for x in os.getloadavg()]
    for _ in range(args.repeat):
        for n in sizes:
            for p in peers:
                try:
                    r = spread_connections(p, n, args.projects)
                except Exception as e:  # a peer that cannot hold the connections is a result
                    r = {"server": p, "failed": str(e)[:300]}
                r["load_average_1m"] = round(os.getloadavg()[0], 2)
                print("spread", n, r, flush=True)
                runs[str(n)][p].append(r)
    summary: dict = {"load_average_at_start": load}
    for size, by_peer in runs.items():
        row: dict = {}
        for p, rs in by_peer.items():
            ok = [r for r in rs if "failed" not in r]
            row[p] = {
                k: statistics.median(r[k] for r in ok)
                for k in (ok[0] if ok else {})
                if isinstance(ok[0][k], int | float)
            }
            if len(ok) < len(rs):
                row[p]["failures"] = [r["failed"] for r in rs if "failed" in r]
        t = row.get("tandem", {})
        for p in by_peer:
            if p == "tandem":
                continue
            o = row[p]
            for k in ("kb_per_idle_connection", "kb_per_loaded_room", "rss_mb_all_connected"):
                if t.get(k) and o.get(k):
                    row.setdefault("tandem_over", {}).setdefault(p, {})[k] = round(t[k] / o[k], 2)
        summary[f"{size}_connections"] = row
    summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(summary, indent=2))
    path = write_result(
        "memory_projects",
        {
            "command": "python -m bench.memory " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "statistic": "median",
            "summary": summary,
            "runs": runs,
        },
    )
    print(f"wrote {path}")


def seed(db: Path, docs: int, tasks: int) -> None:
    async def run() -> None:
        await seed_demo(str(db), project_id="m0", task_count=tasks)
        store = SQLiteStore(db)
        try:
            update = (await load_document(store, "p/m0")).get_update()
            for i in range(1, docs):
                await store.append(f"p/m{i}", [UpdateRecord(update, "system:bench")])
                await store.compact(f"p/m{i}")
        finally:
            await store.close()

    asyncio.run(run())


def loaded_documents(docs: int, tasks: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), TANDEM_ROOM_IDLE_SECONDS="600", TANDEM_LOG_LEVEL="WARNING")
        try:
            server.stop()
            seed(server.db, docs, tasks)
            token = server.token("bench")
            for i in range(docs):
                server.grant("bench", f"m{i}", "manager")
            server.start()
            assert server.proc is not None
            pid = server.proc.pid
            base = settle_rss(pid, 1)
            clients = IdleClients(
                "y-websocket", server.ws_url, token, 1, [f"p/m{i}" for i in range(docs)]
            )
            loaded = settle_rss(pid)
            clients.command("edit")
            clients.expect("edited")
            decoded = settle_rss(pid)
            clients.close()
        finally:
            server.stop()
    return {
        "docs": docs,
        "tasks_per_doc": tasks,
        "rss_mb_no_rooms": base,
        "rss_mb_loaded_bytes_mode": loaded,
        "rss_mb_decoded": decoded,
        "mb_per_doc_bytes_mode": round((loaded - base) / docs, 2),
        "mb_per_doc_decoded": round((decoded - base) / docs, 2),
        "open_ms": clients.synced["connect_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", default="tandem,hocuspocus,pycrdt")
    parser.add_argument("--pycrdt-repeat", type=int, default=1)
    parser.add_argument("--spread", default="", help="connection counts over --projects rooms")
    parser.add_argument("--projects", type=int, default=200)
    args = parser.parse_args()
    if args.spread:
        spread_main(args)
        return
    peers = args.peers.split(",")

    idle: dict[str, list[dict]] = {p: [] for p in peers}
    for i in range(args.repeat):
        for p in peers:
            if p == "pycrdt" and i >= args.pycrdt_repeat:
                continue
            try:
                r = idle_connections(p, args.connections)
            except Exception as e:  # a peer that cannot hold the connections is a result
                r = {"server": p, "failed": str(e)[:300]}
            print("idle", r, flush=True)
            idle[p].append(r)
    docs: list[dict] = []
    for _ in range(args.repeat):
        r = loaded_documents(args.docs, args.tasks)
        print("docs", r, flush=True)
        docs.append(r)

    def med(rows: list[dict]) -> dict:
        ok = [r for r in rows if "failed" not in r]
        keys = [k for k in (ok[0] if ok else {}) if isinstance(ok[0][k], int | float)]
        out = {k: statistics.median(r[k] for r in ok) for k in keys}
        if len(ok) < len(rows):
            out["failures"] = [r["failed"] for r in rows if "failed" in r]
        return out

    summary = {
        "idle_connections": {p: med(rs) for p, rs in idle.items()},
        "loaded_documents": med(docs),
    }
    t = summary["idle_connections"].get("tandem", {}).get("kb_per_idle_connection")
    summary["tandem_kb_per_connection_over"] = {
        p: round(t / s["kb_per_idle_connection"], 2)
        for p, s in summary["idle_connections"].items()
        if p != "tandem" and t and s.get("kb_per_idle_connection")
    }
    print(json.dumps(summary, indent=2))
    path = write_result(
        "memory",
        {
            "command": "python -m bench.memory " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "statistic": "median",
            "summary": summary,
            "runs": {"idle_connections": idle, "loaded_documents": docs},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
