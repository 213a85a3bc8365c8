"""REST API v1 through a real server: every route, its permission, each query option, ETags,
batches, the WebSocket <-> API round trip, rate limits and CORS."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator

import anyio
import httpx
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task
from sync_server.api.v1 import RecentProjects

from .conftest import ServerProcess, start_server, wait_until
from .raw_client import RawClient
from .test_api_access import assert_problem


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("api"), TANDEM_API_RATE_LIMIT="100000")
    try:
        yield server
    finally:
        server.stop()


def call(server, method: str, path: str, user: str = "owner", **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if user:
        headers["Authorization"] = f"Bearer {server.token(user)}"
    return httpx.request(
        method, f"{server.http_url}/api/v1{path}", headers=headers, timeout=15, **kw
    )


_counter = iter(range(10**6))


def new_project(server, owner: str = "owner", **fields) -> str:
    project = str(uuid.uuid4())  # a chosen id is a UUID (the server would choose one too)
    r = call(server, "POST", "/projects/", owner, json={"id": project, "name": "Proj", **fields})
    assert r.status_code == 201, r.text
    return project


def add_task(server, project: str, user: str = "owner", **fields) -> dict:
    r = call(server, "POST", f"/projects/{project}/tasks/", user, json={"title": "T", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def grant(server, project: str, user: str, role: str, **kw) -> None:
    server.token(user)  # the account must exist
    server.grant(user, project, role, **kw)
    time.sleep(1.05)  # the server caches permissions for 1 s


# -- projects -----------------------------------------------------------------------


def test_create_list_get_update_and_delete_a_project(srv) -> None:
    chosen = str(uuid.uuid4())
    r = call(
        srv, "POST", "/projects/", json={"id": chosen, "name": "Launch", "start_date": "2026-11-01"}
    )
    assert r.status_code == 201, r.text
    project = r.json()["id"]
    assert project == chosen
    assert r.headers["Location"] == f"/api/v1/projects/{project}/"
    assert r.json()["members"] == {"owner": "owner"}
    assert r.json()["columns"] == ["todo", "in_progress", "review", "done"]

    listed = call(srv, "GET", "/projects/").json()
    assert project in [p["id"] for p in listed["items"]]
    assert {p["id"]: p["role"] for p in listed["items"]}[project] == "owner"

    r = call(srv, "PATCH", f"/projects/{project}/", json={"name": "Launch 2", "status": "on_hold"})
    assert r.status_code == 200 and r.json()["name"] == "Launch 2"
    assert r.json()["status"] == "on_hold"
    deadline = time.monotonic() + 5  # the registry follows meta/name via the activity observer
    while time.monotonic() < deadline:
        names = {p["id"]: p["name"] for p in call(srv, "GET", "/projects/").json()["items"]}
        if names[project] == "Launch 2":
            break
        time.sleep(0.1)
    assert names[project] == "Launch 2"

    r = call(srv, "PUT", f"/projects/{project}/", json={"name": "Launch 3"})
    assert r.status_code == 200
    assert r.json()["status"] == "active" and r.json()["start_date"] is None  # PUT replaces

    assert call(srv, "DELETE", f"/projects/{project}/").status_code == 204
    assert_problem(call(srv, "GET", f"/projects/{project}/"), 404, project)
    assert project not in [p["id"] for p in call(srv, "GET", "/projects/").json()["items"]]
    taken = call(srv, "POST", "/projects/", json={"id": project, "name": "again"})
    assert_problem(taken, 409, "not available")  # a deleted project's id stays taken


@pytest.mark.anyio
async def test_deleting_a_project_disconnects_its_clients(srv) -> None:
    project = new_project(srv)
    async with RawClient.connect(srv, f"p/{project}", "owner", role=None) as client:
        await client.sync()
        r = await anyio.to_thread.run_sync(lambda: call(srv, "DELETE", f"/projects/{project}/"))
        assert r.status_code == 204
        closed = await client.wait_closed()
        assert closed.code == 4404 and "deleted" in closed.reason


def test_project_permissions_and_privacy(srv) -> None:
    project = new_project(srv)
    grant(srv, project, "mia", "member")
    assert_problem(call(srv, "GET", f"/projects/{project}/", "stranger"), 404, project)
    assert_problem(
        call(srv, "PATCH", f"/projects/{project}/", "mia", json={"name": "x"}), 403, "edit_project"
    )
    body = assert_problem(call(srv, "DELETE", f"/projects/{project}/", "mia"), 403, "")
    assert body["permission"] == "delete_project"
    assert call(srv, "GET", f"/projects/{project}/", "mia").status_code == 200
    assert_problem(call(srv, "GET", "/projects/", user=""), 401, "Bearer")


# -- tasks --------------------------------------------------------------------------


def test_task_lifecycle(srv) -> None:
    project = new_project(srv)
    task = add_task(srv, project, title="Write docs", priority="high", labels=["docs"])
    assert task["project"] == project and task["status"] == "todo"
    tid = task["id"]
    assert call(srv, "GET", f"/tasks/{tid}/").json()["title"] == "Write docs"

    r = call(srv, "PATCH", f"/tasks/{tid}/", json={"description": "Long text", "estimate": 3})
    assert r.status_code == 200 and r.json()["description"] == "Long text"
    assert r.json()["priority"] == "high"  # PATCH keeps what it does not name

    r = call(srv, "PUT", f"/tasks/{tid}/", json={"title": "Docs v2"})
    assert r.json()["title"] == "Docs v2"
    assert r.json()["priority"] == "medium" and r.json()["labels"] == []  # PUT resets

    r = call(srv, "PATCH", f"/tasks/{tid}/status/", json={"status": "review"})
    assert r.status_code == 200 and r.json()["status"] == "review"
    assert_problem(
        call(srv, "PATCH", f"/tasks/{tid}/status/", json={"status": "nowhere"}), 422, "columns"
    )
    assert call(srv, "DELETE", f"/tasks/{tid}/").status_code == 204
    assert_problem(call(srv, "GET", f"/tasks/{tid}/"), 404, tid)
    assert_problem(call(srv, "DELETE", f"/tasks/{tid}/"), 404, tid)


def test_a_task_write_naming_what_is_not_there_is_refused(srv) -> None:
    """A parent, a dependency or a milestone the project lacks is a typo or a stale id:
    refused with what is wrong, nothing written; so are a task that would be its own
    parent (or its subtask's subtask) and a loop of dependencies."""
    project = new_project(srv)
    ms = call(srv, "POST", f"/projects/{project}/milestones/", json={"name": "M"}).json()["id"]
    a = add_task(srv, project, title="A")["id"]
    b = add_task(srv, project, title="B", parent=a, depends_on=[a], milestone=ms)["id"]
    c = add_task(srv, project, title="C", parent=b)["id"]
    base = f"/projects/{project}/tasks/"
    for fields, fragment in (
        ({"parent": "nosuchtask1"}, "parent: no task 'nosuchtask1'"),
        ({"depends_on": [c, "nosuchtask1"]}, "depends_on: no task 'nosuchtask1'"),
        ({"milestone": "nosuchmile1"}, "milestone: no milestone 'nosuchmile1'"),
    ):
        assert_problem(call(srv, "POST", base, json={"title": "X", **fields}), 422, fragment)
        assert_problem(call(srv, "PATCH", f"/tasks/{a}/", json=fields), 422, fragment)
    assert_problem(call(srv, "PATCH", f"/tasks/{a}/", json={"parent": a}), 422, "own parent")
    assert_problem(call(srv, "PATCH", f"/tasks/{a}/", json={"parent": c}), 422, "subtask")
    assert_problem(call(srv, "PATCH", f"/tasks/{a}/", json={"depends_on": [a]}), 422, "itself")
    loop = call(srv, "PATCH", f"/tasks/{a}/", json={"depends_on": [b]})  # b depends on a
    assert_problem(loop, 422, f"task {b!r} already depends on this task")
    titles = sorted(t["title"] for t in call(srv, "GET", base).json()["items"])
    assert titles == ["A", "B", "C"]  # nothing was written
    assert call(srv, "GET", f"/tasks/{a}/").json()["parent"] is None

    # a reference left dangling by a delete does not stop other writes to the task, nor a
    # PUT of the task as it reads: only what a write changes is checked
    assert call(srv, "DELETE", f"/tasks/{a}/").status_code == 204
    r = call(srv, "PATCH", f"/tasks/{b}/", json={"title": "B2"})
    assert r.status_code == 200, r.text
    assert (r.json()["parent"], r.json()["depends_on"]) == (a, [a])
    body = {k: v for k, v in r.json().items() if k in TASK_WRITABLE}
    assert call(srv, "PUT", f"/tasks/{b}/", json=body).status_code == 200
    assert call(srv, "PATCH", f"/tasks/{b}/", json={"parent": None}).json()["parent"] is None


TASK_WRITABLE = {"title", "description", "status", "priority", "assignees", "labels", "parent"}
TASK_WRITABLE |= {"depends_on", "milestone", "estimate", "start", "due", "custom"}


def test_one_task_reads_as_the_task_list_shows_it(srv) -> None:
    """A task's own JSON (the answer to its write, and GET /tasks/<id>/) is read from that
    task alone; it is exactly its entry in the project's task list, for every field."""
    project = new_project(srv)
    bare = add_task(srv, project, title="Bare")
    full = add_task(
        srv,
        project,
        title="Écrire la doc 📚",
        description="Longer\ntext",
        priority="urgent",
        status="review",
        assignees=["owner"],
        labels=["docs", "ünïcode"],
        estimate=2.5,
        due="2027-01-31",
        custom={"points": 3, "team": "core"},
    )

    def listed() -> dict[str, dict]:
        items = call(srv, "GET", f"/projects/{project}/tasks/?limit=200").json()["items"]
        return {t["id"]: t for t in items}

    deadline = time.monotonic() + 10  # (keys are given after the tasks are created)
    while not all(t["key"] for t in listed().values()):
        assert time.monotonic() < deadline, listed()
        time.sleep(0.05)
    patched = call(srv, "PATCH", f"/tasks/{full['id']}/", json={"estimate": 4})
    assert patched.status_code == 200, patched.text
    by_id = listed()
    assert set(by_id) == {bare["id"], full["id"]}
    assert by_id[full["id"]] == patched.json()
    assert patched.json()["estimate"] == 4 and patched.json()["title"] == "Écrire la doc 📚"
    for tid in by_id:
        assert call(srv, "GET", f"/tasks/{tid}/").json() == by_id[tid]


def test_task_permissions(srv) -> None:
    project = new_project(srv)
    grant(srv, project, "vic", "viewer")
    grant(srv, project, "mo", "member")
    grant(srv, project, "fin", "finance", removed=["view_tasks"])
    mine = add_task(srv, project, assignees=["mo"])
    other = add_task(srv, project)

    assert call(srv, "GET", f"/projects/{project}/tasks/", "vic").json()["total"] == 2
    assert_problem(call(srv, "GET", f"/projects/{project}/tasks/", "fin"), 403, "view_tasks")
    denied = call(srv, "POST", f"/projects/{project}/tasks/", "vic", json={"title": "x"})
    assert assert_problem(denied, 403, "")["permission"] == "create_tasks"
    assert (
        call(srv, "PATCH", f"/tasks/{mine['id']}/", "mo", json={"title": "ok"}).status_code == 200
    )
    body = assert_problem(
        call(srv, "PATCH", f"/tasks/{other['id']}/", "mo", json={"title": "no"}), 403, ""
    )
    assert body["permission"] == "edit_all_tasks" and body["path"].endswith("/title")
    body = assert_problem(call(srv, "DELETE", f"/tasks/{mine['id']}/", "mo"), 403, "")
    assert body["permission"] == "delete_tasks"
    assert call(srv, "GET", f"/tasks/{other['id']}/", "mo").json()["title"] == "T"  # unchanged
    assert_problem(call(srv, "GET", f"/tasks/{other['id']}/", "stranger"), 404, "")

    assigned = call(srv, "PATCH", f"/tasks/{mine['id']}/", "mo", json={"assignees": ["mo", "vic"]})
    assert assigned.status_code == 200 and assigned.json()["assignees"] == ["mo", "vic"]
    grant(srv, project, "noassign", "member", removed=["assign_tasks"])
    own = add_task(srv, project, "noassign", title="own")
    body = assert_problem(
        call(srv, "PATCH", f"/tasks/{own['id']}/", "noassign", json={"assignees": ["vic"]}), 403, ""
    )
    assert body["permission"] == "assign_tasks"
    grant(srv, project, "blind", "viewer", removed=["view_project"])
    body = assert_problem(call(srv, "GET", f"/projects/{project}/", "blind"), 403, "view_project")
    assert_problem(call(srv, "GET", f"/projects/{project}/metrics/", "vic"), 403, "view_analytics")


def test_bad_task_input_gets_clear_errors(srv) -> None:
    project = new_project(srv)
    path = f"/projects/{project}/tasks/"
    body = assert_problem(call(srv, "POST", path, json={"title": "x", "bogus": 1}), 422, "bogus")
    assert body["field"] == "bogus"
    assert_problem(call(srv, "POST", path, json={"title": ""}), 422, "title")
    assert_problem(call(srv, "POST", path, json={"title": "x", "due": "tomorrow"}), 422, "due")
    assert_problem(call(srv, "POST", path, json={"title": "x", "estimate": -1}), 422, "estimate")
    assert_problem(call(srv, "POST", path, json=["not", "an", "object"]), 422, "")
    bad_json = call(
        srv, "POST", path, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_problem(bad_json, 400, "JSON")
    assert_problem(call(srv, "POST", path, content=b"title=x"), 415, "JSON")
    huge = call(srv, "POST", path, json={"title": "x", "description": "y" * 2_000_000})
    assert huge.status_code == 413
    assert_problem(call(srv, "GET", "/tasks/no such id!/"), 404, "")
    assert call(srv, "GET", path).json()["total"] == 0  # none of it wrote anything


def test_every_query_option(srv) -> None:
    project = new_project(srv)
    ms = call(srv, "POST", f"/projects/{project}/milestones/", json={"name": "M1"}).json()["id"]
    add_task(srv, project, title="alpha login", priority="low", due="2026-01-10", labels=["x"])
    add_task(srv, project, title="beta", priority="urgent", due="2026-03-01", assignees=["ana"])
    add_task(srv, project, title="gamma login", priority="high", status="done", milestone=ms)
    add_task(srv, project, title="delta", priority="medium", description="about LOGIN flows")

    def titles(query: str) -> list[str]:
        r = call(srv, "GET", f"/projects/{project}/tasks/?{query}")
        assert r.status_code == 200, r.text
        return [t["title"] for t in r.json()["items"]]

    assert titles("status=done") == ["gamma login"]
    assert sorted(titles("status=todo,done")) == ["alpha login", "beta", "delta", "gamma login"]
    assert titles("assignee=ana") == ["beta"]
    assert titles("label=x") == ["alpha login"]
    assert titles(f"milestone={ms}") == ["gamma login"]
    assert titles("due_before=2026-02-01") == ["alpha login"]
    assert titles("due_after=2026-02-01") == ["beta"]
    assert sorted(titles("q=login")) == ["alpha login", "delta", "gamma login"]
    assert titles("priority=high,urgent&order_by=priority") == ["gamma login", "beta"]
    assert titles("order_by=-priority") == ["beta", "gamma login", "delta", "alpha login"]
    assert titles("order_by=due,title") == ["alpha login", "beta", "delta", "gamma login"]
    assert titles("order_by=-due,title")[:2] == ["beta", "alpha login"]  # missing dates last

    r = call(srv, "GET", f"/projects/{project}/tasks/?order_by=title&limit=3&fields=title")
    page = r.json()
    assert page["total"] == 4 and page["limit"] == 3
    assert page["items"][0] == {"id": page["items"][0]["id"], "title": "alpha login"}
    assert page["links"]["previous"] is None
    nxt = httpx.get(
        srv.http_url + page["links"]["next"],
        headers={"Authorization": f"Bearer {srv.token('owner')}"},
    ).json()
    assert [t["title"] for t in nxt["items"]] == ["gamma login"] and nxt["offset"] == 3
    assert nxt["links"]["previous"] and nxt["links"]["next"] is None

    for query, field in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("order_by=colour", "order_by"),
        ("fields=title,secret", "fields"),
        ("due_before=soon", "due_before"),
        ("stauts=todo", "stauts"),
    ]:
        body = assert_problem(call(srv, "GET", f"/projects/{project}/tasks/?{query}"), 400, field)
        assert body["field"] == field


def test_etag_gives_304_until_the_document_changes(srv) -> None:
    project = new_project(srv)
    add_task(srv, project)
    path = f"/projects/{project}/tasks/?status=todo"
    # the server gives the new task its key in a write of its own, a moment later: the
    # document is still changing until then
    keyed = lambda: all(t.get("key") for t in call(srv, "GET", path).json()["items"])  # noqa: E731
    wait_until(keyed, what="the task's key")
    first = call(srv, "GET", path)
    tag = first.headers["ETag"]
    again = call(srv, "GET", path, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag and not again.content
    other_query = call(srv, "GET", f"/projects/{project}/tasks/", headers={"If-None-Match": tag})
    assert other_query.status_code == 200
    add_task(srv, project, title="new")
    changed = call(srv, "GET", path, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.json()["total"] == 2


def test_batch_is_all_or_nothing(srv) -> None:
    project = new_project(srv)
    keep = add_task(srv, project, title="keep")
    ops = [
        {"op": "create", "data": {"title": "new one"}},
        {"op": "update", "id": keep["id"], "data": {"title": "renamed"}},
        {"op": "move", "id": keep["id"], "status": "done"},
    ]
    r = call(srv, "POST", "/tasks/batch/", json={"project": project, "operations": ops})
    assert r.status_code == 200, r.text
    created = r.json()["results"][0]["id"]
    tasks = {t["id"]: t for t in call(srv, "GET", f"/projects/{project}/tasks/").json()["items"]}
    assert tasks[keep["id"]]["title"] == "renamed" and tasks[keep["id"]]["status"] == "done"
    assert tasks[created]["title"] == "new one"

    failing = [
        {"op": "create", "data": {"title": "should vanish"}},
        {"op": "delete", "id": created},
        {"op": "update", "id": "missing", "data": {"title": "x"}},
    ]
    r = call(srv, "POST", "/tasks/batch/", json={"project": project, "operations": failing})
    assert_problem(r, 404, "missing")
    after = call(srv, "GET", f"/projects/{project}/tasks/").json()
    assert {t["id"] for t in after["items"]} == set(tasks)  # nothing of it landed

    grant(srv, project, "mo", "member")
    r = call(
        srv,
        "POST",
        "/tasks/batch/",
        "mo",
        json={
            "project": project,
            "operations": [
                {"op": "create", "data": {"title": "mine"}},
                {"op": "update", "id": keep["id"], "data": {"title": "not mine"}},
            ],
        },
    )
    assert assert_problem(r, 403, "")["permission"] == "edit_all_tasks"
    assert call(srv, "GET", f"/projects/{project}/tasks/").json()["total"] == len(tasks)
    bad = {"project": project, "operations": [{"op": "create", "data": {"title": 5}}]}
    assert_problem(call(srv, "POST", "/tasks/batch/", json=bad), 422, "operations.0.data.title")


# -- milestones, members, comments, activity --------------------------------------------


def test_milestones_members_comments_and_activity(srv) -> None:
    project = new_project(srv)
    grant(srv, project, "vic", "viewer")
    base = f"/projects/{project}"
    r = call(srv, "POST", f"{base}/milestones/", json={"name": "Beta", "due": "2026-12-24"})
    assert r.status_code == 201
    mid = r.json()["id"]
    assert call(srv, "GET", f"{base}/milestones/{mid}/").json()["due"] == "2026-12-24"
    assert call(srv, "PATCH", f"{base}/milestones/{mid}/", json={"done": True}).json()["done"]
    denied = call(srv, "POST", f"{base}/milestones/", "vic", json={"name": "x"})
    assert assert_problem(denied, 403, "")["permission"] == "edit_project"
    assert call(srv, "GET", f"{base}/milestones/", "vic").json()["total"] == 1
    assert call(srv, "DELETE", f"{base}/milestones/{mid}/").status_code == 204
    assert_problem(call(srv, "GET", f"{base}/milestones/{mid}/"), 404, mid)

    members = call(srv, "GET", f"{base}/members/", "vic").json()["items"]
    assert {m["user"]: m["role"] for m in members} == {"owner": "owner", "vic": "viewer"}
    srv.token("newcomer")
    denied = call(srv, "PUT", f"{base}/members/newcomer", "vic", json={"role": "member"})
    assert assert_problem(denied, 403, "manage_team")["permission"] == "manage_team"
    assert call(srv, "PUT", f"{base}/members/newcomer", json={"role": "member"}).status_code == 200
    members = call(srv, "GET", f"{base}/members/", "vic").json()["items"]
    assert {m["user"]: m["role"] for m in members}["newcomer"] == "member"
    assert call(srv, "DELETE", f"{base}/members/newcomer").status_code == 204
    assert "newcomer" not in [
        m["user"] for m in call(srv, "GET", f"{base}/members/").json()["items"]
    ]

    r = call(srv, "POST", f"{base}/comments/", "vic", json={"text": "hello team"})
    assert r.status_code == 201
    cid = r.json()["id"]
    t1 = add_task(srv, project)["id"]
    missing = call(srv, "POST", f"{base}/comments/", json={"text": "lost", "task": "nosuchtask1"})
    assert assert_problem(missing, 422, "no task 'nosuchtask1'")["field"] == "task"
    call(srv, "POST", f"{base}/comments/", json={"text": "second", "task": t1})
    listed = call(srv, "GET", f"{base}/comments/", "vic").json()
    assert [c["text"] for c in listed["items"]] == ["second", "hello team"]  # newest first
    assert listed["items"][1]["author"] == "vic"
    assert [c["text"] for c in call(srv, "GET", f"{base}/comments/?task={t1}").json()["items"]] == [
        "second"
    ]
    denied = call(srv, "DELETE", f"{base}/comments/{cid}/", "vic")
    assert assert_problem(denied, 403, "")["permission"] == "manage_team"
    assert call(srv, "DELETE", f"{base}/comments/{cid}/").status_code == 204
    assert call(srv, "GET", f"{base}/comments/").json()["total"] == 1

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        actions = [a["action"] for a in call(srv, "GET", f"{base}/activity/").json()["items"]]
        if "chat.message" in actions and "milestone.deleted" in actions:
            break
        time.sleep(0.1)
    assert {"milestone.added", "milestone.deleted", "chat.message"} <= set(actions)


def _activity_when(srv, base: str, done) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        items = call(srv, "GET", f"{base}/activity/?limit=100").json()["items"]
        if done(items) or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


@pytest.mark.anyio
async def test_typing_shows_as_one_activity_entry_per_person_and_field(srv) -> None:
    project = new_project(srv)
    task = add_task(srv, project, title="Draft")["id"]
    base = f"/projects/{project}"
    async with RawClient.connect(srv, f"p/{project}", "typist", role="manager") as typist:
        await typist.sync()
        title = typist.doc.get("tasks", type=Map)[task]["title"]
        description = typist.doc.get("tasks", type=Map)[task]["description"]
        for ch in " plan":  # one transaction per keystroke, like any editor
            n = await typist.send_update(typist.edit(lambda d, ch=ch: title.insert(len(title), ch)))
            assert (await typist.outcome(n))["type"] == "ack"
        n = await typist.send_update(typist.edit(lambda d: description.insert(0, "Why")))
        assert (await typist.outcome(n))["type"] == "ack"
        n = await typist.send_update(typist.edit(lambda d: title.insert(len(title), "!")))
        assert (await typist.outcome(n))["type"] == "ack"
    r = call(srv, "PATCH", f"/tasks/{task}/", json={"title": "Draft plan!?"})
    assert r.status_code == 200, r.text
    items = _activity_when(srv, base, lambda items: items[0]["actor"] == "owner")
    mine = [
        (a["actor"], a["action"], a["detail"].get("fields")) for a in items if a["task"] == task
    ]
    # newest first: each switch of person or field starts a new entry, repeats coalesce
    assert mine == [
        ("owner", "task.updated", ["title"]),
        ("typist", "task.updated", ["title"]),
        ("typist", "task.updated", ["description"]),
        ("typist", "task.updated", ["title"]),
        ("owner", "task.created", None),
    ]


# -- finance and resources -------------------------------------------------------------


def test_budget_costs_time_and_allocations_with_their_permissions(srv) -> None:
    project = new_project(srv, start_date="2026-01-01", end_date="2026-12-31")
    grant(srv, project, "fin", "finance")
    grant(srv, project, "mo", "member")
    base = f"/projects/{project}"

    assert_problem(call(srv, "GET", f"{base}/budget/", "mo"), 403, "view_budget")
    r = call(srv, "PUT", f"{base}/budget/", "fin", json={"currency": "EUR", "total": 1000})
    assert r.status_code == 200 and r.json()["total"] == 1000
    assert_problem(
        call(srv, "PUT", f"{base}/budget/", "mo", json={"currency": "EUR", "total": 1}),
        403,
        "edit_budget",
    )
    assert_problem(
        call(srv, "PUT", f"{base}/budget/", "fin", json={"currency": "euro", "total": 1}),
        422,
        "currency",
    )

    r = call(
        srv,
        "POST",
        f"{base}/costs/",
        "fin",
        json={"amount": 250.5, "currency": "EUR", "date": "2026-02-01", "category": "cloud"},
    )
    assert r.status_code == 201 and r.json()["created_by"] == "fin"
    cost = r.json()["id"]
    assert_problem(
        call(srv, "POST", f"{base}/costs/", "mo", json={"amount": 1, "currency": "EUR"}),
        403,
        "edit_costs",
    )
    assert call(srv, "GET", f"{base}/costs/", "fin").json()["sum"] == {"EUR": 250.5}
    assert_problem(call(srv, "GET", f"{base}/costs/", "mo"), 403, "view_costs")

    r = call(srv, "POST", f"{base}/time-entries/", "fin", json={"hours": 2.5, "date": "2026-02-02"})
    assert r.status_code == 201 and r.json()["user"] == "fin"
    assert_problem(
        call(srv, "POST", f"{base}/time-entries/", "fin", json={"hours": 0, "date": "2026-02-02"}),
        422,
        "hours",
    )
    assert call(srv, "GET", f"{base}/time-entries/?user=fin", "fin").json()["hours"] == 2.5

    r = call(srv, "POST", f"{base}/allocations/", json={"user": "mo", "percent": 50})
    assert r.status_code == 201
    alloc = r.json()["id"]
    assert call(srv, "GET", f"{base}/allocations/", "mo").json()["total"] == 1
    assert_problem(
        call(srv, "POST", f"{base}/allocations/", "mo", json={"user": "mo", "percent": 10}),
        403,
        "manage_resources",
    )
    assert_problem(call(srv, "GET", f"{base}/allocations/", "fin"), 403, "view_resources")
    assert_problem(
        call(srv, "POST", f"{base}/allocations/", json={"user": "mo", "percent": 101}),
        422,
        "percent",
    )
    assert call(srv, "DELETE", f"{base}/allocations/{alloc}/").status_code == 204
    assert call(srv, "DELETE", f"{base}/costs/{cost}/", "fin").status_code == 204
    assert_problem(call(srv, "DELETE", f"{base}/costs/{cost}/", "fin"), 404, cost)
    assert call(srv, "GET", f"{base}/costs/", "fin").json()["total"] == 0


# -- analytics and export ------------------------------------------------------------------


def test_metrics_portfolio_and_export(srv) -> None:
    project = new_project(srv, owner="boss", start_date="2026-01-01", end_date="2026-12-31")
    grant(srv, project, "mo", "member")
    base = f"/projects/{project}"
    done = add_task(srv, project, "boss", title="=HYPERLINK(evil)")
    add_task(srv, project, "boss", title="late", due="2020-01-01")
    add_task(srv, project, "boss", title="later", due="2999-01-01", estimate=5)
    call(srv, "PATCH", f"/tasks/{done['id']}/status/", "boss", json={"status": "done"})
    call(srv, "PUT", f"{base}/budget/", "boss", json={"currency": "EUR", "total": 1200})
    call(srv, "POST", f"{base}/costs/", "boss", json={"amount": 300, "currency": "EUR"})

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        metrics = call(srv, "GET", f"{base}/metrics/?days=7", "boss").json()
        if sum(w["done"] for w in metrics["tasks"]["velocity"]):
            break
        time.sleep(0.1)
    tasks = metrics["tasks"]
    assert tasks["total"] == 3 and tasks["done"] == 1 and tasks["overdue"] == 1
    assert tasks["completion"] == pytest.approx(1 / 3, abs=1e-3)
    assert tasks["by_status"]["done"] == 1 and tasks["by_status"]["todo"] == 2
    assert len(tasks["burndown"]) == 7 and tasks["burndown"][-1]["remaining"] == 2
    assert tasks["velocity"][-1]["done"] == 1
    assert metrics["budget"]["spent"] == 300 and metrics["budget"]["remaining"] == 900
    member_view = call(srv, "GET", f"{base}/metrics/", "mo").json()
    assert member_view["budget"] is None  # no view_budget: no money figures
    assert_problem(call(srv, "GET", f"{base}/metrics/?days=0", "boss"), 400, "days")

    portfolio = call(srv, "GET", "/analytics/portfolio/", "boss").json()
    assert [p["id"] for p in portfolio["projects"]] == [project]
    assert portfolio["totals"]["tasks"] == 3 and portfolio["totals"]["done"] == 1

    assert_problem(call(srv, "GET", f"{base}/export/", "mo"), 403, "export_data")
    r = call(srv, "GET", f"{base}/export/?format=csv", "boss")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3
    assert "'=HYPERLINK(evil)" in [row["title"] for row in rows]  # not a live formula
    as_json = call(srv, "GET", f"{base}/export/?format=json", "boss").json()
    assert sorted(t["title"] for t in as_json["tasks"]) == sorted(
        ["=HYPERLINK(evil)", "late", "later"]
    )
    assert_problem(call(srv, "GET", f"{base}/export/?format=xml", "boss"), 400, "format")


# -- live documents: API <-> WebSocket ------------------------------------------------------


@pytest.mark.anyio
async def test_api_writes_reach_clients_and_client_edits_reach_the_api(srv) -> None:
    project = new_project(srv)
    async with RawClient.connect(srv, f"p/{project}", "owner", role=None) as client:
        await client.sync()
        r = await anyio.to_thread.run_sync(
            lambda: call(srv, "POST", f"/projects/{project}/tasks/", json={"title": "via API"})
        )
        tid = r.json()["id"]
        with anyio.fail_after(5):
            while tid not in client.doc.get("tasks", type=Map):
                await client.recv()
        assert str(client.doc.get("tasks", type=Map)[tid]["title"]) == "via API"

        update = client.edit(
            lambda doc: create_task(doc, TaskCreate(title="via socket"), created_by="owner")
        )
        assert (await client.outcome(await client.send_update(update)))["type"] == "ack"
        tasks = await anyio.to_thread.run_sync(
            lambda: call(srv, "GET", f"/projects/{project}/tasks/?q=socket").json()
        )
        assert [t["title"] for t in tasks["items"]] == ["via socket"]


def test_reads_of_an_unloaded_project_do_not_open_a_room(srv) -> None:
    project = new_project(srv)
    add_task(srv, project)
    deadline = time.monotonic() + 10  # rooms unload 2 s after their last use in tests
    while time.monotonic() < deadline and httpx.get(srv.http_url + "/healthz").json()["rooms"]:
        time.sleep(0.2)
    assert httpx.get(srv.http_url + "/healthz").json()["rooms"] == 0
    assert call(srv, "GET", f"/projects/{project}/tasks/").json()["total"] == 1
    assert httpx.get(srv.http_url + "/healthz").json()["rooms"] == 0


# -- conventions: rate limit, CORS, OpenAPI ---------------------------------------------------


def test_rate_limit_per_token_with_headers(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_API_RATE_LIMIT="5")
    try:
        statuses = []
        for _ in range(6):
            r = call(server, "GET", "/projects/", "ann")
            statuses.append(r.status_code)
        assert statuses == [200] * 5 + [429]
        assert int(r.headers["Retry-After"]) >= 1
        assert_problem(r, 429, "retry")
        ok = call(server, "GET", "/projects/", "ben")  # another token has its own budget
        assert ok.status_code == 200
        assert ok.headers["RateLimit-Limit"] == "5" and ok.headers["RateLimit-Remaining"] == "4"
    finally:
        server.stop()


def test_cors_allows_only_configured_origins(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_CORS_ORIGINS="https://app.example")
    try:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = httpx.options(
            f"{server.http_url}/api/v1/projects/",
            headers={"Origin": "https://app.example", **preflight},
        )
        assert ok.headers.get("access-control-allow-origin") == "https://app.example"
        other = httpx.options(
            f"{server.http_url}/api/v1/projects/",
            headers={"Origin": "https://evil.example", **preflight},
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        server.stop()


def test_openapi_and_docs_are_served(srv) -> None:
    spec = httpx.get(srv.http_url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/projects/{project}/tasks/" in spec["paths"]
    assert "versioning" in spec["info"]["description"].lower()
    assert httpx.get(srv.http_url + "/docs").status_code == 200


def test_the_api_remembers_the_projects_of_the_latest_tasks_only() -> None:
    """The task-id -> project map behind /tasks/<id>/ keeps the tasks seen last, so a server
    that runs for months does not keep every task id ever made (a forgotten one is found
    by looking through the caller's projects, as after a restart)."""
    remembered = RecentProjects(2)
    for task in ("a", "b", "c"):
        remembered.learn(task, "p")
    assert len(remembered) == 2
    assert [remembered.get(t) for t in ("a", "b", "c")] == [None, "p", "p"]
    remembered.learn("b", "p")  # seen again: the latest
    remembered.learn("d", "q")
    assert [remembered.get(t) for t in ("b", "c", "d")] == ["p", None, "q"]
    remembered.pop("b")
    remembered.pop("gone")
    assert len(remembered) == 1


def test_a_query_parameter_given_twice_or_unknown_is_a_bad_request(srv) -> None:
    """Every parameter is read once: a second value was silently dropped (``status=todo&
    status=done`` listed the todo tasks only); now it is named, as an unknown one is."""
    project = new_project(srv)
    base = f"/projects/{project}/tasks/"
    twice = call(srv, "GET", f"{base}?status=todo&status=done")
    assert assert_problem(twice, 400, "status: given 2 times")["field"] == "status"
    assert "comma-separated" in twice.json()["detail"]
    assert call(srv, "GET", f"{base}?status=todo,done").status_code == 200
    unknown = call(srv, "GET", f"{base}?stauts=todo")
    assert assert_problem(unknown, 400, "stauts: unknown query parameter")["field"] == "stauts"
    assert assert_problem(call(srv, "GET", "/me/notifications?limit=1&limit=2"), 400, "limit")
