"""Cross-node fan-out through Redis pub/sub (see docs/scale.md, "Cross-node fan-out").

One channel per document, ``<prefix>:doc:<name>``: a node subscribes while it
holds the room. After a room's batch is durable and sent to its own
connections, the node publishes it once::

    b"U" + JSON header + b"\\n" + the batch's merged update
    header: {"o": origin node, "n": per-(node, document) counter, "f": first seq,
             "l": last seq, "g": access generation, "gap": true after a dropped publish}

and its connections' presence (identity bound by the origin) as ``b"A" + header +
b"\\n" + an encoded awareness update``; a node that starts listening to a room asks
the others for their connections' presence with ``b"Q" + header + b"\\n"`` (presence
is not stored, so there is nothing to catch up from). A node ignores its own messages (its
clients had the update from the room already), applies the others' to its
copy without judging them again, and relays them to its own connections.

Nothing is lost for good when a message is: the storage is the log. A node
catches a room up from storage (``FanoutSink.catch_up``, by seq) whenever it
may have missed something:

- each subscription's confirmation (a room's first, and every re-subscription
  after the connection to Redis broke: redis-py re-subscribes, or this module
  does with a new connection), so what was published before it listened is read
  from storage;
- a gap in an origin's counter for a document;
- a message flagged ``gap``: its origin failed to publish an earlier one.

Publishing never waits for Redis: messages queue (bounded) for a task that
sends them in pipelines; while Redis is away they are dropped and the next one
of their documents carries ``gap``. The rooms' poll of storage stays on (slower)
for writers that publish nothing (the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import deque

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sync_server.interfaces import FanoutSink

log = logging.getLogger("tandem.scale.fanout")

MAX_QUEUED = 10_000  # messages waiting for Redis; past this the oldest are dropped
RECONNECT_FIRST_SECONDS = 0.1
# Both loops back off up to this long while Redis is away; once it is back, each may still
# sleep out its last delay, so cross-node edits resume up to this late (with 2 s, a CI run
# saw an edit after a Redis restart reach the other node 2.1 s late). A reconnect attempt
# to a Redis that is down is refused at once, so trying every second costs nothing.
RECONNECT_MAX_SECONDS = 1.0
# While Redis stays away, a loop retrying every second warns on its first failure and then
# at most this often (the retries in between are logged at debug level): an outage of an
# hour writes about 60 lines per loop, not 3,600.
WARN_EVERY_SECONDS = 60.0


def new_node_id() -> str:
    """This process's id: host, pid and a random part (a restarted node is a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def redis_client(url: str) -> Redis:
    """A client for ``redis://host:port/db`` with short timeouts: a Redis that went away is
    noticed within seconds (the rooms go on; only cross-node messages wait)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=5,
        retry_on_timeout=False,
    )


class RedisFanout:
    def __init__(
        self, client: Redis, *, node_id: str | None = None, prefix: str = "tandem"
    ) -> None:
        self.client = client
        self.node_id = node_id or new_node_id()
        self.prefix = prefix
        self._channel_prefix = f"{prefix}:doc:"
        self._sink: FanoutSink | None = None
        self._watched: set[str] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._queue: deque[tuple[str, str, bytes]] = deque()  # (doc, channel, message)
        self._queued = asyncio.Event()
        self._counters: dict[str, int] = {}  # doc -> the counter of its last message sent
        self._gapped: set[str] = set()  # docs whose next message must say "gap"
        self._heard: dict[tuple[str, str], int] = {}  # (doc, origin) -> last counter heard
        self.published = 0
        self.received = 0
        self.catch_ups = 0
        self._warned_at: dict[str, float] = {}  # loop -> when it last warned of a failure

    def channel(self, doc_name: str) -> str:
        return self._channel_prefix + doc_name

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, sink: FanoutSink) -> None:
        self._sink = sink
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop(), name="fanout reader")
        self._publisher = loop.create_task(self._publish_loop(), name="fanout publisher")

    async def close(self) -> None:
        for task in (self._reader, self._publisher):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._reader, self._publisher) if t is not None), return_exceptions=True
        )
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()

    # -- subscriptions -----------------------------------------------------------------

    def watch(self, doc_name: str) -> None:
        self._watched.add(doc_name)
        self._forget_heard(doc_name)
        self._send_subscription("subscribe", doc_name)

    def unwatch(self, doc_name: str) -> None:
        self._watched.discard(doc_name)
        self._forget_heard(doc_name)
        self._send_subscription("unsubscribe", doc_name)

    def _forget_heard(self, doc_name: str) -> None:
        for key in [k for k in self._heard if k[0] == doc_name]:
            del self._heard[key]

    def _send_subscription(self, command: str, doc_name: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # the reader subscribes every watched room when it (re)connects
        task = asyncio.get_running_loop().create_task(self._subscription(pubsub, command, doc_name))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _subscription(self, pubsub: PubSub, command: str, doc_name: str) -> None:
        try:
            await getattr(pubsub, command)(self.channel(doc_name))
        except (RedisError, OSError) as e:
            # the reader finds the connection broken and subscribes everything again
            log.debug("%s %s failed: %s", command, doc_name, e)

    def _warn(self, loop: str, message: str, *args: object) -> None:
        """Warn of a failure of ``loop``: the first since it last worked, then once a
        ``WARN_EVERY_SECONDS``; the retries in between at debug level."""
        now = time.monotonic()
        last = self._warned_at.get(loop)
        if last is None or now - last >= WARN_EVERY_SECONDS:
            self._warned_at[loop] = now
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    # -- receiving ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            pubsub = self.client.pubsub()
            try:
                # always one subscription (a pubsub with none has nothing to read)
                await pubsub.subscribe(f"{self.prefix}:node:{self.node_id}")
                # set before subscribing the rooms: a room loaded meanwhile subscribes itself
                # (twice is harmless: one more catch-up), never falls between the two
                self._pubsub = pubsub
                if self._watched:
                    await pubsub.subscribe(*(self.channel(d) for d in self._watched))
                if delay > RECONNECT_FIRST_SECONDS:
                    log.info("listening to Redis again")
                delay = RECONNECT_FIRST_SECONDS
                self._warned_at.pop("subscription", None)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._handle(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                self._warn(
                    "subscription",
                    "Redis subscription broke (%s); reconnecting in %.1f s",
                    e,
                    delay,
                )
            except Exception:
                log.exception("cross-node message handling failed; reconnecting")
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_SECONDS, delay * 2)

    async def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if not isinstance(channel, str) or not channel.startswith(self._channel_prefix):
            return
        doc = channel[len(self._channel_prefix) :]
        sink = self._sink
        assert sink is not None
        if kind == "subscribe":
            # listening from now on: whatever was published before is read from storage,
            # and the other nodes are asked for their clients' presence (not stored)
            self._forget_heard(doc)
            if doc in self._watched:
                self.catch_ups += 1
                await sink.catch_up(doc)
                self._enqueue(doc, b"Q" + json.dumps({"o": self.node_id}).encode() + b"\n")
            return
        data = message.get("data")
        if kind != "message" or not isinstance(data, bytes) or doc not in self._watched:
            return
        head, sep, payload = data[1:].partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("o") == self.node_id:
            return
        self.received += 1
        if data[:1] == b"A":
            sink.remote_presence(doc, payload)
            return
        if data[:1] == b"Q":  # a node started listening: tell it our clients' presence
            presence = sink.local_presence(doc)
            if presence is not None:
                self.publish_presence(doc, presence)
            return
        if data[:1] != b"U":
            return
        key = (doc, str(header.get("o")))
        counter = int(header.get("n", 0))
        before = self._heard.get(key)
        self._heard[key] = counter
        generation = header.get("g")
        await sink.remote_update(doc, payload, generation if isinstance(generation, int) else None)
        if header.get("gap") or (before is not None and counter != before + 1):
            # something of this origin's was not heard: storage has it
            self.catch_ups += 1
            await sink.catch_up(doc)

    # -- publishing --------------------------------------------------------------------

    def publish_update(
        self, doc_name: str, update: bytes, first_seq: int, last_seq: int, generation: int | None
    ) -> None:
        counter = self._counters[doc_name] = self._counters.get(doc_name, 0) + 1
        header: dict[str, object] = {
            "o": self.node_id,
            "n": counter,
            "f": first_seq,
            "l": last_seq,
            "g": generation,
        }
        if doc_name in self._gapped:
            header["gap"] = True
            self._gapped.discard(doc_name)
        self._enqueue(doc_name, b"U" + json.dumps(header).encode() + b"\n" + update)

    def publish_presence(self, doc_name: str, payload: bytes) -> None:
        header = json.dumps({"o": self.node_id}).encode()
        self._enqueue(doc_name, b"A" + header + b"\n" + payload)

    def _enqueue(self, doc_name: str, message: bytes) -> None:
        if len(self._queue) >= MAX_QUEUED:
            dropped, _, _ = self._queue.popleft()
            self._gapped.add(dropped)
        self._queue.append((doc_name, self.channel(doc_name), message))
        self._queued.set()

    async def _publish_loop(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                batch = list(self._queue)
                self._queue.clear()
                try:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for _, channel, message in batch:
                            pipe.publish(channel, message)
                        await pipe.execute()
                    self.published += len(batch)
                    delay = RECONNECT_FIRST_SECONDS
                    self._warned_at.pop("publish", None)
                except (RedisError, OSError) as e:
                    # dropped: each document's next message tells its receivers to catch up
                    self._gapped.update(doc for doc, _, _ in batch)
                    self._warn(
                        "publish",
                        "publishing %d cross-node message(s) failed (%s); retrying in %.1f s",
                        len(batch),
                        e,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(RECONNECT_MAX_SECONDS, delay * 2)
