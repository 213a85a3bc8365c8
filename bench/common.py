"""Shared helpers for benchmarks: medians, result files, a real server process."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def report(name: str, args: object, summary: dict, runs: object, module: str | None = None) -> Path:
    """Print the summary and write bench/results/<name>.json with the command that made it."""
    print(json.dumps(summary, indent=2))
    module = module or ("fanout" if name == "fanout_compression" else name)
    path = write_result(
        name,
        {
            "command": " ".join([f"python -m bench.{module}", *sys.argv[1:]]),
            "args": vars(args),
            "statistic": "median",
            "summary": summary,
            "runs": runs,
        },
    )
    print(f"wrote {path}")
    return path
