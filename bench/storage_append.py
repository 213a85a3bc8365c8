"""Append cost: PostgreSQL versus SQLite, the same DocumentStore code on each (one run).

``DocumentStore.append`` of 1-record and 20-record batches of real one-character text
updates, one after the other (a room appends once per coalesced batch), each append timed:
median and p99 per append, per update, appends/s, and the ratio to SQLite (FULL, the
default). Stores: ``sqlite`` (WAL, synchronous=FULL: fsync per commit), ``sqlite-normal``
(synchronous=NORMAL), ``postgresql`` (Debian's server started here in a temporary
directory, fsync on, synchronous_commit on: durable per commit like FULL; over TCP on
127.0.0.1). Every append is also a change-feed row and reads access_generation, as
in the server.

    .venv/bin/python -m bench.storage_append --appends 500 --repeat 3 --against /work/main

``--against DIR``: also the SQLite appends of another checkout's store (before PostgreSQL
support: that the adapter costs SQLite nothing), each side in a process of its own with
its own code on PYTHONPATH, interleaved, the same batches.
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

from bench.common import write_result
from bench.durability import sample_updates
from sync_server.interfaces import UpdateRecord
from sync_server.storage.sqlite_store import SQLiteStore
from tests.postgres_server import PostgresServer, postgres_bin

STORES = ("sqlite", "sqlite-normal", "postgresql")


async def appends(target: str, synchronous: str, batch: int, n: int) -> list[float]:
    store = SQLiteStore(target, synchronous=synchronous, compact_threshold=10**9)
    records = [UpdateRecord(u, "bench") for u in sample_updates(n * batch)]
    times: list[float] = []
    try:
        await store.append("p/warm", records[:1])  # connections open, statements prepared
        for i in range(n):
            t0 = time.perf_counter()
            await store.append("p/store", records[i * batch : (i + 1) * batch])
            times.append(time.perf_counter() - t0)
    finally:
        await store.close()
    return times


SQLITE_ONLY = """
import asyncio, json, sys, time, statistics
from pycrdt import Doc, Text
from sync_server.interfaces import UpdateRecord
from sync_server.storage.sqlite_store import SQLiteStore
path, sync, batch, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
doc = Doc(); text = doc.get("t", type=Text); ups = []
doc.observe(lambda e: ups.append(e.update))
for _ in range(n * batch + 1):
    text += "x"
async def run():
    store = SQLiteStore(path, synchronous=sync, compact_threshold=10**9)
    recs = [UpdateRecord(u, "bench") for u in ups]
    await store.append("p/warm", recs[:1])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await store.append("p/store", recs[1 + i * batch : 1 + (i + 1) * batch])
        times.append(time.perf_counter() - t0)
    await store.close()
    print(json.dumps(times))
asyncio.run(run())
"""


def sqlite_ab(other: str, batch: int, n: int, repeat: int, tmp: str) -> dict:
    """Median ms per SQLite append, this checkout's store versus ``other``'s."""
    here = str(Path(__file__).resolve().parent.parent)
    out: dict = {}
    for sync in ("FULL", "NORMAL"):
        times: dict[str, list[float]] = {"this": [], "other": []}
        for r in range(repeat):
            for side, root in (("this", here), ("other", other)):
                env = {**os.environ, "PYTHONPATH": root}
                path = str(Path(tmp) / f"ab-{side}-{sync}-{batch}-{r}.db")
                proc = subprocess.run(
                    [sys.executable, "-c", SQLITE_ONLY, path, sync, str(batch), str(n)],
                    env=env,
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[side] += json.loads(proc.stdout)
        this, before = (statistics.median(times[k]) * 1000 for k in ("this", "other"))
        out[f"sqlite_{sync.lower()}"] = {
            "this_ms": round(this, 4),
            "other_ms": round(before, 4),
            "ratio": round(this / before, 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", default="1,20")
    parser.add_argument("--against", default=None, metavar="DIR")
    args = parser.parse_args()
    bindir = postgres_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: `make postgresql`")
    server = PostgresServer(bindir, durable=True)
    server.start()
    summary: dict = {}
    runs: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for batch in (int(b) for b in args.batches.split(",")):
                samples: dict[str, list[float]] = {s: [] for s in STORES}
                per_run: dict[str, list[float]] = {s: [] for s in STORES}
                for r in range(args.repeat):
                    for store in STORES:
                        if store == "postgresql":
                            target, sync = server.create_database(), "FULL"
                        else:
                            target = str(Path(tmp) / f"{store}-{batch}-{r}.db")
                            sync = "NORMAL" if store == "sqlite-normal" else "FULL"
                        times = asyncio.run(appends(target, sync, batch, args.appends))
                        samples[store] += times
                        per_run[store].append(round(args.appends / sum(times)))
                        print(batch, store, r, per_run[store][-1], "appends/s", flush=True)
                row: dict = {}
                for store, times in samples.items():
                    ordered = sorted(times)
                    median = statistics.median(ordered)
                    row[store] = {
                        "median_ms_per_append": round(median * 1000, 3),
                        "p99_ms_per_append": round(ordered[int(len(ordered) * 0.99)] * 1000, 3),
                        "median_ms_per_update": round(median * 1000 / batch, 4),
                        "appends_per_s": statistics.median(per_run[store]),
                    }
                base = row["sqlite"]["median_ms_per_append"]
                for store in STORES:
                    row[store]["ratio_to_sqlite"] = round(
                        row[store]["median_ms_per_append"] / base, 2
                    )
                if args.against:
                    row["sqlite_against"] = sqlite_ab(
                        args.against, batch, args.appends, args.repeat, tmp
                    )
                summary[f"batch_{batch}"] = row
                runs[f"batch_{batch}"] = per_run
                print(f"batch {batch}", row, flush=True)
    finally:
        server.stop()
    path = write_result(
        "storage_append",
        {
            "command": "python -m bench.storage_append " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "statistic": "median over every append of every repeat",
            "postgresql": str(bindir.parent.name),
            "against": args.against,
            "summary": summary,
            "appends_per_s_by_run": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
