"""Attach a Drive file to a task in the browser (Debian's Chromium, Playwright): search the
project's Drive connection from the task view, pick a result, and see it in the task view
with Drive's icon, its size and its link; the server read the file from a local stand-in
of Google Drive (tests/providers) over an OAuth2 connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .conftest import ServerProcess, start_server
from .providers import files
from .providers.base import CLIENT_ID, CLIENT_SECRET
from .test_connections import connect
from .test_pwa import account, browser, open_board, project_with_tasks, pw, rest, signed_in

__all__ = ["browser", "pw"]  # fixtures, used by name


@pytest.fixture(scope="module")
def drive() -> Iterator[files.FilesStandIn]:
    stand_in = files.google().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, drive) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("pwa-files"),
        TANDEM_API_RATE_LIMIT="0",
        TANDEM_OUTBOUND_ALLOW_PRIVATE="true",
        TANDEM_PROVIDER_GOOGLE_URL=drive.url,
        TANDEM_PROVIDER_GOOGLE_CLIENT_ID=CLIENT_ID,
        TANDEM_PROVIDER_GOOGLE_CLIENT_SECRET=CLIENT_SECRET,
    )
    try:
        yield server
    finally:
        server.stop()


def test_attach_a_drive_file_and_see_it_in_the_task_view(browser, app_server):
    project, (task,) = project_with_tasks(app_server, "fay", ["Write the plan"])
    connect(app_server, project, "google", user="fay")
    context = signed_in(browser, app_server, "fay")
    page = context.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/task/{task}")
    expect(page.locator("textarea.title-input")).to_have_value("Write the plan", timeout=15000)
    listed = page.get_by_test_id("task-attachments")
    expect(listed).to_be_hidden()

    # pick it in the task view: the project's Drive connection, a search, a click
    page.get_by_test_id("attach-open").click()
    picker = page.get_by_test_id("attach-picker")
    expect(picker.locator("select[name=source] option")).to_have_text(["Google Drive"])
    picker.get_by_role("searchbox", name="Search files").fill("no such file")
    picker.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("attach-results")).to_have_text("No files found")
    picker.get_by_role("searchbox", name="Search files").fill("design")
    picker.get_by_role("button", name="Search").click()
    result = page.get_by_test_id("attach-results").get_by_role("button")
    expect(result).to_have_text("Design review.pdf")
    result.click()

    item = listed.locator("li.attachment")
    expect(item).to_have_count(1, timeout=15000)  # arrives over the open sync socket
    expect(item).to_have_attribute("data-provider", "google")
    expect(item.get_by_role("img", name="Google Drive")).to_be_visible()
    link = item.locator("a")
    expect(link).to_have_text("Design review.pdf")
    expect(link).to_have_attribute(
        "href", "https://drive.google.com/file/d/1QrStUvWxYz012345/view?usp=drivesdk"
    )
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(item.locator(".attachment-size")).to_have_text("1.0 MB")
    expect(picker).to_be_hidden()
    stored = rest(app_server, "fay", "GET", f"/tasks/{task}/").json()["attachments"]
    assert [(a["name"], a["added_by"]) for a in stored] == [("Design review.pdf", "fay")]

    # someone who may not edit the task gets no picker
    account(app_server, "vera")
    r = rest(app_server, "fay", "PUT", f"/projects/{project}/members/vera", json={"role": "viewer"})
    assert r.status_code in (200, 201), r.text
    viewer = signed_in(browser, app_server, "vera")
    other = viewer.new_page()
    open_board(other, project)
    other.goto(f"/#/p/{project}/task/{task}")
    expect(other.get_by_test_id("task-attachments").locator("li")).to_have_count(1, timeout=15000)
    expect(other.get_by_test_id("attach-open")).to_be_hidden()
    viewer.close()
    context.close()
