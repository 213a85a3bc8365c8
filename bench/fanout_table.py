"""Markdown tables for bench/README.md from results/fanout_peers.json (no retyping of figures).

.venv/bin/python -m bench.fanout_table [results/fanout_peers.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import RESULTS

COLUMNS = [
    ("edits sent/s", "sent_per_s", "{:,.0f}"),
    ("delivered/s", "delivered_per_s", "{:,.0f}"),
    ("all delivered s", "seconds", "{:.2f}"),
    ("p50 ms", "p50_ms", "{:,.0f}"),
    ("p99 ms", "p99_ms", "{:,.0f}"),
    ("connect+sync ms", "connect_ms", "{:,.0f}"),
    ("server CPU ms / 1k deliveries", "server_cpu_ms_per_1k", "{:.1f}"),
    ("generator CPU ms / 1k", "generator_cpu_ms_per_1k", "{:.1f}"),
    ("server loop busy", "server_loop_busy", "{:.2f}"),
    ("generator loop busy", "generator_loop_busy", "{:.2f}"),
]


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
            if name in (
                "tandem_over_hocuspocus",
                "tandem_over_pycrdt",
                "targets",
            ) or not isinstance(s, dict):
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
                + ", ".join(
                    f"{k.replace('_', ' ')}: {'yes' if v else 'no'}" for k, v in targets.items()
                )
            )
        out.append("")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "fanout_peers.json"
    print(tables(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
