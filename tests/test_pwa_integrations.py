"""The Integrations page in Debian's Chromium against a real server (issue 21, item 7), at
390 px: a GitHub endpoint set up in the page; a signed push naming a task key POSTed (by
the test, as GitHub would) to the URL the page shows with the secret it shows; the event in
the page and the link on the task; pause (confirmed) and delete; axe-clean, no sideways
scroll; a member gets "not found" and no navigation entry.
Screenshots go to test-output/screenshots/integrations-*.png."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from integrations.vcs import sign_github

from .conftest import ServerProcess, grant_role, start_server
from .providers import trackers
from .test_pwa import (
    PHONE,
    SHOTS,
    account,
    app_server,
    axe_violations,
    browser,
    project_with_tasks,
    pw,
    rest,
    signed_in,
)

__all__ = ["app_server", "browser", "pw"]  # fixtures, used by name


def signed_push(url: str, secret: str, message: str, delivery: str) -> httpx.Response:
    push = {
        "ref": "refs/heads/main",
        "repository": {
            "full_name": "octo/tandem",
            "html_url": "https://github.com/octo/tandem",
            "default_branch": "main",
        },
        "commits": [
            {
                "id": "9b1c2d3",
                "message": message,
                "url": "https://github.com/octo/tandem/commit/9b1c2d3",
                "author": {"name": "Octo Cat", "username": "octocat"},
            }
        ],
    }
    body = json.dumps(push).encode()
    return httpx.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign_github(secret, body),
        },
        timeout=15,
    )


def test_set_up_a_github_endpoint_receive_a_push_see_the_event_and_the_link(
    browser, app_server
) -> None:
    project, (task,) = project_with_tasks(app_server, "ines", ["Fix the login"])
    deadline = time.monotonic() + 15
    while not (key := rest(app_server, "ines", "GET", f"/tasks/{task}/").json().get("key")):
        assert time.monotonic() < deadline, "no key"
        time.sleep(0.05)

    context = signed_in(browser, app_server, "ines", **PHONE)
    page = context.new_page()
    page.goto(f"/#/p/{project}/board")
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=15000)
    # under More in the phone's navigation
    page.get_by_role("button", name="More").click()
    page.get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()

    github = page.locator("section[data-provider=github]")
    expect(github).to_contain_text("No repository connected.")
    github.get_by_role("button", name="Connect a repository").click()
    setup = page.get_by_test_id("webhook-setup")
    expect(setup).to_be_visible()
    url = page.get_by_role("textbox", name="Webhook URL").input_value()
    secret = page.get_by_role("textbox", name="Secret").input_value()
    assert url.startswith(app_server.http_url + "/api/v1/webhooks/github/"), url
    assert len(secret) >= 32
    expect(setup).to_contain_text("Payload URL")  # GitHub's settings steps, in words
    # copy buttons, announced to screen readers
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    setup.get_by_role("button", name="Copy the secret").click()
    expect(page.get_by_test_id("announce")).to_have_text("Secret copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "integrations-setup-390.png", full_page=True)
    assert axe_violations(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    # GitHub (the test) posts a signed push naming the key to the URL shown
    delivery = str(uuid.uuid4())
    sent = signed_push(url, secret, f"Fixes {key}: the login", delivery)
    assert sent.status_code == 202, sent.text
    endpoint = github.locator("li.endpoint")
    events = endpoint.get_by_test_id("events")
    expect(events).to_contain_text("push", timeout=15000)
    expect(events.locator("li").first).to_have_attribute("data-status", "done", timeout=15000)
    expect(endpoint).to_contain_text(f"moved {key} to done")
    expect(endpoint.get_by_test_id("endpoint-status")).to_have_text("Active")

    # done: the secret is no longer on the page
    setup.get_by_role("button", name="Done, hide the secret").click()
    expect(page.get_by_test_id("webhook-setup")).to_have_count(0)
    assert secret not in page.content()
    page.screenshot(path=SHOTS / "integrations-event-390.png", full_page=True)
    assert axe_violations(page) == []

    # the link on the task
    page.goto(f"/#/p/{project}/task/{task}")
    link = page.get_by_test_id("task-links").locator("a")
    expect(link).to_have_text(f"Fixes {key}: the login", timeout=15000)
    expect(page.locator("select[name=status]")).to_have_value("done")

    # pause (confirmed), by keyboard: a delivery is then recorded as ignored
    page.goto(f"/#/p/{project}/integrations")
    page.once("dialog", lambda d: d.accept())
    pause = endpoint.get_by_role("button", name="Pause endpoint")
    pause.focus()
    page.keyboard.press("Enter")
    expect(endpoint.get_by_test_id("endpoint-status")).to_have_text("Paused", timeout=10000)
    again = signed_push(url, secret, f"see {key}", str(uuid.uuid4()))
    assert again.status_code == 202 and again.json()["status"] == "ignored"
    expect(events.locator("li").first).to_have_attribute("data-status", "ignored", timeout=15000)
    expect(events.locator("li").first).to_contain_text("paused")

    # delete, after a confirmation that is refused first
    page.once("dialog", lambda d: d.dismiss())
    endpoint.get_by_role("button", name="Delete").click()
    expect(endpoint).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    endpoint.get_by_role("button", name="Delete").click()
    expect(github.locator("li.endpoint")).to_have_count(0, timeout=10000)
    expect(github).to_contain_text("No repository connected.")
    assert signed_push(url, secret, "x", str(uuid.uuid4())).status_code == 404
    context.close()


def test_a_member_gets_not_found_and_no_navigation_entry(browser, app_server) -> None:
    project, _ = project_with_tasks(app_server, "jonas", ["A task"])
    account(app_server, "karl")
    grant_role(app_server.db, "karl", project, "member")
    context = signed_in(browser, app_server, "karl", **PHONE)
    page = context.new_page()
    page.goto(f"/#/p/{project}/board")
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=15000)
    expect(page.locator("[data-view=integrations]")).to_have_count(0)
    page.goto(f"/#/p/{project}/integrations")
    expect(page.get_by_test_id("not-found")).to_be_visible()
    context.close()


@pytest.fixture(scope="module")
def toggl_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server whose Toggl is a local stand-in built from Toggl Track's API reference."""
    stand_in = trackers.toggl().start()
    server = start_server(
        tmp_path_factory.mktemp("pwa-connections"),
        TANDEM_API_RATE_LIMIT="0",
        TANDEM_OUTBOUND_ALLOW_PRIVATE="true",  # the stand-in is on 127.0.0.1
        TANDEM_TIME_IMPORT_INTERVAL_SECONDS="0",
        TANDEM_PROVIDER_TOGGL_URL=stand_in.url,
    )
    server.stand_in = stand_in  # type: ignore[attr-defined]  # the test reads its requests
    try:
        yield server
    finally:
        server.stop()
        stand_in.stop()


def test_connect_toggl_with_a_token_test_and_delete_it_in_the_page(browser, toggl_server) -> None:
    project, _ = project_with_tasks(toggl_server, "lena", ["A task"])
    context = signed_in(browser, toggl_server, "lena", **PHONE)
    page = context.new_page()
    page.goto(f"/#/p/{project}/integrations")
    card = page.locator("section[data-provider=connections]")
    expect(card).to_contain_text("No connection yet.", timeout=15000)
    card.get_by_label("Toggl Track API token").fill(trackers.API_TOKEN)
    card.get_by_role("button", name="Connect Toggl Track").click()
    item = card.locator("li.connection")
    expect(item).to_have_count(1, timeout=15000)
    expect(item.get_by_test_id("endpoint-status")).to_have_text("Active")
    assert trackers.API_TOKEN not in page.content()
    item.get_by_role("button", name="Test").click()
    expect(item.locator(".test-result")).to_contain_text("Test passed.", timeout=15000)
    expect(item).to_contain_text("Last used", timeout=10000)
    page.screenshot(path=SHOTS / "integrations-connection-390.png", full_page=True)
    assert axe_violations(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    # pause (confirmed): nothing reaches Toggl while paused, the test says why; then resume
    stand_in_requests = toggl_server.stand_in.requests
    seen = len(stand_in_requests)
    questions: list[str] = []

    def accept(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    item.get_by_role("button", name="Pause the Toggl Track connection").click()
    expect(item.get_by_test_id("endpoint-status")).to_have_text("Paused", timeout=10000)
    assert "Nothing is fetched from or sent to the provider" in questions[0]
    expect(page.get_by_test_id("announce")).to_contain_text("Connection paused")
    item.get_by_role("button", name="Test").click()
    expect(item.locator(".test-result")).to_contain_text("Test found a problem.", timeout=15000)
    expect(item.locator(".test-result")).to_contain_text("paused")
    assert stand_in_requests[seen:] == []
    page.screenshot(path=SHOTS / "integrations-connection-paused-390.png", full_page=True)
    assert axe_violations(page) == []
    item.get_by_role("button", name="Resume the Toggl Track connection").click()
    expect(item.get_by_test_id("endpoint-status")).to_have_text("Active", timeout=10000)
    item.get_by_role("button", name="Test").click()
    expect(item.locator(".test-result")).to_contain_text("Test passed.", timeout=15000)
    assert len(stand_in_requests) > seen

    page.once("dialog", lambda d: d.accept())
    item.get_by_role("button", name="Delete").click()
    expect(card.locator("li.connection")).to_have_count(0, timeout=10000)
    context.close()
