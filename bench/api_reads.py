"""REST reads of a 10,000-task project: a filtered page, and the same read answered from the
ETag (304).

    .venv/bin/python -m bench.api_reads [--tasks 10000] [--seconds 8] [--concurrency 16]

The load comes from a Node process (bench/api_load.mjs: keep-alive connections, C requests in
flight), so the Python server is what is measured; both processes' CPU is reported.
Scenarios, in one run against one `tandem serve`:
  list_200   GET /api/v1/projects/bench/tasks/?status=todo&limit=50 (full response)
  list_304   the same with If-None-Match: the current ETag
  cold_first_read  the first such read of a project no room has loaded (decode from storage)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sync_server.shell.demo import seed_demo
from tests.conftest import ServerProcess, start_server

from .common import write_result

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/projects/bench/tasks/?status=todo&limit=50"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, token: str, concurrency: int, seconds: float, pid: int, etag: str = "") -> dict:
    before = cpu_seconds(pid)
    out = subprocess.run(
        ["node", str(ROOT / "bench" / "api_load.mjs"), url, token, str(concurrency), str(seconds)]
        + ([etag] if etag else []),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    result["server_cpu_s"] = round(cpu_seconds(pid) - before, 2)
    for key in ("per_s", "p50_ms", "p99_ms", "seconds", "generator_cpu_s"):
        result[key] = round(result[key], 2)
    return result


@contextmanager
def seeded_server(tasks: int) -> Iterator[ServerProcess]:
    """A real server on a fresh file holding the demo project ``bench`` with ``tasks`` tasks
    (no rate limit; rooms kept loaded for the run): the REST benchmarks' common ground."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tandem.db"
        asyncio.run(seed_demo(str(db), project_id="bench", task_count=tasks))
        server = start_server(Path(tmp), TANDEM_API_RATE_LIMIT="0", TANDEM_ROOM_IDLE_SECONDS="3600")
        try:
            yield server
        finally:
            server.stop()


def run(tasks: int, seconds: float, concurrency: int) -> dict:
    with seeded_server(tasks) as server:
        token = server.token("reader")
        server.grant("reader", "bench", "viewer")
        url = server.http_url + PATH
        headers = {"Authorization": f"Bearer {token}"}
        t0 = time.perf_counter()
        first = httpx.get(url, headers=headers, timeout=60)
        cold_ms = (time.perf_counter() - t0) * 1000
        first.raise_for_status()
        etag = first.headers["ETag"]
        t0 = time.perf_counter()
        httpx.get(url, headers=headers, timeout=60).raise_for_status()
        warm_ms = (time.perf_counter() - t0) * 1000
        assert server.proc is not None  # start_server returns a started process
        pid = server.proc.pid
        full = load(url, token, concurrency, seconds, pid)
        cached = load(url, token, concurrency, seconds, pid, etag)
    summary = {
        "cold_first_read_ms": round(cold_ms, 1),
        "second_read_ms": round(warm_ms, 1),
        "list_200": full,
        "list_304": cached,
        "ratio_304_over_200": {
            "per_s": round(cached["per_s"] / full["per_s"], 2),
            "p99_ms": round(cached["p99_ms"] / full["p99_ms"], 2),
        },
    }
    print(json.dumps(summary, indent=2), flush=True)
    return {
        "tasks": tasks,
        "path": PATH,
        "concurrency": concurrency,
        "seconds": seconds,
        **summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    result = run(args.tasks, args.seconds, args.concurrency)
    print(f"wrote {write_result('api_reads', {'command': 'python -m bench.api_reads', **result})}")


if __name__ == "__main__":
    main()
