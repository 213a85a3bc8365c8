"""Leases in Redis with fencing tokens: which node runs a singleton job.

``SET key holder NX PX ttl`` takes a free lease; the token is ``INCR`` of the
lease's counter, in the same Lua script, so tokens only grow. The holder renews
every ``ttl / 3`` (a script that extends the key only while it still holds the
holder's own value); a node that cannot renew for a whole ttl (Redis gone, the
process paused) counts the lease lost and stops acting for it. A node killed
stops renewing and the lease expires ``ttl`` later, when another node takes it.

Redis's word is not enough on its own: a holder paused past its ttl wakes up
believing it still holds the lease. So every holding's token is claimed in the
database (``sync_server.scale.fences``) before its holder acts, and the writes
that matter check it in their own transaction (a change-feed cursor's advance,
an outbox claim): the old holder's fail. A Redis restarted without its data
starts the counters again at 1; a token below the database's newest is then
moved past it (``_raise_counter``) and taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sync_server.scale import fences
from sync_server.scale.fences import Fence
from sync_server.storage.database import SQLiteWorker

log = logging.getLogger("tandem.scale.leases")

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '#' .. token, 'PX', ARGV[2])
  return token
end
return false
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
RAISE_COUNTER = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


@dataclass
class Lease:
    name: str
    token: int
    value: str  # what the lease key holds while this node has it
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    renewed_at: float = field(default_factory=time.monotonic)

    @property
    def fence(self) -> Fence:
        return Fence(self.name, self.token)


class RedisLeases:
    """Leases of one node (``node_id``) in Redis, their tokens fenced in the database."""

    def __init__(
        self,
        client: Redis,
        node_id: str,
        db: SQLiteWorker,
        *,
        ttl_seconds: float = 3.0,
        retry_seconds: float = 0.5,
        prefix: str = "tandem",
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.db = db
        self.ttl_ms = max(100, int(ttl_seconds * 1000))
        self.retry_seconds = retry_seconds
        self.prefix = prefix
        self._held: dict[str, Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    def _keys(self, name: str) -> list[str]:
        return [f"{self.prefix}:lease:{name}", f"{self.prefix}:lease-token:{name}"]

    def held(self, name: str) -> Lease | None:
        lease = self._held.get(name)
        return lease if lease is not None and not lease.lost.is_set() else None

    async def try_acquire(self, name: str) -> Lease | None:
        """Take lease ``name`` if it is free, and claim its token in the database; None if
        another node holds it (or Redis cannot be reached)."""
        keys = self._keys(name)
        try:
            token = await self.client.eval(ACQUIRE, 2, *keys, self.node_id, self.ttl_ms)  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as e:
            log.debug("lease %s: Redis unreachable: %s", name, e)
            return None
        if token is None:
            return None
        token = int(token)
        lease = Lease(name, token, f"{self.node_id}#{token}")
        recorded = await self.db.run(self._claim, name, token)
        if recorded != token:
            # Redis lost its counters (restarted without data): move them past the
            # database's newest token, and take the lease again with a newer one
            log.warning(
                "lease %s: token %d is behind the database's %d; raising the counter",
                name,
                token,
                recorded,
            )
            with contextlib.suppress(RedisError, OSError):
                await self.client.eval(RAISE_COUNTER, 1, keys[1], recorded)  # type: ignore[no-untyped-call]
                await self.client.eval(RELEASE, 1, keys[0], lease.value)  # type: ignore[no-untyped-call]
            return None
        self._held[name] = lease
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())
        log.info("lease %s taken (token %d)", name, token)
        return lease

    def _claim(self, name: str, token: int) -> int:
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            recorded = fences.claim(conn, name, token, self.node_id)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return recorded

    async def acquire(self, name: str) -> Lease:
        """Wait until this node holds lease ``name``."""
        while True:
            lease = await self.try_acquire(name)
            if lease is not None:
                return lease
            await asyncio.sleep(self.retry_seconds)

    async def release(self, lease: Lease) -> None:
        """Give the lease up (a graceful stop: another node takes it at once)."""
        self._held.pop(lease.name, None)
        lease.lost.set()
        with contextlib.suppress(RedisError, OSError):
            await self.client.eval(RELEASE, 1, self._keys(lease.name)[0], lease.value)  # type: ignore[no-untyped-call]

    async def _renew_loop(self) -> None:
        interval = self.ttl_ms / 3000
        while self._held:
            await asyncio.sleep(interval)
            for lease in list(self._held.values()):
                try:
                    renewed = await self.client.eval(  # type: ignore[no-untyped-call]
                        RENEW, 1, self._keys(lease.name)[0], lease.value, self.ttl_ms
                    )
                except (RedisError, OSError) as e:
                    if time.monotonic() - lease.renewed_at < self.ttl_ms / 1000:
                        continue  # try again; the lease has not run out yet
                    log.warning("lease %s lost: not renewed for a whole ttl (%s)", lease.name, e)
                    renewed = 0
                if renewed:
                    lease.renewed_at = time.monotonic()
                    continue
                log.warning("lease %s (token %d) lost", lease.name, lease.token)
                self._held.pop(lease.name, None)
                lease.lost.set()

    def run_exclusively(
        self,
        name: str,
        start: Callable[[Fence], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        """Run a job on whichever node holds lease ``name``: ``start(fence)`` once this
        node takes it, ``stop()`` when it loses it (then it waits to take it again)."""

        async def hold() -> None:
            while True:
                lease = await self.acquire(name)
                try:
                    await start(lease.fence)
                    await lease.lost.wait()
                finally:
                    await stop()

        task = asyncio.get_running_loop().create_task(hold(), name=f"lease {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the jobs and release every lease held."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        for lease in list(self._held.values()):
            await self.release(lease)
