"""Keepalive: a socket that stops answering is closed, not kept until TCP gives up.

A client that has sent nothing for half of ``timeout`` is asked to answer: it
gets the room's sync step 1 (its state vector), which every y-websocket
client, pycrdt's provider and the PWA answer with a sync step 2 (empty when
nothing is missing, a few bytes). The ASGI WebSocket has no ping of its own to
send, and Hypercorn never checks pongs, so the sync protocol is the ping. A
client that then stays silent until ``timeout`` has passed since it was last
heard is cut off with 4408 (``Connection.cut_off``: what was queued for it is
dropped and a send stuck on its socket cancelled): a phone that lost its
network, a peer that stopped reading.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sync_server.core.connection import CloseCode
from sync_server.core.protocol import encode_sync_step1
from sync_server.core.rooms import RoomManager

log = logging.getLogger("tandem.sync")


def check_once(rooms: RoomManager, timeout: float, now: float) -> None:
    for room in list(rooms.rooms.values()):
        if room.closed:
            continue
        for conn in list(room.connections.values()):
            if conn.close_code is not None:
                continue
            quiet = now - conn.last_heard
            if quiet >= timeout:
                log.info(
                    "closing: no answer to a keepalive in %.0f s",
                    timeout,
                    extra={"doc": room.name, "user": conn.actor.user_id, "conn": conn.id},
                )
                conn.cut_off(CloseCode.TOO_SLOW, f"no answer to a keepalive in {timeout:g} s")
            elif quiet >= timeout / 2 and (
                conn.ping_sent_at is None or conn.ping_sent_at < conn.last_heard
            ):
                conn.ping_sent_at = now
                conn.send(encode_sync_step1(room.state_vector()))


async def keep_alive(rooms: RoomManager, timeout: float) -> None:
    """Check every socket a few times per ``timeout`` (at least once a second)."""
    period = min(1.0, timeout / 4)
    while True:
        await asyncio.sleep(period)
        try:
            check_once(rooms, timeout, time.monotonic())
        except Exception:
            log.exception("keepalive check failed")
