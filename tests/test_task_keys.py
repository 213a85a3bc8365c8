"""Task keys (TDM-42): assigned by the server, distinct under concurrent and offline creation,
never reused, found through REST, refused when a client writes one, given to existing tasks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Map

from doc_model.task_keys import default_prefix, parse_key, valid_prefix

from .conftest import api_client as api
from .conftest import grant_role, node_available, project_with_tasks, run_node, start_server
from .conftest import stored_doc as read_stored
from .conftest import wait_until as wait_for

KEY = re.compile(r"TDM-(\d+)")


def task_key(client: httpx.Client, task_id: str) -> str | None:
    response = client.get(f"/tasks/{task_id}/")
    assert response.status_code == 200, response.text
    return response.json().get("key")


@given(st.text(max_size=80))
def test_a_default_prefix_is_always_valid(name: str) -> None:
    prefix = default_prefix(name)
    assert valid_prefix(prefix)
    assert parse_key(f"{prefix}-7") == (prefix, 7)


def test_default_prefixes() -> None:
    assert default_prefix("Tandem") == "TDM"
    assert default_prefix("Mobile App") == "MA"
    assert default_prefix("") == "TSK"
    assert not valid_prefix("tdm") and not valid_prefix("T") and not valid_prefix("TOOLONG")


@pytest.mark.skipif(not node_available(), reason="run `make setup` for the Node clients")
def test_keys_from_concurrent_and_offline_clients_are_distinct_and_never_reused(server) -> None:
    with api(server) as alice:
        created = alice.post("/projects/", json={"name": "Tandem"})
        assert created.status_code == 201, created.text
        project = created.json()["id"]
        assert created.json()["key_prefix"] == "TDM"
        for user in ("bob", "carol"):
            grant_role(server.db, user, project, "member")
        out = run_node(
            "task_keys.mjs",
            server.ws_url,
            f"p/{project}",
            server.token("alice"),
            server.token("bob"),
            server.token("carol"),
            "5",
        )
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        keys = seen["tasks"]
        assert sorted(keys) == sorted(f"{p}{i}" for p in "abc" for i in range(5))
        numbers = sorted(int(KEY.fullmatch(k).group(1)) for k in keys.values())  # type: ignore[union-attr]
        assert numbers == list(range(1, 16))  # distinct, and none skipped
        # the clients may not write a key: both forgeries refused and reverted
        assert len(seen["denials"]) == 2, seen["denials"]
        assert all("key" in d for d in seen["denials"]), seen["denials"]
        assert seen["forged"] == {"b0": keys["b0"], "has_forged": False}

        # REST returns the key and finds the task by it
        wanted = keys["c3"]
        found = alice.get(f"/projects/{project}/tasks/", params={"key": wanted})
        assert found.status_code == 200, found.text
        assert [t["id"] for t in found.json()["items"]] == ["c3"]
        assert found.json()["items"][0]["key"] == wanted
        assert (
            alice.get(f"/projects/{project}/tasks/", params={"key": "TDM-999"}).json()["items"]
            == []
        )

        # the newest task deleted: its number is not given again, not even after a restart
        newest = max(keys, key=lambda t: int(keys[t].split("-")[1]))
        assert alice.delete(f"/tasks/{newest}/").status_code == 204
        made = alice.post(f"/projects/{project}/tasks/", json={"title": "after the delete"})
        assert made.status_code == 201, made.text
        new_id = made.json()["id"]
        assert wait_for(lambda: task_key(alice, new_id), what="a key") == "TDM-16"

    server.restart()
    with api(server) as alice:
        made = alice.post(f"/projects/{project}/tasks/", json={"title": "after a restart"})
        new_id = made.json()["id"]
        assert wait_for(lambda: task_key(alice, new_id), what="a key") == "TDM-17"
        # a REST body carrying a key is refused (the model has no such input)
        refused = alice.patch(f"/tasks/{new_id}/", json={"key": "TDM-1"})
        assert refused.status_code in (400, 422), refused.text
        assert task_key(alice, new_id) == "TDM-17"


def test_a_project_prefix_is_validated_and_used_for_new_keys(server) -> None:
    with api(server) as alice:
        project = alice.post("/projects/", json={"name": "Mobile App"}).json()["id"]
        bad = alice.patch(f"/projects/{project}/", json={"key_prefix": "mo"})
        assert bad.status_code == 422, bad.text
        assert "key_prefix" in bad.text
        ok = alice.patch(f"/projects/{project}/", json={"key_prefix": "MOB"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["key_prefix"] == "MOB"
        made = alice.post(f"/projects/{project}/tasks/", json={"title": "one"}).json()
        assert wait_for(lambda: task_key(alice, made["id"]), what="a key") == "MOB-1"


def test_existing_tasks_get_keys_in_creation_order(tmp_path: Path) -> None:
    """A database from before keys: tasks stored without a server (as the CLI writes them),
    no counter. The server's first start gives them keys, oldest first."""
    from sync_server.interfaces import UpdateRecord
    from sync_server.storage.sqlite_store import SQLiteStore

    db = tmp_path / "tandem.db"
    doc = project_with_tasks(4)
    with doc.transaction():
        doc.get("meta", type=Map)["name"] = "Legacy"
        tasks = doc.get("tasks", type=Map)
        for i, task_id in enumerate(("t2", "t0", "t3", "t1")):  # creation order
            tasks[task_id]["created_at"] = f"2026-01-0{i + 1}T00:00:00+00:00"
    empty = project_with_tasks(0)

    async def seed() -> None:
        store = SQLiteStore(db)
        try:
            await store.append("p/legacy", [UpdateRecord(doc.get_update(), "test")])
            await store.append("p/empty", [UpdateRecord(empty.get_update(), "test")])
        finally:
            await store.close()

    anyio.run(seed)
    server = start_server(tmp_path)
    try:
        wait_for(
            lambda: all(
                "key" in t for t in read_stored(db, "p/legacy").get("tasks", type=Map).values()
            ),
            what="keys on the existing tasks",
        )
    finally:
        server.stop()
    stored = read_stored(db, "p/legacy").get("tasks", type=Map)
    assert {t: stored[t]["key"] for t in stored} == {
        "t2": "LCY-1",
        "t0": "LCY-2",
        "t3": "LCY-3",
        "t1": "LCY-4",
    }
