"""Markdown tables for bench/README.md from results/fanout_peers.json (no retyping of figures).

.venv/bin/python -m bench.fanout_table [results/fanout_peers.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import RESULTS
from .fanout_peers import parse_key

COLUMNS = [
    ("edits sent/s", "sent_per_s", "{:,.0f}"),
    ("delivered/s", "delivered_per_s", "{:,.0f}"),
    ("all delivered s", "seconds", "{:.2f}"),
    ("p50 ms", "p50_ms", "{:,.0f}"),
    ("p99 ms", "p99_ms", "{:,.0f}"),
    ("warm-up round p99 ms", "warmup_p99_ms", "{:,.0f}"),
    ("connect+sync ms", "connect_ms", "{:,.0f}"),
    ("server CPU ms / 1k deliveries", "server_cpu_ms_per_1k", "{:.1f}"),
    ("generator CPU ms / 1k", "generator_cpu_ms_per_1k", "{:.1f}"),
    ("server loop busy", "server_loop_busy", "{:.2f}"),
    ("generator loop busy", "generator_loop_busy", "{:.2f}"),
]


TARGET_WORDS = {True: "yes", False: "no", None: "not comparable (different offered loads)"}


def cell(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def tables(results: dict) -> str:
    out: list[str] = [f"Run {results['when']}: `{results['command']}`", ""]
    for size, peers in results["summary"].items():
        out += [f"**{size}**", ""]
        if "edits_per_s_per_client" in peers:
            out += [
                f"Every server paced at {peers['edits_per_s_per_client']} edits/s per client:"
                " the rate Hocuspocus's own client reached at full speed above.",
                "",
            ]
        out.append("| server | runs ok | " + " | ".join(c[0] for c in COLUMNS) + " | bound by |")
        out.append("|---" * (len(COLUMNS) + 3) + "|")
        for name, s in peers.items():
            if name.startswith("tandem_over_") or name == "targets" or not isinstance(s, dict):
                continue
            runs = f"{s.get('completed_runs', 0)}/{s.get('runs', 0)}"
            if s.get("failures"):
                runs += f" ({s['failures'][0][:60]})"
            values = " | ".join(cell(s.get(key), fmt) for _, key, fmt in COLUMNS)
            out.append(f"| {name} | {runs} | {values} | {s.get('bound_by') or ''} |")
        ratios = peers.get("tandem_over_hocuspocus")
        if ratios:
            out += [
                "",
                "Tandem / Hocuspocus: "
                + ", ".join(f"{k} {v}" for k, v in ratios.items() if v is not None),
            ]
        targets = peers.get("targets")
        if targets:
            out.append(
                "Targets: "
                + ", ".join(f"{k.replace('_', ' ')}: {TARGET_WORDS[v]}" for k, v in targets.items())
            )
        out.append("")
    return "\n".join(out)


def size_of(key: str) -> str:
    """``50x100@85-np`` -> ``50x100-np``: the size a row belongs to, whatever its pace."""
    size, _, presence = parse_key(key)
    return size if presence else f"{size}-np"


def latency_by_load(summary: dict, peer: str = "hocuspocus") -> str:
    """One table per size: Tandem's and ``peer``'s p99 at each offered load of the run,
    slowest schedule first, full speed last.

    A latency comparison holds only where both generators sent at the same rate (within
    5%, ``same load``); at full speed each client library sets its own pace."""
    groups: dict[str, list[dict]] = {}
    for key, s in summary.items():
        if "tandem" in s and peer in s:
            groups.setdefault(size_of(key), []).append(s)
    out: list[str] = []
    for size, rows in groups.items():
        if len(rows) < 2:
            continue
        clients = int(size.split("x")[0])
        out += [
            f"**{size}: p99 by offered load**",
            "",
            f"| schedule, edits/s | tandem sent/s | {peer} sent/s | same load"
            f" | tandem p50 / p99 ms | {peer} p50 / p99 ms | p99 tandem / {peer} |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in sorted(rows, key=lambda s: s["tandem"].get("scheduled_per_s") or float("inf")):
            t, o = s["tandem"], s[peer]
            scheduled = t.get("scheduled_per_s")
            schedule = (
                "full speed"
                if scheduled is None
                else f"{scheduled:,} ({scheduled / clients:g}/client)"
            )
            ratio = s.get(f"tandem_over_{peer}", {}).get("p99_ms")
            out.append(
                f"| {schedule} | {cell(t.get('sent_per_s'), '{:,.0f}')}"
                f" | {cell(o.get('sent_per_s'), '{:,.0f}')}"
                f" | {'yes' if s.get('same_offered_load') else 'no'}"
                f" | {cell(t.get('p50_ms'), '{:,.0f}')} / {cell(t.get('p99_ms'), '{:,.0f}')}"
                f" | {cell(o.get('p50_ms'), '{:,.0f}')} / {cell(o.get('p99_ms'), '{:,.0f}')}"
                f" | {cell(ratio, '{:.2f}')} |"
            )
        out.append("")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "fanout_peers.json"
    results = json.loads(path.read_text())
    print(tables(results))
    print(latency_by_load(results["summary"]))


if __name__ == "__main__":
    main()
