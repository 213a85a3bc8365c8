"""Permissions through the real sync socket, and properties of the decision function and the gate."""

from __future__ import annotations

import datetime as dt
import sqlite3
from functools import partial

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Map

from doc_model import (
    Change,
    DocKind,
    TaskCreate,
    add_allocation,
    add_cost,
    add_member,
    add_time_entry,
    create_project_meta,
    create_task,
    delete_task,
    new_document,
    parse_doc_name,
    post_chat_message,
    set_budget,
    set_task_field,
)
from rules import ALL, BUILTIN_ROLES, Grant, Permission, Role, decide, effective_permissions
from sync_server.core.gate import Gate
from sync_server.identity import access
from sync_server.interfaces import Actor
from sync_server.storage.database import open_database

from .raw_client import RawClient

P = Permission

# -- the decision function ----------------------------------------------------


def test_effective_permissions_follow_role_then_grant_additions_and_removals() -> None:
    grant = Grant(
        "ann", "p1", "viewer", added=frozenset({P.CREATE_TASKS}), removed=frozenset({P.VIEW_TASKS})
    )
    assert effective_permissions(grant, []) == {P.VIEW_PROJECT, P.CREATE_TASKS}
    custom = [Role("viewer", frozenset({P.EXPORT_DATA}), project="p1")]  # project role wins
    assert effective_permissions(Grant("ann", "p1", "viewer"), custom) == {P.EXPORT_DATA}
    other_project = [Role("viewer", frozenset({P.EXPORT_DATA}), project="p2")]
    assert (
        effective_permissions(Grant("ann", "p1", "viewer"), other_project)
        == BUILTIN_ROLES["viewer"].permissions
    )
    assert effective_permissions(None, []) == frozenset()


change_paths = st.sampled_from(
    [
        (DocKind.MAIN, ("tasks", "t1"), "add", P.CREATE_TASKS),
        (DocKind.MAIN, ("tasks", "t1"), "delete", P.DELETE_TASKS),
        (DocKind.MAIN, ("tasks", "t1", "status"), "update", P.EDIT_ALL_TASKS),
        (DocKind.MAIN, ("tasks", "t1", "assignees"), "edit", P.ASSIGN_TASKS),
        (DocKind.MAIN, ("meta", "name"), "update", P.EDIT_PROJECT),
        (DocKind.MAIN, ("milestones", "m1"), "add", P.EDIT_PROJECT),
        (DocKind.MAIN, ("members", "bob"), "add", None),  # server-written: nobody may
        (DocKind.FINANCE, ("budget", "total"), "update", P.EDIT_BUDGET),
        (DocKind.FINANCE, ("costs", "c1"), "add", P.EDIT_COSTS),
        (DocKind.FINANCE, ("time_entries", "e1"), "add", P.EDIT_COSTS),
        (DocKind.RESOURCES, ("allocations", "a1"), "add", P.MANAGE_RESOURCES),
    ]
)


@given(change_paths, st.frozensets(st.sampled_from(list(Permission))))
def test_a_change_is_allowed_exactly_when_its_permission_is_held(case, perms) -> None:
    kind, path, action, needed = case
    decision = decide(perms, "ann", kind, [Change(path, action)])
    assert decision.allowed == (needed is not None and needed in perms)
    if not decision.allowed:
        assert decision.permission is needed
        assert decision.path == "/".join(path)


@given(
    st.lists(change_paths, min_size=1, max_size=6), st.frozensets(st.sampled_from(list(Permission)))
)
def test_a_transaction_is_allowed_only_if_every_change_is(cases, perms) -> None:
    kind = cases[0][0]
    same_kind = [c for c in cases if c[0] is kind]
    changes = [Change(path, action) for _, path, action, _ in same_kind]
    created = {
        c[1][1] for c in same_kind if c[2] == "add" and c[1][0] == "tasks" and len(c[1]) == 2
    }
    needed = {
        n
        for _, path, _, n in same_kind
        if not (path[0] == "tasks" and len(path) > 2 and path[1] in created)
    }
    assert decide(perms, "ann", kind, changes).allowed == (None not in needed and needed <= perms)


def test_task_ownership_comes_from_assignees() -> None:
    change = [Change(("tasks", "t1", "title"), "edit")]
    own = frozenset({P.EDIT_OWN_TASKS})
    assert decide(own, "ann", DocKind.MAIN, change, task=lambda _: {"assignees": ["ann"]}).allowed
    denied = decide(own, "ann", DocKind.MAIN, change, task=lambda _: {"assignees": ["bob"]})
    assert not denied.allowed and denied.permission is P.EDIT_ALL_TASKS


def test_nobody_posts_chat_as_someone_else() -> None:
    change = [Change(("messages", 0), "add")]
    assert decide(ALL, "ann", DocKind.CHAT, change, message=lambda _: {"author": "ann"}).allowed
    forged = decide(ALL, "ann", DocKind.CHAT, change, message=lambda _: {"author": "bob"})
    assert not forged.allowed and "someone else" in forged.reason


# -- the gate: forbidden transactions never change the document ---------------


def _gate_with_project():
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    ids = [
        create_task(
            server, TaskCreate(title=f"t{i}", assignees=["ann"] if i % 2 else []), created_by="x"
        )
        for i in range(4)
    ]
    grants = {
        "ann": BUILTIN_ROLES["member"].permissions,
        "vic": BUILTIN_ROLES["viewer"].permissions,
        "boss": BUILTIN_ROLES["manager"].permissions,
    }

    def check(actor, doc_name, changes, doc, task):
        from sync_server.core.gate import Denial

        d = decide(grants[actor.user_id], actor.user_id, doc_name.kind, changes, task=task)
        return None if d.allowed else Denial(d.reason, d.path, d.permission)

    return server, ids, Gate(server, parse_doc_name("p/x"), check)


def _append_update(out: list[bytes], event) -> None:
    out.append(event.update)


edit_ops = st.sampled_from(["create", "title", "status", "delete", "assign", "meta", "members"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["ann", "vic", "boss"]), edit_ops, st.integers(0, 3)), max_size=12
    )
)
def test_forbidden_transactions_leave_no_trace_and_honest_ones_all_land(steps) -> None:
    server, ids, gate = _gate_with_project()
    expected = new_document(DocKind.MAIN)  # the server as it should end: only allowed writes
    expected.apply_update(server.get_update())
    for user, op, n in steps:
        client = new_document(DocKind.MAIN)
        client.apply_update(server.get_update())
        task_id = ids[n]
        updates: list[bytes] = []
        client.observe(partial(_append_update, updates))

        def write(doc, user=user, op=op, task_id=task_id):
            tasks = doc.get("tasks", type=Map)
            if op == "create":
                create_task(doc, TaskCreate(title="new"), created_by=user)
            elif task_id not in tasks:
                return
            elif op == "title":
                tasks[task_id]["title"].insert(0, "!")
            elif op == "status":
                set_task_field(doc, task_id, "status", "done")
            elif op == "delete":
                delete_task(doc, task_id)
            elif op == "assign":
                tasks[task_id]["assignees"].append(user)
            elif op == "meta":
                doc.get("meta", type=Map)["name"] = "renamed"
            else:
                add_member(doc, user, "owner")

        with client.transaction():
            write(client)
        if not updates:
            continue
        before = (
            server.get("tasks", type=Map).to_py(),
            server.get("meta", type=Map).to_py(),
            server.get("members", type=Map).to_py(),
        )
        result = gate.apply(updates[0], Actor(user))
        after = (
            server.get("tasks", type=Map).to_py(),
            server.get("meta", type=Map).to_py(),
            server.get("members", type=Map).to_py(),
        )
        if result.update is not None:  # what every other client receives, accepted or reverted
            expected.apply_update(result.update)
        if not result.accepted:
            assert after == before, f"{user} {op} was rejected but changed the document"
        if op == "members":
            assert not result.accepted, "the members map mirrors grants: no client writes it"
        elif user == "boss":
            assert result.accepted, "a manager's honest edit must land"
    assert server.get("tasks", type=Map).to_py() == expected.get("tasks", type=Map).to_py()


# -- the real socket: every permission code, allowed and denied ---------------

WRITES = {
    # permission: (document, write that needs it, a role that has it, a role that does not)
    P.CREATE_TASKS: (
        "main",
        lambda d, ids: create_task(d, TaskCreate(title="n"), created_by="u"),
        "member",
        "viewer",
    ),
    P.EDIT_OWN_TASKS: (
        "main",
        lambda d, ids: d.get("tasks", type=Map)[ids["mine"]]["title"].insert(0, "x"),
        "member",
        "viewer",
    ),
    P.EDIT_ALL_TASKS: (
        "main",
        lambda d, ids: d.get("tasks", type=Map)[ids["theirs"]]["title"].insert(0, "x"),
        "manager",
        "member",
    ),
    P.DELETE_TASKS: ("main", lambda d, ids: delete_task(d, ids["theirs"]), "manager", "member"),
    P.ASSIGN_TASKS: (
        "main",
        lambda d, ids: d.get("tasks", type=Map)[ids["theirs"]]["assignees"].append("zoe"),
        "member",
        "viewer",
    ),
    P.EDIT_PROJECT: (
        "main",
        lambda d, ids: d.get("meta", type=Map).__setitem__("description", "new"),
        "manager",
        "member",
    ),
    P.EDIT_BUDGET: (
        "finance",
        lambda d, ids: set_budget(d, currency="EUR", total=5),
        "finance",
        "manager-no-budget",
    ),
    P.EDIT_COSTS: (
        "finance",
        lambda d, ids: add_cost(d, amount=3, currency="EUR"),
        "finance",
        "manager-no-costs",
    ),
    P.MANAGE_RESOURCES: (
        "resources",
        lambda d, ids: add_allocation(d, user="u", percent=10),
        "manager",
        "viewer-resources",
    ),
}

CUSTOM_GRANTS = {
    "manager-no-budget": ("manager", (), ("edit_budget",)),
    "manager-no-costs": ("manager", (), ("edit_costs",)),
    "viewer-resources": ("viewer", ("view_resources",), ()),
}

pytestmark_anyio = pytest.mark.anyio


async def _seed(server, project: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    async with RawClient.connect(server, f"p/{project}", "seeder") as seeder:
        await seeder.sync()

        def seed(d):
            create_project_meta(d, "P")
            ids["mine"] = create_task(
                d, TaskCreate(title="mine", assignees=["worker"]), created_by="s"
            )
            ids["theirs"] = create_task(
                d, TaskCreate(title="theirs", assignees=["someone"]), created_by="s"
            )

        n = await seeder.send_update(seeder.edit(seed))
        assert (await seeder.outcome(n))["type"] == "ack"
    return ids


async def _attempt(server, project, doc, role, write, ids) -> dict:
    if role in CUSTOM_GRANTS:
        base, added, removed = CUSTOM_GRANTS[role]
        server.grant("worker", project, base, added=added, removed=removed)
    else:
        server.grant("worker", project, role)
    await anyio.sleep(1.1)  # the server caches permissions for up to a second
    suffix = "" if doc == "main" else f"/{doc}"
    async with RawClient.connect(server, f"p/{project}{suffix}", "worker", role=None) as worker:
        await worker.sync()
        n = await worker.send_update(worker.edit(lambda d: write(d, ids)))
        outcome = await worker.outcome(n)
        await worker.drain(0.2)
        return outcome


@pytest.mark.anyio
@pytest.mark.parametrize("permission", list(WRITES), ids=lambda p: p.value)
async def test_each_write_permission_allows_and_denies_through_the_socket(
    server, permission
) -> None:
    doc, write, allowed_role, denied_role = WRITES[permission]
    project = f"perm-{permission.value.replace('_', '-')}"
    ids = await _seed(server, project)
    ok = await _attempt(server, project, doc, allowed_role, write, ids)
    assert ok["type"] == "ack", ok
    ids = await _seed(server, project + "-2")
    denied = await _attempt(server, project + "-2", doc, denied_role, write, ids)
    assert denied["type"] == "rejected"
    assert denied["permission"] == permission.value
    assert denied["path"]


DOCUMENT_NEEDS = {
    "": {P.VIEW_PROJECT, P.VIEW_TASKS},
    "/chat": {P.VIEW_PROJECT},
    "/finance": {P.VIEW_BUDGET, P.VIEW_COSTS},
    "/resources": {P.VIEW_RESOURCES},
}


def _exactly(server, user: str, project: str, perms: set[Permission]) -> None:
    """Grant ``user`` exactly ``perms`` on ``project`` (a viewer with additions and removals)."""
    viewer = BUILTIN_ROLES["viewer"].permissions
    server.grant(
        user,
        project,
        "viewer",
        added=[p.value for p in perms - viewer],
        removed=[p.value for p in viewer - perms],
    )


@pytest.mark.anyio
@pytest.mark.parametrize("suffix", list(DOCUMENT_NEEDS))
async def test_a_document_opens_only_with_every_permission_its_content_needs(
    server, suffix
) -> None:
    needs = DOCUMENT_NEEDS[suffix]
    project = f"read{suffix.replace('/', '-')}"
    _exactly(server, "reader", project, needs)
    async with RawClient.connect(server, f"p/{project}{suffix}", "reader", role=None) as ok:
        await ok.sync()
    for lacking in sorted(needs):
        # every other permission there is, but not this one: view_budget alone no longer
        # opens the finance document, nor view_project alone the project's tasks
        other = f"{project}-no-{lacking.value.replace('_', '-')}"
        _exactly(server, "reader", other, set(ALL) - {lacking})
        async with RawClient.connect(server, f"p/{other}{suffix}", "reader", role=None) as refused:
            closed = await refused.wait_closed()
        assert closed.code == 4403
        assert lacking.value in closed.reason


@pytest.mark.anyio
@pytest.mark.parametrize(
    "trick",
    [
        "p/fin/finance/",
        "p/fin//finance",
        "p/fin/%66inance",
        "p/fin/FINANCE",
        "p/fin/finance%2F",
        "p/fin/./finance",
    ],
)
async def test_no_name_trick_opens_finance_without_view_budget(server, trick) -> None:
    server.grant("nosy", "fin", "member")
    async with RawClient.connect(server, trick, "nosy", role=None) as client:
        closed = await client.wait_closed()
    assert closed.code in (4403, 4404)


@pytest.mark.anyio
async def test_a_read_only_member_reads_everything_and_every_update_is_rejected(server) -> None:
    ids = await _seed(server, "ro")
    server.grant("vera", "ro", "viewer")
    async with RawClient.connect(server, "p/ro", "vera", role=None) as vera:
        await vera.sync()
        assert {t["title"] for t in vera.doc.get("tasks", type=Map).to_py().values()} == {
            "mine",
            "theirs",
        }
        for write in (
            lambda d: create_task(d, TaskCreate(title="x"), created_by="vera"),
            lambda d: d.get("tasks", type=Map)[ids["mine"]]["title"].insert(0, "x"),
            lambda d: delete_task(d, ids["theirs"]),
        ):
            n = await vera.send_update(vera.edit(write))
            assert (await vera.outcome(n))["type"] == "rejected"
        await vera.drain(0.3)
        assert {t["title"] for t in vera.doc.get("tasks", type=Map).to_py().values()} == {
            "mine",
            "theirs",
        }


@pytest.mark.anyio
async def test_an_offline_phone_lands_its_valid_changes_and_is_told_why_the_rest_were_reverted(
    server,
) -> None:
    ids = await _seed(server, "phone")
    server.grant("pat", "phone", "member")
    async with RawClient.connect(server, "p/phone", "pat", role=None) as phone:
        await phone.sync()
    # offline: three transactions queued, one of them forbidden for a member
    queued = [
        phone.edit(lambda d: create_task(d, TaskCreate(title="from the train"), created_by="pat")),
        phone.edit(lambda d: delete_task(d, ids["theirs"])),  # needs delete_tasks
        phone.edit(lambda d: d.get("tasks", type=Map)[ids["mine"]]["title"].insert(0, "edited ")),
    ]
    server.grant("worker", "phone", "member")  # pat's task "mine" is assigned to worker
    async with RawClient.connect(server, "p/phone", "pat", role=None) as back:
        # a Tandem client replays its outbox, one message per transaction, before it
        # answers the server's sync step 1 (whose reply would merge them all into one)
        numbers = [await back.send_update(update) for update in queued]
        outcomes = [(await back.outcome(n))["type"] for n in numbers]
        await back.sync()
        await back.drain(0.3)
        tasks = back.doc.get("tasks", type=Map).to_py()
    assert outcomes == ["ack", "rejected", "rejected"]
    titles = {t["title"] for t in tasks.values()}
    assert "from the train" in titles
    assert "theirs" in titles, "the forbidden delete was reverted on the phone"
    assert "mine" in titles, "editing a task assigned to someone else was reverted"
    db = sqlite3.connect(server.db)
    rows = db.execute(
        "SELECT actor, document, path, reason FROM audit WHERE action = 'update.rejected'"
    ).fetchall()
    assert ("pat", "p/phone") in {(r[0], r[1]) for r in rows}
    assert any("delete_tasks" in r[3] for r in rows)


def test_unused_helpers_are_importable() -> None:
    # keep the finance/chat helpers honest under the permission model too
    fin = new_document(DocKind.FINANCE)
    add_time_entry(fin, user="a", hours=1, date=dt.date(2026, 1, 1))
    chat = new_document(DocKind.CHAT)
    post_chat_message(chat, "a", "hi")
    assert len(chat.get("messages", type=Array)) == 1


def test_the_permission_cache_drops_expired_answers_and_keeps_answering_right(tmp_path) -> None:
    """A long-running server is asked about every (user, project) pair there is; answers past
    their time are dropped once the cache is full, and no answer changes for it."""
    conn = open_database(tmp_path / "tandem.db").conn
    access.set_grant(conn, Grant("ann", "p0", "viewer"), "test")
    resolver = access.PermissionResolver(conn, ttl=0.0, prune_at=50)  # every answer expired
    viewer = BUILTIN_ROLES["viewer"].permissions
    for i in range(1_000):
        assert resolver.permissions(f"user{i}", f"p{i % 7}") == frozenset()
        assert resolver.cached() <= 51
    assert resolver.permissions("ann", "p0") == viewer
    fresh = access.PermissionResolver(conn, ttl=60.0, prune_at=50)  # none expired: all kept
    for i in range(200):
        fresh.permissions(f"user{i}", "p0")
    assert fresh.cached() == 200
    assert fresh.permissions("ann", "p0") == viewer
    conn.close()
