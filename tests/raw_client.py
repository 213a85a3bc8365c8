"""A protocol-level test client: a pycrdt Doc synced over a real WebSocket, frame by frame.

Unlike the stock provider it lets a test send any bytes, see acks and rejections
(``?tandem=1``), and read the close code and reason the server chose.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote

import anyio
import httpx
from httpx_ws import (
    AsyncWebSocketSession,
    WebSocketDisconnect,
    WebSocketNetworkError,
    aconnect_ws,
)
from pycrdt import Doc
from wsproto.utilities import LocalProtocolError

from doc_model import InvalidDocName, declare_roots, parse_doc_name
from sync_server.core.protocol import (
    AwarenessMessage,
    Message,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TandemMessage,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)


@dataclass
class Closed:
    code: int
    reason: str


class RawClient:
    def __init__(self, ws, doc_name: str) -> None:
        self.ws = ws
        self.doc: Doc = Doc()
        with contextlib.suppress(InvalidDocName):  # tests also send names the server refuses
            declare_roots(self.doc, parse_doc_name(unquote(doc_name)).kind)
        self.tandem: list[dict] = []
        self.awareness: list[AwarenessMessage] = []
        self.closed: Closed | None = None
        self._sent = 0

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        server,
        doc_name: str,
        user: str = "alice",
        *,
        tandem: bool = True,
        token: str | None = None,
        role: str | None = "owner",
    ) -> AsyncIterator[RawClient]:
        """Connect as ``user``; unless ``role`` is None, first grant it on the project."""
        params = {"token": token if token is not None else server.token(user)}
        if role is not None and token is None:
            server.grant(user, doc_name.split("/")[1], role)
        if tandem:
            params["tandem"] = "1"
        client: RawClient | None = None
        ws: AsyncWebSocketSession
        try:
            async with (
                httpx.AsyncClient() as http,
                aconnect_ws(f"{server.ws_url}/{doc_name}", http, params=params) as ws,
            ):
                client = cls(ws, doc_name)
                yield client
        except* WebSocketNetworkError:
            if client is None or client.closed is None:
                raise  # only a connection we already saw die may fail to close cleanly

    async def send(self, frame: bytes) -> None:
        await self.ws.send_bytes(frame)

    async def recv(self, timeout: float = 5) -> Message | None:
        """Next message, applying sync messages to the local doc; None once closed."""
        if self.closed:
            return None
        try:
            with anyio.fail_after(timeout):
                frame = await self.ws.receive_bytes()
        except WebSocketDisconnect as e:
            self.closed = Closed(e.code, e.reason or "")
            return None
        except WebSocketNetworkError:
            self.closed = Closed(1006, "connection lost")
            return None
        msg = decode_message(frame)
        if isinstance(msg, SyncStep1):
            self._sent += 1  # step 2 carries an update too, so it gets an ack number
            # if the server is already closing this connection, the close frame follows
            with contextlib.suppress(LocalProtocolError):
                await self.send(encode_sync_step2(self.doc.get_update(msg.state_vector)))
        elif isinstance(msg, SyncStep2 | SyncUpdate):
            self.doc.apply_update(msg.update)
        elif isinstance(msg, TandemMessage):
            self.tandem.append(msg.payload)
        elif isinstance(msg, AwarenessMessage):
            self.awareness.append(msg)
        return msg

    async def sync(self) -> None:
        """Run the handshake until the server's step 2 has been applied."""
        await self.send(encode_sync_step1(self.doc.get_state()))
        while True:
            msg = await self.recv()
            if msg is None:
                raise AssertionError(f"closed during sync: {self.closed}")
            if isinstance(msg, SyncStep2):
                return

    async def send_update(self, update: bytes) -> int:
        """Send one transaction; returns the number the server's ack/rejection will carry."""
        self._sent += 1
        await self.send(encode_update(update))
        return self._sent

    async def outcome(self, n: int, timeout: float = 5) -> dict:
        """Wait for the ack or rejection of our n-th update."""
        with anyio.fail_after(timeout):
            while True:
                for payload in self.tandem:
                    if payload.get("n") == n:
                        return payload
                if await self.recv(timeout) is None:
                    raise AssertionError(f"closed before outcome of update {n}: {self.closed}")

    async def wait_closed(self, timeout: float = 5) -> Closed:
        with anyio.fail_after(timeout):
            while await self.recv(timeout) is not None:
                pass
        assert self.closed is not None
        return self.closed

    async def drain(self, seconds: float = 0.3) -> None:
        """Apply whatever arrives for a little while."""
        with anyio.move_on_after(seconds):
            while await self.recv(seconds) is not None:
                pass

    def edit(self, fn) -> bytes:
        """Run ``fn(doc)`` in one transaction and return that transaction's update."""
        before = self.doc.get_state()
        with self.doc.transaction():
            fn(self.doc)
        return self.doc.get_update(before)
