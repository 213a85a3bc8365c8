"""Leases in a real Redis with fencing tokens in the real SQLite file (sync_server.scale):
a holder whose lease was taken over can no longer move a change-feed cursor, claim an
outbox row or claim a rule run; a Redis that lost its counters cannot hand out a token
the database has already seen."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from doc_model import parse_doc_name
from sync_server.extensions.automation import record_runs
from sync_server.extensions.feed import ChangeFeed
from sync_server.scale.fences import FenceLost
from sync_server.scale.leases import RedisLeases
from sync_server.scale.redis_fanout import redis_client
from sync_server.storage.database import SQLiteWorker, connect

from .conftest import RedisProcess, tandem
from .test_outbox import rig

pytestmark = pytest.mark.anyio


def leases(redis: RedisProcess, db: Path, node: str) -> RedisLeases:
    return RedisLeases(redis_client(redis.url), node, SQLiteWorker(connect(db)), ttl_seconds=60)


def run_row(key: str) -> tuple:
    return ("r1", "p1", key, {"kind": "task_created"}, "running", "", 0, 0.0)


async def test_a_holder_taken_over_cannot_advance_a_cursor_claim_a_delivery_or_a_run(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    async with rig(tmp_path) as r:
        a, b = leases(redis_server, r.db, "node-a"), leases(redis_server, r.db, "node-b")
        feed = ChangeFeed(r.db)
        await feed.start()
        try:
            held = await a.acquire("feed:automation")
            assert await b.try_acquire("feed:automation") is None, "held by a"
            # a stalls past its ttl (the key expires while it sleeps): b takes over
            await a.client.delete("tandem:lease:feed:automation")
            taken = await b.try_acquire("feed:automation")
            assert taken is not None and taken.token > held.token

            # the cursor: the old token's advance fails, the new one's goes through
            with pytest.raises(FenceLost):
                await feed._writer.run(feed._write_cursor, "automation", 7, held.fence)  # type: ignore[union-attr]
            await feed._writer.run(feed._write_cursor, "automation", 7, taken.fence)  # type: ignore[union-attr]

            # rule runs: the old holder claims nothing; a run it left running is claimed
            # again by the new holder (and only once)
            conn = connect(r.db)
            try:
                with pytest.raises(FenceLost):
                    record_runs(conn, [run_row("feed:1:0")], [0], held.fence)
                left = record_runs(conn, [run_row("feed:2:0")], [0], None)  # a crash's leftover
                assert left
                again = record_runs(conn, [run_row("feed:2:0")], [0], taken.fence)
                assert again == left, "claimed again by the newer holding"
                assert record_runs(conn, [run_row("feed:2:0")], [0], taken.fence) == {}
                finished = record_runs(conn, [run_row("feed:3:0")], [0], taken.fence)
                conn.execute("UPDATE rule_runs SET outcome = 'ran'")
                assert finished
                assert record_runs(conn, [run_row("feed:3:0")], [0], taken.fence) == {}
            finally:
                conn.close()

            # the outbox: a claim under the old token fails, under the new one it runs
            ref = await r.secrets.put("p1", "webhook", "http://127.0.0.1:9/hook")
            await r.outbox.enqueue("p1", "k1", "webhook", ref, {"x": 1})
            r.outbox.fence = held.fence
            with pytest.raises(FenceLost):
                await r.outbox.worker.run(r.outbox._claim, r.clock(), 10)
            r.outbox.fence = taken.fence
            claimed = await r.outbox.worker.run(r.outbox._claim, r.clock(), 10)
            assert [c.key for c in claimed] == ["k1"]
        finally:
            await feed.close()
            for holder in (a, b):
                await holder.close()
                await holder.db.close()


async def test_a_redis_restarted_empty_hands_out_tokens_past_the_database(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    async with rig(tmp_path) as r:
        a = leases(redis_server, r.db, "node-a")
        first = await a.acquire("outbox")
        second_holder = leases(redis_server, r.db, "node-b")
        await a.release(first)
        second = await second_holder.acquire("outbox")
        assert second.token == first.token + 1
        redis_server.kill()
        redis_server.start()  # no persistence: the counters start again
        third_holder = leases(redis_server, r.db, "node-c")
        # its first try gets token 1, below the database's: refused, the counter raised
        third = await third_holder.acquire("outbox")
        assert third.token > second.token
        for holder in (a, second_holder, third_holder):
            await holder.close()
            await holder.db.close()


async def test_presence_relayed_from_a_node_that_went_silent_is_not_handed_to_newcomers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A killed node never says its clients left: what it relayed is forgotten once it is
    not renewed (y-protocols' 30 s), and an echo of it afterwards is stale, not news."""
    from sync_server.core import room as room_module
    from sync_server.core.protocol import AwarenessEntry, decode_message
    from sync_server.storage.memory_store import MemoryStore

    monkeypatch.setattr(room_module, "REMOTE_PRESENCE_SECONDS", 0.2)
    room = room_module.Room(parse_doc_name("p/ghost"), MemoryStore())
    await room.load()
    try:
        state = {"user": {"id": "alice", "name": "Alice"}, "viewing": "t1"}
        room.apply_remote_presence([AwarenessEntry(7, 3, state)])
        snapshot = decode_message(room.awareness_snapshot())
        assert [(e.client_id, e.state) for e in snapshot.entries] == [(7, state)]  # type: ignore[union-attr]
        await anyio.sleep(0.3)
        assert decode_message(room.awareness_snapshot()).entries == ()  # type: ignore[union-attr]
        # the same state relayed again at its old clock is stale; a renewal is news
        room.apply_remote_presence([AwarenessEntry(7, 3, state)])
        assert 7 not in room.awareness
        room.apply_remote_presence([AwarenessEntry(7, 4, state)])
        assert room.awareness[7][0] == 4
    finally:
        await room.close()


def test_a_malformed_redis_url_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    out = tandem("serve", "--redis", "localhost:6379", db=tmp_path / "t.db", check=False)
    assert "--redis / TANDEM_REDIS must look like redis://HOST:PORT/N" in out, out
