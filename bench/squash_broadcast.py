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

from sync_server.update_squash import squash_update

from .common import report

NODE_DIR = Path(__file__).resolve().parent / "node"


def batch_of(typists: int, keystrokes: int) -> tuple[bytes, list[bytes]]:
    """The document before the batch, and the batch's updates in arrival order."""
    base = Doc()
    base.get("tasks", type=Map)["bench"] = Map({"title": Text("|" * typists)})
    before = base.get_update()
    per_typist: list[list[bytes]] = []
    for i in range(typists):
        doc = Doc()
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
    report("squash_broadcast", args, summary, runs=[])


if __name__ == "__main__":
    main()
