"""Presence while many clients connect at once: Tandem vs Hocuspocus, same clients.

    .venv/bin/python -m bench.presence_connect [--clients 1000] [--presence initial,user]
        [--repeat 3] [--settle 3]

N real Yjs clients in one Node process (bench/node/presence_connect.mjs) connect to one
document at once; every frame their sockets receive and send is counted until --settle
seconds after the last one synced. Presence modes: `initial` (y-protocols' initial state,
clock 0, which no peer applies), `user` (a `user` field set first, clock 1, as an app
does), `off`. Reported per server: connect+sync time of all N, frames and bytes the
clients received and sent, the CPU seconds of the server (/proc) and of the generator over
the whole run, and how many clients' presence the median client knows at the end. Servers
are fresh processes per run, interleaved (the same as bench.fanout_peers).
"""

from __future__ import annotations

import argparse
import json
import statistics

from .common import report
from .fanout_peers import run_script_against

KEYS = (
    "connect_ms",
    "server_cpu_s",
    "generator_cpu_s",
    "frames_in",
    "bytes_in",
    "frames_out",
    "bytes_out",
    "states_known_median",
)


def run_once(peer_name: str, clients: int, presence: str, settle: float) -> dict:
    result, server_cpu = run_script_against(
        peer_name, "presence_connect.mjs", str(clients), presence, str(settle)
    )
    if isinstance(result, str):
        return {"server": peer_name, "presence": presence, "failed": result}
    return {**result, "server": peer_name, "server_cpu_s": server_cpu}


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if "failed" not in r]
    out: dict = {"runs": len(runs), "ok": len(ok)}
    for key in KEYS:
        out[key] = statistics.median(r[key] for r in ok) if ok else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--presence", default="initial,user")
    parser.add_argument("--peers", default="tandem,hocuspocus")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    peers = args.peers.split(",")
    summary: dict = {}
    all_runs: dict = {}
    for presence in args.presence.split(","):
        runs: dict[str, list[dict]] = {p: [] for p in peers}
        for _ in range(args.repeat):
            for p in peers:  # interleaved, so drift hits every server alike
                r = run_once(p, args.clients, presence, args.settle)
                print(presence, p, json.dumps(r), flush=True)
                runs[p].append(r)
        summary[presence] = {p: summarize(rs) for p, rs in runs.items()}
        all_runs[presence] = runs
    report("presence_connect", args, summary, all_runs)


if __name__ == "__main__":
    main()
