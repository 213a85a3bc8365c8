"""What the metrics cost on the hot path: Tandem's counters against prometheus-client's.

    .venv/bin/python -m bench.metrics_cost [--calls 300000] [--repeat 5]

A room reports each accepted update (``accepted``) and, once its room's other sockets
took it, its delivery latency (``delivered``, a histogram observation), through the
``RoomInstruments`` of ``sync_server.shell.monitoring.ServerMetrics``, which keeps them in
plain numbers and builds the metric families at scrape time. The peer is what the obvious
code would do: prometheus-client's own ``Counter.inc`` and ``Histogram.observe`` (with
the same buckets). Interleaved runs (tandem, peer, tandem, peer, ...), microseconds per
call, medians; a Python call of an empty method is the floor. Also: one scrape's render.
"""

from __future__ import annotations

import argparse
import statistics
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from sync_server.shell.monitoring import LATENCY_BUCKETS, ServerMetrics

from .common import report


class _Floor:
    def call(self, value: float) -> None:
        pass


def per_call_us(fn, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        fn(0.0001 * (i % 1000))
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ours = ServerMetrics()
    registry = CollectorRegistry()
    counter = Counter("peer_accepted", "peer", registry=registry)
    histogram = Histogram("peer_fanout", "peer", buckets=LATENCY_BUCKETS, registry=registry)
    floor = _Floor()
    cases = {
        "floor (empty method)": floor.call,
        "tandem accepted": lambda v: ours.accepted(1),
        "prometheus-client Counter.inc": lambda v: counter.inc(),
        "tandem delivered": ours.delivered,
        "prometheus-client Histogram.observe": histogram.observe,
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    renders: list[float] = []
    for _ in range(args.repeat):
        for name, fn in cases.items():
            runs[name].append(per_call_us(fn, args.calls))
        started = time.perf_counter()
        ours.render()
        renders.append((time.perf_counter() - started) * 1000)
    med = {name: round(statistics.median(v), 3) for name, v in runs.items()}
    summary = {
        "us_per_call": med,
        "tandem_over_prometheus_client": {
            "counter": round(med["tandem accepted"] / med["prometheus-client Counter.inc"], 2),
            "histogram": round(
                med["tandem delivered"] / med["prometheus-client Histogram.observe"], 2
            ),
        },
        "render_ms": round(statistics.median(renders), 2),
    }
    report("metrics_cost", args, summary, runs)


if __name__ == "__main__":
    main()
