"""Ownership is judged on the document before the transaction, on the socket and over REST."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Map

from doc_model import (
    DocKind,
    TaskCreate,
    create_project_meta,
    create_task,
    new_document,
    parse_doc_name,
)
from sync_server.interfaces import Actor

from .raw_client import RawClient

REST_PROJECT = "a6f03c58-1e27-4d9b-b5c4-38e9f1d7a260"  # a chosen project id is a UUID


def _take_over_and_edit(doc, task_id: str, user: str) -> None:
    task = doc.get("tasks", type=Map)[task_id]
    assignees = task["assignees"]
    del assignees[0 : len(assignees)]
    assignees.append(user)
    task["title"].insert(0, "mine now: ")


async def _seed(server, project: str) -> str:
    ids = {}
    async with RawClient.connect(server, f"p/{project}", "owner") as owner:
        await owner.sync()

        def seed(d):
            create_project_meta(d, "P")
            ids["t"] = create_task(d, TaskCreate(title="theirs", assignees=["kim"]), created_by="o")

        n = await owner.send_update(owner.edit(seed))
        assert (await owner.outcome(n))["type"] == "ack"
    return ids["t"]


@pytest.mark.anyio
async def test_taking_a_task_over_does_not_make_the_same_transactions_edits_your_own(
    server,
) -> None:
    task_id = await _seed(server, "own")
    server.grant("mia", "own", "member")  # edit_own_tasks and assign_tasks, not edit_all_tasks
    async with RawClient.connect(server, "p/own", "mia", role=None) as mia:
        await mia.sync()
        n = await mia.send_update(mia.edit(lambda d: _take_over_and_edit(d, task_id, "mia")))
        refused = await mia.outcome(n)
        assert refused["type"] == "rejected", refused
        assert "edit_all_tasks" in str(refused)
        await mia.drain(0.3)
        task = mia.doc.get("tasks", type=Map)[task_id]
        assert list(task["assignees"]) == ["kim"] and str(task["title"]) == "theirs"

        # in two transactions it is allowed: reassigning needs assign_tasks, then it is hers
        def reassign(d):
            assignees = d.get("tasks", type=Map)[task_id]["assignees"]
            del assignees[0 : len(assignees)]
            assignees.append("mia")

        n = await mia.send_update(mia.edit(reassign))
        assert (await mia.outcome(n))["type"] == "ack"
        n = await mia.send_update(
            mia.edit(lambda d: d.get("tasks", type=Map)[task_id]["title"].insert(0, "x"))
        )
        assert (await mia.outcome(n))["type"] == "ack"

        # and giving it away while editing it is judged as hers (she owned it before)
        def give_away_and_edit(d):
            task = d.get("tasks", type=Map)[task_id]
            task["assignees"] = Array(["kim"])
            task["title"].insert(0, "y")

        n = await mia.send_update(mia.edit(give_away_and_edit))
        assert (await mia.outcome(n))["type"] == "ack"


def test_a_rest_update_that_reassigns_and_edits_is_judged_on_the_old_assignees(server) -> None:
    def call(method, path, user, **kw):
        headers = {"Authorization": f"Bearer {server.token(user)}"}
        return httpx.request(
            method, f"{server.http_url}/api/v1{path}", headers=headers, timeout=10, **kw
        )

    assert (
        call("POST", "/projects/", "boss", json={"id": REST_PROJECT, "name": "R"}).status_code
        == 201
    )
    made = call(
        "POST",
        f"/projects/{REST_PROJECT}/tasks/",
        "boss",
        json={"title": "t", "assignees": ["kim"]},
    )
    assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    server.token("mia")
    assert (
        call(
            "PUT", f"/projects/{REST_PROJECT}/members/mia", "boss", json={"role": "member"}
        ).status_code
        == 200
    )
    r = call("PATCH", f"/tasks/{task_id}/", "mia", json={"assignees": ["mia"], "title": "mine"})
    assert r.status_code == 403, r.text
    assert r.json()["permission"] == "edit_all_tasks"
    assert (
        call("PATCH", f"/tasks/{task_id}/", "mia", json={"assignees": ["mia"]}).status_code == 200
    )
    assert call("PATCH", f"/tasks/{task_id}/", "mia", json={"title": "mine"}).status_code == 200


# -- the gate's index of owners, against the document before each transaction ----------

ops = st.lists(
    st.tuples(
        st.sampled_from(["take", "give", "clear", "title", "take+title", "delete", "outside"]),
        st.integers(0, 3),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(ops)
def test_the_gate_judges_ownership_on_the_document_before_each_transaction(steps) -> None:
    from rules import BUILTIN_ROLES, decide
    from sync_server.core.gate import Denial, Gate

    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    ids = [
        create_task(
            server,
            TaskCreate(title=f"t{i}", assignees=["ann"] if i % 2 else ["bob"]),
            created_by="x",
        )
        for i in range(4)
    ]
    member = BUILTIN_ROLES["member"].permissions

    def check(actor, doc_name, changes, doc, task):
        d = decide(member, actor.user_id, doc_name.kind, changes, task=task)
        return None if d.allowed else Denial(d.reason, d.path, d.permission)

    gate = Gate(server, parse_doc_name("p/x"), check)
    for op, n in steps:
        task_id = ids[n]
        tasks_before = server.get("tasks", type=Map).to_py()
        if op == "outside":  # a write that does not pass the gate (the CLI, a reload)
            if task_id in tasks_before:
                with server.transaction(origin="outside"):
                    server.get("tasks", type=Map)[task_id]["assignees"].append("ann")
            continue
        client = new_document(DocKind.MAIN)
        client.apply_update(server.get_update())
        state = client.get_state()
        tasks = client.get("tasks", type=Map)
        if task_id not in tasks:
            continue
        with client.transaction():
            task = tasks[task_id]
            assignees = task["assignees"]
            if op in ("take", "take+title", "clear"):
                del assignees[0 : len(assignees)]
            if op in ("take", "take+title"):
                assignees.append("ann")
            if op == "give":
                assignees.append("bob")
            if op in ("title", "take+title"):
                task["title"].insert(0, "!")
            if op == "delete":
                del tasks[task_id]
        result = gate.apply(client.get_update(state), Actor("ann"))
        owned = "ann" in (tasks_before[task_id].get("assignees") or [])
        expected = {
            "take": True,  # assign_tasks
            "give": True,
            "clear": True,
            "title": owned,  # edit_own_tasks, judged before
            "take+title": owned,
            "delete": False,  # members may not delete tasks
        }[op]
        assert result.accepted == expected, (op, tasks_before[task_id], result.denial)
