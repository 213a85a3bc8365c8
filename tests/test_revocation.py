"""Access ends when it is taken away: open sockets close (or stop writing) within a second,
and receive nothing sent after the change, whichever process makes it."""

from __future__ import annotations

import json
import subprocess
import time

import anyio
import httpx
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task
from sync_server.identity import access, accounts
from sync_server.storage.database import open_database

from .conftest import NODE_DIR, node_available, start_server, tandem
from .raw_client import RawClient


@pytest.fixture
def server(server_on_each_storage):
    """Every test here runs on a SQLite file and on a PostgreSQL database."""
    return server_on_each_storage


WITHIN = 1.0  # seconds from the change to the close


def _add_task(task_id: str):
    return lambda doc: create_task(
        doc, TaskCreate(title=task_id), created_by="bob", task_id=task_id
    )


def _tasks(client: RawClient) -> set[str]:
    return set(client.doc.get("tasks", type=Map).keys())


def _token_id(server, user: str) -> str:
    return tandem("token", "list", user, db=server.db).splitlines()[0].split("\t")[0]


async def _watched_pair(server, project: str, role: str = "owner"):
    """alice (``role``) and bob (owner) connected to p/<project>, synced; bob has made a task
    alice has received."""
    server.grant("alice", project, role)
    server.grant("bob", project, "owner")
    return project


async def _bob_writes_after(bob: RawClient, task_id: str) -> None:
    n = await bob.send_update(bob.edit(_add_task(task_id)))
    assert (await bob.outcome(n))["type"] == "ack"


@pytest.mark.anyio
async def test_a_token_revoked_by_the_cli_closes_its_socket_and_it_receives_nothing_after(
    server,
) -> None:
    project = await _watched_pair(server, "rv-cli")
    async with (
        RawClient.connect(server, f"p/{project}", "alice", role=None) as alice,
        RawClient.connect(server, f"p/{project}", "bob", role=None) as bob,
    ):
        await alice.sync()
        await bob.sync()
        await _bob_writes_after(bob, "before")
        await alice.drain(0.5)
        assert "before" in _tasks(alice)
        token_id = _token_id(server, "alice")
        await anyio.to_thread.run_sync(
            lambda: tandem("token", "revoke", token_id, db=server.db)
        )  # another process
        revoked = time.monotonic()
        await _bob_writes_after(bob, "after")
        closed = await alice.wait_closed(timeout=3)
        elapsed = time.monotonic() - revoked
        assert closed.code == 4401, closed
        assert "revoked" in closed.reason
        assert elapsed < WITHIN, elapsed
        assert "after" not in _tasks(alice)
        print(f"revoke by the CLI -> close observed in {elapsed * 1000:.0f} ms")
    # and the token opens nothing any more
    async with RawClient.connect(
        server, f"p/{project}", token=server.token("alice"), role=None
    ) as again:
        assert (await again.wait_closed()).code == 4401


@pytest.mark.anyio
async def test_logout_closes_the_sessions_sockets_before_it_answers(server) -> None:
    tandem("user", "create", "alice", "--password-stdin", db=server.db, stdin="correct horse\n")
    project = await _watched_pair(server, "rv-logout")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        login = await http.post(
            "/api/v1/login", json={"username": "alice", "password": "correct horse"}
        )
        session = login.json()["token"]
        async with (
            RawClient.connect(server, f"p/{project}", token=session, role=None) as alice,
            RawClient.connect(server, f"p/{project}", "bob", role=None) as bob,
        ):
            await alice.sync()
            await bob.sync()
            started = time.monotonic()
            out = await http.post("/api/v1/logout", headers={"Authorization": f"Bearer {session}"})
            answered = time.monotonic()
            assert out.status_code == 204
            await _bob_writes_after(bob, "after")
            closed = await alice.wait_closed(timeout=3)
            assert closed.code == 4401
            assert time.monotonic() - started < WITHIN
            assert "after" not in _tasks(alice)
            print(f"logout answered in {(answered - started) * 1000:.0f} ms, socket closed")


@pytest.mark.anyio
async def test_revoking_a_token_over_rest_closes_its_sockets_before_it_answers(server) -> None:
    """DELETE /api/v1/me/tokens/ID: only your own tokens, problem details for an id that is
    not one of them, and the token's open socket closed with 4401 by the time it answers."""
    project = await _watched_pair(server, "rv-rest-token")
    server.token("bob")
    cli_token = server.token("alice")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(base_url=server.http_url) as http:
        made = await http.post(
            "/api/v1/me/tokens", json={"label": "laptop"}, headers=auth(cli_token)
        )
        assert made.status_code == 201, made.text
        laptop, laptop_id = made.json()["token"], made.json()["id"]
        # not an id of one of your tokens: 404 problem details, and nothing is revoked
        for bad in (str(laptop_id), "0", "-1", "abc", str(2**64), "1.5", "9" * 5000):
            who = "bob" if bad == str(laptop_id) else "alice"
            out = await http.delete(f"/api/v1/me/tokens/{bad}", headers=auth(server.token(who)))
            assert out.status_code == 404, (bad, out.text)
            assert out.headers["content-type"].startswith("application/problem+json"), bad
            assert out.json()["status"] == 404
        assert (await http.get("/api/v1/me/tokens", headers=auth(laptop))).status_code == 200
        async with (
            RawClient.connect(server, f"p/{project}", token=laptop, role=None) as alice,
            RawClient.connect(server, f"p/{project}", "bob", role=None) as bob,
        ):
            await alice.sync()
            await bob.sync()
            started = time.monotonic()
            out = await http.delete(f"/api/v1/me/tokens/{laptop_id}", headers=auth(cli_token))
            answered = time.monotonic() - started
            assert out.status_code == 204, out.text
            await _bob_writes_after(bob, "after")
            closed = await alice.wait_closed(timeout=3)
            assert closed.code == 4401, closed
            assert "revoked" in closed.reason
            assert time.monotonic() - started < WITHIN
            assert "after" not in _tasks(alice)
            print(f"DELETE /me/tokens answered in {answered * 1000:.0f} ms, socket closed")
        listed = (await http.get("/api/v1/me/tokens", headers=auth(cli_token))).json()["tokens"]
        assert [t["revoked_at"] is not None for t in listed if t["id"] == laptop_id] == [True]
        assert (await http.get("/api/v1/me/tokens", headers=auth(laptop))).status_code == 401
        # revoking it again is the same answer; revoking the token you use works too
        again = await http.delete(f"/api/v1/me/tokens/{laptop_id}", headers=auth(cli_token))
        assert again.status_code == 204
        mine = int(_token_id(server, "alice"))
        assert (
            await http.delete(f"/api/v1/me/tokens/{mine}", headers=auth(cli_token))
        ).status_code == 204
        assert (await http.get("/api/v1/me/tokens", headers=auth(cli_token))).status_code == 401
        # bob's token was never touched by alice's attempts
        assert (
            await http.get("/api/v1/me/tokens", headers=auth(server.token("bob")))
        ).status_code == 200


@pytest.mark.anyio
async def test_a_removed_member_is_closed_with_4403_and_receives_nothing_after(server) -> None:
    project = await _watched_pair(server, "rv-remove")
    async with (
        RawClient.connect(server, f"p/{project}", "alice", role=None) as alice,
        RawClient.connect(server, f"p/{project}/chat", "alice", role=None) as alice_chat,
        RawClient.connect(server, f"p/{project}", "bob", role=None) as bob,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        await alice.sync()
        await alice_chat.sync()
        await bob.sync()
        started = time.monotonic()
        out = await http.delete(
            f"/api/v1/projects/{project}/grants/alice",
            headers={"Authorization": f"Bearer {server.token('bob')}"},
        )
        assert out.status_code == 204
        await _bob_writes_after(bob, "after")
        for client in (alice, alice_chat):
            closed = await client.wait_closed(timeout=3)
            assert closed.code == 4403, closed
            assert "may no longer read" in closed.reason
        assert time.monotonic() - started < WITHIN
        assert "after" not in _tasks(alice)


@pytest.mark.anyio
async def test_a_role_lowered_by_another_process_takes_effect_on_the_open_socket(server) -> None:
    project = await _watched_pair(server, "rv-lower")
    async with (
        RawClient.connect(server, f"p/{project}", "alice", role=None) as alice,
        RawClient.connect(server, f"p/{project}", "bob", role=None) as bob,
    ):
        await alice.sync()
        await bob.sync()
        n = await alice.send_update(alice.edit(_add_task("mine")))
        assert (await alice.outcome(n))["type"] == "ack"
        # owner -> viewer, written straight into the file by this (other) process
        server.grant("alice", project, "viewer")
        lowered = time.monotonic()
        await anyio.sleep(WITHIN)
        n = await alice.send_update(alice.edit(_add_task("not-any-more")))
        outcome = await alice.outcome(n)
        assert outcome["type"] == "rejected"
        assert outcome["permission"] == "create_tasks"
        assert alice.closed is None  # a viewer still reads the project
        # viewer without view_tasks: may no longer read the project document at all
        server.grant("alice", project, "viewer", removed=["view_tasks"])
        lowered = time.monotonic()
        await _bob_writes_after(bob, "after")
        closed = await alice.wait_closed(timeout=3)
        assert closed.code == 4403
        assert "view_tasks" in closed.reason
        assert time.monotonic() - lowered < WITHIN
        assert "after" not in _tasks(alice)


@pytest.mark.anyio
async def test_an_expiring_token_works_until_its_time_and_its_socket_closes_then(server) -> None:
    tandem("user", "create", "alice", db=server.db, stdin="")
    server.grant("alice", "rv-expiry", "owner")
    # 0.00004 days: about 3.5 s
    out = tandem("token", "create", "alice", "--expires-in", "0.00004", db=server.db)
    token = out.strip().splitlines()[-1]
    assert "expires" in tandem("token", "list", "alice", db=server.db)
    expires = time.monotonic() + 0.00004 * 86400
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/api/v1/projects/rv-expiry/", headers=headers)).status_code in (
            200,
            404,  # no document yet; the token was accepted
        )
        async with RawClient.connect(server, "p/rv-expiry", token=token, role=None) as alice:
            await alice.sync()
            closed = await alice.wait_closed(timeout=10)
            assert closed.code == 4401
            assert "expired" in closed.reason
            assert time.monotonic() - expires < WITHIN
        assert (await http.get("/api/v1/projects/", headers=headers)).status_code == 401


@pytest.mark.anyio
async def test_a_silent_peer_is_closed_after_the_ping_timeout_and_an_answering_one_is_not(
    tmp_path,
) -> None:
    srv = start_server(tmp_path, TANDEM_PING_TIMEOUT_SECONDS="4")
    try:
        async with (
            RawClient.connect(srv, "p/rv-ping", "alice") as answering,
            RawClient.connect(srv, "p/rv-ping", "bob") as silent,
        ):
            await answering.sync()
            await silent.sync()
            started = time.monotonic()
            # the answering client keeps reading (and answers the keepalive's sync step 1);
            # the silent one reads nothing and sends nothing
            await answering.drain(6.0)
            assert answering.closed is None
            closed = await silent.wait_closed(timeout=3)
            assert closed.code == 4408
            assert "keepalive" in closed.reason
            assert time.monotonic() - started < 6.5
            health = httpx.get(srv.http_url + "/healthz").json()
            assert health["connections"] == 1
    finally:
        srv.stop()


@pytest.mark.skipif(not node_available(), reason="tests/node dependencies not installed")
def test_a_stock_yjs_client_is_closed_when_its_token_is_revoked(server) -> None:
    server.grant("alice", "rv-node", "owner")
    server.grant("bob", "rv-node", "owner")
    token = server.token("alice")
    proc = subprocess.Popen(
        ["node", str(NODE_DIR / "revoked.mjs"), server.ws_url, "p/rv-node", token],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "synced"
        token_id = int(_token_id(server, "alice"))
        conn = open_database(server.db).conn  # this process, not the server's
        try:
            assert accounts.revoke_token(conn, token_id)
            revoked = time.monotonic()  # committed
        finally:
            conn.close()
        line = proc.stdout.readline()
        elapsed = time.monotonic() - revoked
        closed = json.loads(line)
        assert closed["code"] == 4401, closed
        assert elapsed < WITHIN, elapsed
        print(f"stock y-websocket closed {elapsed * 1000:.0f} ms after the revoke committed")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.anyio
async def test_a_token_made_over_rest_with_an_expiry_closes_its_socket_when_it_expires(
    server,
) -> None:
    server.grant("alice", "rv-rest-expiry", "owner")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        made = await http.post(
            "/api/v1/me/tokens",
            json={"label": "ci", "expires_in_days": 0.00003},  # about 2.6 s
            headers=_auth_header(server.token("alice")),
        )
        assert made.status_code == 201, made.text
        body = made.json()
        expires = time.monotonic() + (body["expires_at"] - time.time())
        listed = await http.get("/api/v1/me/tokens", headers=_auth_header(body["token"]))
        assert [t["expires_at"] for t in listed.json()["tokens"] if t["id"] == body["id"]] == [
            body["expires_at"]
        ]
        assert "token" not in listed.json()["tokens"][0]
        async with RawClient.connect(
            server, "p/rv-rest-expiry", token=body["token"], role=None
        ) as alice:
            await alice.sync()
            closed = await alice.wait_closed(timeout=10)
            assert closed.code == 4401
            assert time.monotonic() - expires < WITHIN
        refused = await http.get("/api/v1/me/tokens", headers=_auth_header(body["token"]))
        assert refused.status_code == 401


def _auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.anyio
async def test_an_update_stored_after_a_revocation_never_reaches_the_revoked_socket(
    tmp_path,
) -> None:
    # the poll is slow here (5 s), so only the check before each broadcast can stop it
    srv = start_server(tmp_path, TANDEM_ACCESS_POLL_SECONDS="5")
    try:
        srv.grant("alice", "rv-race", "owner")
        srv.grant("bob", "rv-race", "owner")
        async with (
            RawClient.connect(srv, "p/rv-race", "alice", role=None) as alice,
            RawClient.connect(srv, "p/rv-race", "bob", role=None) as bob,
        ):
            await alice.sync()
            await bob.sync()
            token_id = int(_token_id(srv, "alice"))
            conn = open_database(srv.db).conn  # another process than the server
            try:
                assert accounts.revoke_token(conn, token_id)
            finally:
                conn.close()
            revoked = time.monotonic()
            await _bob_writes_after(bob, "after")
            closed = await alice.wait_closed(timeout=3)
            assert closed.code == 4401
            assert time.monotonic() - revoked < WITHIN
            assert "after" not in _tasks(alice)
    finally:
        srv.stop()


@pytest.mark.skipif(not node_available(), reason="tests/node dependencies not installed")
def test_a_stock_yjs_client_of_a_removed_member_is_closed_and_gets_nothing_after(
    server,
) -> None:
    server.grant("alice", "rv-node-rm", "member")
    server.grant("bob", "rv-node-rm", "owner")
    proc = subprocess.Popen(
        [
            "node",
            str(NODE_DIR / "revoked.mjs"),
            server.ws_url,
            "p/rv-node-rm",
            server.token("alice"),
        ],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    async def remove_then_write() -> float:
        async with RawClient.connect(server, "p/rv-node-rm", "bob", role=None) as bob:
            await bob.sync()
            conn = open_database(server.db).conn  # this process, not the server's
            try:
                access.delete_grant(conn, "alice", "rv-node-rm", "test")
                removed = time.monotonic()
            finally:
                conn.close()
            await _bob_writes_after(bob, "after")
            return removed

    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "synced"
        removed = anyio.run(remove_then_write)
        closed = json.loads(proc.stdout.readline())
        elapsed = time.monotonic() - removed
        assert closed["code"] == 4403, closed
        assert "may no longer read" in closed["reason"]
        assert "after" not in closed["tasks"]
        assert elapsed < WITHIN, elapsed
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.anyio
async def test_a_document_write_by_another_process_after_a_revocation_never_reaches_it(
    tmp_path,
) -> None:
    from sync_server.storage.offline_edit import edit_stored_document
    from sync_server.storage.sqlite_store import SQLiteStore

    # the access poll is slow here (5 s); the rooms' poll for other writers is 0.2 s
    srv = start_server(tmp_path, TANDEM_ACCESS_POLL_SECONDS="5")
    try:
        srv.grant("alice", "rv-ext", "owner")
        async with RawClient.connect(srv, "p/rv-ext", "alice", role=None) as alice:
            await alice.sync()
            token_id = int(_token_id(srv, "alice"))
            conn = open_database(srv.db).conn  # another process than the server
            try:
                assert accounts.revoke_token(conn, token_id)
            finally:
                conn.close()
            revoked = time.monotonic()
            store = SQLiteStore(srv.db)
            try:
                await edit_stored_document(store, "p/rv-ext", "system:cli", _add_task("cli"))
            finally:
                await store.close()
            closed = await alice.wait_closed(timeout=3)
            assert closed.code == 4401
            assert time.monotonic() - revoked < WITHIN
            assert "cli" not in _tasks(alice)
    finally:
        srv.stop()
