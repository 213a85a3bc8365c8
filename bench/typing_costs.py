"""What a typing burst costs the server per keystroke, in CPU time, part by part.

    .venv/bin/python bench/typing_costs.py [--keystrokes 5000] [--repeat 7] [--name NAME]
    PYTHONPATH=DIR .venv/bin/python bench/typing_costs.py --name NAME   # another checkout's code

The fan-out benchmark measures the whole server under load, which on a shared 2-core
machine is mostly the other sessions' noise. This one measures the parts issue 19 added
to every keystroke, in one process, in CPU time (``time.thread_time`` for the event
loop's part, ``time.process_time`` where worker threads take part), the minimum of
``--repeat`` runs:

- **gate**: the gate (sync_server.core.gate) applying N one-character insertions into
  a task's description, each its own client transaction, with its domain events and
  with them switched off (``Gate._domain_events`` and ``_prepare_index`` replaced by
  no-ops): the difference is what the events cost the event loop per keystroke.
- **feed**: a SQLiteStore appending those N keystrokes' records (batches of 100, as a
  room's flusher does, changes and events as the gate hands them out), then the change
  feed delivering them to the activity and notifications consumers (with
  ``NOTIFYING_KINDS`` where the checkout has it), per row: ``append_us`` and
  ``consume_us``, and ``append_bare_us`` for the same updates with no changes or events
  (what the log costs without the feed's rows).

Run it as a script (not ``-m``) so that ``PYTHONPATH`` can point at another checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map, Text

from doc_model import DocKind, TaskCreate, create_project_meta, create_task, parse_doc_name
from doc_model.schema import declare_roots
from sync_server.core.gate import Gate
from sync_server.extensions.activity import ActivityRecorder
from sync_server.extensions.feed import ChangeFeed
from sync_server.extensions.notifications import NotificationCenter
from sync_server.interfaces import Actor, UpdateRecord
from sync_server.storage.database import SQLiteWorker, connect
from sync_server.storage.sqlite_store import SQLiteStore

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 100


def keystrokes(n: int) -> tuple[bytes, list[bytes]]:
    """A project with one task, and n client transactions typing into its description."""
    client: Doc = Doc()
    declare_roots(client, DocKind.MAIN)
    create_project_meta(client, "Typing")
    task_id = create_task(client, TaskCreate(title="a task"), created_by="bench")
    start = client.get_update()
    text = client.get("tasks", type=Map)[task_id]["description"]
    assert isinstance(text, Text)
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    for _ in range(n):
        with client.transaction():
            text.insert(len(text), "x")
    return start, updates


def gate_run(start: bytes, updates: list[bytes], events: bool) -> tuple[float, list[Any]]:
    doc: Doc = Doc()
    declare_roots(doc, DocKind.MAIN)
    gate = Gate(doc, parse_doc_name("p/typing"))
    actor = Actor("bench")
    gate.apply(start, actor)
    if not events:
        gate._domain_events = lambda *a, **k: ()  # type: ignore[method-assign]
        gate._prepare_index = lambda deletes: None  # type: ignore[method-assign]
    results = []
    began = time.thread_time()
    for update in updates:
        results.append(gate.apply(update, actor))
    spent = time.thread_time() - began
    assert all(r.accepted for r in results)
    return spent / len(updates) * 1e6, results


async def feed_run(records: list[UpdateRecord], bare: list[UpdateRecord]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "typing.db"
        store = SQLiteStore(db, compact_threshold=10**9)
        feed = ChangeFeed(db, poll_seconds=30)  # read when woken, after the appends
        workers = [SQLiteWorker(connect(str(db), synchronous="NORMAL")) for _ in range(2)]
        try:
            from sync_server.extensions.notifications import NOTIFYING_KINDS

            kinds: dict[str, Any] = {"kinds": NOTIFYING_KINDS}
        except ImportError:  # a checkout before consumers could take some kinds only
            kinds = {}
        feed.subscribe("activity", ActivityRecorder(workers[0]).documents_changed)
        feed.subscribe("notifications", NotificationCenter(workers[1]).documents_changed, **kinds)
        await feed.start()
        try:
            other = SQLiteStore(Path(tmp) / "bare.db", compact_threshold=10**9)
            began = time.process_time()
            for i in range(0, len(bare), BATCH):
                await other.append("p/bare", bare[i : i + BATCH])
            bare_cpu = time.process_time() - began
            await other.close()
            began = time.process_time()
            for i in range(0, len(records), BATCH):
                await store.append("p/typing", records[i : i + BATCH])
            append_cpu = time.process_time() - began
            last = len(records)
            began = time.process_time()
            feed.wake()
            while feed.position("activity") < last or feed.position("notifications") < last:
                await asyncio.sleep(0.005)
            consume_cpu = time.process_time() - began
        finally:
            await feed.close(drain_seconds=0)
            for worker in workers:
                await worker.close()
            await store.close()
    n = len(records)
    return {
        "append_bare_us": bare_cpu / len(bare) * 1e6,
        "append_us": append_cpu / n * 1e6,
        "consume_us": consume_cpu / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keystrokes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--name", default="typing_costs", help="results file: results/NAME.json")
    args = parser.parse_args()
    start, updates = keystrokes(args.keystrokes)
    runs: dict[str, list[float]] = {}
    records: list[UpdateRecord] = []
    for _ in range(args.repeat):
        with_events, results = gate_run(start, updates, True)
        without, _ = gate_run(start, updates, False)
        runs.setdefault("gate_us", []).append(with_events)
        runs.setdefault("gate_without_events_us", []).append(without)
        records = [
            UpdateRecord(u, "bench", changes=r.changes, events=r.events)
            for u, r in zip(updates, results, strict=True)
        ]
    bare = [UpdateRecord(u, "bench") for u in updates]
    for _ in range(args.repeat):
        for key, value in asyncio.run(feed_run(records, bare)).items():
            runs.setdefault(key, []).append(value)
    summary = {key: round(min(values), 2) for key, values in runs.items()}
    summary["gate_events_us"] = round(summary["gate_us"] - summary["gate_without_events_us"], 2)
    import sync_server

    code = str(Path(sync_server.__file__).resolve().parent.parent)
    print(json.dumps({"code": code, **summary}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    data = {
        "benchmark": "typing_costs",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join(["python bench/typing_costs.py", *sys.argv[1:]]),
        "code": code,
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "statistic": "min",
        "summary": summary,
        "runs": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
