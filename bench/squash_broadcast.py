"""What squashing a room's broadcast saves: bytes, and a stock Yjs receiver's time to apply it.

    .venv/bin/python -m bench.squash_broadcast [--typists 50] [--keystrokes 1,4,16] [--repeat 200]

One batch as a busy room gathers it: T typists (each its own client id, all at
their own place in one task's title, as in bench.fanout_peers) each type K
characters, one transaction per keystroke, arriving round-robin. The room
broadcasts ``merge_updates`` of the batch; since update_squash, it broadcasts
that merged update squashed. For each K this reports both updates' bytes and
items, the server's time to merge and to squash (median of --repeat), and the
median time one stock Yjs receiver (Node, ``bench/node/apply_update.mjs``) takes
to apply each to the document as it was before the batch: what every client of
the room pays for every batch.

``from_document``: what the alternative costs, encoding a 64-update batch from a
--doc-tasks project (``doc.get_update(state_before)``, which carries the whole
delete set), against merging and squashing it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pycrdt import Doc, Map, Text, merge_updates

from sync_server.core.update_squash import squash_update
from tests.conftest import project_with_tasks

from .common import report

NODE_DIR = Path(__file__).resolve().parent / "node"


def batch_of(typists: int, keystrokes: int) -> tuple[bytes, list[bytes]]:
    """The document before the batch, and the batch's updates in arrival order."""
    base: Doc = Doc()
    base.get("tasks", type=Map)["bench"] = Map({"title": Text("|" * typists)})
    before = base.get_update()
    per_typist: list[list[bytes]] = []
    for i in range(typists):
        doc: Doc = Doc()
        doc.apply_update(before)
        title = doc.get("tasks", type=Map)["bench"]["title"]
        made: list[bytes] = []
        sub = doc.observe(lambda event, made=made: made.append(event.update))
        for k in range(keystrokes):
            title.insert(i + 1 + k, "x")  # right after this typist's last character
        doc.unobserve(sub)
        per_typist.append(made)
    arrivals = [per_typist[i][k] for k in range(keystrokes) for i in range(typists)]
    return before, arrivals


def from_document_cost(tasks: int, repeat: int) -> dict:
    """The alternative to squashing: encode the batch from the server's document,
    ``doc.get_update(state_before)``, which yrs squashes, but which always carries the
    document's whole delete set. A project of ``tasks`` real tasks, a third of them edited
    (moved, a character typed and two deleted in the title), then a batch of 64 title
    edits."""
    doc = project_with_tasks(tasks)
    tasks_map = doc.get("tasks", type=Map)
    for i in range(0, tasks, 3):
        with doc.transaction():
            task = tasks_map[f"t{i}"]
            task["status"] = "in_progress"
            task["title"].insert(0, "x")
            del task["title"][2:4]
    before = doc.get_state()
    batch: list[bytes] = []
    sub = doc.observe(lambda event: batch.append(event.update))
    for i in range(64):
        with doc.transaction():
            tasks_map[f"t{i * 7 % tasks}"]["title"].insert(0, "y")
    doc.unobserve(sub)
    merged = merge_updates(*batch)
    return {
        "tasks": tasks,
        "document_bytes": len(doc.get_update()),
        "updates_in_batch": len(batch),
        "from_document_us": median_us(lambda: doc.get_update(before), repeat),
        "from_document_bytes": len(doc.get_update(before)),
        "merge_and_squash_us": median_us(lambda: squash_update(merge_updates(*batch)), repeat),
        "merge_and_squash_bytes": len(squash_update(merged)),
    }


def median_us(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return round(statistics.median(samples) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--typists", type=int, default=50)
    parser.add_argument("--keystrokes", default="1,4,16")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--doc-tasks", type=int, default=20000)
    args = parser.parse_args()
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for keystrokes in [int(k) for k in args.keystrokes.split(",")]:
            before, updates = batch_of(args.typists, keystrokes)
            merged = merge_updates(*updates)
            squashed = squash_update(merged)
            paths = {}
            for name, data in (("base", before), ("merged", merged), ("squashed", squashed)):
                paths[name] = Path(tmp) / f"{keystrokes}-{name}.bin"
                paths[name].write_bytes(data)
            out = subprocess.run(
                [
                    "node",
                    "apply_update.mjs",
                    str(paths["base"]),
                    str(paths["merged"]),
                    str(paths["squashed"]),
                    "--repeat",
                    str(args.repeat),
                ],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                check=True,
            )
            applied = json.loads(out.stdout.strip().splitlines()[-1])
            m, s = applied[str(paths["merged"])], applied[str(paths["squashed"])]
            row = {
                "updates_in_batch": len(updates),
                "merged_bytes": len(merged),
                "squashed_bytes": len(squashed),
                "merged_items": m["items"],
                "squashed_items": s["items"],
                "server_merge_us": median_us(lambda u=updates: merge_updates(*u), args.repeat),
                "server_squash_us": median_us(lambda m=merged: squash_update(m), args.repeat),
                "receiver_apply_merged_ms": m["apply_ms"],
                "receiver_apply_squashed_ms": s["apply_ms"],
            }
            row["squashed_over_merged_bytes"] = round(len(squashed) / len(merged), 2)
            row["squashed_over_merged_apply"] = round(s["apply_ms"] / m["apply_ms"], 2)
            summary[f"{args.typists}x{keystrokes}"] = row
    summary["from_document"] = from_document_cost(args.doc_tasks, min(args.repeat, 50))
    report("squash_broadcast", args, summary, runs=[])


if __name__ == "__main__":
    main()
