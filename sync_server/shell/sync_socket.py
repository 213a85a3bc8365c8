"""The sync endpoint's WebSocket on the ASGI server's own ``receive`` and ``send``.

``/sync/<doc>`` is served in front of Quart (``SyncRoute`` wraps ``Quart.asgi_app``):
Quart adds, per socket, a queue its own task fills from ``receive``, a second task
for the handler, an ``asyncio.wait`` over both, a headers object of tuples, request
and app contexts and the coroutine chain of its dispatch: about a hundred objects
that live as long as the connection, and every full collection of the cyclic
garbage collector walks every one of them (issue 18: collections grew with the
connections, 50-80 ms at a few hundred clients). Here a connection is one ASGI
call and the handler's own tasks; the handler reads ``receive`` itself.

``AsgiSocket`` offers what the handler used of Quart's websocket: ``headers``
(title-cased, as Quart gives them), ``args``, ``host`` (werkzeug's reading of the
Host header, as Quart's), ``remote_addr``, ``accept``, ``receive``, ``send`` and
``close``. Every other path and every HTTP request still goes to Quart.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.sansio.utils import get_host

log = logging.getLogger("tandem.sync")

PREFIX = "/sync/"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClientLeft(ConnectionError):
    """The client closed the socket or the connection dropped (``websocket.disconnect``)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"client left ({code})")
        self.code = code


class AsgiSocket:
    __slots__ = ("_closed", "_receive", "_send", "args", "headers", "host", "remote_addr")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            name = raw_name.decode("latin-1").title()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        query = (scope.get("query_string") or b"").decode("utf-8", "replace")
        args: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            args.setdefault(key, value)  # the first, as Quart's MultiDict.get gives it
        self.args = args
        self.host = get_host(scope.get("scheme", "ws"), headers.get("Host"), scope.get("server"))
        client = scope.get("client")
        self.remote_addr: str | None = client[0] if client else None
        self._receive = receive
        self._send = send
        self._closed = False

    async def accept(self) -> None:
        event = await self._receive()  # websocket.connect comes first (ASGI)
        if event["type"] == "websocket.disconnect":
            raise ClientLeft(event.get("code"))
        await self._send({"type": "websocket.accept"})

    async def receive(self) -> bytes | str:
        """The next frame's data; raises ClientLeft once the client is gone."""
        event = await self._receive()
        if event["type"] == "websocket.receive":
            data = event.get("bytes")
            return data if data is not None else event.get("text") or ""
        if event["type"] == "websocket.disconnect":
            self._closed = True
            raise ClientLeft(event.get("code"))
        return b""  # nothing else is sent after connect; an empty frame is refused as bad

    async def send(self, data: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


SyncHandler = Callable[[AsgiSocket, str], Awaitable[None]]


class SyncRoute:
    """ASGI: websockets under ``/sync/`` to ``handler(socket, doc)``, the rest to ``app``."""

    def __init__(self, app: Callable[..., Awaitable[None]], handler: SyncHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "websocket" or not path.startswith(PREFIX) or path == PREFIX:
            await self.app(scope, receive, send)
            return
        socket = AsgiSocket(scope, receive, send)
        try:
            await self.handler(socket, path[len(PREFIX) :])
        except ClientLeft:
            pass
        except Exception:
            log.exception("sync socket failed", extra={"doc": path[len(PREFIX) :]})
            with contextlib.suppress(Exception):  # the socket may be gone too
                await socket.close(1011, "internal error")
        else:
            with contextlib.suppress(Exception):  # a handler that returned leaves it closed
                await socket.close(1000)
