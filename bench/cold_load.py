"""Cold load of 1,000 / 10,000 / 50,000-task projects from SQLite, and a new client's first sync.

    .venv/bin/python -m bench.cold_load [--sizes 1000,10000,50000] [--repeat 7]

Open = what a room does on its first connection: read snapshot + log from
SQLite and their state vector (bytes mode, no decode). Decode = building the
Doc and attaching the gate, which happens on the first write. Both for a
compacted snapshot alone, and for the snapshot plus a log of 400 small
updates. First sync = a new WebSocket client against a
running `tandem serve`: connect, authenticate, sync step 1 -> step 2 applied
in the client's Doc; "cold" has the room unloaded, "warm" has it loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import anyio
from pycrdt import Map

from doc_model import doc_name, parse_doc_name, set_task_field
from sync_server.core.protocol import SyncStep2, decode_message, encode_sync_step1
from sync_server.core.room import Room, RoomSettings
from sync_server.interfaces import UpdateRecord
from sync_server.shell.demo import seed_demo
from sync_server.storage.offline_edit import load_document
from sync_server.storage.sqlite_store import SQLiteStore
from tests.conftest import start_server
from tests.raw_client import RawClient

from .common import median_ms, write_result

DOC = doc_name("bench")


async def time_room_load(db: Path, repeat: int) -> tuple[list[float], list[float]]:
    """(open times, decode-on-first-write times) of a room on this file."""
    store = SQLiteStore(db, compact_threshold=10**9)
    opens, decodes = [], []
    for _ in range(repeat):
        room = Room(parse_doc_name(DOC), store, settings=RoomSettings())
        t0 = time.perf_counter()
        await room.load()
        t1 = time.perf_counter()
        doc = room.ensure_doc()
        t2 = time.perf_counter()
        assert len(doc.get("tasks", type=Map)) > 0
        opens.append(t1 - t0)
        decodes.append(t2 - t1)
        await room.close()
    await store.close()
    return opens, decodes


async def add_tail(db: Path, updates: int) -> None:
    """Append ``updates`` small edits (one transaction each) after the snapshot."""
    store = SQLiteStore(db, compact_threshold=10**9)
    doc = await load_document(store, DOC)
    tasks = doc.get("tasks", type=Map)
    records: list[UpdateRecord] = []
    doc.observe(lambda event: records.append(UpdateRecord(event.update, "bench")))
    for task_id in list(tasks.keys())[:updates]:
        set_task_field(doc, task_id, "priority", "high")
    for record in records:
        await store.append(DOC, [record])
    await store.close()


async def first_sync(server, repeat: int, cold: bool) -> tuple[list[float], list[float]]:
    """(until the whole document has arrived, until the client has also applied it)."""
    received, applied = [], []
    for _ in range(repeat):
        if cold:
            await anyio.sleep(1.5)  # TANDEM_ROOM_IDLE_SECONDS=0.5: the room unloads
        t0 = time.perf_counter()
        async with RawClient.connect(server, DOC, "bench") as client:
            await client.send(encode_sync_step1(client.doc.get_state()))
            while True:
                message = decode_message(await client.ws.receive_bytes())
                if isinstance(message, SyncStep2):
                    break
            received.append(time.perf_counter() - t0)
            client.doc.apply_update(message.update)
            applied.append(time.perf_counter() - t0)
            assert len(client.doc.get("tasks", type=Map)) > 0
    return received, applied


def run(sizes: list[int], repeat: int) -> dict:
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "tandem.db"
            t0 = time.perf_counter()
            asyncio.run(seed_demo(str(db), project_id="bench", task_count=size))
            seed_s = time.perf_counter() - t0
            db_bytes = db.stat().st_size
            snapshot_open, snapshot_decode = asyncio.run(time_room_load(db, repeat))
            asyncio.run(add_tail(db, 400))
            tail_open, tail_decode = asyncio.run(time_room_load(db, repeat))
            server = start_server(Path(tmp), TANDEM_ROOM_IDLE_SECONDS="0.5")
            try:
                server.token("bench")
                server.grant("bench", "bench", "viewer")
                cold_received, cold_applied = anyio.run(first_sync, server, repeat, True)
                warm_received, warm_applied = anyio.run(first_sync, server, repeat, False)
            finally:
                server.stop()
            row = {
                "tasks": size,
                "seed_seconds": round(seed_s, 2),
                "db_bytes": db_bytes,
                "open_ms_snapshot": median_ms(snapshot_open),
                "decode_ms_snapshot": median_ms(snapshot_decode),
                "open_ms_snapshot_plus_400": median_ms(tail_open),
                "decode_ms_snapshot_plus_400": median_ms(tail_decode),
                "first_sync_received_ms_cold_room": median_ms(cold_received),
                "first_sync_applied_ms_cold_room": median_ms(cold_applied),
                "first_sync_received_ms_warm_room": median_ms(warm_received),
                "first_sync_applied_ms_warm_room": median_ms(warm_applied),
            }
            print(row, flush=True)
            rows.append(row)
    return {"repeat": repeat, "statistic": "median", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    result = run([int(s) for s in args.sizes.split(",")], args.repeat)
    print(f"wrote {write_result('cold_load', {'command': 'python -m bench.cold_load', **result})}")


if __name__ == "__main__":
    main()
