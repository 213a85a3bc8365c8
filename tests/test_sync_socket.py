"""The sync endpoint served on the ASGI server's own receive and send (shell.sync_socket):
what Quart did for it before, it still does, and paths around it go where they did."""

from __future__ import annotations

import socket
import time

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketUpgradeError, aconnect_ws

from sync_server.core.connection import CloseCode

from .conftest import ServerProcess
from .raw_client import RawClient

pytestmark = pytest.mark.anyio


async def test_the_token_is_read_from_the_first_query_parameter_and_the_header(
    server: ServerProcess,
) -> None:
    token = server.token("alice")
    ws: AsyncWebSocketSession
    async with RawClient.connect(server, "p/q1", "alice") as ok:  # ?token=...&tandem=1
        await ok.sync()
    server.grant("alice", "q1", "owner")
    url = f"{server.ws_url}/p/q1"
    async with (
        httpx.AsyncClient() as http,
        aconnect_ws(url, http, params=[("token", token), ("token", "wrong")]) as ws,
    ):
        await ws.send_bytes(b"\x00\x00\x01\x00")  # sync step 1, empty state vector
        assert await ws.receive_bytes()  # served: the first token counted
    async with (
        httpx.AsyncClient() as http,
        aconnect_ws(url, http, headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        await ws.send_bytes(b"\x00\x00\x01\x00")
        assert await ws.receive_bytes()


async def test_refusals_still_close_with_their_code_and_reason(server: ServerProcess) -> None:
    token = server.token("alice")
    ws: AsyncWebSocketSession
    async with RawClient.connect(server, "p/q2", "alice", token="nope", role=None) as c:
        assert await c.recv() is None
        assert c.closed is not None and c.closed.code == CloseCode.UNAUTHENTICATED
    async with RawClient.connect(server, "x/q2", "alice", token=token, role=None) as c:
        assert await c.recv() is None
        assert c.closed is not None and c.closed.code == CloseCode.UNKNOWN_DOCUMENT
    async with (
        httpx.AsyncClient() as http,
        aconnect_ws(
            f"{server.ws_url}/p/q2",
            http,
            params={"token": token},
            headers={"Origin": "https://evil.example"},
        ) as ws,
    ):
        with pytest.raises(Exception) as closed:
            await ws.receive_bytes()
        assert getattr(closed.value, "code", None) == CloseCode.FORBIDDEN, closed.value


async def test_paths_beside_the_endpoint_are_not_served_as_documents(
    server: ServerProcess,
) -> None:
    token = server.token("alice")
    for path in ("/sync/", "/sync", "/syncx/p/q3"):
        with pytest.raises(WebSocketUpgradeError) as refused:
            async with (
                httpx.AsyncClient() as http,
                aconnect_ws(f"ws://127.0.0.1:{server.port}{path}", http, params={"token": token}),
            ):
                pass
        assert 400 <= refused.value.response.status_code < 500, path  # Quart refuses them
    r = httpx.get(f"{server.http_url}/sync/p/q3", params={"token": token})
    assert r.status_code == 404  # a document is a socket, never a page


def _half_open_upgrade(port: int, token: str) -> None:
    """Send an upgrade request and vanish before reading the answer."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            (
                f"GET /sync/p/q4?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )


async def test_clients_that_vanish_mid_handshake_leave_the_server_serving(
    server: ServerProcess,
) -> None:
    token = server.token("alice")
    server.grant("alice", "q4", "owner")
    for _ in range(50):
        await anyio.to_thread.run_sync(_half_open_upgrade, server.port, token)
    deadline = time.monotonic() + 10
    while True:
        health = httpx.get(f"{server.http_url}/healthz").json()
        if health["connections"] == 0 or time.monotonic() > deadline:
            break
        await anyio.sleep(0.1)
    assert health["connections"] == 0, health
    async with RawClient.connect(server, "p/q4", "alice") as c:
        await c.sync()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("empty", ["", b""], ids=["text", "binary"])
async def test_an_empty_frame_closes_with_4400_and_nothing_else_breaks(
    server: ServerProcess, empty: str | bytes
) -> None:
    async with RawClient.connect(server, "p/q5", "alice") as client:
        await client.sync()
        if isinstance(empty, str):
            await client.ws.send_text(empty)
        else:
            await client.send(empty)
        closed = await client.wait_closed()
    assert closed.code == CloseCode.BAD_MESSAGE, closed
    async with RawClient.connect(server, "p/q5", "alice") as again:
        await again.sync()
    assert "Traceback" not in server.log()
