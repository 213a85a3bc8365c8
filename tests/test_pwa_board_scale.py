"""A 10,000-task board in Debian's Chromium against a real server: long columns are
windowed (only the cards in view are in the DOM) and keyboard focus, Alt+arrow moves, mouse
drag and drop, the quick add and axe-core keep working across the windowing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from sync_server.shell.demo import DEMO_PASSWORD

from . import test_pwa
from .conftest import ServerProcess, start_server, tandem
from .test_pwa import SHOTS, axe_violations, quick_add_is_shown

pw, browser = test_pwa.pw, test_pwa.browser  # the fixtures

TASKS = 10_000
PROJECT = "big"
CARD_LIMIT = 200  # four columns of a screenful each, with their overscan: far under 10,000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("bigboard")
    tandem("demo", "--project", PROJECT, "--tasks", str(TASKS), db=tmp / "tandem.db")
    server = start_server(tmp, TANDEM_API_RATE_LIMIT="0")
    try:
        yield server
    finally:
        server.stop()


def rest(server: ServerProcess, method: str, path: str, **kw) -> httpx.Response:
    token = httpx.post(
        f"{server.http_url}/api/v1/login",
        json={"username": "demo", "password": DEMO_PASSWORD},
        timeout=30,
    ).json()["token"]
    return httpx.request(
        method,
        f"{server.http_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kw,
    )


@pytest.fixture
def page(browser, big_server) -> Iterator[Page]:
    token = httpx.post(
        f"{big_server.http_url}/api/v1/login",
        json={"username": "demo", "password": DEMO_PASSWORD},
        timeout=30,
    ).json()["token"]
    context = browser.new_context(
        base_url=big_server.http_url, viewport={"width": 1280, "height": 800}
    )
    context.add_init_script(
        f"localStorage.setItem('tandem.user', 'demo'); localStorage.setItem('tandem.token', '{token}');"
    )
    p = context.new_page()
    p.goto(f"/#/p/{PROJECT}/board")
    expect(p.get_by_test_id("sync-status")).to_have_text("Saved", timeout=60000)
    p.wait_for_function(
        f"() => [...document.querySelectorAll('.column .count')]"
        f".reduce((n, c) => n + Number(c.textContent), 0) === {TASKS}",
        timeout=60000,
    )
    yield p
    context.close()


def cards_in_dom(page: Page) -> int:
    return page.locator(".task-card").count()


def column_ids(page: Page, status: str) -> list[str]:
    return page.evaluate("s => window.tandem.columnTasks(s).map(t => t.id)", status)


def test_the_dom_holds_a_bounded_number_of_cards_and_the_end_of_a_column_shows_its_last(
    page,
) -> None:
    assert 0 < cards_in_dom(page) < CARD_LIMIT
    todo = column_ids(page, "todo")
    assert len(todo) > 3000  # the demo puts 4 in 10 tasks there
    cards = page.locator("[data-column='todo'] .cards")
    cards.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = page.locator(f"[data-id='{todo[-1]}']")
    expect(last).to_be_in_viewport()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "board-10000-tasks-1280.png")
    expect(last).to_have_attribute("aria-posinset", str(len(todo)))
    expect(last).to_have_attribute("aria-setsize", str(len(todo)))
    assert cards_in_dom(page) < CARD_LIMIT
    expect(page.locator(f"[data-id='{todo[0]}']")).to_have_count(0)  # the top is gone
    # half way: the cards there, and still few in the DOM
    cards.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    middle = todo[len(todo) // 2]
    expect(page.locator(f"[data-id='{middle}']")).to_be_in_viewport()
    assert cards_in_dom(page) < CARD_LIMIT
    assert page.locator(".column").first.evaluate("c => c.scrollHeight") <= 800


def test_keyboard_focus_follows_the_arrows_and_alt_arrow_moves_across_the_window(
    page, big_server
) -> None:
    todo = column_ids(page, "todo")
    first = page.locator(f"[data-id='{todo[0]}']")
    first.focus()
    page.keyboard.press("End")  # the last card of 4,000 is drawn, scrolled to and focused
    last = page.locator(f"[data-id='{todo[-1]}']")
    expect(last).to_be_focused()
    expect(last).to_be_in_viewport()
    page.keyboard.press("ArrowUp")
    expect(page.locator(f"[data-id='{todo[-2]}']")).to_be_focused()
    page.keyboard.press("Home")
    expect(first).to_be_focused()
    expect(first).to_be_in_viewport()
    # the focused card stays in the DOM when its column scrolls far away
    page.locator("[data-column='todo'] .cards").evaluate("el => { el.scrollTop = 200000; }")
    page.wait_for_timeout(200)
    expect(first).to_be_focused()
    assert cards_in_dom(page) < CARD_LIMIT
    # Alt+→ moves it to the end of the 2,000-card In progress column, where it is shown
    page.keyboard.press("Alt+ArrowRight")
    moved = page.locator(f"[data-column='in_progress'] [data-id='{todo[0]}']")
    expect(moved).to_be_focused()
    expect(moved).to_be_in_viewport()
    assert column_ids(page, "in_progress")[-1] == todo[0]
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=20000)
    assert rest(big_server, "GET", f"/tasks/{todo[0]}/").json()["status"] == "in_progress"
    page.get_by_role("button", name="Undo").click()
    expect(page.locator(f"[data-column='todo'] [data-id='{todo[0]}']")).to_be_attached()
    assert column_ids(page, "todo")[0] == todo[0]


def test_a_card_dragged_from_deep_in_a_column_lands_where_it_is_dropped(page, big_server) -> None:
    todo = column_ids(page, "todo")
    review = column_ids(page, "review")
    cards = page.locator("[data-column='todo'] .cards")
    cards.evaluate("el => { el.scrollTop = 150000; }")  # card 1,500 or so
    dragged = page.locator("[data-column='todo'] .task-card").nth(8)
    expect(dragged).to_be_in_viewport()
    task = dragged.get_attribute("data-id")
    assert task in todo and todo.index(task) > 1000
    target = page.locator(f"[data-id='{review[1]}']")  # Review's second card
    dragged.drag_to(target, target_position={"x": 40, "y": 10})  # its upper half: before it
    expect(page.locator(f"[data-column='review'] [data-id='{task}']")).to_be_visible()
    assert column_ids(page, "review")[:3] == [review[0], task, review[1]]
    assert cards_in_dom(page) < CARD_LIMIT
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=20000)
    assert rest(big_server, "GET", f"/tasks/{task}/").json()["status"] == "review"


def test_a_quick_add_to_a_long_column_is_shown_and_the_board_passes_axe(page) -> None:
    added = quick_add_is_shown(page, "Added under four thousand")
    expect(added).to_have_attribute("aria-label", re.compile("Added under four thousand, Todo"))
    assert cards_in_dom(page) < CARD_LIMIT
    found = axe_violations(page)
    assert found == [], json.dumps(found, indent=1)
