"""Gate cost on a 10,000-task document: accepted transactions/s with the gate on versus off.

    .venv/bin/python -m bench.gate_cost [--tasks 10000] [--transactions 2000] [--repeat 5]
        [--shape random|typing]

One client makes N transactions against a copy of the seeded document:
``random`` (the default) a one-character title edit on a random task at a random
place, the most common write; ``typing`` bursts of 50 keystrokes, each typed right
after the previous one, in a random task's title or description (what a person
typing sends). Each run applies the same updates to fresh copies of the server
document three ways, interleaved, in one run:
  off       apply_update inside a transaction (what any relay must do)
  schema    the Gate with the schema check only
  full      the Gate with schema + permissions (the real resolver on SQLite)
and reports medians and the ratio to "off". The first update of each run is applied
before the clock starts (it builds the gate's lazily built indexes: task owners).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from pycrdt import Doc, Map

from doc_model import parse_doc_name
from rules import Grant
from sync_server.core.gate import Gate
from sync_server.identity import access
from sync_server.interfaces import Actor
from sync_server.shell.demo import seed_demo
from sync_server.storage.database import open_database
from sync_server.storage.offline_edit import load_document
from sync_server.storage.sqlite_store import SQLiteStore

from .common import write_result

DOC = "p/gate"


def make_updates(base: bytes, n: int, shape: str = "random") -> list[bytes]:
    client: Doc = Doc()
    client.apply_update(base)
    tasks = client.get("tasks", type=Map)
    ids = list(tasks.keys())
    rng = random.Random(1)
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    while len(updates) < n + 1:
        if shape == "random":
            with client.transaction():
                title = tasks[rng.choice(ids)]["title"]
                title.insert(rng.randint(0, len(title)), "x")
            continue
        text = tasks[rng.choice(ids)][rng.choice(("title", "description"))]
        at = rng.randint(0, len(str(text)))
        for k in range(50):
            with client.transaction():
                text.insert(at + k, "x")
    return updates[: n + 1]


MODES = ("off", "schema", "full")


def run(tasks: int, n: int, repeat: int, shape: str = "random") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "tandem.db")
        asyncio.run(seed_demo(db, project_id="gate", task_count=tasks))

        async def load() -> bytes:
            store = SQLiteStore(db)
            doc = await load_document(store, DOC)
            await store.close()
            return doc.get_update()

        base = asyncio.run(load())
        conn = open_database(db).conn
        access.set_grant(conn, Grant("ann", "gate", "manager"), "bench")
        resolver = access.PermissionResolver(conn)
        updates = make_updates(base, n, shape)
        first, updates = updates[0], updates[1:]
        name = parse_doc_name(DOC)
        actor = Actor("ann")
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(repeat):
            for mode in MODES:
                doc: Doc = Doc()
                doc.apply_update(base)
                gate = None
                if mode != "off":
                    gate = Gate(doc, name, resolver.check if mode == "full" else None)
                    assert gate.apply(first, actor).accepted
                else:
                    doc.apply_update(first)
                t0 = time.perf_counter()
                for u in updates:
                    if gate is None:
                        with doc.transaction(origin="relay"):
                            doc.apply_update(u)
                    else:
                        assert gate.apply(u, actor).accepted
                rates[mode].append(n / (time.perf_counter() - t0))
        conn.close()
    med = {m: round(statistics.median(r)) for m, r in rates.items()}
    return {
        "shape": shape,
        "tasks": tasks,
        "transactions": n,
        "repeat": repeat,
        "statistic": "median",
        "transactions_per_s": med,
        "runs": {m: [round(r) for r in rs] for m, rs in rates.items()},
        "ratio_to_off": {m: round(med[m] / med["off"], 2) for m in med},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shape", choices=("random", "typing"), default="random")
    parser.add_argument("--name", default="gate_cost")
    args = parser.parse_args()
    result = run(args.tasks, args.transactions, args.repeat, args.shape)
    print(result)
    command = f"python -m bench.gate_cost --shape {args.shape} --repeat {args.repeat}"
    print(f"wrote {write_result(args.name, {'command': command, **result})}")


if __name__ == "__main__":
    main()
