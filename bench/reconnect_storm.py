"""Reconnect storm with and without presence: 500 y-websocket clients cut at once, reconnect.

    .venv/bin/python -m bench.reconnect_storm [--clients 500] [--repeat 3]

The storm of tests/test_reconnect_storm.py (tests/node/reconnect_storm.mjs) against a
real `tandem serve`, run with presence off and on (each client sets a `user` field, as
an app does, announces it on every connect, and the server fans it out to all others).
Reports connect, reconnect and converge times, with presence how long until every
client's move after the storm was seen by all others, and the CPU seconds of the server
and of the Node process over the whole run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import NODE_DIR, start_server

from .common import report
from .fanout_peers import cpu_seconds


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(clients: int, presence: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), TANDEM_LOG_LEVEL="WARNING")
        try:
            server.grant("storm", "storm", "manager")
            token = server.token("storm")
            assert server.proc is not None
            cpu0, node0, t0 = cpu_seconds(server.proc.pid), children_cpu(), time.monotonic()
            out = subprocess.run(
                [
                    "node",
                    str(NODE_DIR / "reconnect_storm.mjs"),
                    *(server.ws_url, "p/storm", token, str(clients), presence),
                ],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            wall = time.monotonic() - t0
            server_cpu = cpu_seconds(server.proc.pid) - cpu0
            node_cpu = children_cpu() - node0
            if out.returncode != 0:
                return {"presence": presence, "failed": out.stderr.strip()[-300:]}
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.pop("custom", None)
            log = server.log()
        finally:
            server.stop()
    r.update(
        wall_s=round(wall, 2),
        server_cpu_s=round(server_cpu, 2),
        node_cpu_s=round(node_cpu, 2),
        server_log_problems=sum(1 for ln in log.splitlines() if "ERROR" in ln or "Traceback" in ln),
    )
    return r


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.repeat):
        for presence in runs:
            r = run_once(args.clients, presence)
            print(presence, r, flush=True)
            runs[presence].append(r)
    keys = (
        "connect_ms",
        "reconnect_ms",
        "converge_ms",
        "moves_seen_ms",
        "wall_s",
        "server_cpu_s",
        "node_cpu_s",
    )
    summary: dict[str, dict[str, Any]] = {}
    for presence, rs in runs.items():
        ok = [r for r in rs if "failed" not in r]
        summary[f"presence_{presence}"] = {
            k: statistics.median(vs) if (vs := [r[k] for r in ok if r.get(k) is not None]) else None
            for k in keys
        }
        summary[f"presence_{presence}"]["converged_runs"] = sum(
            1 for r in ok if r["distinct_texts"] == 1
        )
    on, off = summary["presence_on"], summary["presence_off"]
    summary["ratio_on_over_off"] = {
        k: round(on[k] / off[k], 2) for k in ("converge_ms", "server_cpu_s") if on[k] and off[k]
    }
    report("reconnect_storm", args, summary, runs)


if __name__ == "__main__":
    main()
