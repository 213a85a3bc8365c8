"""`make bench`: run every benchmark; each prints its figures and writes bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "bench.cold_load",
    "bench.gate_cost",
    "bench.api_reads",
    "bench.pwa_board",
    "bench.fanout",
    "bench.fanout_peers",
    "bench.offline_merge",
    "bench.durability",
    "bench.memory",
    "bench.presence_connect",
    "bench.squash_broadcast",
    "bench.reconnect_storm",
    "bench.feed_lag",
    "bench.outbox_delivery",
    "bench.webhook_intake",
    "bench.metrics_cost",
    "bench.scale_out",
    "bench.storage_append",
]


def main() -> int:
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module, *sys.argv[1:]])
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
