"""Soak: 200 real Yjs clients edit one project for 10 minutes; the server's memory stays flat.

    .venv/bin/python -m bench.soak [--clients 200] [--minutes 10] [--rate 0.5]
        [--replacers 0] [--replace-rate 1] [--field title] [--name soak]

The load is bench/node/fanout_peers.mjs, paced: every client makes ``rate`` one-character
edits per second to the shared title (200 x 0.5 = 100 edits/s, each delivered to 199
others: about 20,000 deliveries/s), through `tandem serve` on SQLite with the permission
gate on. The server's resident memory (VmRSS) is sampled every 10 s. Reported: RSS after
the first minute (warm: rooms loaded, caches filled), at the end, its peak, and the
least-squares slope over minutes 1 to the end, beside the growth of the document itself
(the stored full state), which any server must hold; plus delivery completeness and
latency over the whole run, and the server log's error count.

--field description makes the clients type into the task's description instead of its
title: the schema caps a title at 500 characters and the gate refuses longer edits (the
hardening merge), which 200 clients pass within their second round; a description may
hold 100,000.

--replacers K adds text replacement to the mix: K pycrdt clients (bench/replaced_text.py's,
real WebSockets, same project) each own a task and replace its whole 4 KB description
--replace-rate times a second, each waiting for its ack, for as long as the title edits
run. Then also reported: replacements made, and the bytes a new client's first sync
receives at the end beside the content size (the room's state after all that deleted
text, which Room._collect_garbage keeps near the content).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.conftest import stored_doc

from .common import report
from .fanout_peers import Peer, rss_mb, run_generator

SAMPLE_SECONDS = 10


class Replacers:
    """K clients replacing 4 KB descriptions in ``peer``'s document, in their own thread."""

    def __init__(self, peer: Peer, clients: int, rate: float) -> None:
        self.peer, self.clients, self.rate = peer, clients, rate
        self.done = 0
        self.final: dict = {}
        self.error = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._drive())
        except Exception as e:  # reported with the results
            self.error = repr(e)[:300]

    async def _drive(self) -> None:
        from contextlib import AsyncExitStack

        from doc_model import TaskCreate, create_task
        from tests.raw_client import RawClient

        from .replaced_text import acked, content_size, reader, replace

        server, doc = self.peer.tandem, self.peer.doc
        async with AsyncExitStack() as stack:
            conns = []
            for c in range(self.clients):
                cl = await stack.enter_async_context(
                    RawClient.connect(server, doc, "bench", token=self.peer.token)
                )
                await cl.sync()
                n = await cl.send_update(
                    cl.edit(
                        lambda d, c=c: create_task(
                            d, TaskCreate(title=f"r{c}"), created_by="bench", task_id=f"r{c}"
                        )
                    )
                )
                await cl.outcome(n, timeout=60)
                cl.tandem.clear()
                conns.append(cl)
            readers = [asyncio.create_task(reader(cl)) for cl in conns]

            async def one(c: int, i: int) -> None:
                cl = conns[c]
                n = await cl.send_update(replace(cl, f"r{c}", i))
                await acked(cl, n)
                self.done += 1

            start, tick = time.monotonic(), 0
            while not self.stop.is_set():
                await asyncio.gather(*(one(c, tick) for c in range(self.clients)))
                tick += 1
                wait = start + tick / self.rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            for r in readers:
                r.cancel()
            from sync_server.core.protocol import SyncStep2, encode_sync_step1

            async with RawClient.connect(server, doc, "bench", token=self.peer.token) as new:
                await new.send(encode_sync_step1(b"\x00"))
                while not isinstance(msg := await new.recv(timeout=60), SyncStep2):
                    assert msg is not None, new.closed
            self.final = {
                "first_sync_bytes_at_end": len(msg.update),
                "content_bytes_at_end": content_size(msg.update),
            }

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join(timeout=120)
        return {
            "replacers": self.clients,
            "replacements_per_replacer_per_s": self.rate,
            "replacements": self.done,
            "deleted_text_mb": round(self.done * 4096 / 2**20, 1),
            **self.final,
            **({"replacer_error": self.error} if self.error else {}),
        }


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t / 60 for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def run(
    clients: int, minutes: float, rate: float, replacers: int = 0, replace_rate: float = 1.0
) -> dict:
    edits = max(1, round(minutes * 60 * rate))
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer("tandem", Path(tmp))
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not stop.wait(SAMPLE_SECONDS):
                samples.append((time.monotonic() - started, rss_mb(peer.pid)))
                extra = f" replacements {mix.done}" if mix is not None else ""
                print(f"{samples[-1][0]:.0f} s: RSS {samples[-1][1]} MB{extra}", flush=True)

        mix = Replacers(peer, replacers, replace_rate) if replacers else None
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        replaced: dict = {}
        try:
            result = run_generator(
                peer.pid, peer.kind, peer.url, peer.doc, peer.token, clients, edits, rate, 120
            )
        finally:
            if mix is not None:
                replaced = mix.finish()
            stop.set()
            sampler.join()
            log = peer.log()
            peer.stop()
        doc_bytes = len(stored_doc(peer.tandem.db, peer.doc).get_update())  # type: ignore[union-attr]
    warm = [(t, m) for t, m in samples if t >= 60] or samples
    return {
        "clients": clients,
        "minutes": minutes,
        "edits_per_client_per_s": rate,
        "edits_per_client": edits,
        "rss_samples_mb": [[round(t), m] for t, m in samples],
        "rss_after_1_min_mb": warm[0][1] if warm else None,
        "rss_end_mb": samples[-1][1] if samples else None,
        "rss_peak_mb": max((m for _, m in samples), default=None),
        "rss_slope_mb_per_min": round(slope_per_minute(warm), 2),
        "document_bytes_at_end": doc_bytes,
        **replaced,
        "server_log_errors": sum(
            1 for ln in log.splitlines() if "Traceback" in ln or " ERROR" in ln
        ),
        **{
            k: result.get(k)
            for k in (
                "complete",
                "converged",
                "delivered",
                "expected",
                "disconnects",
                "delivered_per_s",
                "p50_ms",
                "p99_ms",
                "seconds",
                "server_cores",
                "generator_cores",
                "failed",
            )
            if k in result
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--replacers", type=int, default=0, help="clients replacing 4 KB text")
    parser.add_argument("--replace-rate", type=float, default=1.0, help="per replacer, per s")
    parser.add_argument("--field", default="description", help="the task field typed into")
    parser.add_argument("--name", default="soak", help="results file bench/results/<name>.json")
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    os.environ["FANOUT_FIELD"] = args.field
    result = run(args.clients, args.minutes, args.rate, args.replacers, args.replace_rate)
    summary = {k: v for k, v in result.items() if k != "rss_samples_mb"}
    summary["load_average_at_start"] = load
    summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report(args.name, args, summary, [result], module="soak")


if __name__ == "__main__":
    main()
