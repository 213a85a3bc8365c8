"""GC pauses and slow callbacks in the reconnect storm, in asyncio debug mode.

    .venv/bin/python -m bench.gc_pauses [--clients 250] [--repeat 3] [--debug 1|timing]
        [--env NAME=VALUE ...] [--label NAME]

The storm of tests/test_reconnect_storm.py against a real `tandem serve` with
TANDEM_ASYNCIO_DEBUG (1: debug mode, as the test; timing: the same measurements without
it). The server logs every cyclic-GC collection of 10 ms or more on its event loop's
thread (loop_debug, `tandem.gc`) and every callback over 50 ms with its CPU / run-queue /
gc split. Reports, over all runs: the number of such collections per generation with their
p50 / p90 / max, and the slow callbacks (all, GC-caused, over 100 ms). ``--env`` passes
settings to the server (e.g. TANDEM_GC_THRESHOLDS=off to compare with the collector as
Python sets it).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import NODE_DIR, start_server

from .common import report

GC_LINE = re.compile(r"gc generation (\d) took ([0-9.]+) s")
SLOW = re.compile(r"took ([0-9.]+) seconds \(cpu ([0-9.]+) s, runqueue ([0-9.]+) s, gc ([0-9.]+) s")


def quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {
        "n": len(v),
        "p50_ms": round(v[len(v) // 2] * 1000, 1),
        "p90_ms": round(v[min(len(v) - 1, int(len(v) * 0.9))] * 1000, 1),
        "max_ms": round(v[-1] * 1000, 1),
    }


def run_once(clients: int, debug: str, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp), TANDEM_ASYNCIO_DEBUG=debug, TANDEM_ASYNCIO_SLOW_CALLBACK_MS="50", **env
        )
        try:
            server.grant("storm", "storm", "manager")
            out = subprocess.run(
                [
                    "node",
                    str(NODE_DIR / "reconnect_storm.mjs"),
                    *(server.ws_url, "p/storm", server.token("storm"), str(clients), "on"),
                ],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            server.stop()
        log = server.log()
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"failed": out.stderr.strip()[-300:]}
    result.pop("custom", None)
    gcs: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for m in GC_LINE.finditer(log):
        gcs[int(m[1])].append(float(m[2]))
    slow = [tuple(float(x) for x in m.groups()) for m in SLOW.finditer(log)]
    return {"storm": result, "gc": gcs, "slow": slow}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--debug", default="1")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--label", default="gc_pauses")
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    runs = [run_once(args.clients, args.debug, env) for _ in range(args.repeat)]
    gcs = {g: [t for r in runs for t in r["gc"][g]] for g in (0, 1, 2)}
    slow = [s for r in runs for s in r["slow"]]
    summary = {
        "clients": args.clients,
        "runs": args.repeat,
        "debug": args.debug,
        "env": env,
        "gc_pauses_over_10ms": {f"gen{g}": quantiles(gcs[g]) for g in (0, 1, 2)},
        "slow_callbacks": {
            "all": quantiles([s[0] for s in slow]),
            "over_100ms": sum(1 for s in slow if s[0] >= 0.1),
            "gc_at_least_50ms": sum(1 for s in slow if s[3] >= 0.05),
            "own_cpu_at_least_50ms": sum(1 for s in slow if s[1] - s[3] >= 0.05),
        },
        "storms": [r["storm"] for r in runs],
    }
    report(
        args.label, args, summary, [{"gc": r["gc"], "slow": r["slow"]} for r in runs], "gc_pauses"
    )


if __name__ == "__main__":
    main()
