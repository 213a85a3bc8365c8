"""GC pauses and slow callbacks in the reconnect storm, in asyncio debug mode.

    .venv/bin/python -m bench.gc_pauses [--clients 250] [--repeat 3] [--debug 1|timing]
        [--node-nice N] [--against DIR [--against-nice N]] [--env NAME=VALUE ...]
        [--label NAME]

The storm of tests/test_reconnect_storm.py against a real `tandem serve` with
TANDEM_ASYNCIO_DEBUG (1: debug mode, as the test; timing: the same measurements without
it). The server logs every cyclic-GC collection of 10 ms or more on its event loop's
thread (loop_debug, `tandem.gc`) and every callback over 50 ms with its CPU / run-queue /
gc split. Reports, per run and as medians over the runs: how many callbacks debug mode
reported (all; those whose own CPU, GC included, reached 50 ms; those slow only for a
wait for a core or a thread), the worst wall time and the worst CPU in one callback, and the longest
full collection. ``--node-nice`` runs the Node clients at that lower CPU priority, as the
test does (``NODE_NICE`` there). ``--against DIR`` alternates each run with a server from
another checkout (its code, this .venv): an A/B on the same loaded machine; with
``--against-nice`` that side's clients run at another priority (``--against .``: the same
code, the clients' priority as the only difference) and with ``--against-env`` settings of
its own. ``--env`` passes settings to both servers (TANDEM_GC_THRESHOLDS=700,10,10 sets
the collector's thresholds after the startup freeze).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import NODE_DIR, ServerProcess, free_port, start_server

from .common import report

GC_LINE = re.compile(r"gc generation (\d) took ([0-9.]+) s")
SLOW = re.compile(
    r"took ([0-9.]+) seconds \(cpu ([0-9.]+) s, runqueue ([0-9.]+) s, gc ([0-9.]+) s, "
    r"blocked ([0-9.]+) s, others ([0-9.]+) s"
)


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


def _server(tmp: Path, checkout: Path | None, env: dict[str, str]) -> ServerProcess:
    if checkout is None:
        return start_server(tmp, **env)
    import os

    server = ServerProcess(
        db=tmp / "tandem.db",
        port=free_port(),
        env={**os.environ, "TANDEM_ROOM_IDLE_SECONDS": "2", **env},
        log_path=tmp / "server.log",
        cwd=checkout,
    )
    server.start()
    return server


def run_once(
    clients: int, debug: str, env: dict[str, str], nice: int = 0, checkout: Path | None = None
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = _server(
            Path(tmp),
            checkout,
            {"TANDEM_ASYNCIO_DEBUG": debug, "TANDEM_ASYNCIO_SLOW_CALLBACK_MS": "50", **env},
        )
        try:
            server.grant("storm", "storm", "manager")
            node = ["node", str(NODE_DIR / "reconnect_storm.mjs")]
            out = subprocess.run(
                [
                    *(["nice", "-n", str(nice)] if nice else []),
                    *node,
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
    # wall, cpu, runqueue, gc, blocked, others
    slow = [tuple(float(x) for x in m.groups()) for m in SLOW.finditer(log)]
    return {"storm": result, "gc": gcs, "slow": slow, "figures": figures(gcs, slow)}


def figures(gcs: dict[int, list[float]], slow: list[tuple[float, ...]]) -> dict:
    """One run's figures."""
    return {
        "slow_callbacks": len(slow),
        "own_cpu_50ms": sum(1 for s in slow if s[1] >= 0.05),
        "gc_50ms": sum(1 for s in slow if s[3] >= 0.05),
        "waited_only": sum(1 for s in slow if s[1] < 0.05),
        "worst_wall_ms": round(max((s[0] for s in slow), default=0) * 1000),
        "worst_cpu_ms": round(max((s[1] for s in slow), default=0) * 1000),
        "full_gc_max_ms": round(max(gcs[2], default=0) * 1000),
        "full_gcs_10ms": len(gcs[2]),
    }


def summarize(runs: list[dict]) -> dict:
    gcs = {g: [t for r in runs for t in r["gc"][g]] for g in (0, 1, 2)}
    per_run = [r["figures"] for r in runs]
    return {
        "median_per_run": {k: statistics.median(f[k] for f in per_run) for k in per_run[0]},
        "per_run": per_run,
        "gc_pauses_over_10ms": {f"gen{g}": quantiles(gcs[g]) for g in (0, 1, 2)},
        "storms": [r["storm"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--debug", default="1")
    parser.add_argument("--node-nice", type=int, default=0)
    parser.add_argument("--against", default=None)
    parser.add_argument("--against-nice", type=int, default=None)
    parser.add_argument("--against-env", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--label", default="gc_pauses")
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    sides: dict[str, tuple[Path | None, int, dict[str, str]]] = {
        "this": (None, args.node_nice, env)
    }
    if args.against is not None:
        nice = args.node_nice if args.against_nice is None else args.against_nice
        more = dict(e.split("=", 1) for e in args.against_env)
        sides["against"] = (Path(args.against).resolve(), nice, {**env, **more})
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(args.repeat):  # interleaved: the machine's load changes from run to run
        for side, (checkout, nice, side_env) in sides.items():
            run = run_once(args.clients, args.debug, side_env, nice, checkout)
            print(side, json.dumps(run["figures"]), flush=True)
            runs[side].append(run)
    summary = {
        "clients": args.clients,
        "runs": args.repeat,
        "debug": args.debug,
        "node_nice": args.node_nice,
        "against": args.against,
        "against_nice": args.against_nice,
        "against_env": args.against_env,
        "env": env,
        **{side: summarize(rs) for side, rs in runs.items()},
    }
    raw = {side: [{"gc": r["gc"], "slow": r["slow"]} for r in rs] for side, rs in runs.items()}
    report(args.label, args, summary, raw, "gc_pauses")


if __name__ == "__main__":
    main()
