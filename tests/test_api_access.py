"""REST: login, /me/permissions, roles, grants and audit, with problem details for every error."""

from __future__ import annotations

import anyio
import httpx
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task, delete_task

from .conftest import tandem
from .raw_client import RawClient


@pytest.fixture
def server(server_on_each_storage):
    """Every test here runs on a SQLite file and on a PostgreSQL database."""
    return server_on_each_storage


def api(server, method: str, path: str, user: str | None = None, token: str | None = None, **kw):
    headers = kw.pop("headers", {})
    if token or user:
        headers["Authorization"] = f"Bearer {token or server.token(user)}"
    return httpx.request(
        method, f"{server.http_url}/api/v1{path}", headers=headers, timeout=10, **kw
    )


def assert_problem(response: httpx.Response, status: int, fragment: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    assert fragment in body["detail"], body
    return body


def test_login_gives_a_session_token_that_works_until_logout(server) -> None:
    tandem(
        "user", "create", "lena", "--password-stdin", db=server.db, stdin="correct horse battery\n"
    )
    server.grant("lena", "sess", "viewer")
    assert_problem(
        api(server, "POST", "/login", json={"username": "lena", "password": "wrong one"}),
        401,
        "wrong",
    )
    assert_problem(api(server, "POST", "/login", json={"username": "nobody", "password": "x"}), 401)
    ok = api(
        server, "POST", "/login", json={"username": "lena", "password": "correct horse battery"}
    )
    assert ok.status_code == 200
    session = ok.json()["token"]
    assert session.startswith("tds_") and ok.json()["expires_at"] > 0
    me = api(server, "GET", "/me/permissions?project=sess", token=session)
    assert me.json() == {
        "user": "lena",
        "project": "sess",
        "role": "viewer",
        "permissions": ["view_project", "view_tasks"],
    }

    async def sync_with(token):
        async with RawClient.connect(server, "p/sess", token=token) as client:
            await client.sync()

    anyio.run(sync_with, session)  # the same token opens the sync socket
    assert api(server, "POST", "/logout", token=session).status_code == 204
    assert_problem(api(server, "GET", "/me/permissions?project=sess", token=session), 401)
    assert_problem(
        api(server, "GET", "/me/permissions?project=sess", token=session[:-2] + "xx"), 401
    )


def test_roles_can_be_listed_created_changed_and_deleted_by_managers_only(server) -> None:
    server.grant("maya", "rp", "manager")
    server.grant("mo", "rp", "member")
    names = {r["name"] for r in api(server, "GET", "/projects/rp/roles", "mo").json()["roles"]}
    assert {"owner", "manager", "member", "viewer", "finance"} <= names
    body = {
        "name": "reviewer",
        "permissions": ["view_project", "view_tasks", "edit_all_tasks"],
        "project": "rp",
    }
    assert_problem(api(server, "POST", "/projects/rp/roles", "mo", json=body), 403, "manage_team")
    created = api(server, "POST", "/projects/rp/roles", "maya", json=body)
    assert created.status_code == 201 and created.json()["permissions"] == sorted(
        body["permissions"]
    )
    assert_problem(
        api(server, "POST", "/projects/rp/roles", "maya", json=body), 409, "already exists"
    )
    too_much = {**body, "name": "boss", "permissions": ["delete_project"]}
    assert_problem(
        api(server, "POST", "/projects/rp/roles", "maya", json=too_much), 403, "delete_project"
    )
    bad = {**body, "name": "odd", "permissions": ["fly"]}
    assert (
        assert_problem(api(server, "POST", "/projects/rp/roles", "maya", json=bad), 422, "fly")[
            "field"
        ]
        == "permissions"
    )
    changed = api(
        server,
        "PATCH",
        "/projects/rp/roles/reviewer",
        "maya",
        json={"permissions": ["view_project"]},
    )
    assert changed.json()["permissions"] == ["view_project"]
    assert (
        api(server, "PUT", "/projects/rp/grants/mo", "maya", json={"role": "reviewer"}).status_code
        == 200
    )
    assert_problem(api(server, "DELETE", "/projects/rp/roles/reviewer", "maya"), 409, "in use")
    assert (
        api(server, "PUT", "/projects/rp/grants/mo", "maya", json={"role": "member"}).status_code
        == 200
    )
    assert api(server, "DELETE", "/projects/rp/roles/reviewer", "maya").status_code == 204
    assert_problem(api(server, "DELETE", "/projects/rp/roles/reviewer", "maya"), 404)


@pytest.mark.anyio
async def test_a_grant_changes_what_a_connected_client_may_do_and_shows_in_members(server) -> None:
    server.grant("boss", "gp", "owner")
    server.token("gus")
    async with RawClient.connect(server, "p/gp", "boss") as boss:
        await boss.sync()
        n = await boss.send_update(
            boss.edit(lambda d: create_task(d, TaskCreate(title="t"), created_by="boss"))
        )
        assert (await boss.outcome(n))["type"] == "ack"
        assert_problem(
            api(server, "PUT", "/projects/gp/grants/gus", "gus", json={"role": "member"}),
            403,
            "manage_team",
        )
        granted = api(
            server,
            "PUT",
            "/projects/gp/grants/gus",
            "boss",
            json={"role": "member", "added": ["delete_tasks"]},
        )
        assert granted.status_code == 200 and "delete_tasks" in granted.json()["permissions"]
        with anyio.fail_after(5):
            while boss.doc.get("members", type=Map).to_py().get("gus") != "member":
                await boss.recv()
    async with RawClient.connect(server, "p/gp", "gus", role=None) as gus:
        await gus.sync()
        task_id = next(iter(gus.doc.get("tasks", type=Map).keys()))
        n = await gus.send_update(gus.edit(lambda d: delete_task(d, task_id)))
        assert (await gus.outcome(n))["type"] == "ack", (
            "delete_tasks was added to gus's member grant"
        )


def test_nobody_grants_more_than_they_have_or_removes_themselves(server) -> None:
    server.grant("mgr", "esc", "manager")
    server.token("newbie")
    assert_problem(
        api(server, "PUT", "/projects/esc/grants/newbie", "mgr", json={"role": "owner"}),
        403,
        "delete_project",
    )
    assert_problem(
        api(server, "PUT", "/projects/esc/grants/newbie", "mgr", json={"role": "emperor"}),
        422,
        "emperor",
    )
    assert_problem(
        api(server, "PUT", "/projects/esc/grants/no%20one", "mgr", json={"role": "viewer"}),
        422,
        "user name",
    )
    assert_problem(api(server, "DELETE", "/projects/esc/grants/mgr", "mgr"), 409, "your own access")


@pytest.mark.anyio
async def test_the_audit_log_shows_grant_changes_and_rejected_updates_to_managers(server) -> None:
    server.grant("aud", "al", "manager")
    server.grant("vic", "al", "viewer")
    async with RawClient.connect(server, "p/al", "vic", role=None) as vic:
        await vic.sync()
        n = await vic.send_update(
            vic.edit(lambda d: create_task(d, TaskCreate(title="no"), created_by="vic"))
        )
        assert (await vic.outcome(n))["type"] == "rejected"
    entries = api(server, "GET", "/projects/al/audit", "aud").json()["entries"]
    rejected = [e for e in entries if e["action"] == "update.rejected"]
    assert rejected and rejected[0]["actor"] == "vic" and rejected[0]["document"] == "p/al"
    assert rejected[0]["detail"] == {"permission": "create_tasks"}
    assert any(e["action"] == "grant.set" for e in entries)
    assert_problem(api(server, "GET", "/projects/al/audit", "vic"), 403, "manage_team")
    assert_problem(api(server, "GET", "/projects/al/audit?limit=lots", "aud"), 422, "limit")


def test_bad_requests_get_problem_details_never_a_500(server) -> None:
    server.grant("bea", "bad", "manager")
    assert_problem(api(server, "GET", "/me/permissions?project=bad"), 401, "Bearer")
    assert_problem(api(server, "GET", "/me/permissions", "bea"), 422, "project")
    assert_problem(api(server, "GET", "/projects/bad!/grants", "bea"), 404)
    assert_problem(
        api(
            server,
            "POST",
            "/login",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        ),
        400,
        "JSON",
    )
    assert_problem(
        api(server, "POST", "/login", content=b"user=x", headers={"Content-Type": "text/plain"}),
        415,
    )
    body = assert_problem(
        api(server, "POST", "/login", json={"username": "x", "password": "y", "extra": 1}), 422
    )
    assert body["field"] == "extra"
    assert_problem(
        api(
            server,
            "POST",
            "/login",
            content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        ),
        413,
    )
    assert_problem(api(server, "GET", "/no/such/route", "bea"), 404)
    assert_problem(api(server, "DELETE", "/login", "bea"), 405)


def test_global_custom_roles_from_the_cli_apply_to_every_project(server) -> None:
    out = tandem(
        "role",
        "create",
        "auditor",
        "--permissions",
        "view_project,view_tasks,view_budget",
        "--description",
        "Reads everything with money",
        db=server.db,
    )
    assert "created role auditor (global)" in out
    bad = tandem("role", "create", "x1", "--permissions", "fly", db=server.db, check=False)
    assert "unknown permission 'fly'" in bad
    server.token("aud")
    server.grant("aud", "ledger", "auditor")
    server.grant("own", "ledger", "owner")
    perms = api(server, "GET", "/me/permissions?project=ledger", "aud").json()["permissions"]
    assert perms == ["view_budget", "view_project", "view_tasks"]
    assert "auditor\tglobal" in tandem("role", "list", db=server.db)
    in_use = tandem("role", "delete", "auditor", db=server.db, check=False)
    assert "in use by 1 grant" in in_use
    api(server, "PUT", "/projects/ledger/grants/aud", "own", json={"role": "viewer"})
    assert "deleted role auditor" in tandem("role", "delete", "auditor", db=server.db)
