"""Durability cost: accepted updates/s with durable SQLite appends versus an in-memory store.

    .venv/bin/python -m bench.durability [--sizes 2x2000,20x200] [--repeat 3]

Two measurements, each interleaved across stores so drift hits all alike:

1. End to end: the real server (bench/tandem_server.py: `tandem serve` with the store
   swapped, gate on) under the fan-out generator (bench/node/fanout_peers.mjs): N
   y-websocket clients make M edits each at full speed. accepted/s = N*M / time from the
   first edit to its last arrival (an edit reaches others only after its batch's append
   returned). Stores: sqlite (synchronous=FULL, the default), sqlite-normal
   (TANDEM_SQLITE_SYNCHRONOUS=NORMAL: WAL commits without fsync), memory
   (sync_server/storage/memory_store.py, nothing durable).
2. The store alone: DocumentStore.append of one-record and 20-record batches in a loop,
   appends/s (a room appends once per coalesced batch, not once per update).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pycrdt import Doc, Text

from sync_server.interfaces import DocumentStore, UpdateRecord
from sync_server.storage.memory_store import MemoryStore
from sync_server.storage.sqlite_store import SQLiteStore
from tests.conftest import ROOT, free_port, grant_role, make_token

from .common import write_result
from .fanout_peers import run_generator

STORES = ("sqlite", "sqlite-normal", "memory")


def start(tmp: Path, store: str) -> tuple[subprocess.Popen, int, str]:
    db = tmp / "tandem.db"
    token = make_token(db, "bench")
    grant_role(db, "bench", "durability", "manager")
    port = free_port()
    env = dict(os.environ, TANDEM_LOG_LEVEL="WARNING")
    if store == "sqlite-normal":
        env["TANDEM_SQLITE_SYNCHRONOUS"] = "NORMAL"
    kind = "memory" if store == "memory" else "sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.tandem_server",
            "--db",
            str(db),
            "--port",
            str(port),
            "--store",
            kind,
        ],
        cwd=ROOT,
        env=env,
        stdout=open(tmp / "server.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port, token
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def end_to_end(store: str, clients: int, edits: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, token = start(Path(tmp), store)
        try:
            r = run_generator(
                proc.pid,
                "y-websocket",
                f"ws://127.0.0.1:{port}/sync",
                "p/durability",
                token,
                clients,
                edits,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    if "failed" not in r:
        r["accepted_per_s"] = round(clients * edits / max(r["seconds"], 0.001))
    r["store"] = store
    return r


def sample_updates(n: int) -> list[bytes]:
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for _ in range(n):
        text += "x"
    return updates


async def store_appends(store: str, batch: int, n: int, tmp: Path) -> float:
    s: DocumentStore
    if store == "memory":
        s = MemoryStore(compact_threshold=None)  # dicts only: what appends cost without disk
    else:
        sync = "NORMAL" if store == "sqlite-normal" else "FULL"
        s = SQLiteStore(tmp / f"{store}-{batch}-{time.monotonic_ns()}.db", synchronous=sync)
    records = [UpdateRecord(u, "bench") for u in sample_updates(n * batch)]
    t0 = time.perf_counter()
    for i in range(n):
        await s.append("p/store", records[i * batch : (i + 1) * batch])
    elapsed = time.perf_counter() - t0
    await s.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2x2000,20x200")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--appends", type=int, default=1000)
    args = parser.parse_args()

    e2e: dict = {}
    runs: dict = {}
    for size in args.sizes.split(","):
        n, m = (int(x) for x in size.split("x"))
        by_store: dict[str, list[dict]] = {s: [] for s in STORES}
        for _ in range(args.repeat):
            for store in STORES:
                r = end_to_end(store, n, m)
                print(size, store, r, flush=True)
                by_store[store].append(r)
        summary: dict = {}
        for store, rs in by_store.items():
            ok = [r for r in rs if "failed" not in r]
            summary[store] = {
                k: statistics.median(r[k] for r in ok) if ok else None
                for k in (
                    "accepted_per_s",
                    "delivered_per_s",
                    "p50_ms",
                    "p99_ms",
                    "server_cpu_s",
                    "generator_cpu_s",
                    "server_cores",
                    "generator_cores",
                )
            }
        mem = summary["memory"]["accepted_per_s"]
        summary["ratio_to_memory"] = {
            s: round(summary[s]["accepted_per_s"] / mem, 2) if mem else None for s in STORES
        }
        e2e[size] = summary
        runs[size] = by_store
        print(size, summary, flush=True)

    appends: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 20):
            rates: dict[str, list[float]] = {s: [] for s in STORES}
            for _ in range(args.repeat):
                for store in STORES:
                    rates[store].append(
                        asyncio.run(store_appends(store, batch, args.appends, Path(tmp)))
                    )
            med = {s: round(statistics.median(v)) for s, v in rates.items()}
            appends[f"batch_{batch}"] = {
                "appends_per_s": med,
                "updates_per_s": {s: v * batch for s, v in med.items()},
                "ratio_to_memory": {s: round(v / med["memory"], 4) for s, v in med.items()},
            }
            print(f"batch {batch}", appends[f"batch_{batch}"], flush=True)

    path = write_result(
        "durability",
        {
            "command": "python -m bench.durability " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "statistic": "median",
            "end_to_end": e2e,
            "store_appends": appends,
            "runs": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
