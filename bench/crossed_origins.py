"""What the crossed-origins check (sync_server.core.gate, docs/security.md "Forged updates")
costs per keystroke: Gate.apply with the check and with it stubbed out, in one run.

Two shapes on a task description of 2,000 characters: ``burst`` (typing on at one place,
each keystroke's left origin the previous one) and ``scattered`` (every keystroke at
another place, so the description splits into ever more blocks the sticky index walks).
"""

from __future__ import annotations

import argparse
import statistics
import time

from pycrdt import Map

from bench.common import report
from doc_model import (
    DocKind,
    TaskCreate,
    create_project_meta,
    create_task,
    new_document,
    parse_doc_name,
)
from sync_server.core.gate import Gate
from sync_server.interfaces import Actor


def _keystrokes(shape: str, n: int) -> tuple[bytes, list[bytes]]:
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    task = create_task(server, TaskCreate(title="t", description="x" * 2000), created_by="x")
    client = new_document(DocKind.MAIN)
    client.apply_update(server.get_update())
    sent: list[bytes] = []
    client.observe(lambda e: sent.append(e.update))
    text = client.get("tasks", type=Map)[task]["description"]
    for k in range(n):
        text.insert(1000 + (k if shape == "burst" else (k * 7919) % 900), "y")
    return server.get_update(), sent


def _run(base: bytes, sent: list[bytes], check: bool) -> float:
    doc = new_document(DocKind.MAIN)
    doc.apply_update(base)
    gate = Gate(doc, parse_doc_name("p/bench"))
    if not check:
        gate._crossed = lambda left, right: False  # type: ignore[method-assign]
    start = time.perf_counter()
    for update in sent:
        gate.apply(update, Actor("a"))
    return (time.perf_counter() - start) / len(sent) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keystrokes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    summary: dict = {}
    runs: dict = {}
    for shape in ("burst", "scattered"):
        base, sent = _keystrokes(shape, args.keystrokes)
        with_check = [_run(base, sent, True) for _ in range(args.repeat)]
        without = [_run(base, sent, False) for _ in range(args.repeat)]
        on, off = statistics.median(with_check), statistics.median(without)
        summary[shape] = {
            "us_per_keystroke_with_check": round(on, 1),
            "us_per_keystroke_without": round(off, 1),
            "ratio": round(on / off, 2),
        }
        runs[shape] = {"with": with_check, "without": without}
    report("crossed_origins", args, summary, runs)


if __name__ == "__main__":
    main()
