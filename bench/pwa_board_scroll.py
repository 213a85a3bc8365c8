"""The board on a long project: time to first board paint and the frame time while a long
column scrolls, in headless Chromium against ``tandem serve`` (demo projects of 300 and
10,000 tasks).

    .venv/bin/python -m bench.pwa_board_scroll [--tasks 300,10000] [--repeat 3]
        [--builds after=client_pwa/dist,before=/tmp/dist-main]

"first paint": navigation start (a new browser context, nothing cached) until the frame in
which the board's first card exists (checked on every animation frame), as the page's
``performance.now()``; then also until every column's count is drawn and the status says
Saved ("ready").
"move a card": Alt+→ on the first card of the longest column until it is focused in the next
column and a frame has drawn it; "open a task": a click on a card until its page shows.
"scroll frame": the longest column scrolled from top to bottom in 60 steps, one step per
animation frame; the time between consecutive frames (median, p95, worst), and how many
frames took longer than 50 ms. A frame on this machine's headless Chromium is 16.7 ms
when nothing else is in the way.

Builds are compared interleaved (A, B, A, B, ...) in one invocation: each is served from
its own directory (``TANDEM_STATIC_DIR``), so an older build saved with ``cp -r
client_pwa/dist /tmp/dist-main`` is the "before".
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from sync_server.shell.demo import DEMO_PASSWORD, seed_demo
from tests.conftest import start_server
from tests.test_pwa import ARGS, CHROMIUM

from .common import write_result

ROOT = Path(__file__).resolve().parent.parent

FIRST_CARD = (
    "() => document.querySelector('.task-card') && (window.__firstCard ??= performance.now())"
)
READY = (
    "() => document.querySelectorAll('.column').length > 0"
    " && document.querySelector('[data-testid=sync-status]')?.textContent === 'Saved'"
    " && (window.__ready ??= performance.now())"
)
# Scrolls the longest column to its end, one step a frame; returns the frame intervals.
SCROLL = """async () => {
  const lists = [...document.querySelectorAll('.column .cards')];
  const el = lists.sort((a, b) => b.scrollHeight - a.scrollHeight)[0];
  const steps = 60;
  const stride = (el.scrollHeight - el.clientHeight) / steps;
  const times = [];
  await new Promise((done) => {
    let n = 0;
    const frame = (t) => {
      times.push(t);
      if (n++ >= steps) return done();
      el.scrollTop = Math.round(n * stride);
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const last = el.querySelectorAll('.task-card');
  return {
    intervals: times.slice(1).map((t, i) => t - times[i]),
    cards_in_dom: document.querySelectorAll('.task-card').length,
    at_end: el.scrollTop + el.clientHeight >= el.scrollHeight - 2,
    last_card_shown: last.length > 0,
  };
}"""


# Interaction latency: Alt+→ on the first card of the longest column until the card is in
# the next column and focused; then a click on a card until its task page shows.
MOVE = """async () => {
  const lists = [...document.querySelectorAll('.column .cards')];
  const list = lists.sort((a, b) => b.scrollHeight - a.scrollHeight)[0];
  list.scrollTop = 0;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const card = list.querySelector('.task-card');
  const id = card.dataset.id;
  const from = card.closest('[data-column]').dataset.column;
  card.focus();
  const t0 = performance.now();
  card.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', altKey: true, bubbles: true }));
  await new Promise((done) => {
    const check = () => {
      const el = document.activeElement;
      if (el?.dataset?.id === id && el.closest('[data-column]').dataset.column !== from) return done();
      requestAnimationFrame(check);
    };
    check();
  });
  await new Promise((r) => requestAnimationFrame(r)); // the frame that shows it
  return performance.now() - t0;
}"""
OPEN = """async () => {
  const card = document.querySelector('.task-card');
  const t0 = performance.now();
  card.click();
  await new Promise((done) => {
    const check = () => (document.querySelector('textarea.description') ? done() : requestAnimationFrame(check));
    check();
  });
  await new Promise((r) => requestAnimationFrame(r));
  return performance.now() - t0;
}"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def one_visit(browser: Browser, url: str, script: str) -> dict:
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 800})
    context.add_init_script(script)
    page = context.new_page()
    try:
        page.goto("/#/p/bench/board")
        first = page.wait_for_function(FIRST_CARD, timeout=180000, polling="raf").json_value()
        ready = page.wait_for_function(READY, timeout=180000, polling=50).json_value()
        page.wait_for_timeout(500)
        scroll = page.evaluate(SCROLL)
        move = page.evaluate(MOVE)
        page.wait_for_timeout(300)
        opened = page.evaluate(OPEN)
    finally:
        context.close()
    return {
        "first_paint_ms": first,
        "ready_ms": ready,
        "move_ms": move,
        "open_ms": opened,
        **scroll,
    }


def run(tasks: int, repeat: int, builds: dict[str, Path]) -> dict:
    samples: dict[str, list[dict]] = {name: [] for name in builds}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "tandem.db"
        asyncio.run(seed_demo(str(db), project_id="bench", task_count=tasks))
        servers = {}
        try:
            for name, dist in builds.items():
                # one server per build, each on its own copy of the seeded file
                (Path(tmp) / name).mkdir()
                shutil.copy(db, Path(tmp) / name / "tandem.db")
                servers[name] = start_server(
                    Path(tmp) / name, TANDEM_API_RATE_LIMIT="0", TANDEM_STATIC_DIR=str(dist)
                )
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for _ in range(repeat):
                    for name, server in servers.items():
                        token = httpx.post(
                            f"{server.http_url}/api/v1/login",
                            json={"username": "demo", "password": DEMO_PASSWORD},
                        ).json()["token"]
                        script = (
                            "localStorage.setItem('tandem.user', 'demo');"
                            f"localStorage.setItem('tandem.token', '{token}');"
                        )
                        visit = one_visit(browser, server.http_url, script)
                        print(name, tasks, {k: v for k, v in visit.items() if k != "intervals"})
                        samples[name].append(visit)
                browser.close()
        finally:
            for server in servers.values():
                server.stop()
    out = {}
    for name, visits in samples.items():
        frames = [f for v in visits for f in v["intervals"]]
        out[name] = {
            "first_paint_ms": round(statistics.median(v["first_paint_ms"] for v in visits)),
            "ready_ms": round(statistics.median(v["ready_ms"] for v in visits)),
            "move_card_ms": round(statistics.median(v["move_ms"] for v in visits)),
            "open_task_ms": round(statistics.median(v["open_ms"] for v in visits)),
            "scroll_frame_ms_median": round(statistics.median(frames), 1),
            "scroll_frame_ms_p95": round(percentile(frames, 0.95), 1),
            "scroll_frame_ms_worst": round(max(frames), 1),
            "frames_over_50ms": round(
                statistics.median(sum(f > 50 for f in v["intervals"]) for v in visits)
            ),
            "cards_in_dom_after_scroll": max(v["cards_in_dom"] for v in visits),
            "scrolled_to_end": all(v["at_end"] for v in visits),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="300,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--builds", default=f"after={ROOT / 'client_pwa' / 'dist'}")
    args = parser.parse_args()
    builds = {
        name: Path(path).resolve()
        for name, path in (item.split("=", 1) for item in args.builds.split(","))
    }
    results = {}
    for tasks in (int(t) for t in args.tasks.split(",")):
        results[str(tasks)] = run(tasks, args.repeat, builds)
        for name, figures in results[str(tasks)].items():
            print(f"{tasks} tasks, {name} (medians of {args.repeat}): {figures}", flush=True)
    path = write_result(
        "pwa_board_scroll",
        {
            "command": f"python -m bench.pwa_board_scroll --tasks {args.tasks}"
            f" --repeat {args.repeat} --builds {args.builds}",
            "statistic": "median",
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
