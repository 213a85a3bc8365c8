"""A Drive file attached to a task shows in the open task view (Debian's Chromium,
Playwright), with Drive's icon, its size and its link; the server read the file from a
local stand-in of Google Drive (tests/providers) over an OAuth2 connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .conftest import ServerProcess, start_server
from .providers import files
from .providers.base import CLIENT_ID, CLIENT_SECRET
from .test_connections import connect
from .test_pwa import browser, open_board, project_with_tasks, pw, rest, signed_in

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
    connection = connect(app_server, project, "google", user="fay")
    context = signed_in(browser, app_server, "fay")
    page = context.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/task/{task}")
    expect(page.locator("textarea.title-input")).to_have_value("Write the plan", timeout=15000)
    listed = page.get_by_test_id("task-attachments")
    expect(listed).to_be_hidden()

    found = rest(
        app_server,
        "fay",
        "GET",
        f"/projects/{project}/connections/{connection['id']}/files/?q=plan",
    )
    assert found.json()["files"] == []
    found = rest(
        app_server,
        "fay",
        "GET",
        f"/projects/{project}/connections/{connection['id']}/files/?q=design",
    ).json()["files"]
    r = rest(
        app_server,
        "fay",
        "POST",
        f"/projects/{project}/tasks/{task}/attachments/",
        json={"connection": connection["id"], "file_id": found[0]["file_id"]},
    )
    assert r.status_code == 201, r.text

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
    context.close()
