"""Webhook intake: signed GitHub deliveries accepted per second and their latency, and what
the intake does to fan-out while it runs.

    .venv/bin/python -m bench.webhook_intake [--seconds 6] [--concurrency 16] [--repeat 3]
        [--clients 20] [--edits 100] [--rate 20] [--keyed 0.1]

One real `tandem serve` per run, a project with 20 tasks (keys TDM-1..20) and a GitHub
endpoint. Three phases, interleaved in each run:

  fanout   the fan-out generator alone (tests/node/fanout.mjs: N stock y-websocket clients
           typing into one task's description at R edits/s each)
  intake   signed `push` deliveries alone, C in flight (httpx, keep-alive); a fraction
           ``--keyed`` names a task key ("refs TDM-k"), so its processing writes a link
           through ctx.edit; the others are stored, answered and ignored
  both     the two at once: the fan-out's delivered rate and p99 next to the intake's

Accepted = answered 202 (stored durably first: the writer's fsync'd commit). "drain" is
the time from the last answer until every stored delivery was processed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from integrations.vcs import sign_github
from tests.conftest import NODE_DIR, ServerProcess, start_server

from .api_reads import cpu_seconds
from .common import report
from .feed_lag import percentile


def setup(server: ServerProcess) -> tuple[str, str, str]:
    headers = {"Authorization": f"Bearer {server.token('bench')}"}
    with httpx.Client(base_url=server.http_url + "/api/v1", headers=headers, timeout=30) as c:
        project = c.post("/projects/", json={"name": "Tandem"}).json()["id"]
        for i in range(20):
            c.post(f"/projects/{project}/tasks/", json={"title": f"task {i}"})
        made = c.post(f"/projects/{project}/webhooks/", json={"provider": "github"}).json()
    return project, made["path"], made["secret"]


def bodies(count: int, keyed: float) -> list[bytes]:
    out = []
    every = max(1, round(1 / keyed)) if keyed > 0 else 0
    for i in range(count):
        message = (
            f"refs TDM-{i % 20 + 1}: change {i}" if every and i % every == 0 else f"change {i}"
        )
        push = {
            "ref": "refs/heads/feature",
            "repository": {
                "full_name": "octo/tandem",
                "html_url": "https://github.com/octo/tandem",
                "default_branch": "main",
            },
            "commits": [
                {
                    "id": f"{i:040x}",
                    "message": message,
                    "url": f"https://github.com/octo/tandem/commit/{i:040x}",
                    "author": {"name": "Octo", "username": "octocat"},
                }
            ],
        }
        out.append(json.dumps(push).encode())
    return out


async def intake(
    url: str, secret: str, seconds: float, concurrency: int, keyed: float, pid: int
) -> dict:
    payloads = bodies(20_000, keyed)
    signed = [(b, sign_github(secret, b)) for b in payloads]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    n = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < stop_at:
                body, signature = signed[n % len(signed)]
                n += 1
                t0 = time.perf_counter()
                response = await client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-GitHub-Event": "push",
                        "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-Hub-Signature-256": signature,
                    },
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        t0 = time.perf_counter()
        server_cpu, generator_cpu = cpu_seconds(pid), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        server_cpu = cpu_seconds(pid) - server_cpu
        generator_cpu = time.process_time() - generator_cpu
    accepted = max(1, statuses.get(202, 0))
    return {
        "server_cpu_ms_per_delivery": round(server_cpu * 1000 / accepted, 2),
        "generator_cpu_ms_per_delivery": round(generator_cpu * 1000 / accepted, 2),
        "accepted": statuses.get(202, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "accepted_per_s": round(statuses.get(202, 0) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


def drain_seconds(db: Path, timeout: float = 120) -> float:
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    try:
        while time.perf_counter() - t0 < timeout:
            (pending,) = conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            ).fetchone()
            if pending == 0:
                break
            time.sleep(0.05)
    finally:
        conn.close()
    return round(time.perf_counter() - t0, 2)


def fanout_process(server: ServerProcess, project: str, args) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "node",
            str(NODE_DIR / "fanout.mjs"),
            server.ws_url,
            f"p/{project}",
            server.token("bench"),
            str(args.clients),
            str(args.edits),
            str(args.rate),
            "description",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NODE_DIR,
    )


def fanout_result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(err)
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "delivered_per_s": round(result["delivered_per_s"], 1),
        "p99_ms": round(result["p99_ms"], 1),
    }


def run_once(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp),
            TANDEM_LOG_LEVEL="WARNING",
            TANDEM_API_RATE_LIMIT="0",
            TANDEM_ROOM_IDLE_SECONDS="3600",
        )
        try:
            project, path, secret = setup(server)
            url = server.http_url + path
            assert server.proc is not None
            pid = server.proc.pid
            fanout_alone = fanout_result(fanout_process(server, project, args))
            alone = asyncio.run(
                intake(url, secret, args.seconds, args.concurrency, args.keyed, pid)
            )
            alone["drain_s"] = drain_seconds(server.db)
            proc = fanout_process(server, project, args)
            time.sleep(1.0)  # the clients connect and sync before the deliveries start
            both = asyncio.run(intake(url, secret, args.seconds, args.concurrency, args.keyed, pid))
            both["drain_s"] = drain_seconds(server.db)
            fanout_both = fanout_result(proc)
        finally:
            server.stop()
    return {
        "fanout_alone": fanout_alone,
        "intake_alone": alone,
        "intake_with_fanout": both,
        "fanout_with_intake": fanout_both,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--keyed", type=float, default=0.1)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        run = run_once(args)
        print(json.dumps(run), flush=True)
        runs.append(run)

    def med(phase: str, key: str) -> float:
        return statistics.median(r[phase][key] for r in runs)

    summary = {
        "intake_accepted_per_s": med("intake_alone", "accepted_per_s"),
        "intake_p50_ms": med("intake_alone", "p50_ms"),
        "intake_p99_ms": med("intake_alone", "p99_ms"),
        "intake_drain_s": med("intake_alone", "drain_s"),
        "intake_server_cpu_ms_per_delivery": med("intake_alone", "server_cpu_ms_per_delivery"),
        "intake_generator_cpu_ms_per_delivery": med(
            "intake_alone", "generator_cpu_ms_per_delivery"
        ),
        "intake_with_fanout_accepted_per_s": med("intake_with_fanout", "accepted_per_s"),
        "intake_with_fanout_p99_ms": med("intake_with_fanout", "p99_ms"),
        "fanout_alone_delivered_per_s": med("fanout_alone", "delivered_per_s"),
        "fanout_alone_p99_ms": med("fanout_alone", "p99_ms"),
        "fanout_with_intake_delivered_per_s": med("fanout_with_intake", "delivered_per_s"),
        "fanout_with_intake_p99_ms": med("fanout_with_intake", "p99_ms"),
    }
    report("webhook_intake", args, summary, runs)


if __name__ == "__main__":
    main()
