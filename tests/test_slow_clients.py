"""A client that stops reading is cut off at once: its queue, socket and handler are freed."""

from __future__ import annotations

import base64
import os
import socket
import time

import anyio
import httpx
import pytest
from pycrdt import Doc, Map, Text

from doc_model import TaskCreate, create_task

from .conftest import start_server
from .raw_client import RawClient

pytestmark = pytest.mark.anyio


def _open_and_never_read(port: int, path: str) -> socket.socket:
    """A WebSocket handshake on a tiny receive buffer, and then not one byte read: a peer
    that died without a FIN, or a phone frozen in the background."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


TASKS = 10
DESCRIPTION = 100_000  # the schema's limit in characters: each edit stays within it


def _description(doc: Doc, task: str) -> Text:
    text = doc.get("tasks", type=Map)[task]["description"]
    assert isinstance(text, Text)
    return text


def _rewrite(doc: Doc, i: int) -> None:
    """One transaction of about 1 MB: every task's description replaced by 100,000 chars."""
    for k in range(TASKS):
        text = _description(doc, f"t{k}")
        if len(text):
            del text[0 : len(text)]
        text.insert(0, f"{i % 10}" * DESCRIPTION)


async def _connections(http: httpx.AsyncClient) -> int:
    return (await http.get("/healthz")).json()["connections"]


async def test_a_client_that_stops_reading_is_cut_off_and_forgotten(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_SEND_QUEUE_BYTES=str(256 * 1024))
    try:
        server.grant("alice", "slow")
        server.grant("bob", "slow")
        token = server.token("bob")
        frozen = await anyio.to_thread.run_sync(
            _open_and_never_read, server.port, f"/sync/p/slow?token={token}"
        )
        async with (
            httpx.AsyncClient(base_url=server.http_url) as http,
            RawClient.connect(server, "p/slow", "alice", role=None) as alice,
        ):
            await alice.sync()
            assert await _connections(http) == 2
            tasks = alice.edit(
                lambda d: [
                    create_task(d, TaskCreate(title="big"), created_by="alice", task_id=f"t{k}")
                    for k in range(TASKS)
                ]
            )
            assert (await alice.outcome(await alice.send_update(tasks)))["type"] == "ack"
            # 16 MB of edits (each within the size limits): more than the kernel's socket
            # buffers and bob's 256 KB queue
            for i in range(16):
                n = await alice.send_update(alice.edit(lambda d, i=i: _rewrite(d, i)))
                assert (await alice.outcome(n, timeout=30))["type"] == "ack"
            started = time.monotonic()
            with anyio.fail_after(10):
                while await _connections(http) != 1:
                    await anyio.sleep(0.1)
            gone_after = time.monotonic() - started
            # alice, who reads, has everything
            await alice.drain(0.2)
        frozen.close()
        assert "4408" in server.log() or "not reading fast enough" in server.log()
        assert gone_after < 5, gone_after
    finally:
        server.stop()
