"""An undo of a task's deletion brings the task back with the key the server gave it, and the
gate accepts that (issue 21): a task may be created carrying a key only when it is exactly
the key the server gave that same task id before (``task_keys``). Nothing else: not another
id, not another key. A property test of the rule, and a real offline stock Yjs client."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doc_model import DocKind
from doc_model.changes import Change
from rules import ALL, Permission, decide

from .conftest import api_client as api
from .conftest import grant_role, node_available, run_node

KEY = re.compile(r"TDM-(\d+)")

task_ids = st.sampled_from(["t1", "t2", "t3", "t4"])
new_tasks = st.dictionaries(
    task_ids,
    st.tuples(st.booleans(), st.booleans(), st.booleans()),  # has a key, restored, key change
    min_size=1,
)


@settings(max_examples=300, deadline=None)
@given(created=new_tasks, may_create=st.booleans(), edits=st.lists(task_ids, max_size=2))
def test_a_created_task_may_carry_only_the_key_given_to_its_own_id(
    created: dict[str, tuple[bool, bool, bool]], may_create: bool, edits: list[str]
) -> None:
    """Tasks created in one transaction (some carrying a key, some whose key is the one the
    server gave that id, some with the key as a change of its own), plus key writes on tasks
    the transaction does not create: allowed exactly when every key carried is a restored
    one, no key is written on another task, and the writer may create tasks."""
    perms = ALL if may_create else ALL - {Permission.CREATE_TASKS}
    changes = []
    for task_id, (_has_key, _restored, key_change) in created.items():
        changes.append(Change(("tasks", task_id), "add"))
        if key_change:
            changes.append(Change(("tasks", task_id, "key"), "add"))
    edited = [t for t in edits if t not in created]
    changes += [Change(("tasks", t, "key"), "update") for t in edited]

    def fields(task_id: str) -> list[str]:
        has_key, _restored, key_change = created.get(task_id, (False, False, False))
        return ["title", "status"] + (["key"] if has_key or key_change else [])

    def restored(task_id: str) -> bool:
        return task_id in created and created[task_id][1]

    decision = decide(
        perms,
        "ann",
        DocKind.MAIN,
        changes,
        new_task_fields=fields,
        key_restored=lambda t: restored(t) or t in edited,  # never asked for an edit
    )
    forged = any((h or k) and not r for h, r, k in created.values()) or bool(edited)
    assert decision.allowed == (not forged and may_create)
    if forged and may_create:  # the first refused change decides the reason
        assert decision.path.endswith("/key") and "server assigns it" in decision.reason


@pytest.mark.skipif(not node_available(), reason="run `make setup` for the Node clients")
def test_an_offline_undo_of_a_deletion_is_accepted_with_its_key(server) -> None:
    with api(server) as alice:
        created = alice.post("/projects/", json={"name": "Tandem"})
        assert created.status_code == 201, created.text
        project = created.json()["id"]
        grant_role(server.db, "bob", project, "member")
        out = run_node(
            "task_undo.mjs",
            server.ws_url,
            f"p/{project}",
            server.token("alice"),
            server.token("bob"),
        )
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        given_keys = seen["given"]
        assert sorted(given_keys.values()) == ["TDM-1", "TDM-2", "TDM-3"]
        assert seen["restoredOffline"] == given_keys["t2"]  # the undo brought the key back
        assert seen["deniedAfterUndo"] == 0, seen["denials"]  # and the server took it
        expected = {"t1": given_keys["t1"], "t2": given_keys["t2"]}
        assert seen["a"] == expected and seen["b"] == expected
        # the two forgeries (the key on another id; another key on a deleted id) refused
        assert len(seen["denials"]) == 2 and all("key" in d for d in seen["denials"])

        # the server's copy: t2 with its key, never a key twice, the counter unmoved
        items = alice.get(f"/projects/{project}/tasks/").json()["items"]
        keys = {t["id"]: t["key"] for t in items}
        assert keys == expected
        assert len(set(keys.values())) == len(keys)
        found = alice.get(f"/projects/{project}/tasks/", params={"key": given_keys["t2"]})
        assert [t["id"] for t in found.json()["items"]] == ["t2"]
        made = alice.post(f"/projects/{project}/tasks/", json={"title": "next"}).json()["id"]
        from .conftest import wait_until

        def key_of_new() -> str | None:
            return alice.get(f"/tasks/{made}/").json().get("key")

        assert wait_until(key_of_new, what="a key") == "TDM-4"  # 2 was not given again
    with sqlite3.connect(server.db) as db:
        rows = db.execute(
            "SELECT task, key FROM task_keys WHERE project = ? ORDER BY number", (project,)
        ).fetchall()
    assert [r[1] for r in rows] == ["TDM-1", "TDM-2", "TDM-3", "TDM-4"]
