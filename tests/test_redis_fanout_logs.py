"""A node whose Redis stays away keeps retrying every second without flooding its log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sync_server.scale.redis_fanout import RedisFanout, redis_client

from .conftest import free_port


class _NoSink:
    async def remote_update(self, doc_name: str, update: bytes, generation: int | None) -> None:
        raise AssertionError("nothing arrives from a Redis that is not there")


@pytest.mark.anyio
async def test_a_redis_that_stays_away_is_warned_of_once_per_loop(caplog) -> None:
    fanout = RedisFanout(redis_client(f"redis://127.0.0.1:{free_port()}/0"))  # nobody listens
    caplog.set_level(logging.DEBUG, logger="tandem.scale.fanout")
    await fanout.start(_NoSink())  # type: ignore[arg-type]
    try:
        for n in range(16):  # 3.2 s: the loops retry after 0.1, 0.2, 0.4, 0.8, 1, 1 s
            fanout.publish_update("p/x", b"\x00\x00", n + 1, n + 1, None)
            await asyncio.sleep(0.2)
    finally:
        await fanout.close()
    records = [r for r in caplog.records if r.name == "tandem.scale.fanout"]
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    retried = [
        r
        for r in records
        if r.levelno == logging.DEBUG
        and r.getMessage().startswith(("Redis subscription broke", "publishing"))
    ]
    assert len([w for w in warned if w.startswith("Redis subscription broke")]) == 1, warned
    assert len([w for w in warned if w.startswith("publishing")]) == 1, warned
    assert len(retried) >= 4  # the later failures are still there, at debug level
