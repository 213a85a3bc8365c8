"""Automation's cost: accepted updates per second with 20 active rules against none, and
trigger-to-delivery latency of a webhook rule, under 50 clients x 100 edits.

    .venv/bin/python -m bench.automation [--clients 50] [--edits 100] [--rates 0,10]
        [--repeat 3]

Each run is a fresh `tandem serve` (SQLite, gate on, the automation runner and the outbox
in the process) with one project of N tasks. N real y-websocket clients
(bench/node/automation_load.mjs) each move their own task through the columns M times at
full speed (rate 0) or paced at R edits/s per client, one transaction per edit (status and
title); an observer client waits until it sees every task's last edit. **Accepted updates/s** = N*M / (first edit -> the observer
has the last one): each edit is gated, stored, broadcast, and (with rules) evaluated by
the runner from the change feed in the same process.

With rules: 20 enabled rules, made over REST:
  1   task_status_changed to done -> webhook to a receiver in this process (one in four
      edits moves a task to done: N*M/4 deliveries through the durable outbox)
  9   task_status_changed with a condition that never holds (priority urgent, a label...):
      each edit triggers them, they are evaluated and recorded as skipped
  10  triggers these edits never fire (task_created, comment_posted, schedule, ...)
**Trigger-to-delivery latency**: from the client's edit (Date.now() before the
transaction) to the webhook's arrival at the receiver (time.time(), same machine),
p50/p99 over every delivery; the receiver learns which edit it was from the event's
title. Runs alternate none / rules so drift hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerProcess, start_server

from .common import report
from .feed_lag import percentile

NODE = Path(__file__).resolve().parent / "node"


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        arrivals, receiver = self.arrivals, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    title = json.loads(body)["event"]["detail"]["title"]
                    arrivals.setdefault(title, at)
                except (ValueError, KeyError, TypeError):
                    pass
                receiver.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def rules_for(hook: str) -> list[dict[str, Any]]:
    moved = {"type": "task_status_changed"}
    never = [
        {"field": "priority", "op": "eq", "value": "urgent"},
        {"field": "labels", "op": "contains", "value": "blocked"},
        {"field": "assignees", "op": "contains", "value": "nobody"},
        {"field": "estimate", "op": "gt", "value": 1000},
        {"field": "priority", "op": "in", "value": ["high", "urgent"]},
        {"field": "custom.team", "op": "eq", "value": "none"},
        {"field": "project.status", "op": "eq", "value": "archived"},
        {"field": "milestone", "op": "eq", "value": "m1"},
        {"field": "labels", "op": "contains", "value": "never"},
    ]
    others = [
        {"type": "task_created"},
        {"type": "comment_posted"},
        {"type": "mentioned"},
        {"type": "milestone_completed"},
        {"type": "project_status_changed", "to": "completed"},
        {"type": "budget_exceeded", "percent": 90},
        {"type": "resource_overallocated"},
        {"type": "task_assigned", "user": "nobody"},
        {"type": "schedule", "cron": "0 9 * * 1"},
        {"type": "task_overdue"},
    ]
    label = [{"type": "add_label", "label": "x"}]
    return [
        {
            "name": "done -> hook",
            "trigger": {**moved, "to": "done"},
            "actions": [{"type": "webhook", "url": hook}],
        },
        *(
            {"name": f"never {i}", "trigger": moved, "conditions": {"all": [c]}, "actions": label}
            for i, c in enumerate(never)
        ),
        *({"name": f"other {i}", "trigger": t, "actions": label} for i, t in enumerate(others)),
    ]


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    r = httpx.request(
        method,
        f"{server.http_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {server.token('owner')}"},
        timeout=60,
        **kw,
    )
    r.raise_for_status()
    return r


def run_once(clients: int, edits: int, with_rules: bool, rate: float = 0) -> dict[str, Any]:
    import tempfile

    receiver = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-automation-"))
    server = start_server(
        tmp,
        TANDEM_API_RATE_LIMIT="0",
        TANDEM_OUTBOUND_ALLOW_PRIVATE="true",
        TANDEM_OUTBOX_POLL_SECONDS="0.2",
        TANDEM_LOG_LEVEL="WARNING",
    )
    try:
        project = str(uuid.uuid4())
        api(server, "POST", "/projects/", json={"id": project, "name": "bench"})
        ops = [{"op": "create", "data": {"title": f"t{i}"}} for i in range(clients)]
        made = api(
            server, "POST", "/tasks/batch/", json={"project": project, "operations": ops}
        ).json()
        task_ids = [r["id"] for r in made["results"]]
        rules = rules_for(receiver.url) if with_rules else []
        for rule in rules:
            api(server, "POST", f"/projects/{project}/rules/", json=rule)
        out = subprocess.run(
            [
                "node",
                str(NODE / "automation_load.mjs"),
                server.ws_url,
                f"p/{project}",
                server.token("owner"),
                str(edits),
                str(rate),
                *task_ids,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        load = json.loads(out.stdout.strip().splitlines()[-1])
        seconds = (load["done"] - load["start"]) / 1000
        result: dict[str, Any] = {
            "rate": rate,
            "rules": len(rules),
            "updates": clients * edits,
            "seconds": round(seconds, 2),
            "accepted_per_s": round(clients * edits / seconds, 1),
        }
        if with_rules:
            expected = [k for k in load["sent"] if int(k.split(":")[1]) % 4 == 2]  # to done
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(receiver.arrivals) < len(expected):
                time.sleep(0.2)
            lat = [
                (receiver.arrivals[k] * 1000 - load["sent"][k])
                for k in expected
                if k in receiver.arrivals
            ]
            result.update(
                {
                    "deliveries_expected": len(expected),
                    "delivered": len(lat),
                    "posts_received": receiver.count,
                    "latency_p50_ms": round(percentile(lat, 0.5), 1) if lat else None,
                    "latency_p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
                    "all_delivered_s": round(
                        (max(receiver.arrivals.values()) * 1000 - load["start"]) / 1000, 2
                    )
                    if lat
                    else None,
                }
            )
        return result
    finally:
        server.stop()
        receiver.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument(
        "--rates", default="0,10", help="edits/s per client, comma-separated; 0: full speed"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--name", default="automation", help="results file: results/NAME.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        for rate in rates:
            for with_rules in (False, True):
                r = run_once(args.clients, args.edits, with_rules, rate)
                print(json.dumps(r), flush=True)
                runs.append(r)
    summary: dict[str, Any] = {}
    for rate in rates:
        none = [r for r in runs if r["rules"] == 0 and r["rate"] == rate]
        some = [r for r in runs if r["rules"] > 0 and r["rate"] == rate]
        none_rate = statistics.median(r["accepted_per_s"] for r in none)
        rules_rate = statistics.median(r["accepted_per_s"] for r in some)
        summary[f"rate {rate:g}" if rate else "full speed"] = {
            "accepted_per_s_no_rules": none_rate,
            "accepted_per_s_20_rules": rules_rate,
            "ratio": round(rules_rate / none_rate, 3),
            "latency_p50_ms": statistics.median(r["latency_p50_ms"] for r in some),
            "latency_p99_ms": statistics.median(r["latency_p99_ms"] for r in some),
            "delivered": [f"{r['delivered']}/{r['deliveries_expected']}" for r in some],
            "posts_received": [r["posts_received"] for r in some],
        }
    report(args.name, args, summary, runs)


if __name__ == "__main__":
    main()
