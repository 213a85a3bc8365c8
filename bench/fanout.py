"""Fan-out: N stock y-websocket clients (Node) edit one task; delivered updates/s and latency.

    .venv/bin/python -m bench.fanout [--clients 50] [--edits 100] [--rate 20] [--repeat 3]

Runs Tandem twice in the same run, with permessage-deflate refused (the
default) and accepted (TANDEM_WS_COMPRESSION=on), and reports the ratio.
Server CPU seconds come from /proc; the generator reports its own, so a
reader sees which side bounds a figure. (Issue 4 adds Hocuspocus and the
stock pycrdt-websocket server as peers on this same generator.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import NODE_DIR, start_server

from .common import report


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(compression: str, clients: int, edits: int, rate: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp), TANDEM_WS_COMPRESSION=compression, TANDEM_LOG_LEVEL="WARNING"
        )
        try:
            token = server.token("bench")
            server.grant("bench", "fanout", "owner")
            assert server.proc is not None
            cpu0 = cpu_seconds(server.proc.pid)
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
                ],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=NODE_DIR,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["server_cpu_s"] = round(cpu_seconds(server.proc.pid) - cpu0, 2)
        finally:
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20, help="edits per second per client")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.repeat):
        for compression in ("off", "on"):  # interleaved, so drift hits both alike
            r = run_once(compression, args.clients, args.edits, args.rate)
            print(compression, r, flush=True)
            runs[compression].append(r)

    def med(key: str, c: str) -> float:
        return statistics.median(r[key] for r in runs[c] if r[key] is not None)

    summary = {
        c: {
            k: med(k, c)
            for k in (
                "delivered_per_s",
                "p50_ms",
                "p99_ms",
                "connect_ms",
                "server_cpu_s",
                "generator_cpu_s",
            )
        }
        for c in runs
    }
    summary["ratio_refused_over_accepted"] = {
        "delivered_per_s": round(
            summary["off"]["delivered_per_s"] / summary["on"]["delivered_per_s"], 2
        ),
        "p99_ms": round(summary["off"]["p99_ms"] / max(summary["on"]["p99_ms"], 1), 2),
        "server_cpu_s": round(
            summary["off"]["server_cpu_s"] / max(summary["on"]["server_cpu_s"], 0.01), 2
        ),
    }
    report("fanout_compression", args, summary, runs)


if __name__ == "__main__":
    main()
