"""Soak: 200 real Yjs clients edit one project for 10 minutes; the server's memory stays flat.

    .venv/bin/python -m bench.soak [--clients 200] [--minutes 10] [--rate 0.5]

The load is bench/node/fanout_peers.mjs, paced: every client makes ``rate`` one-character
edits per second to the shared title (200 x 0.5 = 100 edits/s, each delivered to 199
others: about 20,000 deliveries/s), through `tandem serve` on SQLite with the permission
gate on. The server's resident memory (VmRSS) is sampled every 10 s. Reported: RSS after
the first minute (warm: rooms loaded, caches filled), at the end, its peak, and the
least-squares slope over minutes 1 to the end, beside the growth of the document itself
(the stored full state), which any server must hold; plus delivery completeness and
latency over the whole run, and the server log's error count.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.conftest import stored_doc

from .common import report
from .fanout_peers import Peer, rss_mb, run_generator

SAMPLE_SECONDS = 10


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t / 60 for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def run(clients: int, minutes: float, rate: float) -> dict:
    edits = max(1, round(minutes * 60 * rate))
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer("tandem", Path(tmp))
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not stop.wait(SAMPLE_SECONDS):
                samples.append((time.monotonic() - started, rss_mb(peer.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = run_generator(
                peer.pid, peer.kind, peer.url, peer.doc, peer.token, clients, edits, rate, 120
            )
        finally:
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
    args = parser.parse_args()
    result = run(args.clients, args.minutes, args.rate)
    summary = {k: v for k, v in result.items() if k != "rss_samples_mb"}
    report("soak", args, summary, [result])


if __name__ == "__main__":
    main()
