"""The server never calls internal addresses on a user's behalf (the outbound guard).

Every request in these tests goes to 127.0.0.1 or nowhere: public addresses appear
only in checks that never connect (a resolver stands in for DNS).
"""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from integrations.outbound import (
    GuardedSession,
    OutboundPolicy,
    OutboundRefused,
    check_url,
    is_public,
    post,
)

from .test_api_v1 import call
from .test_notifications import b64, wait_for

PUSHY = "5d8e2b17-0c4a-4f96-a3e1-92b7c6d05f84"  # a chosen project id is a UUID

STRICT = OutboundPolicy()
LOCAL_OK = OutboundPolicy(allow_private=True)


class Recorder(BaseHTTPRequestHandler):
    """A local HTTP server that records every request; answers with ``status`` and
    ``location``."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append(  # type: ignore[attr-defined]
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        if self.server.location:  # type: ignore[attr-defined]
            self.send_header("Location", self.server.location)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args) -> None:
        pass


class RecordingServer(HTTPServer):
    received: list[dict[str, Any]]
    status: int
    location: str


@contextmanager
def recorder(status: int = 201, location: str = "") -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), Recorder)
    server.received = []
    server.status = status
    server.location = location
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- which addresses are public ---------------------------------------------------------

REFUSED = [
    "127.0.0.1",
    "127.5.6.7",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # AWS / GCP / Azure metadata
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # Alibaba Cloud metadata
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def resolver(table: dict[str, list[str]]):
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError("no such host")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_urls_are_judged_after_resolution() -> None:
    dns = resolver(
        {
            "push.example": ["8.8.8.8"],
            "sneaky.example": ["127.0.0.1"],
            "mixed.example": ["8.8.8.8", "10.0.0.1"],
            "metadata.google.internal": ["169.254.169.254"],
        }
    )
    assert str(check_url("https://push.example/x", STRICT, dns).address) == "8.8.8.8"
    for url, fragment in [
        ("http://push.example/x", "https"),
        ("ftp://push.example/x", "https"),
        ("https://sneaky.example/x", "not public"),
        ("https://mixed.example/x", "10.0.0.1"),
        ("https://metadata.google.internal/computeMetadata/v1/", "169.254.169.254"),
        ("https://127.0.0.1:8443/x", "not public"),
        ("https://[::1]/x", "not public"),
        ("https://user:pw@push.example/x", "password"),
        ("https://nowhere.example/x", "does not resolve"),
        ("https:///x", "no host"),
    ]:
        with pytest.raises(OutboundRefused, match=fragment):
            check_url(url, STRICT, dns)


# -- a real local server that must never be called -------------------------------------


def test_the_guard_connects_to_the_address_it_checked_and_resolves_once() -> None:
    with recorder() as local:
        port = local.server_port
        dns = resolver({"push.example": ["127.0.0.1"]})
        response = post(
            f"http://push.example:{port}/hello",
            content=b"hi",
            headers={"Host": "evil.example"},
            policy=LOCAL_OK,
            resolve=dns,
        )
        assert response.status_code == 201
        assert dns.calls == ["push.example"]  # type: ignore[attr-defined]
        (request,) = local.received
        assert request["headers"]["Host"] == f"push.example:{port}"  # never the caller's
        assert request["path"] == "/hello" and request["body"] == b"hi"


def test_redirects_are_never_followed() -> None:
    with recorder() as inside, recorder(307, "") as outside:
        outside.location = f"http://127.0.0.1:{inside.server_port}/admin"  # type: ignore[attr-defined]
        response = GuardedSession(LOCAL_OK).post(
            f"http://127.0.0.1:{outside.server_port}/push", data=b"x", headers={}, timeout=10
        )
        assert response.status_code == 307
        assert len(outside.received) == 1
        assert inside.received == []


def test_a_local_server_is_refused_without_the_operators_opt_in() -> None:
    with recorder() as local:
        for url in (
            f"http://127.0.0.1:{local.server_port}/x",
            f"https://127.0.0.1:{local.server_port}/x",
            f"https://localhost:{local.server_port}/x",
        ):
            with pytest.raises(OutboundRefused):
                post(url, content=b"x", headers={}, policy=STRICT)
        assert local.received == []


def _keys() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"p256dh": b64(public), "auth": b64(b"0123456789abcdef")}


def test_push_subscriptions_and_pushes_never_reach_internal_addresses(server) -> None:
    with recorder() as local:
        port = local.server_port
        for endpoint in (
            f"http://127.0.0.1:{port}/push/x",
            f"https://127.0.0.1:{port}/push/x",
            f"https://localhost:{port}/push/x",
            f"https://[::ffff:127.0.0.1]:{port}/push/x",
        ):
            r = call(
                server,
                "POST",
                "/me/push-subscriptions",
                "sam",
                json={"endpoint": endpoint, "keys": _keys()},
            )
            assert r.status_code == 422, r.text
            detail = r.json()["detail"]
            assert r.json()["field"] == "endpoint"
            assert "not public" in detail or "only calls https://" in detail, detail

        # a subscription stored before the guard existed (or DNS that changed since): the
        # push itself is refused too
        endpoint = f"http://127.0.0.1:{port}/push/old"
        keys = _keys()
        with sqlite3.connect(server.db) as db:
            db.execute(
                "INSERT INTO push_subscriptions (endpoint, user, p256dh, auth, created_at)"
                " VALUES (?, 'sam', ?, ?, ?)",
                (endpoint, keys["p256dh"], keys["auth"], time.time()),
            )
        made = call(server, "POST", "/projects/", "rita", json={"id": PUSHY, "name": "P"})
        assert made.status_code == 201
        server.grant("sam", PUSHY, "member")  # (only someone who may read the task is told)
        task = call(
            server,
            "POST",
            f"/projects/{PUSHY}/tasks/",
            "rita",
            json={"title": "Ship it", "assignees": ["sam"]},
        )
        assert task.status_code == 201
        assert wait_for(lambda: "refused by the outbound guard" in server.log(), timeout=10)
        assert local.received == []
        inbox = call(server, "GET", "/me/notifications", "sam").json()["items"]
        assert inbox and inbox[0]["body"] == "Ship it"  # the in-app copy is there
