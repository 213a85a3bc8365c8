"""REST writes: one client changing task titles one request after another.

    .venv/bin/python -m bench.api_writes [--tasks 300] [--writes 300] [--repeat 3] [--name NAME]

Each write is ``PATCH /api/v1/tasks/<id>/`` with a new title, answered once the change is
gated, stored and sent (``LiveDocuments.edit``), so its latency is the server's whole
write path: the room catching up with storage, the gate, the coalescing window and the
commit. A socket client stays connected to the project, so the room stays loaded and
every write is also broadcast. Reports p50 / p99 latency and the server's CPU per write,
the median of ``--repeat`` runs. Run it in two checkouts, alternately, to compare them
(``cd DIR && .venv/bin/python -m bench.api_writes``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import httpx

from bench.api_reads import cpu_seconds, seeded_server
from tests.raw_client import RawClient

from .common import write_result


async def _writes(server, token: str, ids: list[str], n: int) -> tuple[list[float], float]:
    rng = random.Random(1)
    assert server.proc is not None
    async with RawClient.connect(server, "p/bench", "watcher") as watcher:
        await watcher.sync()
        headers = {"Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
            before = cpu_seconds(server.proc.pid)
            for k in range(n):
                task = rng.choice(ids)
                t0 = time.perf_counter()
                r = await http.patch(f"/api/v1/tasks/{task}/", json={"title": f"title {k}"})
                latencies.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            cpu = cpu_seconds(server.proc.pid) - before
    return latencies, cpu


def run_once(tasks: int, writes: int) -> dict:
    with seeded_server(tasks) as server:
        token = server.token("writer")
        server.grant("writer", "bench", "manager")
        server.grant("watcher", "bench", "viewer")
        listed = httpx.get(
            f"{server.http_url}/api/v1/projects/bench/tasks/?limit=200",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        listed.raise_for_status()
        body = listed.json()
        items = body["items"] if isinstance(body, dict) else body
        ids = [t["id"] for t in items]
        asyncio.run(_writes(server, token, ids[:50], 20))  # warm-up
        latencies, cpu = asyncio.run(_writes(server, token, ids, writes))
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "server_cpu_ms_per_write": round(cpu * 1000 / writes, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--name", default="api_writes")
    args = parser.parse_args()
    runs = [run_once(args.tasks, args.writes) for _ in range(args.repeat)]
    summary = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print({"median": summary, "runs": runs})
    command = f"python -m bench.api_writes --writes {args.writes} --repeat {args.repeat}"
    result = {"command": command, "tasks": args.tasks, "writes": args.writes, **summary}
    print(f"wrote {write_result(args.name, {**result, 'runs': runs})}")


if __name__ == "__main__":
    main()
