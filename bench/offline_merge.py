"""Offline merge: a client with 1,000 queued transactions reconnects; time until another sees all.

    .venv/bin/python -m bench.offline_merge [--transactions 1000] [--repeat 5]
        [--peers tandem,hocuspocus,pycrdt]

bench/node/offline_merge.mjs: clients A and B sync a document; B goes offline, makes
--transactions transactions (one character appended to a task title each, and a custom
field every tenth), reconnects. Reported: time until B is synced again, and until A has
every transaction (which, on Tandem, means the gate accepted them and they were stored
durably first). Stock y-websocket sends a reconnecting client's queue as one sync-step-2
update, so the gate judges the 1,000 transactions as one. Tandem runs with its gate on
(token of a user granted "manager"); Hocuspocus and stock pycrdt-websocket as reference.
"""

from __future__ import annotations

import argparse
import statistics

from .common import report
from .fanout_peers import PEERS, run_script_against


def run_once(peer_name: str, transactions: int) -> dict:
    result, server_cpu = run_script_against(peer_name, "offline_merge.mjs", str(transactions))
    if isinstance(result, str):
        return {"server": peer_name, "failed": result}
    return {**result, "server": peer_name, "server_cpu_s_whole_run": server_cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args()
    peers = args.peers.split(",")
    runs: dict[str, list[dict]] = {p: [] for p in peers}
    for _ in range(args.repeat):
        for p in peers:
            r = run_once(p, args.transactions)
            print(p, r, flush=True)
            runs[p].append(r)
    keys = ("reconnect_synced_ms", "seen_by_other_ms", "generator_cpu_s", "server_cpu_s_whole_run")
    summary: dict = {}
    for p, rs in runs.items():
        ok = [r for r in rs if "failed" not in r]
        summary[p] = {
            k: round(statistics.median(r[k] for r in ok), 2) if ok else None for k in keys
        }
        summary[p]["queued_update_bytes"] = ok[0]["queued_update_bytes"] if ok else None
        if len(ok) < len(rs):
            summary[p]["failures"] = [r["failed"] for r in rs if "failed" in r]
    if "tandem" in summary:
        t = summary["tandem"]["seen_by_other_ms"]
        summary["tandem_over"] = {
            p: round(t / summary[p]["seen_by_other_ms"], 2)
            for p in peers
            if p != "tandem" and t and summary[p]["seen_by_other_ms"]
        }
    report("offline_merge", args, summary, runs)


if __name__ == "__main__":
    main()
