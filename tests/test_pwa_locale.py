"""Dates, numbers, money and times in the user's locale: the browser's language (a German
Chromium here), or the one chosen under Settings."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from . import test_pwa
from .test_pwa import open_board, rest, rich_project, signed_in

pw, browser, app_server = test_pwa.pw, test_pwa.browser, test_pwa.app_server  # the fixtures


def test_a_german_browser_gets_german_dates_numbers_and_money(browser, app_server) -> None:
    owner = "greta"
    project, ids = rich_project(app_server, owner)  # due 2026-11-20, budget 1,000 EUR, cost 1,200
    context = signed_in(
        browser,
        app_server,
        owner,
        locale="de-DE",
        timezone_id="Europe/Berlin",
        viewport={"width": 1280, "height": 800},
    )
    page = context.new_page()
    open_board(page, project)
    card = page.locator(f"[data-id='{ids[0]}']")
    expect(card.locator(".due")).to_have_text(re.compile(r"^(Overdue · )?20\. Nov\.( 2026)?$"))
    expect(card).to_have_attribute("aria-label", re.compile(r"due 20\. Nov\."))

    page.goto(f"/#/p/{project}/budget")
    stats = page.locator(".stat strong")
    expect(stats.nth(0)).to_have_text(re.compile(r"^1\.000,00\s€$"))  # budget
    expect(stats.nth(1)).to_have_text(re.compile(r"^1\.200,00\s€$"))  # spent
    expect(stats.nth(2)).to_have_text(re.compile(r"^-200,00\s€$"))  # remaining
    expect(stats.nth(3)).to_have_text("2,5")  # hours logged
    expect(page.locator("#time-title ~ .table-wrap tbody td[data-label=Hours]")).to_have_text("2,5")
    expect(page.locator("td[data-label=Date]").first).to_have_text(re.compile(r"^5\. Nov\."))

    page.goto(f"/#/p/{project}/resources")
    expect(page.get_by_test_id("load")).to_have_text(re.compile(r"over-allocated: 130\s%"))

    page.goto(f"/#/p/{project}/timeline")
    expect(page.locator(".timeline .tick").first).to_have_text(re.compile(r"^\d{1,2}\. \w+\.?"))
    bar = page.locator(f".bar[data-task='{ids[0]}']")
    expect(bar).to_have_attribute("aria-label", re.compile(r"1\.[\u2013-]20\. Nov\."))

    # a comment's time reads relative, in German
    rest(
        app_server,
        owner,
        "POST",
        f"/projects/{project}/comments/",
        json={"text": "Hallo", "task": ids[0]},
    )
    page.goto(f"/#/p/{project}/task/{ids[0]}")
    expect(page.locator(".comments time").first).to_have_text(
        re.compile(r"^(jetzt|vor \d+ (Sekunden|Minute|Minuten))$"), timeout=10000
    )

    # the user's own choice wins over the browser's
    page.goto(f"/#/p/{project}/settings")
    page.locator("select[name=locale]").select_option("en-GB")
    expect(page.get_by_test_id("locale-sample")).to_contain_text("20 Nov")
    page.goto(f"/#/p/{project}/budget")
    expect(page.locator(".stat strong").nth(0)).to_have_text("€1,000.00")
    context.close()
