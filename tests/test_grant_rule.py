"""Nobody takes away the owner's control: the grant rule on every path that changes grants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doc_model import add_member
from rules import ALL, BUILTIN_ROLES, Permission, check_grant_change, is_owner

from .conftest import tandem
from .raw_client import RawClient
from .test_api_access import api, assert_problem


@pytest.fixture
def server(server_on_each_storage):
    """Every test here runs on a SQLite file and on a PostgreSQL database."""
    return server_on_each_storage


P = Permission

# -- the rule itself (pure) ---------------------------------------------------------

USERS = ("ann", "bob", "cy")
perm_sets = st.one_of(
    st.sampled_from([r.permissions for r in BUILTIN_ROLES.values()]),
    st.frozensets(st.sampled_from(list(Permission))),
)
members_maps = st.dictionaries(st.sampled_from(USERS), perm_sets)


@settings(max_examples=500)
@given(members_maps, st.sampled_from(USERS), st.sampled_from(USERS), st.none() | perm_sets)
def test_a_grant_change_never_exceeds_the_caller_nor_leaves_no_owner(
    before, caller, target, new
) -> None:
    after = dict(before)
    if new is None:
        after.pop(target, None)
    else:
        after[target] = new
    caller_perms = before.get(caller, frozenset())
    refusal = check_grant_change(caller, caller_perms, before, after)
    changed = before.get(target, frozenset()) != after.get(target, frozenset())
    if refusal is None:
        if changed:  # the caller held everything the target had, and everything they get
            assert before.get(target, frozenset()) <= caller_perms
            assert after.get(target, frozenset()) <= caller_perms
        if any(is_owner(p) for p in before.values()):
            assert any(is_owner(p) for p in after.values()), "the last owner was lost"
    else:  # it changed someone, or it is a project's first grant and makes no owner
        assert changed or (not before and not any(is_owner(p) for p in after.values()))
        assert refusal.user in USERS and refusal.reason


@settings(max_examples=200)
@given(
    members_maps,
    st.lists(
        st.tuples(st.sampled_from(USERS), st.sampled_from(USERS), st.none() | perm_sets),
        max_size=20,
    ),
)
def test_random_grant_changes_never_leave_a_project_that_had_an_owner_without_one(
    start, steps
) -> None:
    members = dict(start)
    had_owner = any(is_owner(p) for p in members.values())
    for caller, target, new in steps:
        after = dict(members)
        if new is None:
            after.pop(target, None)
        else:
            after[target] = new
        if check_grant_change(caller, members.get(caller, frozenset()), members, after) is None:
            members = after
        if had_owner:
            assert any(is_owner(p) for p in members.values())


def test_the_rule_names_the_reason() -> None:
    owner, manager = ALL, BUILTIN_ROLES["manager"].permissions
    demote = check_grant_change(
        "mgr", manager, {"own": owner, "mgr": manager}, {"own": manager, "mgr": manager}
    )
    assert demote is not None and "delete_project" in demote.reason and demote.user == "own"
    last = check_grant_change("own", owner, {"own": owner}, {"own": manager})
    assert last is not None and last.kind == "last_owner"
    assert check_grant_change("own", owner, {"own": owner, "b": owner}, {"b": owner}) is None
    first = check_grant_change("system:cli", ALL, {}, {"new": manager})
    assert first is not None and "first grant" in first.reason


# -- REST ----------------------------------------------------------------------------


def test_a_manager_cannot_demote_or_remove_the_owner(server) -> None:
    server.grant("own", "ctl", "owner")
    server.grant("mgr", "ctl", "manager")
    server.token("own")
    body = assert_problem(
        api(server, "PUT", "/projects/ctl/members/own", "mgr", json={"role": "viewer"}),
        403,
        "delete_project",
    )
    assert body["user"] == "own"
    assert_problem(api(server, "DELETE", "/projects/ctl/grants/own", "mgr"), 403, "delete_project")
    grants = {
        g["user"]: g["role"]
        for g in api(server, "GET", "/projects/ctl/grants", "mgr").json()["grants"]
    }
    assert grants["own"] == "owner"
    # nor by taking a permission away from them one at a time
    assert_problem(
        api(
            server,
            "PUT",
            "/projects/ctl/grants/own",
            "mgr",
            json={"role": "owner", "removed": ["export_data"]},
        ),
        403,
    )


def test_the_last_owner_cannot_demote_or_remove_themselves_but_one_of_two_can(server) -> None:
    server.grant("solo", "lone", "owner")
    assert_problem(
        api(server, "PUT", "/projects/lone/members/solo", "solo", json={"role": "manager"}),
        409,
        "must keep an owner",
    )
    assert_problem(
        api(
            server,
            "PUT",
            "/projects/lone/members/solo",
            "solo",
            json={"role": "owner", "removed": ["delete_project"]},
        ),
        409,
        "must keep an owner",
    )
    server.token("two")
    assert (
        api(server, "PUT", "/projects/lone/members/two", "solo", json={"role": "owner"}).status_code
        == 200
    )
    demoted = api(server, "PUT", "/projects/lone/members/solo", "solo", json={"role": "manager"})
    assert demoted.status_code == 200, demoted.text
    # now "two" is the last owner; the demoted manager cannot touch them
    assert_problem(api(server, "DELETE", "/projects/lone/members/two", "solo"), 403)
    assert_problem(
        api(server, "PUT", "/projects/lone/members/two", "two", json={"role": "viewer"}), 409
    )


def test_a_custom_role_change_cannot_strip_the_owner(server) -> None:
    server.grant("boss", "cr", "owner")
    server.grant("mgr", "cr", "manager")
    everything = sorted(p.value for p in ALL)
    made = api(
        server,
        "POST",
        "/projects/cr/roles",
        "boss",
        json={"name": "chief", "permissions": everything, "project": "cr"},
    )
    assert made.status_code == 201, made.text
    server.token("chief1")
    assert (
        api(server, "PUT", "/projects/cr/grants/chief1", "boss", json={"role": "chief"}).status_code
        == 200
    )
    assert (
        api(server, "PUT", "/projects/cr/grants/boss", "boss", json={"role": "viewer"}).status_code
        == 200
    )
    # chief1 is the only owner, through the custom role: the manager cannot shrink the role
    assert_problem(
        api(
            server,
            "PATCH",
            "/projects/cr/roles/chief",
            "mgr",
            json={"permissions": ["view_project"]},
        ),
        403,
    )


def test_adding_a_member_does_not_tell_whether_the_account_exists(server) -> None:
    server.grant("mgr", "inv", "owner")
    server.token("real")
    exists = api(server, "PUT", "/projects/inv/members/real", "mgr", json={"role": "viewer"})
    missing = api(server, "PUT", "/projects/inv/members/ghost", "mgr", json={"role": "viewer"})
    assert exists.status_code == missing.status_code == 200
    assert {k for k in exists.json()} == {k for k in missing.json()}
    assert exists.json()["permissions"] == missing.json()["permissions"]
    # the invitation takes effect when an account of that name is made
    token = server.token("ghost")
    me = api(server, "GET", "/me/permissions?project=inv", token=token).json()
    assert me["role"] == "viewer"


# -- CLI -----------------------------------------------------------------------------


def test_the_cli_cannot_make_a_project_without_an_owner(server) -> None:
    out = tandem(
        "user",
        "create",
        "first",
        "--project",
        "fresh",
        "--role",
        "member",
        db=server.db,
        stdin="",
        check=False,
    )
    assert "first grant must make an owner" in out
    assert "first" not in tandem("user", "list", db=server.db).split()  # no account either
    tandem(
        "user", "create", "first", "--project", "fresh", "--role", "owner", db=server.db, stdin=""
    )
    tandem(
        "user", "create", "second", "--project", "fresh", "--role", "viewer", db=server.db, stdin=""
    )
    grants = {
        g["user"]: g["role"]
        for g in api(server, "GET", "/projects/fresh/grants", "first").json()["grants"]
    }
    assert grants == {"first": "owner", "second": "viewer"}


# -- the socket ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_client_writes_the_members_map_not_even_an_owner(server) -> None:
    server.grant("own", "mm", "owner")
    server.grant("mgr", "mm", "manager")
    for user in ("mgr", "own"):
        async with RawClient.connect(server, "p/mm", user, role=None) as client:
            await client.sync()
            n = await client.send_update(client.edit(lambda d: add_member(d, "own", "viewer")))
            outcome = await client.outcome(n)
            assert outcome["type"] == "rejected", outcome
            assert "members map" in str(outcome), outcome
            await client.drain(0.2)
    async with RawClient.connect(server, "p/mm", "own", role=None) as check:
        await check.sync()
        from pycrdt import Map

        assert check.doc.get("members", type=Map).to_py().get("own") != "viewer"
