"""Change-feed lag: from commit (the feed row's ``created``) to a consumer's handler call.

    .venv/bin/python -m bench.feed_lag [--clients 50] [--edits 100] [--rate 20] [--repeat 3]

A real server process runs with a consumer extension loaded beside the built-in
ones (activity, notifications) through ``TANDEM_EXTENSIONS``;
it appends ``feed_id wall-clock-time`` for every change it is handed to a file.
The load is the fan-out generator's (N stock y-websocket clients in Node, each
making ``--edits`` edits at ``--rate``/s on one document, typing into a task's
description so that every edit is accepted). Afterwards the lag
of each row is its handler time minus its ``created`` time, both
``time.time()`` on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sync_server.extensions import Extension, ServerContext
from sync_server.interfaces import DocumentChanged
from tests.conftest import NODE_DIR, start_server

from .common import report

LOG_VARIABLE = "BENCH_FEED_LAG_LOG"


class LagConsumer(Extension):
    """Loaded into the server: records when each feed row reached a handler."""

    name = "bench-feed-lag"
    durable = True

    def __init__(self) -> None:
        self.path = os.environ[LOG_VARIABLE]

    async def change_accepted(self, ctx: ServerContext, events: Sequence[DocumentChanged]) -> None:
        now = time.time()
        with open(self.path, "a") as f:
            f.write("".join(f"{e.feed_id} {now:.6f}\n" for e in events))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(clients: int, edits: int, rate: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "lag.txt"
        server = start_server(
            Path(tmp),
            TANDEM_LOG_LEVEL="WARNING",
            TANDEM_EXTENSIONS="bench.feed_lag:LagConsumer",
            **{LOG_VARIABLE: str(log)},
        )
        try:
            token = server.token("bench")
            server.grant("bench", "fanout", "owner")
            out = subprocess.run(
                [
                    "node",
                    str(NODE_DIR / "fanout.mjs"),
                    server.ws_url,
                    "p/fanout",
                    token,
                    str(clients),
                    str(edits),
                    str(rate),
                    "description",  # every edit accepted (a title is refused past 500 chars)
                ],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=NODE_DIR,
                check=True,
            )
            fanout = json.loads(out.stdout.strip().splitlines()[-1])
            conn = sqlite3.connect(server.db)
            try:
                created = dict(
                    conn.execute("SELECT id, created FROM change_feed WHERE changes != '[]'")
                )
            finally:
                conn.close()
            seen: dict[int, float] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if log.exists():
                    for line in log.read_text().splitlines():
                        feed_id, at = line.split()
                        seen.setdefault(int(feed_id), float(at))
                if set(created) <= set(seen):
                    break
                time.sleep(0.2)
        finally:
            server.stop()
    lags = [(seen[i] - created[i]) * 1000 for i in created if i in seen]
    return {
        "rows": len(created),
        "delivered": len(lags),
        "lag_p50_ms": round(percentile(lags, 0.5), 1) if lags else None,
        "lag_p99_ms": round(percentile(lags, 0.99), 1) if lags else None,
        "lag_max_ms": round(max(lags), 1) if lags else None,
        "fanout_delivered_per_s": fanout.get("delivered_per_s"),
        "fanout_p99_ms": fanout.get("p99_ms"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20, help="edits per second per client")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        r = run_once(args.clients, args.edits, args.rate)
        print(r, flush=True)
        runs.append(r)
    summary = {
        k: statistics.median(r[k] for r in runs if r[k] is not None)
        for k in ("rows", "delivered", "lag_p50_ms", "lag_p99_ms", "lag_max_ms")
    }
    report("feed_lag", args, summary, runs)


if __name__ == "__main__":
    main()
