"""`GET /api/v1/projects/` says each project's status and filters by it (?status=archived),
whoever changed the status (REST, a WebSocket client), and for projects whose status the
registry never held (from before migration 20): a real `tandem serve`, real SQLite file."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from pycrdt import Map

from .conftest import wait_until
from .raw_client import RawClient
from .test_api_v1 import call, new_project
from .test_api_v1 import srv as srv  # the module's server (the fixture)


def listed(server, user: str, query: str = "") -> dict[str, str]:
    r = call(server, "GET", f"/projects/{query}", user)
    assert r.status_code == 200, r.text
    return {p["id"]: p["status"] for p in r.json()["items"]}


def test_the_list_says_each_status_and_filters_by_it(srv) -> None:
    user = "stella"
    active = new_project(srv, user)
    planning = new_project(srv, user, status="planning")
    archived = new_project(srv, user)
    r = call(srv, "PATCH", f"/projects/{archived}/", user, json={"status": "archived"})
    assert r.status_code == 200, r.text
    # the one who archived it sees it archived in the list at once
    assert listed(srv, user) == {active: "active", planning: "planning", archived: "archived"}
    assert listed(srv, user, "?status=archived") == {archived: "archived"}
    assert listed(srv, user, "?status=active,planning") == {active: "active", planning: "planning"}
    page = call(srv, "GET", "/projects/?status=active,planning&limit=1", user).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    assert "status=active%2Cplanning" in page["links"]["next"]

    for bad in ("?status=deleted", "?status=", "?status=archived,"):
        r = call(srv, "GET", f"/projects/{bad}", user)
        assert r.status_code == 400, bad
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["field"] == "status" and "archived" in body["detail"], body


@pytest.mark.anyio
async def test_a_status_changed_over_the_socket_reaches_the_list(srv) -> None:
    user = "sam"
    project = new_project(srv, user)
    async with RawClient.connect(srv, f"p/{project}", user, role=None) as client:
        await client.sync()

        def archive(doc) -> None:
            doc.get("meta", type=Map)["status"] = "archived"

        n = await client.send_update(client.edit(archive))
        assert (await client.outcome(n))["type"] == "ack"
    wait_until(
        lambda: listed(srv, user, "?status=archived") == {project: "archived"},
        10,
        "the registry follows meta/status",
    )


def test_a_status_the_registry_never_held_is_read_from_the_document(srv) -> None:
    user = "old"
    project = new_project(srv, user, status="completed")
    db = sqlite3.connect(srv.db)
    try:
        with db:  # as a project from before migration 20 (or seeded by the CLI) has it
            db.execute("UPDATE projects SET status = NULL WHERE id = ?", (project,))
        assert listed(srv, user, "?status=completed") == {project: "completed"}
        row = db.execute("SELECT status FROM projects WHERE id = ?", (project,)).fetchone()
        assert row == ("completed",)  # stored: read from the document once
    finally:
        db.close()
    assert listed(srv, user, "?status=active") == {}


def test_the_openapi_schema_documents_status_and_its_filter(srv) -> None:
    spec = httpx.get(srv.http_url + "/openapi.json").json()
    operation = spec["paths"]["/api/v1/projects/"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert "archived" in params["status"]["schema"]["anyOf"][0]["pattern"]
    summary = spec["components"]["schemas"]["ProjectSummary"]
    assert (
        "status" in summary["required"]
        and "archived" in summary["properties"]["status"]["description"]
    )
