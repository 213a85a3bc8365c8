"""A write waiting for SQLite's lock stalls only what needs that write, never the server."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import anyio
import httpx
import pytest

from doc_model import TaskCreate, create_task

from .raw_client import RawClient

API_PROJECT = "c3b58f0a-6e91-4d27-a4c8-0f12e7b9d654"  # a chosen project id is a UUID

pytestmark = pytest.mark.anyio

HOLD_SECONDS = 12  # longer than SQLite's 10 s busy timeout
QUICK = 0.3  # seconds: what "answers at once" means on this shared machine (old code: 10 s)


def hold_write_lock(db, seconds: float = HOLD_SECONDS, writes: bool = False) -> subprocess.Popen:
    """Another process (a backup, the CLI) holding SQLite's write lock; with ``writes``, having
    changed the rows REST reads (tokens, grants, sessions) inside it, uncommitted."""
    changes = (
        "c.execute(\"UPDATE api_tokens SET label = label || '!'\")\n"
        'c.execute("UPDATE grants SET updated_at = updated_at + 1")\n'
        'c.execute("UPDATE sessions SET created_at = created_at")\n'
        if writes
        else ""
    )
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        f"{changes}"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
        "c.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


async def _timed(coro) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def test_a_held_write_lock_stalls_neither_health_checks_nor_other_rooms(server) -> None:
    """While another process holds the write lock for 12 s: /healthz, a REST read with a token
    whose last use is old, and a client opening another room each answer at once, though an
    edit, a project creation and a first-time token all want to write meanwhile."""
    for user in ("alice", "bob", "carol", "dave", "erin"):
        server.token(user)  # created by the CLI: never used, so their first use is a write
    server.grant("alice", "busy")
    for i in range(8):
        server.grant("bob", f"other{i}")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        created = await http.post(
            "/api/v1/projects/",
            json={"id": API_PROJECT, "name": "API"},
            headers={"Authorization": f"Bearer {server.token('erin')}"},
        )
        assert created.status_code == 201, created.text
    server.grant("carol", API_PROJECT)
    carol_token = server.token("carol")
    conn = sqlite3.connect(server.db)  # carol last used her token long ago
    with conn:
        conn.execute(
            "UPDATE api_tokens SET last_used_at = 1"
            " WHERE user_id = (SELECT id FROM users WHERE name = 'carol')"
        )
    conn.close()

    async with RawClient.connect(server, "p/busy", "alice", role=None) as alice:
        await alice.sync()
        locker = await anyio.to_thread.run_sync(hold_write_lock, server.db)
        try:
            started = time.monotonic()
            # a write that must wait for the lock: alice's edit in her room
            edit = alice.edit(
                lambda d: create_task(d, TaskCreate(title="waits"), created_by="alice")
            )
            n = await alice.send_update(edit)
            healthz: list[float] = []
            rooms: list[float] = []
            reads: list[float] = []
            posted: dict[str, httpx.Response] = {}

            async def create_project(http: httpx.AsyncClient) -> None:
                posted["r"] = await http.post(
                    "/api/v1/projects/",
                    json={"id": "7c2e41d0-93ab-4f5e-8d17-b6a0c94e3f28", "name": "During"},
                    headers={"Authorization": f"Bearer {server.token('dave')}"},
                )

            async def open_room(i: int) -> None:
                async with RawClient.connect(server, f"p/other{i}", "bob", role=None) as bob:
                    await bob.sync()

            async with (
                httpx.AsyncClient(base_url=server.http_url, timeout=30) as http,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(create_project, http)
                i = 0
                while time.monotonic() - started < HOLD_SECONDS - 2:
                    healthz.append(await _timed(http.get("/healthz")))
                    reads.append(
                        await _timed(
                            http.get(
                                f"/api/v1/projects/{API_PROJECT}/tasks/",
                                headers={"Authorization": f"Bearer {carol_token}"},
                            )
                        )
                    )
                    if i < 8:
                        rooms.append(await _timed(open_room(i)))
                    i += 1
                    await anyio.sleep(0.2)
            still_locked = locker.poll() is None
        finally:
            locker.wait(timeout=HOLD_SECONDS + 5)
        assert still_locked, "the lock was released before the measurements ended"
        # the edit waited for the lock and was then stored and acknowledged
        assert (await alice.outcome(n, timeout=15))["type"] == "ack"
    # the project creation waited for the lock on its own (10 s busy timeout, then a 503
    # saying when to retry) or got it once the lock was free; either way not a bare 500
    created = posted["r"]
    assert created.status_code in (201, 503), created.text
    if created.status_code == 503:
        assert created.headers["Retry-After"] and "locked" in created.json()["detail"]
    print(f"healthz max {max(healthz):.3f} s, reads {max(reads):.3f} s, rooms {max(rooms):.3f} s")
    assert max(healthz) < QUICK, healthz
    assert max(reads) < QUICK, reads
    assert len(rooms) == 8 and max(rooms) < 2 * QUICK, rooms
    # the deferred last-use writes landed once the lock was gone
    conn = sqlite3.connect(server.db)
    try:
        deadline = time.monotonic() + 10
        while True:
            used = conn.execute(
                "SELECT u.name, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id"
            ).fetchall()
            if all(at and at > 1 for _, at in used) or time.monotonic() > deadline:
                break
            await anyio.sleep(0.1)
        assert all(at and at > 1 for _, at in used), used
    finally:
        conn.close()


async def test_a_held_write_lock_stalls_no_rest_read_of_tokens_permissions_or_sessions(
    server,
) -> None:
    """REST authenticates and reads tokens, grants and permissions with SQLite reads on the
    event loop. In WAL mode a read never waits for the write lock, so they stay there: while
    another process holds the lock for 6 s with uncommitted changes to exactly those rows,
    every such read (API token last used long ago, session token, /me/tokens,
    /me/permissions, grants, roles, a project read through the permission cache) answers at
    once, and sees the committed state."""
    project = "c0ffee00-1234-4abc-8def-0123456789ab"
    carol, dave = server.token("carol"), server.token("dave")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        made = await http.post(
            "/api/v1/projects/",
            json={"id": project, "name": "Reads"},
            headers={"Authorization": f"Bearer {carol}"},
        )
        assert made.status_code == 201, made.text
    server.grant("dave", project, "viewer")
    from sync_server.identity import accounts
    from sync_server.storage.database import open_database

    conn = open_database(server.db).conn
    try:
        accounts.create_user(conn, "erin", "correct horse battery")
        server.grant("erin", project, "member")
        # carol and dave last used their tokens long ago: their next use wants a write
        with conn:
            conn.execute("UPDATE api_tokens SET last_used_at = 1")
    finally:
        conn.close()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        login = await http.post(
            "/api/v1/login", json={"username": "erin", "password": "correct horse battery"}
        )
        session = login.json()["token"]
        reads = [
            (carol, "/api/v1/me/tokens"),
            (dave, f"/api/v1/me/permissions?project={project}"),
            (session, f"/api/v1/me/permissions?project={project}"),
            (carol, f"/api/v1/projects/{project}/grants"),
            (dave, f"/api/v1/projects/{project}/roles"),
            (session, "/api/v1/projects/"),
            (dave, f"/api/v1/projects/{project}/members/"),
        ]
        locker = await anyio.to_thread.run_sync(
            lambda: hold_write_lock(server.db, seconds=6, writes=True)
        )
        times: list[float] = []
        try:
            started = time.monotonic()
            rounds = 0
            # within the lock's 6 s, and under the API's 100 requests a minute per token
            # (dave makes 3 of each round's 7 reads)
            while time.monotonic() - started < 4.5 and rounds < 30:
                rounds += 1
                for token, path in reads:
                    t0 = time.perf_counter()
                    r = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, (path, r.text)
                    if path == "/api/v1/me/tokens":  # the committed labels, not the held ones
                        assert not any(t["label"].endswith("!") for t in r.json()["tokens"])
                await anyio.sleep(0.1)
            still_locked = locker.poll() is None
        finally:
            await anyio.to_thread.run_sync(lambda: locker.wait(timeout=15))
    assert still_locked, "the lock was released before the measurements ended"
    times.sort()
    print(
        f"{len(times)} REST reads under a held write lock: p50 {times[len(times) // 2] * 1000:.0f}"
        f" ms, max {times[-1] * 1000:.0f} ms"
    )
    assert times[-1] < QUICK, times[-5:]
