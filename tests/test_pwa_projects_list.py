"""The project list marks an archived project, reading `status` from GET /projects/ only
when the server sends it (the listing gains the field in another change: until then the
test adds it to the real response on its way to the page)."""

from __future__ import annotations

import json

from playwright.sync_api import Route, expect

from . import test_pwa
from .test_pwa import axe_violations, project_with_tasks, rest, signed_in

pw, browser, app_server = test_pwa.pw, test_pwa.browser, test_pwa.app_server  # the fixtures


def test_an_archived_project_is_marked_and_listed_last(browser, app_server) -> None:
    old, _ = project_with_tasks(app_server, "arch", ["x"])
    r = rest(app_server, "arch", "POST", "/projects/", json={"name": "Zeta current"})
    assert r.status_code == 201, r.text
    r = rest(app_server, "arch", "PATCH", f"/projects/{old}/", json={"status": "archived"})
    assert r.status_code == 200, r.text
    listing = rest(app_server, "arch", "GET", "/projects/?limit=200").json()["items"]
    sent_status = all("status" in p for p in listing)
    context = signed_in(
        browser,
        app_server,
        "arch",
        service_workers="block",
        viewport={"width": 390, "height": 800},
    )

    def with_status(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        if not sent_status:  # what the server will send: each project's status
            statuses = {
                p["id"]: rest(app_server, "arch", "GET", f"/projects/{p['id']}/").json()["status"]
                for p in body["items"]
            }
            for p in body["items"]:
                p["status"] = statuses[p["id"]]
        route.fulfill(response=response, body=json.dumps(body))

    page = context.new_page()
    page.route("**/api/v1/projects/?limit=200", with_status)
    page.goto("/#/projects")
    links = page.locator("a.project")
    expect(links).to_have_count(2)
    expect(links.last).to_have_class("project archived")
    expect(links.last.get_by_test_id("project-status")).to_have_text("Archived")
    expect(links.first).to_contain_text("Zeta current")
    expect(links.first.get_by_test_id("project-status")).to_have_count(0)
    assert axe_violations(page) == []
    context.close()

    # a listing without the field (today's server, or an older one): no mark, nothing broken
    context = signed_in(browser, app_server, "arch", service_workers="block")
    page = context.new_page()
    page.route(
        "**/api/v1/projects/?limit=200",
        lambda route: route.fulfill(
            response=(resp := route.fetch()),
            body=json.dumps(
                {
                    **resp.json(),
                    "items": [
                        {k: v for k, v in p.items() if k != "status"} for p in resp.json()["items"]
                    ],
                }
            ),
        ),
    )
    page.goto("/#/projects")
    expect(page.locator("a.project")).to_have_count(2)
    expect(page.get_by_test_id("project-status")).to_have_count(0)
    context.close()
