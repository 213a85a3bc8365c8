"""Outbox delivery: from ``enqueue`` to the receiver, and how long the event loop waits meanwhile.

    .venv/bin/python -m bench.outbox_delivery [--messages 300] [--rate 50] [--burst 500] [--repeat 3]

An ``Outbox`` on a real SQLite file (migrated, WAL, synchronous FULL), its
delivery worker running, sends signed webhooks to a real HTTP server on
127.0.0.1 (http.server, a thread per request). Two loads:

- paced: ``--messages`` enqueued at ``--rate`` per second; the latency of each is
  its arrival at the receiver minus the moment ``enqueue`` was called;
- burst: ``--burst`` enqueued at once; the time until the last has arrived, and
  the rate that makes.

Meanwhile a ticker on the event loop wakes every 5 ms; the loop's lag is how
late it woke (SQLite and HTTP run on worker threads, so it should stay small).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from integrations.outbound import OutboundPolicy
from integrations.outbox import Outbox, OutboxConfig
from integrations.secrets import SecretStore, load_keys
from integrations.senders import Senders
from sync_server.storage.database import SQLiteWorker, connect, open_database
from tests.test_outbox import Receiver, receiver

from .common import report


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    period = 0.005
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - before - period)


async def _wait_for(hook: Receiver, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(hook.processed) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(hook.processed)} of {count} arrived")
        await asyncio.sleep(0.01)


async def one_run(messages: int, rate: float, burst: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, receiver() as hook:
        db = Path(tmp) / "tandem.db"
        open_database(db).conn.close()
        worker = SQLiteWorker(connect(db))
        secrets = SecretStore(worker, load_keys(db))
        outbox = Outbox(
            worker,
            secrets,
            Senders(OutboundPolicy(allow_private=True), concurrency=8),
            OutboxConfig(batch=8),
        )
        arrived: dict[str, float] = {}
        original = hook.RequestHandlerClass

        class Timed(original):  # type: ignore[misc, valid-type]
            def _handle(self) -> None:
                key = self.headers.get("Idempotency-Key")
                if key is not None:
                    arrived.setdefault(key, time.time())
                super()._handle()

            do_POST = _handle

        hook.RequestHandlerClass = Timed
        ref = await secrets.put("p1", "webhook", hook.url("/hook"))
        await outbox.start()
        lags: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(lags, stop))
        enqueued: dict[str, float] = {}
        try:
            for i in range(messages):
                key = f"paced:{i}"
                enqueued[key] = time.time()
                await outbox.enqueue("p1", key, "webhook", ref, {"i": i, "task": {"id": f"t{i}"}})
                await asyncio.sleep(1 / rate)
            await _wait_for(hook, messages)
            started = time.perf_counter()
            for i in range(burst):
                await outbox.enqueue("p1", f"burst:{i}", "webhook", ref, {"i": i})
            await _wait_for(hook, messages + burst)
            burst_seconds = time.perf_counter() - started
        finally:
            stop.set()
            await ticker
            await outbox.stop()
            await worker.close()
        latencies = [arrived[k] - t for k, t in enqueued.items()]
        return {
            "latency_p50_ms": _pct(latencies, 0.5),
            "latency_p99_ms": _pct(latencies, 0.99),
            "burst_seconds": round(burst_seconds, 3),
            "burst_per_second": round(burst / burst_seconds, 1),
            "loop_lag_p99_ms": _pct(lags, 0.99),
            "loop_lag_max_ms": round(max(lags) * 1000, 2),
            "requests": len(hook.requests),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.messages, args.rate, args.burst)) for _ in range(args.repeat)]
    summary = {
        key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "requests"
    }
    report("outbox_delivery", args, summary, runs)


if __name__ == "__main__":
    main()
