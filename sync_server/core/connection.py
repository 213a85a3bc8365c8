"""One client's WebSocket: an identity, a bounded send queue and a task that drains it.

A room never awaits a client: it drops messages into the connection's queue
and moves on. A client that stops reading until its queue holds more than
``max_queue_bytes`` is cut off (4408) rather than allowed to grow the server's
memory: its queue is dropped at once, a send stuck on its full socket is
cancelled, and the endpoint stops reading from it, so the transport closes and
nothing of it stays behind even if the peer is dead (no FIN, no reads). On
reconnect it resyncs from the document state like any client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, Protocol

from sync_server.core.instruments import TrackedFrame
from sync_server.core.presence import TokenBucket
from sync_server.core.protocol import encode_permission_denied, encode_tandem
from sync_server.interfaces import Actor

log = logging.getLogger("tandem.sync")

_ids = itertools.count(1)
CLOSE_FRAME_SECONDS = 5.0  # how long a close frame may wait for the client's socket
SPLITS_PER_SECOND = 0.1  # one refused update kept in part every 10 s on average...
SPLIT_BURST = 5.0  # ...after a first few (a phone back online sends one step 2)


class CloseCode:
    """WebSocket close codes the sync endpoint uses (4xxx mirror HTTP statuses)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # a temporary storage failure (a full disk): nothing was lost
    BAD_MESSAGE = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    UNKNOWN_DOCUMENT = 4404
    TOO_SLOW = 4408  # not reading fast enough, or not answering the keepalive
    UNREVERTABLE = 4422
    DOCUMENT_UNREADABLE = 4500  # stored data failed its checksum: see `tandem doctor`


class WebSocketLike(Protocol):
    async def send(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class Connection:
    def __init__(
        self,
        ws: WebSocketLike,
        actor: Actor,
        *,
        wants_tandem_messages: bool,
        max_queue_bytes: int,
        display_name: str = "",
        presence_rate: float = 20.0,
        presence_burst: float = 40.0,
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.actor = actor
        self.wants_tandem_messages = wants_tandem_messages
        self.max_queue_bytes = max_queue_bytes
        self.updates_received = 0  # numbers this client's update messages for acks
        self.awaiting_resync = False  # asked for a full sync step 2 after a gapped update
        self.resyncs = 0  # how often (a client that keeps sending gaps gets closed)
        self.display_name = display_name or actor.user_id
        self.awareness_ids: set[int] = set()
        self.presence_bucket = TokenBucket(presence_rate, presence_burst)
        # how often this connection's refused updates may be split (each reloads the
        # document: sync_server.core.split); past it they are refused whole
        self.split_bucket = TokenBucket(SPLITS_PER_SECOND, SPLIT_BURST)
        self.pending_presence: dict[int, Any] = {}  # client id -> newest AwarenessEntry
        self.presence_flush: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._sender: asyncio.Task | None = None  # run_sender's task, while it is in a send
        # done when close() was called or the sender is done (close frame sent, or the socket
        # gone): stop reading the client. One future, not two events each waited on by a
        # task of its own: a connection's objects are what a full collection walks
        self.stop_reading: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.last_heard = time.monotonic()  # when the client last sent a frame (keepalive)
        self.ping_sent_at: float | None = None  # when the keepalive last asked it to answer

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.actor}>"

    def send(self, message: bytes) -> None:
        """Queue a message; never blocks."""
        if self.close_code is not None:
            return
        self._queued_bytes += len(message)
        if self._queued_bytes > self.max_queue_bytes:
            self.cut_off(
                CloseCode.TOO_SLOW, "client is not reading fast enough; reconnect to resync"
            )
            return
        self._queue.put_nowait(message)

    def send_tandem(self, payload: dict[str, Any]) -> None:
        if self.wants_tandem_messages:
            self.send(encode_tandem(payload))

    def send_rejection(self, payload: dict[str, Any]) -> None:
        """Tell the client why its change was reverted, in whichever way it understands."""
        if self.wants_tandem_messages:
            self.send(encode_tandem(payload))
        else:  # y-protocols' auth message: stock y-websocket logs it as a warning
            self.send(encode_permission_denied(payload.get("reason", "change rejected")))

    def close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Close after the messages already queued, or with ``discard`` (access taken away)
        before any of them (reason is capped at 123 bytes by the RFC)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason.encode()[:123].decode(errors="ignore")
        if discard:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queued_bytes = 0
        self._queue.put_nowait(None)
        self._stop_reading()

    def _stop_reading(self) -> None:
        if not self.stop_reading.done():
            self.stop_reading.set_result(None)

    def cut_off(self, code: int, reason: str) -> None:
        """Close now, without the queued messages: they are dropped (their memory freed), and
        a send waiting on the client's full socket is cancelled. The close frame is then
        tried once; ``stop_reading`` is done either way."""
        if self.close_code is not None:
            return
        # logged now: the "disconnected" line waits for the close frame, which a peer that
        # does not read may hold up for CLOSE_FRAME_SECONDS
        log.warning("cutting off %r (%d: %s)", self, code, reason)
        self.close(code, reason, discard=True)
        if self._sender is not None:
            self._sender.cancel()

    async def run_sender(self) -> None:
        """Drain the queue into the socket until closed."""
        try:
            while True:
                message = await self._queue.get()
                if message is None:
                    break
                self._queued_bytes -= len(message)
                self._sender = asyncio.current_task()
                try:
                    await self.ws.send(message)
                    if type(message) is TrackedFrame:  # fan-out latency (core.instruments)
                        message.sent()
                except asyncio.CancelledError:
                    if self.close_code != CloseCode.TOO_SLOW:
                        raise
                    break  # cut off while this send was stuck: go straight to closing
                finally:
                    self._sender = None
            # a peer that does not read may not take the close frame either: try, not wait
            await asyncio.wait_for(
                self.ws.close(self.close_code or CloseCode.NORMAL, self.close_reason),
                CLOSE_FRAME_SECONDS,
            )
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # the socket went away under us
            log.debug("send failed on %r", self, exc_info=True)
        finally:
            self._stop_reading()
