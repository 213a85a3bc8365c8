"""Task keys and links in the browser app (Debian's Chromium, Playwright): the key on the
board's card and in the task view, and a commit that names it appearing in the open task
view, with the task moved to done, when GitHub's webhook arrives."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from playwright.sync_api import expect

from integrations.vcs import sign_github

from .test_pwa import app_server, browser, open_board, project_with_tasks, pw, rest, signed_in

__all__ = ["app_server", "browser", "pw"]  # fixtures, used by name


def test_the_key_shows_on_the_card_and_a_linked_commit_in_the_task_view(browser, app_server):
    project, (task,) = project_with_tasks(app_server, "kira", ["Fix the login"])
    deadline = time.monotonic() + 15
    while not (key := rest(app_server, "kira", "GET", f"/tasks/{task}/").json().get("key")):
        assert time.monotonic() < deadline, "no key"
        time.sleep(0.05)
    made = rest(
        app_server, "kira", "POST", f"/projects/{project}/webhooks/", json={"provider": "github"}
    ).json()

    context = signed_in(browser, app_server, "kira")
    page = context.new_page()
    open_board(page, project)
    expect(page.get_by_test_id("card-key")).to_have_text(key)
    page.goto(f"/#/p/{project}/task/{task}")
    expect(page.get_by_test_id("task-key")).to_have_text(key)
    expect(page.locator("select[name=status]")).to_have_value("todo")

    commit_url = "https://github.com/octo/tandem/commit/4f2a9c1"
    push = {
        "ref": "refs/heads/main",
        "repository": {
            "full_name": "octo/tandem",
            "html_url": "https://github.com/octo/tandem",
            "default_branch": "main",
        },
        "commits": [
            {
                "id": "4f2a9c1",
                "message": f"Fixes {key}: the login",
                "url": commit_url,
                "author": {"name": "Octo Cat", "username": "octocat"},
            }
        ],
    }
    body = json.dumps(push).encode()
    sent = httpx.post(
        app_server.http_url + made["path"],
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(made["secret"], body),
        },
    )
    assert sent.status_code == 202, sent.text
    link = page.get_by_test_id("task-links").locator("a")
    expect(link).to_have_text(f"Fixes {key}: the login", timeout=15000)
    expect(link).to_have_attribute("href", commit_url)
    expect(page.get_by_test_id("task-links")).to_contain_text("octocat")
    expect(page.locator("select[name=status]")).to_have_value("done")
    context.close()
