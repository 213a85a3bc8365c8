"""Inbound GitHub, GitLab and Bitbucket webhooks against a real `tandem serve`: signatures,
replays, every @octokit/webhooks-examples payload, and commits / pull requests that move
tasks to done as a connected y-websocket client sees it."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integrations.vcs import sign_github

from .conftest import NODE_DIR, node_available, tandem
from .conftest import api_client as api
from .conftest import wait_until as wait_for

DATA = Path(__file__).parent / "data"
EXAMPLES = NODE_DIR / "node_modules" / "@octokit" / "webhooks-examples"

needs_node = pytest.mark.skipif(
    not node_available() or not EXAMPLES.is_dir(), reason="run `make setup` for tests/node"
)


class Project:
    """A project "Tandem" (keys TDM-N) with tasks, and a way to read them over REST."""

    def __init__(self, server, titles: list[str]) -> None:
        self.server = server
        self.client = api(server)
        created = self.client.post("/projects/", json={"name": "Tandem"})
        assert created.status_code == 201, created.text
        self.id = created.json()["id"]
        self.tasks: dict[str, str] = {}  # key -> task id
        for title in titles:
            made = self.client.post(f"/projects/{self.id}/tasks/", json={"title": title})
            assert made.status_code == 201, made.text
            task_id = made.json()["id"]
            key = wait_for(lambda t=task_id: self.task(t).get("key"), what="a task key")
            self.tasks[key] = task_id

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.client.get(f"/tasks/{task_id}/")
        assert response.status_code == 200, response.text
        return response.json()

    def by_key(self, key: str) -> dict[str, Any]:
        return self.task(self.tasks[key])

    def endpoint(self, provider: str) -> tuple[str, str]:
        made = self.client.post(f"/projects/{self.id}/webhooks/", json={"provider": provider})
        assert made.status_code == 201, made.text
        return made.json()["path"], made.json()["secret"]

    def deliveries(self, path: str) -> list[dict[str, Any]]:
        endpoint = path.rstrip("/").rsplit("/", 1)[1]
        response = self.client.get(f"/projects/{self.id}/webhooks/{endpoint}/deliveries/")
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture
def project(server) -> Iterator[Project]:
    p = Project(server, ["Login bug", "Signup page", "Docs", "Release notes"])
    try:
        yield p
    finally:
        p.client.close()


def post_github(
    server, path: str, secret: str, event: str, payload: Any, delivery: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        server.http_url + path,
        content=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/test",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(secret, body),
        },
        timeout=30,
    )


def post_gitlab(server, path: str, token: str, event: str, payload: Any) -> httpx.Response:
    return httpx.post(
        server.http_url + path,
        content=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "X-Gitlab-Token": token,
        },
        timeout=30,
    )


def post_bitbucket(server, path: str, secret: str, event: str, payload: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        server.http_url + path,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Event-Key": event,
            "X-Request-UUID": str(uuid.uuid4()),
            "X-Hook-UUID": "{6e4ba3d8-0f9b-4b4e-8a5c-5ad3a1e8a7f2}",
            "X-Hub-Signature": sign_github(secret, body),  # Bitbucket signs as GitHub does
        },
        timeout=30,
    )


def github_push(key_message: str, branch: str = "main", default: str = "main") -> dict:
    """A push as GitHub sends it (the octokit example, its commit message replaced)."""
    examples = octokit_examples()
    push = copy.deepcopy(next(p for e, p in examples if e == "push" and p.get("commits")))
    push["ref"] = f"refs/heads/{branch}"
    push["repository"]["default_branch"] = default
    push["repository"]["master_branch"] = default
    push["deleted"] = False
    commit = push["commits"][0]
    commit["message"] = key_message
    push["commits"] = [commit]
    push["head_commit"] = commit
    return push


def github_pull_request(title: str, *, merged: bool) -> dict:
    examples = octokit_examples()
    pr = copy.deepcopy(next(p for e, p in examples if e == "pull_request"))
    pr["action"] = "closed" if merged else "opened"
    pr["pull_request"]["title"] = title
    pr["pull_request"]["state"] = "closed" if merged else "open"
    pr["pull_request"]["merged"] = merged
    pr["pull_request"]["merged_at"] = "2026-12-02T10:00:00Z" if merged else None
    return pr


_EXAMPLES: list[tuple[str, Any]] = []


def octokit_examples() -> list[tuple[str, Any]]:
    """Every example payload of @octokit/webhooks-examples (api.github.com and the GHES
    versions), each distinct one once, with its event name."""
    if not _EXAMPLES:
        seen: set[str] = set()
        for index in sorted(EXAMPLES.glob("*/index.json")):
            for event in json.loads(index.read_text()):
                for example in event["examples"]:
                    digest = hashlib.sha256(
                        json.dumps([event["name"], example], sort_keys=True).encode()
                    ).hexdigest()
                    if digest not in seen:
                        seen.add(digest)
                        _EXAMPLES.append((event["name"], example))
    return _EXAMPLES


class TaskWatcher:
    """A y-websocket client (Node) on the project, synced before anything is sent."""

    def __init__(self, server, project: Project, key: str, status: str, links: int) -> None:
        self.proc = subprocess.Popen(
            [
                "node",
                str(NODE_DIR / "watch_task.mjs"),
                server.ws_url,
                f"p/{project.id}",
                server.token("alice"),
                project.tasks[key],
                status,
                str(links),
                "20000",
            ],
            cwd=NODE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", (line, self.proc.stderr.read() if self.proc.stderr else "")

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=60)
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["ok"], (seen, err)
        return seen["task"]


# -- GitHub ------------------------------------------------------------------------------


@needs_node
def test_every_octokit_example_signed_gets_a_2xx(server, project) -> None:
    path, secret = project.endpoint("github")
    examples = octokit_examples()
    assert len(examples) > 300
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        for event, payload in examples:
            body = json.dumps(payload).encode()
            response = client.post(
                path,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": event,
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign_github(secret, body),
                },
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert 200 <= response.status_code < 300, (event, response.text)
    assert statuses == {202: len(examples)}
    # every one stored and processed; none failed (an example names no TDM key)
    deliveries = wait_for(
        lambda: (d := project.deliveries(path)) and all(x["status"] != "pending" for x in d) and d,
        timeout=60,
        what="deliveries processed",
    )
    assert not [d for d in deliveries if d["status"] == "failed"], deliveries
    assert all(project.by_key(k)["status"] == "todo" for k in project.tasks)


def test_a_forged_or_missing_signature_gets_401_problem_details_and_changes_nothing(
    server, project
) -> None:
    path, secret = project.endpoint("github")
    payload = github_push("Fixes TDM-1")
    body = json.dumps(payload).encode()
    base = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    attempts = {
        "wrong secret": {**base, "X-Hub-Signature-256": sign_github("not the secret", body)},
        "missing": base,
        "other body": {**base, "X-Hub-Signature-256": sign_github(secret, body + b" ")},
        "sha1 form": {**base, "X-Hub-Signature-256": "sha1=" + "0" * 40},
    }
    for what, headers in attempts.items():
        response = httpx.post(
            server.http_url + path,
            content=body,
            headers={**headers, "X-GitHub-Delivery": str(uuid.uuid4())},
        )
        assert response.status_code == 401, (what, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == 401
        assert "X-Hub-Signature-256" in problem["detail"], problem
    # a GitLab endpoint: the token must match
    gl_path, token = project.endpoint("gitlab")
    assert post_gitlab(server, gl_path, token + "x", "Push Hook", {}).status_code == 401
    # an unknown endpoint is 404, never processed
    assert (
        post_github(
            server, path.replace(path.split("/")[-2], "0" * 16), secret, "push", payload
        ).status_code
        == 404
    )
    time.sleep(1.0)
    assert project.deliveries(path) == []
    assert project.deliveries(gl_path) == []
    assert project.by_key("TDM-1")["status"] == "todo"
    assert project.by_key("TDM-1").get("links") in (None, [])


@needs_node
def test_a_push_that_fixes_a_key_moves_the_task_to_done_and_a_replay_changes_nothing(
    server, project
) -> None:
    path, secret = project.endpoint("github")
    watcher = TaskWatcher(server, project, "TDM-1", "done", 1)
    delivery = str(uuid.uuid4())
    payload = github_push("Fixes TDM-1: the login bug\n\nAlso touches TDM-3.")
    response = post_github(server, path, secret, "push", payload, delivery)
    assert response.status_code == 202, response.text
    task = watcher.result()
    assert task["status"] == "done"
    [link] = task["links"]
    commit = payload["commits"][0]
    assert link == {
        "kind": "commit",
        "url": commit["url"],
        "title": "Fixes TDM-1: the login bug",
        "author": commit["author"].get("username") or commit["author"]["name"],
        "state": "pushed to main",
    }
    # TDM-3 is named (linked), not closed
    wait_for(lambda: project.by_key("TDM-3").get("links"), what="TDM-3's link")
    assert project.by_key("TDM-3")["status"] == "todo"

    # someone reopens the task; the same delivery again changes nothing
    reopened = project.client.patch(f"/tasks/{project.tasks['TDM-1']}/", json={"status": "todo"})
    assert reopened.status_code == 200, reopened.text
    replay = post_github(server, path, secret, "push", payload, delivery)
    assert replay.status_code == 200, replay.text
    assert replay.json()["status"] == "duplicate"
    time.sleep(1.0)
    assert project.by_key("TDM-1")["status"] == "todo"
    assert len(project.by_key("TDM-1")["links"]) == 1
    assert [d["delivery"] for d in project.deliveries(path)] == [delivery]

    # closing words on another branch link the commit but close nothing
    other = github_push("fixes TDM-2", branch="feature/signup")
    assert post_github(server, path, secret, "push", other).status_code == 202
    wait_for(lambda: project.by_key("TDM-2").get("links"), what="TDM-2's link")
    assert project.by_key("TDM-2")["status"] == "todo"
    assert project.by_key("TDM-2")["links"][0]["state"] == "pushed to feature/signup"


@needs_node
def test_a_merged_pull_request_naming_a_key_moves_the_task_to_done(server, project) -> None:
    path, secret = project.endpoint("github")
    opened = github_pull_request("TDM-2 signup page", merged=False)
    assert post_github(server, path, secret, "pull_request", opened).status_code == 202
    link = wait_for(lambda: project.by_key("TDM-2").get("links"), what="the PR's link")[0]
    assert link["kind"] == "pull_request" and link["state"] == "open"
    assert project.by_key("TDM-2")["status"] == "todo"

    watcher = TaskWatcher(server, project, "TDM-2", "done", 1)
    merged = github_pull_request("TDM-2 signup page", merged=True)
    assert post_github(server, path, secret, "pull_request", merged).status_code == 202
    task = watcher.result()
    assert task["status"] == "done"
    [link] = task["links"]  # the same pull request: its link updated, not added again
    assert link["state"] == "merged"
    assert link["url"] == merged["pull_request"]["html_url"]
    assert link["author"] == merged["pull_request"]["user"]["login"]


# -- GitLab ------------------------------------------------------------------------------


@needs_node
def test_gitlab_push_and_merge_request_hooks_with_the_token_move_tasks(server, project) -> None:
    path, token = project.endpoint("gitlab")
    push = json.loads((DATA / "gitlab" / "push_hook.json").read_text())
    push["commits"][1]["message"] = push["commits"][1]["title"] = "fixed readme, resolves TDM-1"
    watcher = TaskWatcher(server, project, "TDM-1", "done", 1)
    assert post_gitlab(server, path, token, "Push Hook", push).status_code == 202
    task = watcher.result()
    [link] = task["links"]
    assert link["kind"] == "commit" and link["url"] == push["commits"][1]["url"]
    assert link["author"] == "GitLab dev user"

    mr = json.loads((DATA / "gitlab" / "merge_request_hook.json").read_text())
    mr["object_attributes"]["title"] = "TDM-2: MS-Viewport"
    assert post_gitlab(server, path, token, "Merge Request Hook", mr).status_code == 202
    wait_for(lambda: project.by_key("TDM-2").get("links"), what="the MR's link")
    assert project.by_key("TDM-2")["status"] == "todo"  # opened, not merged
    watcher = TaskWatcher(server, project, "TDM-2", "done", 1)
    mr["object_attributes"]["state"] = "merged"
    mr["object_attributes"]["action"] = "merge"
    assert post_gitlab(server, path, token, "Merge Request Hook", mr).status_code == 202
    [link] = watcher.result()["links"]
    assert link["kind"] == "merge_request" and link["state"] == "merged"
    assert link["url"] == mr["object_attributes"]["url"] and link["author"] == "root"

    # a comment and a tag push: linked; the documented examples as they are: 2xx, ignored
    note = json.loads((DATA / "gitlab" / "note_hook_merge_request.json").read_text())
    assert post_gitlab(server, path, token, "Note Hook", note).status_code == 202
    note["object_attributes"]["note"] = "TDM-4 needs the release notes"
    assert post_gitlab(server, path, token, "Note Hook", note).status_code == 202
    tag = json.loads((DATA / "gitlab" / "tag_push_hook.json").read_text())
    assert post_gitlab(server, path, token, "Tag Push Hook", tag).status_code == 202
    link = wait_for(lambda: project.by_key("TDM-4").get("links"), what="the note's link")[0]
    assert link["kind"] == "issue_comment" and link["author"] == "root"
    assert project.by_key("TDM-4")["status"] == "todo"


# -- Bitbucket ---------------------------------------------------------------------------


@needs_node
def test_bitbucket_push_and_merged_pull_request_move_tasks(server, project) -> None:
    path, secret = project.endpoint("bitbucket")
    push = json.loads((DATA / "bitbucket" / "repo_push.json").read_text())
    push["push"]["changes"][0]["commits"][0]["message"] = "Closes TDM-3\n"
    watcher = TaskWatcher(server, project, "TDM-3", "done", 1)
    assert post_bitbucket(server, path, secret, "repo:push", push).status_code == 202
    [link] = watcher.result()["links"]
    assert link["kind"] == "commit" and link["author"] == "emma"

    pr = json.loads((DATA / "bitbucket" / "pullrequest_fulfilled.json").read_text())
    pr["pullrequest"]["source"]["branch"]["name"] = "feature/TDM-4-notes"
    watcher = TaskWatcher(server, project, "TDM-4", "done", 1)
    assert post_bitbucket(server, path, secret, "pullrequest:fulfilled", pr).status_code == 202
    [link] = watcher.result()["links"]
    assert link["kind"] == "pull_request" and link["state"] == "merged"
    comment = json.loads((DATA / "bitbucket" / "pullrequest_comment_created.json").read_text())
    response = post_bitbucket(server, path, secret, "pullrequest:comment_created", comment)
    assert response.status_code == 202


# -- management --------------------------------------------------------------------------


def test_endpoints_are_managed_by_manage_team_and_the_cli_prints_path_and_secret(
    server, project
) -> None:
    out = tandem("webhook", "create", "github", "--project", project.id, db=server.db)
    lines = out.strip().splitlines()
    path, secret = lines[-2], lines[-1]
    assert path.startswith("/api/v1/webhooks/github/") and path.endswith("/")
    assert len(secret) >= 32
    # the CLI's endpoint works at once (a push naming a key links the task)
    assert post_github(server, path, secret, "push", github_push("see TDM-4")).status_code == 202
    wait_for(lambda: project.by_key("TDM-4").get("links"), what="TDM-4's link")

    listed = project.client.get(f"/projects/{project.id}/webhooks/").json()["items"]
    assert [e["path"] for e in listed] == [path]
    assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
    assert secret not in server.log()  # never logged

    from .conftest import grant_role

    grant_role(server.db, "bob", project.id, "member")
    with api(server, "bob") as bob:
        refused = bob.post(f"/projects/{project.id}/webhooks/", json={"provider": "gitlab"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["permission"] == "manage_team"
    bad = project.client.post(f"/projects/{project.id}/webhooks/", json={"provider": "svn"})
    assert bad.status_code == 422 and "provider" in bad.text

    endpoint = path.rstrip("/").rsplit("/", 1)[1]
    assert project.client.delete(f"/projects/{project.id}/webhooks/{endpoint}/").status_code == 204
    assert post_github(server, path, secret, "push", github_push("x")).status_code == 404
    assert project.client.get(f"/projects/{project.id}/webhooks/").json()["items"] == []


@needs_node
def test_a_delivery_stored_but_not_processed_before_a_stop_is_processed_at_the_next_start(
    server, project
) -> None:
    """The intake answers once a delivery is stored; one the worker had not reached when
    the server stopped (here: stored while it was down, as a crash would leave it) is
    processed when the server starts again."""
    import sqlite3

    path, _secret = project.endpoint("github")
    endpoint = path.rstrip("/").rsplit("/", 1)[1]
    server.stop()
    conn = sqlite3.connect(server.db)
    with conn:
        conn.execute(
            "INSERT INTO webhook_deliveries (endpoint, delivery, event, payload, status,"
            " received_at) VALUES (?, ?, 'push', ?, 'pending', ?)",
            (
                endpoint,
                str(uuid.uuid4()),
                json.dumps(github_push("fixes TDM-2")).encode(),
                time.time(),
            ),
        )
    conn.close()
    server.start()
    wait_for(lambda: project.by_key("TDM-2")["status"] == "done", what="TDM-2 done")
    [delivery] = project.deliveries(path)
    assert delivery["status"] == "done" and "moved TDM-2 to done" in delivery["detail"]
