"""Extensions in a real server: hook order and data, isolation, ctx.edit, routes, loading,
authentication. The extensions are in tests/ext_probe.py and report through their routes."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Map

from doc_model import Change, DocKind, TaskCreate, create_project_meta, create_task
from rules import Permission, decide

from .conftest import KEY_WRITER, ROOT, TANDEM, ServerProcess, free_port, start_server
from .raw_client import RawClient

PROBE = "tests.ext_probe"


def probe_log(server: ServerProcess) -> list[dict]:
    r = httpx.get(f"{server.http_url}/ext/probe/log", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(server: ServerProcess, hook: str, timeout: float = 5, **match) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for entry in probe_log(server):
            if entry["hook"] == hook and all(entry.get(k) == v for k, v in match.items()):
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no {hook} {match} in {probe_log(server)}")
        time.sleep(0.05)


@pytest.fixture
def probed(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a slow and a raising extension listed before the probe and the editor."""
    specs = ",".join(f"{PROBE}:{n}" for n in ("Sleeper", "Raiser", "Probe", "Editor"))
    srv = start_server(tmp_path, TANDEM_EXTENSIONS=specs)
    try:
        yield srv
    finally:
        srv.stop()


def new_task(title: str):
    return lambda doc: create_task(doc, TaskCreate(title=title), created_by="alice")


def seed(doc) -> None:
    create_project_meta(doc, "Extensions")


def test_startup_runs_in_order_and_shutdown_in_reverse(tmp_path: Path) -> None:
    notes = tmp_path / "probe.txt"
    srv = ServerProcess(
        db=tmp_path / "tandem.db",
        port=free_port(),
        env={**os.environ, "TANDEM_PROBE_FILE": str(notes)},
        log_path=tmp_path / "server.log",
        args=("--extension", f"{PROBE}:First", "--extension", f"{PROBE}:Second"),
    )
    srv.start()
    try:
        assert notes.read_text().splitlines() == ["startup first", "startup second"]
    finally:
        srv.stop()
    assert notes.read_text().splitlines() == [
        "startup first",
        "startup second",
        "shutdown second",
        "shutdown first",
    ]


def test_extension_flag_loads_a_module_and_serves_its_routes(tmp_path: Path) -> None:
    srv = ServerProcess(
        db=tmp_path / "tandem.db",
        port=free_port(),
        env=dict(os.environ),
        log_path=tmp_path / "server.log",
        args=("--extension", f"{PROBE}:Probe"),
    )
    srv.start()
    try:
        assert [e["hook"] for e in probe_log(srv)] == ["startup"]
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (f"{PROBE}:Nope", "has no Nope"),
        ("no_such_module_here:Thing", "cannot import no_such_module_here"),
        ("not a spec", "expected module:Name"),
        ("json:dumps", "is not an extension"),
    ],
)
def test_a_bad_extension_spec_exits_2_naming_it(tmp_path: Path, spec: str, why: str) -> None:
    proc = subprocess.run(
        [*TANDEM, "serve", "--db", str(tmp_path / "t.db"), "--port", "0", "--extension", spec],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert spec in proc.stderr and why in proc.stderr, proc.stderr


def test_raising_and_sleeping_extensions_delay_neither_edits_nor_other_extensions(
    probed: ServerProcess,
) -> None:
    probed.grant("bob", "iso", "member")

    async def run() -> list[float]:
        delays = []
        async with (
            RawClient.connect(probed, "p/iso", "alice") as alice,
            RawClient.connect(probed, "p/iso", "bob", role=None) as bob,
        ):
            await alice.sync()
            await bob.sync()
            n = await alice.send_update(alice.edit(seed))
            assert (await alice.outcome(n))["type"] == "ack"
            for i in range(5):
                started = time.monotonic()
                n = await alice.send_update(alice.edit(new_task(f"task {i}")))
                with anyio.fail_after(2):  # the sleeper takes 5 s per batch
                    while len(bob.doc.get("tasks", type=Map)) < i + 1:
                        await bob.recv()
                delays.append(time.monotonic() - started)
                assert (await alice.outcome(n))["type"] == "ack"
                # the probe (listed after the sleeper and the raiser) sees it just as soon
                deadline = time.monotonic() + 2
                while True:
                    seen = [  # the people's changes (not the server's task keys after them)
                        e
                        for e in probe_log(probed)
                        if e["hook"] == "change_accepted" and e["user"] != "system:task-keys"
                    ]
                    if len(seen) >= i + 2 or time.monotonic() > deadline:
                        break
                    await anyio.sleep(0.02)
                assert len(seen) == i + 2  # the seed, and each task so far
                assert time.time() - seen[-1]["at"] < 2
        return delays

    delays = anyio.run(run)
    assert max(delays) < 1.5, delays
    log = probed.log()
    assert "feed consumer raiser failed" in log  # and is retried, with backoff
    assert "extension raiser: connected failed" in log


def test_connection_document_and_rejection_hooks_get_the_right_data(
    probed: ServerProcess,
) -> None:
    probed.grant("vic", "hk", "viewer")

    async def run() -> dict:
        async with RawClient.connect(probed, "p/hk", "alice") as alice:
            await alice.sync()
            n = await alice.send_update(alice.edit(seed))
            assert (await alice.outcome(n))["type"] == "ack"
            async with RawClient.connect(probed, "p/hk", "vic", role=None) as vic:
                await vic.sync()
                n = await vic.send_update(vic.edit(new_task("not mine to make")))
                return await vic.outcome(n)

    refused = anyio.run(run)
    assert refused["type"] == "rejected"
    loaded = wait_for(probed, "document_loaded", doc="p/hk")
    connected = wait_for(probed, "connected", doc="p/hk", user="vic")
    rejected = wait_for(probed, "update_rejected", doc="p/hk", user="vic")
    assert rejected["reason"] == refused["reason"]
    assert rejected["permission"] == refused["permission"] == "create_tasks"
    assert rejected["path"] == refused["path"]
    gone = wait_for(probed, "disconnected", doc="p/hk", user="vic", conn=connected["conn"])
    assert gone["at"] >= connected["at"] >= loaded["at"]
    wait_for(probed, "disconnected", doc="p/hk", user="alice")
    unloaded = wait_for(probed, "document_unloaded", timeout=10, doc="p/hk")  # idle: 2 s here
    assert unloaded["at"] >= gone["at"]


def test_an_extension_taking_some_event_kinds_gets_those_transactions_only(
    tmp_path: Path,
) -> None:
    """``event_kinds``: a typing burst in a task's description passes by an extension that
    takes new tasks only; it gets exactly the transactions that created tasks, which the
    probe (taking everything) saw with the same feed ids."""
    specs = ",".join(f"{PROBE}:{n}" for n in ("Probe", "Picky"))
    srv = start_server(tmp_path, TANDEM_EXTENSIONS=specs)
    try:

        async def run() -> None:
            async with RawClient.connect(srv, "p/kinds", "alice") as alice:
                await alice.sync()
                for edit in (seed, new_task("first")):
                    n = await alice.send_update(alice.edit(edit))
                    assert (await alice.outcome(n))["type"] == "ack"
                task = next(iter(alice.doc.get("tasks", type=Map).values()))
                for ch in "typing":
                    n = await alice.send_update(
                        alice.edit(lambda d, ch=ch: task["description"].insert(0, ch))
                    )
                    assert (await alice.outcome(n))["type"] == "ack"
                n = await alice.send_update(alice.edit(new_task("second")))
                assert (await alice.outcome(n))["type"] == "ack"

        anyio.run(run)
        deadline = time.monotonic() + 10
        while True:
            seen = [
                e
                for e in probe_log(srv)
                if e["hook"] == "change_accepted" and e["user"] != KEY_WRITER
            ]  # (the server writing each new task's key is a transaction of its own)
            picky = httpx.get(f"{srv.http_url}/ext/picky/log", timeout=5).json()
            if (len(seen) >= 9 and len(picky) >= 2) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(seen) == 9, seen  # the seed, two tasks, six keystrokes
        typed = [e for e in seen if e["kinds"] == ["task_field_changed"]]
        assert len(typed) == 6
        created = [e["feed_id"] for e in seen if "task_created" in e["kinds"]]
        assert len(created) == 2
        assert [e["feed_id"] for e in picky] == created
        assert all(e["kinds"] == ["task_created"] for e in picky)
    finally:
        srv.stop()


def edit_via_extension(server: ServerProcess, actor: str, title: str, kind: str = "user"):
    return httpx.post(
        f"{server.http_url}/ext/editor/edit",
        json={"actor": actor, "kind": kind, "doc": "p/ce", "title": title},
        timeout=10,
    )


def test_ctx_edit_is_gated_like_a_client_broadcast_and_seen_by_other_extensions(
    probed: ServerProcess,
) -> None:
    probed.grant("vic", "ce", "viewer")
    probed.grant("mem", "ce", "member")

    async def run() -> tuple[dict, Map]:
        async with RawClient.connect(probed, "p/ce", "alice") as alice:
            await alice.sync()
            n = await alice.send_update(alice.edit(seed))
            assert (await alice.outcome(n))["type"] == "ack"
            async with RawClient.connect(probed, "p/ce", "vic", role=None) as vic:
                await vic.sync()
                n = await vic.send_update(vic.edit(new_task("from vic's client")))
                client_refusal = await vic.outcome(n)
            refused = await anyio.to_thread.run_sync(edit_via_extension, probed, "vic", "x")
            assert refused.status_code == 403, refused.text
            assert refused.json()["refused"] == client_refusal["reason"]
            assert refused.json()["permission"] == client_refusal["permission"]
            accepted = await anyio.to_thread.run_sync(
                edit_via_extension, probed, "mem", "from an extension"
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.json() == {"accepted": True, "doc": "p/ce"}
            tasks = alice.doc.get("tasks", type=Map)
            with anyio.fail_after(5):  # broadcast to the connected client
                while not any(t["title"] == "from an extension" for t in tasks.to_py().values()):
                    await alice.recv()
            return client_refusal, tasks

    client_refusal, tasks = anyio.run(run)
    assert client_refusal["reason"] == "vic may not create tasks: needs create_tasks"
    assert len(tasks) == 1  # nothing of vic's, by client or by extension
    seen = wait_for(probed, "change_accepted", doc="p/ce", user="mem")
    assert any(p.startswith("tasks/") for p in seen["paths"])


def test_ctx_edit_reads_what_another_process_stored_before_the_room_polls(
    tmp_path: Path,
) -> None:
    """A change function reads the document as stored, not the room's older copy: a write
    past the gate by another process (the CLI; on several servers, another node whose relay
    has not arrived) is taken in first, long before the room's poll would find it."""
    from sync_server.storage.offline_edit import edit_stored_document
    from sync_server.storage.sqlite_store import SQLiteStore

    srv = start_server(
        tmp_path, TANDEM_EXTENSIONS=f"{PROBE}:Editor", TANDEM_EXTERNAL_POLL_SECONDS="60"
    )
    try:
        srv.grant("mem", "ce", "member")

        async def run() -> list[str]:
            async with RawClient.connect(srv, "p/ce", "alice") as alice:  # the room is loaded
                await alice.sync()
                n = await alice.send_update(alice.edit(seed))
                assert (await alice.outcome(n))["type"] == "ack"
                store = SQLiteStore(srv.db)  # another process's write, past the gate
                try:
                    await edit_stored_document(
                        store,
                        "p/ce",
                        "system:cli",
                        lambda doc: create_task(
                            doc, TaskCreate(title="stored"), created_by="cli", task_id="cli1"
                        ),
                    )
                finally:
                    await store.close()
                r = await anyio.to_thread.run_sync(
                    lambda: httpx.post(
                        f"{srv.http_url}/ext/editor/seen",
                        json={"actor": "mem", "doc": "p/ce"},
                        timeout=10,
                    )
                )
                assert r.status_code == 200, r.text
                with anyio.fail_after(5):  # and the connected client is sent it too
                    while "cli1" not in alice.doc.get("tasks", type=Map):
                        await alice.recv()
                return r.json()["tasks"]

        assert anyio.run(run) == ["cli1"]
    finally:
        srv.stop()


def test_integration_and_system_actors_do_not_skip_the_gate(probed: ServerProcess) -> None:
    probed.grant("alice", "ce", "owner")
    system = edit_via_extension(probed, "cron", "system write", kind="system")
    assert system.status_code == 403
    assert "system:cron may not edit documents" in system.json()["refused"]
    bot = edit_via_extension(probed, "bot", "from the bot", kind="integration")
    assert bot.status_code == 403
    assert bot.json()["permission"] == "create_tasks"
    # an integration identity holds a grant like a user, under integration:NAME
    put = httpx.put(
        f"{probed.http_url}/api/v1/projects/ce/grants/integration:bot",
        json={"role": "member"},
        headers={"Authorization": f"Bearer {probed.token('alice')}"},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    bot = edit_via_extension(probed, "bot", "from the bot", kind="integration")
    assert bot.status_code == 200, bot.text
    wait_for(probed, "change_accepted", doc="p/ce", user="integration:bot")


def test_an_authenticate_hook_admits_sockets_and_rest_calls(probed: ServerProcess) -> None:
    probed.grant("pat", "au", "member")

    async def run() -> None:
        async with RawClient.connect(probed, "p/au", token="probe:pat", role=None) as pat:
            await pat.sync()
            n = await pat.send_update(pat.edit(seed))
            outcome = await pat.outcome(n)
            assert outcome["type"] == "rejected"  # a member may not edit the project's meta
            assert outcome["reason"].startswith("pat may not edit the project")
        async with RawClient.connect(probed, "p/au", token="nonsense", role=None) as nobody:
            closed = await nobody.wait_closed()
            assert closed.code == 4401

    anyio.run(run)
    wait_for(probed, "connected", doc="p/au", user="pat")
    me = httpx.get(
        f"{probed.http_url}/api/v1/me/permissions?project=au",
        headers={"Authorization": "Bearer probe:pat"},
        timeout=10,
    )
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "pat" and me.json()["role"] == "member"
    assert (
        httpx.get(
            f"{probed.http_url}/api/v1/me/permissions?project=au",
            headers={"Authorization": "Bearer probe-not:pat"},
            timeout=10,
        ).status_code
        == 401
    )


def test_a_grant_change_writes_the_members_map_through_the_gate_as_the_granter(
    probed: ServerProcess,
) -> None:
    probed.grant("alice", "gm", "owner")
    headers = {"Authorization": f"Bearer {probed.token('alice')}"}
    put = httpx.put(
        f"{probed.http_url}/api/v1/projects/gm/grants/gus",
        json={"role": "member"},
        headers=headers,
        timeout=10,
    )
    assert put.status_code == 200, put.text
    seen = wait_for(probed, "change_accepted", doc="p/gm", user="alice", paths=["members/gus"])
    assert seen  # told to extensions like any edit, as the person who changed the grant
    gone = httpx.delete(f"{probed.http_url}/api/v1/projects/gm/grants/gus", headers=headers)
    assert gone.status_code == 204, gone.text
    assert len([e for e in probe_log(probed) if e.get("paths") == ["members/gus"]]) == 2

    async def run() -> tuple[dict, dict]:
        async with RawClient.connect(probed, "p/gm", "alice", role=None) as alice:
            await alice.sync()
            members = alice.doc.get("members", type=Map)
            assert "gus" not in members
            # not what the grants say: refused, even to an owner
            wrong = alice.edit(lambda doc: doc.get("members", type=Map).update({"gus": "owner"}))
            refused = await alice.outcome(await alice.send_update(wrong))
            # what the grants say (alice is an owner): allowed, it changes nothing they say
            right = alice.edit(lambda doc: doc.get("members", type=Map).update({"alice": "owner"}))
            return refused, await alice.outcome(await alice.send_update(right))

    refused, accepted = anyio.run(run)
    assert refused["type"] == "rejected" and refused["path"] == "members/gus", refused
    assert "may not write the members map" in refused["reason"]
    assert accepted["type"] == "ack", accepted


names = st.sampled_from(["ann", "ben", "integration:bot"])


@given(
    st.frozensets(st.sampled_from(list(Permission))),
    names,
    names,
    st.sampled_from(["add", "update", "delete"]),
    st.booleans(),
)
def test_the_members_map_may_only_be_made_to_match_the_grants(
    perms: frozenset[Permission], user: str, member: str, action: str, mirrors: bool
) -> None:
    """By a user who may change grants, or by the member whose own grant it shows."""
    decision = decide(
        perms,
        user,
        DocKind.MAIN,
        [Change(("members", member), action)],  # type: ignore[arg-type]
        member_mirrors=lambda name: mirrors and name == member,
    )
    may = mirrors and (Permission.MANAGE_TEAM in perms or member == user)
    assert decision.allowed is may
    if not may:
        assert decision.path == f"members/{member}" and decision.permission is None
        assert decision.reason.startswith(f"{user} may not write the members map")
    # without a lookup, as before: nobody writes it
    assert not decide(perms, user, DocKind.MAIN, [Change(("members", member), action)]).allowed  # type: ignore[arg-type]
