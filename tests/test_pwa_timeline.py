"""The timeline in Debian's Chromium against a real server: bars dragged and resized by
whole days, the keyboard's day-by-day moves with Undo, milestones at their dates with labels
that do not overlap, and a viewer who cannot move anything."""

from __future__ import annotations

import itertools
import re

from playwright.sync_api import Page, expect

from . import test_pwa
from .test_pwa import account, axe_violations, project_with_tasks, rest, signed_in

pw, browser, app_server = test_pwa.pw, test_pwa.browser, test_pwa.app_server  # the fixtures

DAYS = 40  # 2026-11-01 .. 2026-12-10


def dates(page: Page, task: str) -> tuple[str | None, str | None]:
    return tuple(
        page.evaluate(
            "id => { const t = window.tandem.task(id); return [t.start || null, t.due || null]; }",
            task,
        )
    )  # type: ignore[return-value]


def wait_dates(page: Page, task: str, start: str | None, due: str | None) -> None:
    page.wait_for_function(
        "([id, s, d]) => { const t = window.tandem.task(id); return (t.start || null) === s && (t.due || null) === d; }",
        arg=[task, start, due],
        timeout=10000,
    )


def drag_by(page: Page, selector: str, dx: float, at: str = "center") -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None
    x = box["x"] + (box["width"] - 4 if at == "end" else box["width"] / 2)
    y = box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + dx * step / 10, y)
    page.mouse.up()


def saved_dates(server, user: str, task: str) -> tuple[str | None, str | None]:
    t = rest(server, user, "GET", f"/tasks/{task}/").json()
    return t["start"], t["due"]


def setup(server, owner: str) -> tuple[str, str, str]:
    project, (plan, build) = project_with_tasks(server, owner, ["Plan", "Build"])
    r = rest(
        server,
        owner,
        "PATCH",
        f"/tasks/{build}/",
        json={"start": "2026-11-21", "due": "2026-12-10"},
    )
    assert r.status_code == 200, r.text
    for name, due in (
        ("Alpha review", "2026-11-10"),
        ("Beta", "2026-11-11"),
        ("Gamma launch", "2026-11-12"),
        ("Wrap-up party", "2026-12-10"),
    ):
        r = rest(
            server,
            owner,
            "POST",
            f"/projects/{project}/milestones/",
            json={"name": name, "due": due},
        )
        assert r.status_code == 201, r.text
    return project, plan, build


def test_a_bar_is_dragged_resized_and_moved_from_the_keyboard_with_undo(
    browser, app_server
) -> None:
    project, plan, _ = setup(app_server, "tina")
    context = signed_in(browser, app_server, "tina", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"/#/p/{project}/timeline")
    bar = f".bar[data-task='{plan}']"
    expect(page.locator(bar)).to_be_visible(timeout=15000)
    track = page.locator(bar).locator("xpath=..").bounding_box()
    assert track is not None
    per_day = track["width"] / DAYS

    # dragged three days later: start and due both move
    drag_by(page, bar, 3 * per_day)
    wait_dates(page, plan, "2026-11-04", "2026-11-23")
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=10000)
    assert saved_dates(app_server, "tina", plan) == ("2026-11-04", "2026-11-23")
    expect(page).to_have_url(f"{app_server.http_url}/#/p/{project}/timeline")  # not opened
    page.get_by_role("button", name="Undo").click()
    wait_dates(page, plan, "2026-11-01", "2026-11-20")

    # its right end dragged five days earlier: only the due date changes
    expect(page.get_by_role("button", name="Undo")).to_have_count(0)
    drag_by(page, bar, -5 * per_day, at="end")
    wait_dates(page, plan, "2026-11-01", "2026-11-15")

    # keyboard: two days later (one toast, one Undo for the run), then the due date a day earlier
    page.locator(bar).focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    wait_dates(page, plan, "2026-11-03", "2026-11-17")
    expect(page.locator(bar)).to_be_focused()
    expect(page.locator(bar)).to_have_attribute(
        "aria-label", re.compile("^([A-Z0-9]+-[0-9]+ )?Plan: Nov 3 \u2013 17$")
    )
    expect(page.get_by_role("button", name="Undo")).to_have_count(1)
    page.get_by_role("button", name="Undo").click()
    wait_dates(page, plan, "2026-11-01", "2026-11-15")
    page.locator(bar).focus()
    page.keyboard.press("Shift+ArrowLeft")
    wait_dates(page, plan, "2026-11-01", "2026-11-14")
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=10000)
    assert saved_dates(app_server, "tina", plan) == ("2026-11-01", "2026-11-14")

    # a click (no drag) still opens the task
    page.locator(bar).click()
    expect(page.locator("textarea.description")).to_be_visible()
    context.close()


def test_milestones_sit_at_their_dates_and_their_labels_do_not_overlap(browser, app_server) -> None:
    project, _, _ = setup(app_server, "milo")
    for width in (1280, 390):
        context = signed_in(browser, app_server, "milo", viewport={"width": width, "height": 800})
        page = context.new_page()
        page.goto(f"/#/p/{project}/timeline")
        marks = page.locator(".timeline .milestone")
        expect(marks).to_have_count(4, timeout=15000)
        page.wait_for_timeout(300)
        track = page.locator(".milestones .lane-track").bounding_box()
        assert track is not None
        expected = {"Alpha review": 9, "Beta": 10, "Gamma launch": 11, "Wrap-up party": 39}
        labels = []
        for i in range(4):
            mark = marks.nth(i)
            name = mark.locator(".label").evaluate("el => el.firstChild.textContent")
            diamond = mark.locator(".diamond").bounding_box()
            assert diamond is not None
            centre = diamond["x"] + diamond["width"] / 2
            want = track["x"] + (expected[name] + 0.5) / DAYS * track["width"]
            assert abs(centre - want) < 3, (width, name, centre, want)
            box = mark.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (width, name, box)
            labels.append((name, box))
        for (a, p), (b, q) in itertools.combinations(labels, 2):
            apart = p["x"] + p["width"] <= q["x"] or q["x"] + q["width"] <= p["x"]
            apart = apart or p["y"] + p["height"] <= q["y"] or q["y"] + q["height"] <= p["y"]
            assert apart, (width, a, b, p, q)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert axe_violations(page) == []
        context.close()


def test_a_viewer_cannot_move_a_bar(browser, app_server) -> None:
    project, plan, _ = setup(app_server, "tara")
    account(app_server, "vic")
    app_server.grant("vic", project, "viewer")
    context = signed_in(browser, app_server, "vic", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"/#/p/{project}/timeline")
    bar = f".bar[data-task='{plan}']"
    expect(page.locator(bar)).to_be_visible(timeout=15000)
    expect(page.locator(f"{bar} .handle")).to_have_count(0)
    expect(page.locator(bar)).not_to_have_class("movable")
    page.locator(bar).focus()
    page.keyboard.press("ArrowRight")
    drag_by(page, bar, 200)  # nothing moves (the press and release open the task)
    page.wait_for_timeout(500)
    assert dates(page, plan) == ("2026-11-01", "2026-11-20")
    expect(page.get_by_role("button", name="Undo")).to_have_count(0)
    expect(page.get_by_test_id("refusal")).to_have_count(0)
    assert saved_dates(app_server, "tara", plan) == ("2026-11-01", "2026-11-20")
    context.close()
