"""The durable outbox, its senders and the secret store, against real receivers.

Every delivery here goes to a real HTTP server on 127.0.0.1 (http.server in a
thread) or a real SMTP server (aiosmtpd); the database is a real SQLite file
migrated by the server's migrations. Where a test needs a *public* host (an
allowed first hop that redirects inward), a resolver stands in for DNS and a
transport carries the connection to the local server instead of the
Internet; the outbound guard's checks are the real ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import hashlib
import hmac
import json
import logging
import os
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from hypothesis import given
from hypothesis import strategies as st

from integrations.outbound import OutboundPolicy, OutboundRefused, Resolver, post
from integrations.outbox import Outbox, OutboxConfig, backoff_bounds, backoff_delay
from integrations.secrets import (
    SecretNotFound,
    SecretStore,
    SecretUnreadable,
    key_file_for,
    load_keys,
    mask,
)
from integrations.senders import Senders, SmtpConfig, idempotency_header, sign
from sync_server.storage.database import SQLiteWorker, connect, open_database

from .conftest import ROOT, free_port

LOCAL = OutboundPolicy(allow_private=True, timeout=5.0, connect_timeout=2.0)
STRICT = OutboundPolicy(timeout=5.0, connect_timeout=2.0)
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSecretToken1234"


# -- a real HTTP receiver ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        srv = self.server
        request: dict[str, Any] = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with srv.lock:
            srv.requests.append(request)
            status, headers = srv.responses.pop(0) if srv.responses else (200, {})
            key = request["headers"].get("idempotency-key")
            # the receiver's work happens when a request arrives (its answer may be lost):
            # a key seen before is answered without doing it again
            if 200 <= status < 300 and key is not None:
                if key in srv.processed:
                    srv.duplicates[key] += 1
                else:
                    srv.processed[key] += 1
            hold = srv.hold_after is not None and len(srv.requests) > srv.hold_after
        if hold:
            srv.release.wait(60)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the client is gone (killed)

    do_POST = _handle
    do_GET = _handle

    def log_message(self, *args: Any) -> None:
        pass


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.responses: list[tuple[int, dict[str, str]]] = []  # answered in turn, then 200
        self.processed: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.hold_after: int | None = None  # requests past this many wait for `release`
        self.release = threading.Event()

    def url(self, path: str = SECRET_PATH) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(r["headers"].get("idempotency-key") for r in self.requests)


@contextmanager
def receiver() -> Iterator[Receiver]:
    srv = Receiver()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


class Forwarding(httpx.BaseTransport):
    """The network, for hosts a test calls public: a connection to an address in ``routes``
    goes to a local port over plain HTTP; any other is refused (and recorded)."""

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.connected: list[str] = []
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.connected.append(str(request.url))
        port = self.routes.get(request.url.host)
        if port is None:
            raise httpx.ConnectError("no route to host (test network)")
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
        return self.inner.handle_request(request)


def dns(table: dict[str, list[str]]) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("NXDOMAIN")
        return table[host]

    return resolve


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Rig:
    db: Path
    worker: SQLiteWorker
    secrets: SecretStore
    outbox: Outbox
    clock: Clock

    def row(self, row_id: int) -> dict[str, Any]:
        conn = sqlite3.connect(self.db)
        try:
            conn.row_factory = sqlite3.Row
            return dict(conn.execute("SELECT * FROM outbox WHERE id = ?", (row_id,)).fetchone())
        finally:
            conn.close()


@asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    policy: OutboundPolicy = LOCAL,
    config: OutboxConfig | None = None,
    smtp: SmtpConfig | None = None,
    transport: httpx.BaseTransport | None = None,
    resolve: Resolver | None = None,
    real_clock: bool = False,
) -> AsyncIterator[Rig]:
    db = tmp_path / "tandem.db"
    open_database(db).conn.close()
    worker = SQLiteWorker(connect(db))
    clock = Clock()
    secrets = SecretStore(worker, load_keys(db))
    kw: dict[str, Any] = {"transport": transport}
    if resolve is not None:
        kw["resolve"] = resolve
    outbox = Outbox(
        worker,
        secrets,
        Senders(policy, smtp, **kw),
        config or OutboxConfig(),
        clock=time.time if real_clock else clock,
        rng=lambda: 0.5,
    )
    try:
        yield Rig(db, worker, secrets, outbox, clock)
    finally:
        await outbox.stop()
        await worker.close()


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# -- webhooks: signed, once per key ------------------------------------------------------------


@pytest.mark.anyio
async def test_each_enqueued_webhook_arrives_once_signed(tmp_path: Path) -> None:
    with receiver() as hook:
        async with rig(tmp_path, real_clock=True) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            await r.outbox.start()
            ids = []
            for i in range(3):
                payload = {"event": "task_status_changed", "task": {"id": f"t{i}", "n": i}}
                ids.append(await r.outbox.enqueue("p1", f"rule:r1:e{i}:0", "webhook", ref, payload))
            again = await r.outbox.enqueue("p1", "rule:r1:e0:0", "webhook", ref, {"other": 1})
            assert again is None and None not in ids

            async def all_delivered() -> bool:
                rows = await r.outbox.deliveries("p1")
                return len(rows) == 3 and all(d.status == "delivered" for d in rows)

            await eventually(all_delivered)
            secret = await r.secrets.signing_secret("p1")
        assert len(hook.requests) == 3
        assert sorted(hook.processed) == ["rule:r1:e0:0", "rule:r1:e1:0", "rule:r1:e2:0"]
        for request in hook.requests:
            headers, body = request["headers"], request["body"]
            assert request["method"] == "POST" and request["path"] == SECRET_PATH
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["x-tandem-signature-256"], expected)
            assert headers["content-type"] == "application/json"
            payload = json.loads(body)
            i = payload["task"]["n"]
            assert payload == {"event": "task_status_changed", "task": {"id": f"t{i}", "n": i}}
            assert headers["idempotency-key"] == f"rule:r1:e{i}:0"
            assert int(headers["x-tandem-delivery"]) == ids[i]
            # a tampered body does not verify
            assert not hmac.compare_digest(
                headers["x-tandem-signature-256"], sign(secret, body + b" ")
            )


@pytest.mark.anyio
async def test_a_hanging_receiver_holds_up_only_its_own_messages(tmp_path: Path) -> None:
    with receiver() as slow, receiver() as fast:
        slow.hold_after = 0  # every request waits until released
        async with rig(tmp_path, real_clock=True, config=OutboxConfig(batch=4)) as r:
            slow_ref = await r.secrets.put("p1", "webhook", slow.url())
            fast_ref = await r.secrets.put("p1", "webhook", fast.url())
            await r.outbox.start()
            for i in range(2):
                await r.outbox.enqueue("p1", f"slow{i}", "webhook", slow_ref, {})
            await eventually(lambda: len(slow.requests) == 2)
            for i in range(10):
                await r.outbox.enqueue("p1", f"fast{i}", "webhook", fast_ref, {})
            await eventually(lambda: len(fast.processed) == 10, timeout=10)
            assert len(slow.requests) == 2  # still hanging, in their two places
            slow.release.set()

            async def all_delivered() -> bool:
                return {d.status for d in await r.outbox.deliveries("p1")} == {"delivered"}

            await eventually(all_delivered)
        assert sum(fast.keys().values()) == 10 and sum(slow.keys().values()) == 2


@pytest.mark.anyio
async def test_a_failing_receiver_gets_the_delivery_once_it_recovers(tmp_path: Path) -> None:
    config = OutboxConfig(backoff_base=10, backoff_cap=100)
    with receiver() as hook:
        hook.responses = [(500, {}), (503, {}), (502, {})]
        async with rig(tmp_path, config=config) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            row_id = await r.outbox.enqueue("p1", "k", "webhook", ref, {"n": 1})
            assert row_id is not None
            waits = []
            for attempt in (1, 2, 3):
                assert await r.outbox.run_once() == 1
                row = r.row(row_id)
                assert row["status"] == "pending" and row["attempts"] == attempt
                assert row["last_status"] in (500, 503, 502) and "HTTP 5" in row["last_error"]
                wait = row["next_attempt_at"] - r.clock.t
                low, high = backoff_bounds(attempt, config)
                assert low <= wait <= high
                waits.append(wait)
                assert await r.outbox.run_once() == 0  # not due yet: nothing is sent
                r.clock.advance(wait)
            assert waits == sorted(waits) and waits[0] < waits[-1]
            assert await r.outbox.run_once() == 1
            row = r.row(row_id)
            assert row["status"] == "delivered" and row["attempts"] == 4
            assert row["last_status"] == 200 and row["delivered_at"] == r.clock.t
            (listed,) = await r.outbox.deliveries("p1")
            assert listed.status == "delivered" and listed.attempts == 4
            assert listed.target == mask(hook.url()) and SECRET_PATH not in json.dumps(
                listed.to_json()
            )
            r.clock.advance(10_000)
            assert await r.outbox.run_once() == 0
        assert len(hook.requests) == 4 and list(hook.processed.values()) == [1]
        assert len({req["headers"]["idempotency-key"] for req in hook.requests}) == 1


@pytest.mark.anyio
async def test_410_is_dead_at_once_and_other_4xx_too(tmp_path: Path) -> None:
    with receiver() as hook:
        hook.responses = [(410, {}), (404, {})]
        async with rig(tmp_path) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            gone = await r.outbox.enqueue("p1", "a", "webhook", ref, {})
            missing = await r.outbox.enqueue("p1", "b", "webhook", ref, {})
            assert await r.outbox.run_once() == 2
            for row_id in (gone, missing):
                assert row_id is not None
                row = r.row(row_id)
                assert row["status"] == "dead" and row["attempts"] == 1
            assert r.row(gone or 0)["last_status"] in (410, 404)
            assert {r.row(i or 0)["last_status"] for i in (gone, missing)} == {410, 404}
            r.clock.advance(100_000)
            assert await r.outbox.run_once() == 0
            dead = await r.outbox.deliveries("p1", status="dead")
            assert {d.last_error for d in dead} == {"HTTP 410 Gone", "HTTP 404 Not Found"}
        assert len(hook.requests) == 2


@pytest.mark.anyio
async def test_a_dead_message_can_be_sent_again_and_old_ones_are_pruned(tmp_path: Path) -> None:
    with receiver() as hook:
        hook.responses = [(410, {})]
        async with rig(tmp_path) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            row_id = await r.outbox.enqueue("p1", "k", "webhook", ref, {})
            assert row_id is not None
            await r.outbox.run_once()
            assert r.row(row_id)["status"] == "dead"
            assert not await r.outbox.retry(row_id, "p2")  # another project's: no
            assert await r.outbox.retry(row_id, "p1")
            assert not await r.outbox.retry(row_id, "p1")  # not dead any more
            await r.outbox.run_once()
            assert r.row(row_id)["status"] == "delivered" and r.row(row_id)["attempts"] == 1
            pending = await r.outbox.enqueue("p1", "later", "webhook", ref, {})
            r.clock.advance(31 * 86400)
            assert await r.outbox.prune() == 1  # the delivered one; never a pending one
            assert [d.id for d in await r.outbox.deliveries("p1")] == [pending]
            assert await r.outbox.enqueue("p1", "k", "webhook", ref, {}) is not None
        assert len(hook.requests) == 2


@pytest.mark.anyio
async def test_the_event_loop_never_waits_for_a_locked_database(tmp_path: Path) -> None:
    """Another process holds the write lock for 1.5 s: enqueue and the worker wait for it
    on their thread; the loop goes on ticking."""
    with receiver() as hook:
        async with rig(tmp_path, real_clock=True) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            await r.outbox.start()
            other = sqlite3.connect(r.db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            lags: list[float] = []

            async def tick() -> None:
                for _ in range(100):
                    before = time.perf_counter()
                    await asyncio.sleep(0.02)
                    lags.append(time.perf_counter() - before - 0.02)

            ticker = asyncio.create_task(tick())
            release = asyncio.get_running_loop().call_later(1.5, other.execute, "COMMIT")
            started = time.perf_counter()
            row_id = await r.outbox.enqueue("p1", "k", "webhook", ref, {"n": 1})
            waited = time.perf_counter() - started
            await ticker
            release.cancel()
            other.close()
            await eventually(lambda: r.row(row_id or 0)["status"] == "delivered")
        assert waited >= 1.4  # enqueue did wait for the lock...
        assert max(lags) < 0.5, max(lags)  # ...but not on the event loop
        assert len(hook.requests) == 1


@pytest.mark.anyio
async def test_retry_after_is_honoured_and_the_last_attempt_gives_up(tmp_path: Path) -> None:
    config = OutboxConfig(max_attempts=3, backoff_base=1, backoff_cap=5)
    with receiver() as hook:
        hook.responses = [(429, {"Retry-After": "120"}), (408, {}), (503, {"Retry-After": "1"})]
        async with rig(tmp_path, config=config) as r:
            ref = await r.secrets.put("p1", "slack", hook.url())
            row_id = await r.outbox.enqueue("p1", "k", "slack", ref, {"text": "hello"})
            assert row_id is not None
            await r.outbox.run_once()
            row = r.row(row_id)
            assert row["status"] == "pending" and row["next_attempt_at"] - r.clock.t == 120
            r.clock.advance(120)
            await r.outbox.run_once()
            row = r.row(row_id)
            assert row["status"] == "pending" and row["next_attempt_at"] - r.clock.t <= 2
            r.clock.advance(2)
            await r.outbox.run_once()
            row = r.row(row_id)
            assert row["status"] == "dead" and row["attempts"] == 3 and row["last_status"] == 503
            assert row["last_error"].startswith("gave up after 3 attempts: HTTP 503")
        assert len(hook.requests) == 3


@pytest.mark.anyio
async def test_slack_and_teams_bodies(tmp_path: Path) -> None:
    blocks = {
        "text": "Done",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*t*"}}],
    }
    with receiver() as hook:
        async with rig(tmp_path) as r:
            slack = await r.secrets.put("p1", "slack", hook.url("/slack/T/B/secret0"))
            teams = await r.secrets.put("p1", "teams", hook.url("/teams/webhookb2/secret1"))
            await r.outbox.enqueue("p1", "s1", "slack", slack, blocks)
            await r.outbox.enqueue(
                "p1",
                "s2",
                "slack",
                slack,
                {"title": "T", "text": "x", "url": "https://t.example/x"},
            )
            await r.outbox.enqueue(
                "p1", "t1", "teams", teams, {"title": "Task done", "text": "Ship it"}
            )
            assert await r.outbox.run_once() == 3
        by_key = {req["headers"]["idempotency-key"]: req for req in hook.requests}
        assert json.loads(by_key["s1"]["body"]) == blocks
        built = json.loads(by_key["s2"]["body"])
        assert built["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "T"}}
        assert built["blocks"][-1]["elements"][0]["url"] == "https://t.example/x"
        card = json.loads(by_key["t1"]["body"])
        assert card["type"] == "message"
        (attachment,) = card["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        content = attachment["content"]
        assert content["type"] == "AdaptiveCard"
        assert [b["text"] for b in content["body"]] == ["Task done", "Ship it"]
        assert by_key["t1"]["path"] == "/teams/webhookb2/secret1"
        assert "x-tandem-signature-256" not in by_key["s1"]["headers"]


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_secret_store_encrypts_masks_and_binds_secrets_to_their_project(
    tmp_path: Path,
) -> None:
    url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXabcd"
    async with rig(tmp_path) as r:
        ref = await r.secrets.put("p1", "slack", url)
        assert ref.startswith("secret:") and url not in ref
        assert await r.secrets.get(ref) == url
        assert await r.secrets.get(ref, project="p1") == url
        with pytest.raises(SecretNotFound):
            await r.secrets.get(ref, project="p2")
        assert await r.secrets.masked(ref) == "https://hooks.slack.com/…/abcd"
        assert "XXXX" not in repr(r.secrets)
        await r.worker.run(lambda: r.worker.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("tandem.db"))
        assert b"T00000000" not in raw and b"XXXXXXXXXXXX" not in raw  # encrypted at rest
        signing = await r.secrets.signing_secret("p1")
        assert (
            signing == await r.secrets.signing_secret("p1") != await r.secrets.signing_secret("p2")
        )
        assert await r.secrets.delete(ref) and not await r.secrets.delete(ref)
        with pytest.raises(SecretNotFound):
            await r.secrets.get(ref)
    key_file = key_file_for(tmp_path / "tandem.db")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the same key next start; another key cannot read what the first wrote
    first = load_keys(tmp_path / "tandem.db")
    assert load_keys(tmp_path / "tandem.db").decrypt(first.encrypt(b"x")) == b"x"
    with pytest.raises(ValueError, match="TANDEM_SECRET_KEY"):
        load_keys(tmp_path / "tandem.db", "not-a-key")
    assert mask("short") == "…"
    assert mask("https://example.com/hook/abcdefghijkl") == "https://example.com/…/ijkl"


@pytest.mark.anyio
async def test_a_secret_of_another_project_or_key_is_never_used(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    with receiver() as hook:
        async with rig(tmp_path) as r:
            ref = await r.secrets.put("p1", "webhook", hook.url())
            stolen = await r.outbox.enqueue("p2", "x", "webhook", ref, {})
            assert await r.outbox.run_once() == 1
            row = r.row(stolen or 0)
            assert row["status"] == "dead" and "another project" in row["last_error"]
            # the key changed: the secret cannot be read, the message says so
            other = SecretStore(r.worker, Fernet(Fernet.generate_key()))
            with pytest.raises(SecretUnreadable):
                await other.get(ref)
        with pytest.raises(ValueError, match="secret reference"):
            async with rig(tmp_path) as r2:
                await r2.outbox.enqueue("p1", "y", "webhook", hook.url(), {})
        assert hook.requests == []


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@contextmanager
def every_log_line() -> Iterator[Captured]:
    handler = Captured()
    loggers = [logging.getLogger(n) for n in ("", "tandem", "httpx", "httpcore")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


@pytest.mark.anyio
async def test_secret_urls_never_enter_a_log_line_or_the_error(tmp_path: Path) -> None:
    closed = free_port()
    config = OutboxConfig(max_attempts=2)
    with receiver() as hook, every_log_line() as logs:
        hook.responses = [(500, {}), (500, {})]
        async with rig(tmp_path, config=config) as r:
            failing = await r.secrets.put("p1", "webhook", hook.url())
            refused = await r.secrets.put("p1", "slack", f"http://127.0.0.1:{closed}{SECRET_PATH}x")
            await r.outbox.enqueue("p1", "a", "webhook", failing, {})
            await r.outbox.enqueue("p1", "b", "slack", refused, {"text": "x"})
            await r.outbox.run_once()
            r.clock.advance(1000)
            await r.outbox.run_once()
            listed = await r.outbox.deliveries("p1")
            assert {d.status for d in listed} == {"dead"}
            assert any("ConnectError" in (d.last_error or "") for d in listed)
            stored = [r.row(d.id)["last_error"] for d in listed]
        text = "\n".join(logs.lines)
        assert "HTTP Request" in text or "connect" in text.lower()  # httpx logged its requests
        assert "failed" in text and "dead" in text  # and the outbox its outcomes
        for secret_part in ("T0SECRET", "xoxSecretToken", SECRET_PATH):
            assert secret_part not in text
            assert all(secret_part not in (e or "") for e in stored)
            assert secret_part not in json.dumps([d.to_json() for d in listed])


# -- the outbound guard ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_internal_addresses_are_refused_without_the_setting(tmp_path: Path) -> None:
    with receiver() as inside:
        resolve = dns({"metadata.example": ["169.254.169.254"], "me.example": ["127.0.0.1"]})
        async with rig(tmp_path, policy=STRICT, resolve=resolve) as r:
            urls = [
                f"https://127.0.0.1:{inside.server_port}/hook",
                "https://169.254.169.254/latest/meta-data/",
                f"https://me.example:{inside.server_port}/hook",
                "https://metadata.example/computeMetadata/v1/",
                f"http://127.0.0.1:{inside.server_port}/hook",
            ]
            for i, url in enumerate(urls):
                ref = await r.secrets.put("p1", "webhook", url)
                await r.outbox.enqueue("p1", f"k{i}", "webhook", ref, {})
            assert await r.outbox.run_once() == len(urls)
            rows = await r.outbox.deliveries("p1")
            assert {d.status for d in rows} == {"dead"} and {d.attempts for d in rows} == {1}
            errors = sorted(d.last_error or "" for d in rows)
            assert all(e.startswith("refused by the outbound guard") for e in errors)
            assert sum("not public" in e for e in errors) == 4
        assert inside.requests == []


def test_redirects_are_followed_with_every_hop_checked() -> None:
    with receiver() as first, receiver() as inside:
        resolve = dns({"hooks.example.com": ["93.184.216.34"], "internal.example": ["10.0.0.5"]})
        network = Forwarding({"93.184.216.34": first.server_port})
        for location in (
            f"https://127.0.0.1:{inside.server_port}/steal",
            "https://169.254.169.254/latest/meta-data/iam",
            "https://internal.example/admin",
            f"http://127.0.0.1:{inside.server_port}/steal",
        ):
            first.responses = [(307, {"Location": location})]
            with pytest.raises(OutboundRefused):
                post(
                    "https://hooks.example.com/hook",
                    content=b"{}",
                    headers={},
                    policy=STRICT,
                    resolve=resolve,
                    max_redirects=3,
                    transport=network,
                )
        # only the allowed first hop was ever connected to
        assert set(network.connected) == {"https://93.184.216.34/hook"}
        assert len(first.requests) == 4 and inside.requests == []

    # allowed hops are followed: 307/308 repeat the POST, 302/303 become a GET; a limit holds
    with receiver() as a, receiver() as b:
        a.responses = [(308, {"Location": b.url("/moved")})]
        response = post(
            a.url("/x"), content=b"body", headers={"X-A": "1"}, policy=LOCAL, max_redirects=2
        )
        assert response.status_code == 200
        assert b.requests[0]["method"] == "POST" and b.requests[0]["body"] == b"body"
        assert b.requests[0]["headers"]["x-a"] == "1"
        a.responses = [(303, {"Location": "/see-other"})]
        post(a.url("/x"), content=b"body", headers={}, policy=LOCAL, max_redirects=2)
        assert a.requests[-1]["method"] == "GET" and a.requests[-1]["path"] == "/see-other"
        a.responses = [
            (302, {"Location": "/1"}),
            (302, {"Location": "/2"}),
            (302, {"Location": "/3"}),
        ]
        with pytest.raises(OutboundRefused, match="more than 2 redirects"):
            post(a.url("/x"), content=b"", headers={}, policy=LOCAL, max_redirects=2)
        # the default, for callers that never follow (push): the 3xx is the answer
        a.responses = [(307, {"Location": b.url("/never")})]
        assert post(a.url("/x"), content=b"", headers={}, policy=LOCAL).status_code == 307
        assert all(req["path"] != "/never" for req in b.requests)


@pytest.mark.anyio
async def test_a_redirect_inward_makes_the_delivery_dead(tmp_path: Path) -> None:
    with receiver() as first, receiver() as inside:
        first.responses = [(302, {"Location": "https://169.254.169.254/latest/meta-data/"})]
        resolve = dns({"hooks.example.com": ["93.184.216.34"]})
        network = Forwarding({"93.184.216.34": first.server_port})
        async with rig(tmp_path, policy=STRICT, resolve=resolve, transport=network) as r:
            ref = await r.secrets.put("p1", "teams", "https://hooks.example.com/webhookb2/abc")
            row_id = await r.outbox.enqueue("p1", "k", "teams", ref, {"text": "hi"})
            await r.outbox.run_once()
            row = r.row(row_id or 0)
            assert row["status"] == "dead" and "169.254.169.254" in row["last_error"]
        assert len(first.requests) == 1 and inside.requests == []


# -- email ---------------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self, refuse: set[str] | None = None) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.refuse = refuse or set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted"


@contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[int]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.anyio
async def test_email_reaches_a_real_smtp_server(tmp_path: Path) -> None:
    mailbox = Mailbox(refuse={"nobody@example.com"})
    with smtp_server(mailbox) as port:
        smtp = SmtpConfig(
            host="127.0.0.1", port=port, security="none", from_address="tandem@example.com"
        )
        async with rig(tmp_path, smtp=smtp) as r:
            ok = await r.outbox.enqueue(
                "p1",
                "rule:r9:e1:2",
                "email",
                "",
                {
                    "to": ["ann@example.com", "bob@example.com"],
                    "subject": "Task “Ship” is done",
                    "text": "Ship moved to Done.\n",
                    "html": "<p>Ship moved to <b>Done</b>.</p>",
                },
            )
            refused = await r.outbox.enqueue(
                "p1",
                "rule:r9:e2:2",
                "email",
                "",
                {"to": ["nobody@example.com"], "subject": "x", "text": "y"},
            )
            assert await r.outbox.run_once() == 2
            assert r.row(ok or 0)["status"] == "delivered"
            row = r.row(refused or 0)
            assert row["status"] == "dead" and row["last_status"] == 550
        ((mail_from, rcpt, message),) = mailbox.messages
        assert mail_from == "tandem@example.com" and rcpt == ["ann@example.com", "bob@example.com"]
        assert message["Subject"] == "Task “Ship” is done"
        assert message["To"] == "ann@example.com, bob@example.com"
        assert message["Idempotency-Key"] == idempotency_header("rule:r9:e1:2")
        plain = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert plain is not None and plain.get_content().rstrip() == "Ship moved to Done."
        assert html is not None and "<b>Done</b>" in html.get_content()

    # not configured: dead at once, with the setting named; a server that is down: retried
    (tmp_path / "b").mkdir()
    async with rig(tmp_path / "b") as r:
        row_id = await r.outbox.enqueue(
            "p1", "m", "email", "", {"to": "a@example.com", "subject": "s"}
        )
        await r.outbox.run_once()
        assert (
            r.row(row_id or 0)["status"] == "dead"
            and "TANDEM_SMTP_HOST" in r.row(row_id or 0)["last_error"]
        )
    down = SmtpConfig(
        host="127.0.0.1", port=free_port(), security="none", from_address="t@example.com", timeout=3
    )
    (tmp_path / "c").mkdir()
    async with rig(tmp_path / "c", smtp=down) as r:
        row_id = await r.outbox.enqueue(
            "p1", "m", "email", "", {"to": "a@example.com", "subject": "s"}
        )
        await r.outbox.run_once()
        assert r.row(row_id or 0)["status"] == "pending"


# -- backoff -------------------------------------------------------------------------------------------


@given(
    base=st.floats(0.01, 1000),
    factor=st.floats(1, 1e6),
    jitter=st.floats(0, 0.99),
    u=st.floats(0, 1, exclude_max=True),
    attempts=st.integers(1, 200),
)
def test_backoff_is_monotone_capped_and_jittered_within_bounds(
    base: float, factor: float, jitter: float, u: float, attempts: int
) -> None:
    config = OutboxConfig(backoff_base=base, backoff_cap=base * factor, jitter=jitter)
    previous_delay, previous_bounds = 0.0, (0.0, 0.0)
    for attempt in range(1, attempts + 1):
        low, high = backoff_bounds(attempt, config)
        delay = backoff_delay(attempt, config, u)
        assert low <= delay <= high <= config.backoff_cap * (1 + 1e-12)
        assert high == pytest.approx(min(config.backoff_cap, base * 2 ** (attempt - 1)))
        assert low == pytest.approx(high * (1 - jitter))
        assert delay >= previous_delay * (1 - 1e-12)  # for one draw, later waits never shorter
        assert low >= previous_bounds[0] and high >= previous_bounds[1]
        previous_delay, previous_bounds = delay, (low, high)
    # the jitter spreads: two draws differ by (high - low) * (u1 - u2)
    low, high = backoff_bounds(attempts, config)
    assert backoff_delay(attempts, config, 0.0) - backoff_delay(
        attempts, config, 0.5
    ) == pytest.approx((high - low) * 0.5, abs=high * 1e-9)


# -- kill -9 with deliveries pending ---------------------------------------------------------------


def _start_worker(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_worker", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "started", line + proc.stdout.read()
    return proc


def _statuses(db: Path) -> Counter[str]:
    conn = sqlite3.connect(db)
    try:
        return Counter(s for (s,) in conn.execute("SELECT status FROM outbox"))
    finally:
        conn.close()


def test_kill_9_with_deliveries_pending_delivers_each_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "tandem.db"
    keys = [f"rule:r1:event{i}:0" for i in range(12)]

    async def enqueue(url: str) -> None:
        async with rig(tmp_path, real_clock=True) as r:
            ref = await r.secrets.put("p1", "webhook", url)
            for i, key in enumerate(keys):
                assert await r.outbox.enqueue("p1", key, "webhook", ref, {"n": i}) is not None

    with receiver() as hook:
        hook.hold_after = 3  # the first three are answered; later ones hang, as if slow
        asyncio.run(enqueue(hook.url()))
        proc = _start_worker(db)
        try:
            deadline = time.monotonic() + 30
            # three answered and recorded; the worker's 8 places filled with messages in
            # flight (received, unanswered)
            while not (_statuses(db)["delivered"] == 3 and len(hook.requests) == 3 + 8):
                assert time.monotonic() < deadline, (_statuses(db), len(hook.requests))
                time.sleep(0.02)
            before = hook.keys()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        statuses = _statuses(db)
        assert statuses["delivered"] == 3 and statuses["sending"] == 8 and statuses["pending"] == 1
        hook.hold_after = None
        hook.release.set()

        proc = _start_worker(db)
        try:
            deadline = time.monotonic() + 30
            while _statuses(db)["delivered"] < len(keys):
                assert time.monotonic() < deadline, _statuses(db)
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        # every key processed exactly once by the receiver, none lost
        assert hook.processed == Counter(dict.fromkeys(keys, 1))
        after = hook.keys()
        answered = {k for k in before if k not in hook.duplicates}
        in_flight = set(before) - answered
        # answered before the kill: never sent again; in flight at the kill: sent once more
        # (same Idempotency-Key, dropped by the receiver); never claimed before: sent once
        assert len(answered) == 3 and all(after[k] == 1 for k in answered)
        assert len(in_flight) == 8 and set(hook.duplicates) == in_flight
        assert all(after[k] == 2 for k in in_flight)
        assert all(after[k] == 1 for k in set(keys) - set(before))


def _self_signed() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts only that certificate."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    directory = Path(tempfile.mkdtemp())
    (directory / "cert.pem").write_bytes(pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


@pytest.mark.anyio
async def test_email_with_starttls_and_login(tmp_path: Path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[bytes, bool]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = data.login == b"tandem" and data.password == b"s3cret-pw"
        logins.append((data.login, session.ssl is not None))
        return AuthResult(success=ok, handled=False)

    server_tls, client_tls = _self_signed()
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        good = SmtpConfig(
            host="127.0.0.1",
            port=port,
            user="tandem",
            password="s3cret-pw",
            security="starttls",
            from_address="tandem@example.com",
            tls_context=client_tls,
            timeout=10,
        )
        with every_log_line() as logs:
            async with rig(tmp_path, smtp=good) as r:
                ok = await r.outbox.enqueue(
                    "p1",
                    "m1",
                    "email",
                    "",
                    {"to": ["ann@example.com"], "subject": "Hi", "text": "x"},
                )
                await r.outbox.run_once()
                assert r.row(ok or 0)["status"] == "delivered"
            (tmp_path / "wrong").mkdir()
            wrong = dataclasses.replace(good, password="wrong-pw")
            async with rig(tmp_path / "wrong", smtp=wrong) as r:
                bad = await r.outbox.enqueue(
                    "p1",
                    "m2",
                    "email",
                    "",
                    {"to": ["ann@example.com"], "subject": "Hi", "text": "x"},
                )
                await r.outbox.run_once()
                row = r.row(bad or 0)
                assert row["status"] == "dead" and row["last_status"] == 535
        assert all("s3cret-pw" not in line and "wrong-pw" not in line for line in logs.lines)
        assert "wrong-pw" not in row["last_error"]
    finally:
        controller.stop()
    ((_, rcpt, message),) = mailbox.messages
    assert rcpt == ["ann@example.com"] and message["Subject"] == "Hi"
    # both logins came over TLS (STARTTLS first); the password never crossed in clear
    # (the client tries each offered mechanism with the wrong password)
    assert len(logins) >= 2 and all(login == (b"tandem", True) for login in logins)


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    segments=st.lists(
        st.text(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            min_size=5,
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    ),
    query=st.text("abcdefghijklmnopqrstuvwxyz0123456789=&", max_size=20),
)
def test_a_masked_url_shows_its_host_and_at_most_four_characters_of_the_rest(
    host: str, segments: list[str], query: str
) -> None:
    url = f"https://{host}/" + "/".join(segments) + (f"?{query}" if query else "")
    shown = mask(url)
    assert shown.startswith(f"https://{host}/…")
    rest = shown[len(f"https://{host}/…") :]
    assert rest in ("", "/" + url[-4:]) and len(rest) <= 5
    for segment in segments:
        assert len(segment) <= 4 or segment not in rest
    assert scrub_all(url) == "…"


def scrub_all(url: str) -> str:
    from integrations.senders import scrub

    return scrub(url, [url])


def test_idempotency_headers_are_plain_ascii() -> None:
    assert idempotency_header("rule:r1:e1:0") == "rule:r1:e1:0"
    odd = idempotency_header("rule:r1:événement\r\n:0")
    assert odd.startswith("sha256-") and odd.isascii() and len(odd) == 7 + 64
    assert odd == idempotency_header("rule:r1:événement\r\n:0")


@pytest.mark.anyio
async def test_the_server_settings_configure_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from sync_server.shell.settings import Settings

    key = Fernet.generate_key().decode()
    for name, value in {
        "TANDEM_SMTP_HOST": "mail.example.com",
        "TANDEM_SMTP_PORT": "465",
        "TANDEM_SMTP_SECURITY": "tls",
        "TANDEM_SMTP_FROM": "tandem@example.com",
        "TANDEM_SMTP_PASSWORD": "pw",
        "TANDEM_OUTBOX_MAX_ATTEMPTS": "3",
        "TANDEM_OUTBOX_BACKOFF_BASE_SECONDS": "2",
        "TANDEM_SECRET_KEY": key,
        "TANDEM_OUTBOUND_ALLOW_PRIVATE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "tandem.db"
    settings = Settings.from_env(db=str(db))
    open_database(db).conn.close()
    worker = SQLiteWorker(connect(db))
    try:
        outbox = Outbox.from_settings(worker, settings)
        assert outbox.config.max_attempts == 3 and outbox.config.backoff_base == 2
        smtp = outbox.senders.smtp
        assert (smtp.host, smtp.port, smtp.security, smtp.password) == (
            "mail.example.com",
            465,
            "tls",
            "pw",
        )
        assert "pw" not in repr(smtp) and outbox.senders.policy.allow_private
        ref = await outbox.secrets.put("p1", "webhook", "https://example.com/hook/secret")
        # encrypted with the configured key, no key file made
        assert (
            Fernet(key.encode()).decrypt(
                worker.conn.execute("SELECT value FROM secrets").fetchone()[0]
            )
            == b"https://example.com/hook/secret"
        )
        assert not key_file_for(db).exists()
        # enqueue_sync: recorded in the caller's transaction, or not at all
        conn = worker.conn
        conn.execute("BEGIN IMMEDIATE")
        outbox.enqueue_sync(conn, "p1", "with-run", "webhook", ref, {})
        conn.execute("ROLLBACK")
        assert await outbox.deliveries("p1") == []
        conn.execute("BEGIN IMMEDIATE")
        assert outbox.enqueue_sync(conn, "p1", "with-run", "webhook", ref, {}) is not None
        assert outbox.enqueue_sync(conn, "p1", "with-run", "webhook", ref, {}) is None
        conn.execute("COMMIT")
        assert [d.key for d in await outbox.deliveries("p1")] == ["with-run"]
        with pytest.raises(ValueError, match="TANDEM_SMTP_SECURITY"):
            Outbox.from_settings(worker, Settings(db=str(db), smtp_security="ssl"))
    finally:
        await worker.close()
