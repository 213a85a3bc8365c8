"""The browser app: gzipped JavaScript and CSS loaded at start, and the time to show a
1,000-task board in headless Chromium.

    .venv/bin/python -m bench.pwa_board [--tasks 1000] [--repeat 5]

"first visit": a new browser profile (nothing in IndexedDB or the service worker cache):
navigation start until every card of the board is on screen and the status says Saved.
"return visit": the same page reloaded, with the app shell from the service worker and
the document from IndexedDB (then synced).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from sync_server.shell.demo import DEMO_PASSWORD, seed_demo
from tests.conftest import start_server
from tests.test_pwa import ARGS, CHROMIUM

from .common import write_result

DIST = Path(__file__).resolve().parent.parent / "client_pwa" / "dist"


def start_sizes() -> dict:
    """What index.html loads at start: its scripts and stylesheets, raw and gzipped."""
    html = (DIST / "index.html").read_text()
    out = {"js_bytes": 0, "js_gzip_bytes": 0, "css_bytes": 0, "css_gzip_bytes": 0}
    for path in sorted((DIST / "assets").iterdir()):
        if path.name not in html:
            continue
        kind = "js" if path.suffix == ".js" else "css" if path.suffix == ".css" else None
        if kind:
            data = path.read_bytes()
            out[f"{kind}_bytes"] += len(data)
            out[f"{kind}_gzip_bytes"] += len(gzip.compress(data, 9))
    return out


def run(tasks: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tandem.db"
        asyncio.run(seed_demo(str(db), project_id="bench", task_count=tasks))
        server = start_server(Path(tmp), TANDEM_API_RATE_LIMIT="0")
        first, again = [], []
        try:
            token = httpx.post(
                f"{server.http_url}/api/v1/login",
                json={"username": "demo", "password": DEMO_PASSWORD},
            ).json()["token"]
            script = (
                f"localStorage.setItem('tandem.user', 'demo');"
                f"localStorage.setItem('tandem.token', '{token}');"
            )
            wait = (
                # every column drawn with its count (long columns hold only the cards in view)
                "() => [...document.querySelectorAll('.column .count')]"
                f".reduce((n, c) => n + Number(c.textContent), 0) === {tasks}"
                " && document.querySelector('.task-card') !== null"
                " && document.querySelector('[data-testid=sync-status]')?.textContent === 'Saved'"
            )
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for _ in range(repeat):
                    context = browser.new_context(base_url=server.http_url)
                    context.add_init_script(script)
                    page = context.new_page()
                    t0 = time.perf_counter()
                    page.goto("/#/p/bench/board")
                    page.wait_for_function(wait, timeout=60000, polling=10)
                    first.append(time.perf_counter() - t0)
                    page.evaluate("() => navigator.serviceWorker.ready")
                    t0 = time.perf_counter()
                    page.reload()
                    page.wait_for_function(wait, timeout=60000, polling=10)
                    again.append(time.perf_counter() - t0)
                    context.close()
                browser.close()
        finally:
            server.stop()
    result = {
        "tasks": tasks,
        "repeat": repeat,
        "statistic": "median",
        "start_bytes": start_sizes(),
        "board_ms_first_visit": round(statistics.median(first) * 1000),
        "board_ms_return_visit": round(statistics.median(again) * 1000),
    }
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = run(args.tasks, args.repeat)
    print(f"wrote {write_result('pwa_board', {'command': 'python -m bench.pwa_board', **result})}")


if __name__ == "__main__":
    main()
