"""What an idle sync connection costs the cyclic garbage collector.

    .venv/bin/python -m bench.connection_objects [--clients 250] [--repeat 3]
        [--against DIR]

A full collection walks every tracked object, so its pause grows with what each open
connection keeps tracked (issue 18). Each run serves the real app under Hypercorn in a
process of its own, frozen after startup as ``tandem serve`` is (``gc.collect();
gc.freeze()``), opens ``--clients`` synced idle connections to one document from
another process (tests/idle_clients.py), and reports the objects the collector tracks
per connection and the CPU time of a full collection (median of 5). ``--against DIR``
alternates each run with the same measurement of another checkout's code (this
.venv): an A/B in one run on the same machine, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import report

HERE = Path(__file__).resolve().parent.parent
CLIENTS_SCRIPT = HERE / "tests" / "idle_clients.py"

_SERVE_ONCE = r"""
import asyncio, gc, json, sys, time
from pathlib import Path
from hypercorn.asyncio import serve
from sync_server.shell.app import create_app
from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
from sync_server.shell.settings import Settings
from tests.conftest import free_port, grant_role, make_token

clients, script, db = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
settings = Settings(db=str(db), port=free_port())
refuse_permessage_deflate()
token = make_token(db, "alice")
grant_role(db, "alice", "bench", "owner")


def full_collection_ms() -> float:
    took = []
    for _ in range(5):
        started = time.thread_time()
        gc.collect()
        took.append((time.thread_time() - started) * 1000)
    return sorted(took)[2]


async def main() -> dict:
    stop = asyncio.Event()
    app = create_app(settings)
    served = asyncio.create_task(serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait))
    await asyncio.sleep(1.5)

    async def hold(n: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, script, str(settings.port), token, "p/bench", str(n),
            stdout=asyncio.subprocess.PIPE,
        )
        assert b"READY" in await asyncio.wait_for(proc.stdout.readline(), 120)
        await asyncio.sleep(1.0)
        return proc

    warm = await hold(1)  # the room loaded, caches filled
    warm.kill()
    await warm.wait()
    await asyncio.sleep(1.0)
    gc.collect()
    idle = len(gc.get_objects())
    idle_ms = full_collection_ms()
    proc = await hold(clients)
    gc.collect()
    busy = len(gc.get_objects())
    busy_ms = full_collection_ms()
    proc.kill()
    await proc.wait()
    stop.set()
    await served
    return {
        "tracked_idle": idle,
        "tracked_with_clients": busy,
        "tracked_per_connection": round((busy - idle) / clients, 1),
        "full_collection_ms_idle": round(idle_ms, 2),
        "full_collection_ms_with_clients": round(busy_ms, 2),
    }


gc.collect()
gc.freeze()  # as serve.run does before the loop starts
print("RESULT " + json.dumps(asyncio.run(main())), flush=True)
"""


def measure(checkout: Path, clients: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        out = subprocess.run(
            [sys.executable, "-c", _SERVE_ONCE, str(clients), str(CLIENTS_SCRIPT), f"{tmp}/b.db"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"no result from {checkout}: {out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", default=None)
    args = parser.parse_args()
    sides = {"this": HERE}
    if args.against is not None:
        sides["against"] = Path(args.against).resolve()
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for i in range(args.repeat):
        for name, checkout in sides.items():
            result = measure(checkout, args.clients)
            runs[name].append(result)
            print(f"run {i + 1} {name}: {result}", flush=True)
    summary: dict = {"clients": args.clients}
    for name, results in runs.items():
        summary[name] = {
            key: statistics.median(r[key] for r in results) for key in results[0] if key
        }
    if "against" in summary:
        summary["ratio_this_to_against"] = {
            key: round(summary["this"][key] / summary["against"][key], 2)
            for key in ("tracked_per_connection", "full_collection_ms_with_clients")
            if summary["against"][key]
        }
    report("connection_objects", args, summary, runs)


if __name__ == "__main__":
    main()
