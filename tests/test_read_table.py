"""Every read path follows rules.reads: over random grants (built-in and custom roles, with
permissions added and removed), a user receives a document's or a route's content exactly
when the read table allows it, on the socket, over REST, in the export and in the metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from doc_model import DocKind, add_allocation, add_cost, add_time_entry, set_budget
from rules import (
    BUILTIN_ROLES,
    READS,
    Grant,
    Permission,
    Role,
    can_read,
    document_needs,
    effective_permissions,
    may_read,
)

from .conftest import ServerProcess, start_server
from .raw_client import RawClient

PROJECT = "2f1c7a9e-4b3d-4e8a-9c61-7d0b5e2a4f13"  # a chosen id is a UUID
CUSTOM = {  # project roles made once, through the API
    "auditor": {"view_budget", "view_costs", "export_data", "view_project"},
    "planner": {"view_project", "view_tasks", "view_resources", "view_analytics"},
    "empty": set(),
}
SUFFIX = {DocKind.MAIN: "", DocKind.CHAT: "/chat", DocKind.FINANCE: "/finance"}
SUFFIX[DocKind.RESOURCES] = "/resources"

# REST route -> the read it makes (rules.READS)
ROUTES = {
    f"/api/v1/projects/{PROJECT}/": "project",
    f"/api/v1/projects/{PROJECT}/tasks/": "tasks",
    f"/api/v1/projects/{PROJECT}/tasks/?q=seeded": "tasks",
    f"/api/v1/projects/{PROJECT}/milestones/": "milestones",
    f"/api/v1/projects/{PROJECT}/members/": "members",
    f"/api/v1/projects/{PROJECT}/comments/": "comments",
    f"/api/v1/projects/{PROJECT}/budget/": "budget",
    f"/api/v1/projects/{PROJECT}/costs/": "costs",
    f"/api/v1/projects/{PROJECT}/time-entries/": "time_entries",
    f"/api/v1/projects/{PROJECT}/allocations/": "allocations",
    f"/api/v1/projects/{PROJECT}/export/?format=json": "export",
    f"/api/v1/projects/{PROJECT}/export/?format=csv": "export",
    f"/api/v1/projects/{PROJECT}/metrics/": "metrics",
}


def test_a_document_needs_every_permission_any_of_its_roots_needs() -> None:
    assert document_needs(DocKind.FINANCE) == {Permission.VIEW_BUDGET, Permission.VIEW_COSTS}
    assert document_needs(DocKind.MAIN) == {Permission.VIEW_PROJECT, Permission.VIEW_TASKS}
    assert READS["export"].needs >= {Permission.EXPORT_DATA, Permission.VIEW_TASKS}
    assert READS["budget_burn"].needs >= {Permission.VIEW_BUDGET, Permission.VIEW_COSTS}


def _auth(server: ServerProcess, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}"}


async def _seed(server: ServerProcess) -> str:
    boss = _auth(server, "boss")
    async with httpx.AsyncClient(base_url=server.http_url, headers=boss) as http:
        made = await http.post("/api/v1/projects/", json={"id": PROJECT, "name": "Reads"})
        assert made.status_code == 201, made.text
        task = await http.post(f"/api/v1/projects/{PROJECT}/tasks/", json={"title": "seeded"})
        assert task.status_code == 201, task.text
        for path, body in (
            (f"/api/v1/projects/{PROJECT}/milestones/", {"name": "m1"}),
            (f"/api/v1/projects/{PROJECT}/comments/", {"text": "hello"}),
        ):
            assert (await http.post(path, json=body)).status_code == 201
        for name, perms in CUSTOM.items():
            out = await http.post(
                f"/api/v1/projects/{PROJECT}/roles",
                json={"name": name, "permissions": sorted(perms), "project": PROJECT},
            )
            assert out.status_code == 201, out.text
    day = dt.date(2026, 1, 5)

    def finance(d: Doc) -> None:
        set_budget(d, currency="EUR", total=1000)
        add_cost(d, amount=12.5, currency="EUR", date=day)
        add_time_entry(d, user="boss", hours=2, date=day)

    writes: dict[DocKind, Callable[[Doc], object]] = {
        DocKind.FINANCE: finance,
        DocKind.RESOURCES: lambda d: add_allocation(d, user="boss", percent=50),
    }
    for kind, write in writes.items():
        async with RawClient.connect(server, f"p/{PROJECT}{SUFFIX[kind]}", "boss", role=None) as c:
            await c.sync()
            n = await c.send_update(c.edit(write))
            assert (await c.outcome(n))["type"] == "ack"
    return task.json()["id"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Iterator[tuple[ServerProcess, str]]:
    server = start_server(Path(tmp_path_factory.mktemp("reads")), TANDEM_API_RATE_LIMIT="0")
    try:
        task_id = anyio.run(_seed, server)
        server.token("probe")
        yield server, task_id
    finally:
        server.stop()


def _content(kind: DocKind, client: RawClient) -> bool:
    """Whether the synced copy holds the seeded content of a ``kind`` document."""
    doc = client.doc
    if kind is DocKind.MAIN:
        return len(doc.get("tasks", type=Map)) > 0 and len(doc.get("members", type=Map)) > 0
    if kind is DocKind.CHAT:
        return len(doc.get("messages", type=Array)) > 0
    if kind is DocKind.FINANCE:
        return len(doc.get("costs", type=Map)) > 0 and "total" in doc.get("budget", type=Map)
    return len(doc.get("allocations", type=Map)) > 0


grants = st.fixed_dictionaries(
    {
        "role": st.sampled_from(sorted(BUILTIN_ROLES) + sorted(CUSTOM)),
        "added": st.frozensets(st.sampled_from(list(Permission)), max_size=4),
        "removed": st.frozensets(st.sampled_from(list(Permission)), max_size=4),
    }
)


async def _check(server: ServerProcess, task_id: str, grant: dict) -> None:
    custom = [
        Role(n, frozenset(Permission(p) for p in ps), project=PROJECT) for n, ps in CUSTOM.items()
    ]
    perms = effective_permissions(
        Grant("probe", PROJECT, grant["role"], grant["added"], grant["removed"]), custom
    )
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        out = await http.put(
            f"/api/v1/projects/{PROJECT}/grants/probe",
            json={
                "role": grant["role"],
                "added": sorted(p.value for p in grant["added"]),
                "removed": sorted(p.value for p in grant["removed"]),
            },
            headers=_auth(server, "boss"),
        )
        assert out.status_code == 200, out.text
        assert set(out.json()["permissions"]) == {p.value for p in perms}
        probe = _auth(server, "probe")
        for route, read in ROUTES.items():
            got = await http.get(route, headers=probe)
            allowed = may_read(perms, read)
            assert (got.status_code == 200) == allowed, (route, sorted(perms), got.text)
            if not allowed:
                assert got.status_code == (403 if perms else 404)
                if perms:
                    assert got.json()["permission"] in {p.value for p in READS[read].needs}
            elif read == "metrics":
                budget = got.json()["budget"]
                assert (budget is not None) == may_read(perms, "budget_burn")
        single = await http.get(f"/api/v1/tasks/{task_id}/", headers=probe)
        assert (single.status_code == 200) == may_read(perms, "tasks")
    for kind, suffix in SUFFIX.items():
        async with RawClient.connect(server, f"p/{PROJECT}{suffix}", "probe", role=None) as c:
            if can_read(perms, kind) is None:
                await c.sync()
                assert _content(kind, c), kind
            else:
                closed = await c.wait_closed()
                assert closed.code == 4403, (kind, closed)
                assert not _content(kind, c)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(grant=grants)
def test_content_is_received_exactly_when_the_read_table_allows_it(seeded, grant) -> None:
    server, task_id = seeded
    anyio.run(_check, server, task_id, grant)
