"""Notifications for assignments and @mentions: stored for the app, and sent by Web Push
to a real HTTP receiver on this machine, which decrypts them with the subscription's keys."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rules import Grant, Permission
from sync_server.extensions.notifications import inbox as stored_inbox
from sync_server.identity import access
from sync_server.storage.database import open_database

from .conftest import ServerProcess, make_token, start_server, tandem
from .test_api_v1 import call


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[ServerProcess]:
    # the push receiver below is on 127.0.0.1: the operator's opt-in lets the server call it
    server = start_server(
        tmp_path_factory.mktemp("notify"),
        TANDEM_API_RATE_LIMIT="0",
        TANDEM_OUTBOUND_ALLOW_PRIVATE="true",
    )
    try:
        yield server
    finally:
        server.stop()


def project_with(server, owner: str, **members: str) -> str:
    project = str(uuid.uuid4())  # a chosen id is a UUID
    assert (
        call(server, "POST", "/projects/", owner, json={"id": project, "name": "N"}).status_code
        == 201
    )
    for user, role in members.items():
        server.token(user)
        server.grant(user, project, role)
    time.sleep(1.05)  # permission cache
    return project


def wait_for(fn, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def inbox(server, user: str, unread: bool = False) -> list[dict]:
    return call(server, "GET", f"/me/notifications?unread={int(unread)}", user).json()["items"]


def test_assignment_notifies_the_new_assignee_once(srv) -> None:
    project = project_with(srv, "olive", nia="member", tom="member")
    task = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/",
        "olive",
        json={"title": "Fix login", "assignees": ["nia", "olive"]},
    ).json()["id"]
    got = wait_for(lambda: inbox(srv, "nia"))
    assert [(n["kind"], n["title"], n["body"]) for n in got] == [
        ("assigned", "olive assigned you a task", "Fix login")
    ]
    assert got[0]["url"] == f"/#/p/{project}/task/{task}"
    assert inbox(srv, "olive") == []  # assigning yourself is no news

    call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"assignees": ["nia", "olive"]})
    call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"assignees": ["olive", "nia", "tom"]})
    assert wait_for(lambda: inbox(srv, "tom"))
    time.sleep(0.3)
    assert len(inbox(srv, "nia")) == 1  # not told again for the same assignment
    call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"assignees": ["olive"]})
    call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"assignees": ["olive", "nia"]})
    assert wait_for(lambda: len(inbox(srv, "nia")) == 2)  # removed and added again: told again

    assert call(srv, "GET", "/me/notifications", "nia").json()["unread"] == 2
    first = inbox(srv, "nia")[-1]["id"]
    assert call(srv, "POST", "/me/notifications/read", "nia", json={"ids": [first]}).json() == {
        "marked": 1
    }
    assert [n["id"] for n in inbox(srv, "nia", unread=True)] != [first]
    assert call(srv, "POST", "/me/notifications/read", "nia", json={}).json() == {"marked": 1}
    assert inbox(srv, "nia", unread=True) == []


def test_a_task_assigned_to_someone_who_may_not_read_it_tells_them_nothing(srv) -> None:
    # Any string is a valid assignee in the document (an offline client may assign a member
    # removed meanwhile), so the notice is where read access is judged: an account outside
    # the project, or a member whose role cannot see tasks, must not receive the task's
    # title in their inbox or by push.
    project = project_with(srv, "oda", ron="viewer")
    srv.token("stranger")  # an account of this server, with no grant on the project
    srv.token("blind")
    srv.grant("blind", project, "viewer", removed=["view_tasks"])
    time.sleep(1.05)  # permission cache
    created = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/",
        "oda",
        json={"title": "Secret merger plan", "assignees": ["stranger", "blind", "ron"]},
    )
    assert created.status_code == 201, created.text
    assert [n["body"] for n in wait_for(lambda: inbox(srv, "ron"))] == ["Secret merger plan"]
    task = call(
        srv, "POST", f"/projects/{project}/tasks/", "oda", json={"title": "Layoff list"}
    ).json()["id"]
    patched = call(
        srv, "PATCH", f"/tasks/{task}/", "oda", json={"assignees": ["stranger", "blind", "ron"]}
    )
    assert patched.status_code == 200, patched.text
    assert wait_for(lambda: len(inbox(srv, "ron")) == 2)
    time.sleep(0.3)  # (ron's notices were stored in the same transactions as theirs would be)
    assert inbox(srv, "stranger") == []
    assert inbox(srv, "blind") == []

    # read access is judged when the notice is made, not when the grant was: once blind's
    # role sees tasks again, a new assignment tells them
    srv.grant("blind", project, "viewer")
    time.sleep(1.05)
    call(srv, "PATCH", f"/tasks/{task}/", "oda", json={"assignees": ["ron"]})
    call(srv, "PATCH", f"/tasks/{task}/", "oda", json={"assignees": ["ron", "blind"]})
    assert [n["body"] for n in wait_for(lambda: inbox(srv, "blind"))] == ["Layoff list"]

    # and for as long as the notice is kept: removed from the project, ron no longer reads
    # its task titles in his inbox (nor counts them); given access again, they are back
    def unread(user: str) -> int:
        return call(srv, "GET", "/me/notifications", user).json()["unread"]

    assert unread("ron") == 2
    removed = call(srv, "DELETE", f"/projects/{project}/grants/ron", "oda")
    assert removed.status_code == 204, removed.text
    assert inbox(srv, "ron") == [] and unread("ron") == 0
    srv.grant("ron", project, "viewer", removed=["view_tasks"])  # back, but blind to tasks
    assert inbox(srv, "ron") == [] and unread("ron") == 0
    srv.grant("ron", project, "viewer")
    assert [n["body"] for n in inbox(srv, "ron")] == ["Layoff list", "Secret merger plan"]
    assert unread("ron") == 2


def test_a_notification_id_wider_than_sqlites_integers_is_a_bad_request(srv) -> None:
    # found by schemathesis: it was an OverflowError in SQLite, answered with a 500
    huge = {"ids": [82952529173432720424960]}
    r = call(srv, "POST", "/me/notifications/read", "nia", json=huge)
    assert r.status_code == 422
    assert "ids.0" in r.json()["detail"]


def test_mentions_in_chat_notify_members_only(srv) -> None:
    project = project_with(srv, "pat", quinn="viewer")
    call(
        srv,
        "POST",
        f"/projects/{project}/comments/",
        "pat",
        json={"text": "@quinn and @nobody, see this; mail@quinn.example"},
    )
    got = wait_for(lambda: inbox(srv, "quinn"))
    assert [(n["kind"], n["title"]) for n in got] == [("mention", "pat mentioned you")]
    assert "see this" in got[0]["body"]
    assert inbox(srv, "nobody") == []


class PushReceiver(BaseHTTPRequestHandler):
    """A push service endpoint: records what it receives; answers with a chosen status."""

    received: list[dict] = []
    status = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).received.append({"headers": headers, "body": body})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_web_push_is_encrypted_for_the_subscription_and_signed_with_the_server_key(srv) -> None:
    receiver = HTTPServer(("127.0.0.1", 0), PushReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    PushReceiver.received, PushReceiver.status = [], 201
    try:
        project = project_with(srv, "rita", sam="member")
        browser_key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        public = browser_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        endpoint = f"http://127.0.0.1:{receiver.server_port}/push/sam-phone"
        bad = call(
            srv,
            "POST",
            "/me/push-subscriptions",
            "sam",
            json={"endpoint": "ftp://x", "keys": {"p256dh": b64(public), "auth": b64(auth)}},
        )
        assert bad.status_code == 422
        r = call(
            srv,
            "POST",
            "/me/push-subscriptions",
            "sam",
            json={"endpoint": endpoint, "keys": {"p256dh": b64(public), "auth": b64(auth)}},
        )
        assert r.status_code == 204

        call(
            srv,
            "POST",
            f"/projects/{project}/tasks/",
            "rita",
            json={"title": "Ship it", "assignees": ["sam"]},
        )
        assert wait_for(lambda: PushReceiver.received, timeout=10)
        push = PushReceiver.received[0]
        assert push["headers"]["content-encoding"] == "aes128gcm"
        payload = json.loads(
            http_ece.decrypt(
                push["body"], private_key=browser_key, auth_secret=auth, version="aes128gcm"
            )
        )
        assert payload["title"] == "rita assigned you a task" and payload["body"] == "Ship it"

        # the VAPID header is a JWT signed by the key the server publishes at /push/key
        scheme, _, params = push["headers"]["authorization"].partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        assert scheme == "vapid"
        published = call(srv, "GET", "/push/key", "sam").json()["public_key"]
        assert fields["k"] == published
        header, claims, signature = fields["t"].split(".")
        server_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(published))
        raw = unb64(signature)
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        server_key.verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
            f"{header}.{claims}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
        assert json.loads(unb64(claims))["aud"] == f"http://127.0.0.1:{receiver.server_port}"

        # a push service that says the subscription is gone: it is dropped
        PushReceiver.status = 410
        call(
            srv,
            "POST",
            f"/projects/{project}/tasks/",
            "rita",
            json={"title": "Again", "assignees": ["sam"]},
        )
        assert wait_for(lambda: len(PushReceiver.received) == 2, timeout=10)
        time.sleep(0.3)
        gone = call(srv, "DELETE", "/me/push-subscriptions", "sam", json={"endpoint": endpoint})
        assert gone.status_code == 404
        assert len(inbox(srv, "sam")) == 2  # the in-app copies stay
    finally:
        receiver.shutdown()


def test_a_browser_is_pushed_to_only_while_the_login_that_registered_it_lasts(srv) -> None:
    """A phone shared or handed on: once its user logs out (or the token that registered the
    browser is revoked), it is pushed nothing more of theirs; logging in again there and
    registering it anew binds it to the new login."""
    receiver = HTTPServer(("127.0.0.1", 0), PushReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    PushReceiver.received, PushReceiver.status = [], 201
    try:
        tandem("user", "create", "walt", "--password-stdin", db=srv.db, stdin="a long passphrase\n")
        project = project_with(srv, "vera", walt="member")

        def login() -> str:
            r = httpx.post(
                f"{srv.http_url}/api/v1/login",
                json={"username": "walt", "password": "a long passphrase"},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            return r.json()["token"]

        def as_walt(method: str, path: str, token: str, **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.request(
                method, f"{srv.http_url}/api/v1{path}", headers=headers, timeout=10, **kw
            )

        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        public = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        endpoint = f"http://127.0.0.1:{receiver.server_port}/push/walt-phone"
        subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64(public), "auth": b64(b"x" * 16)},
        }

        def assign(title: str) -> None:
            body = {"title": title, "assignees": ["walt"]}
            assert call(srv, "POST", f"/projects/{project}/tasks/", "vera", json=body).is_success
            wait_for(lambda: any(n["body"] == title for n in inbox(srv, "walt")))
            time.sleep(0.5)  # (a push would be on its way by now)

        first = login()
        assert (
            as_walt("POST", "/me/push-subscriptions", first, json=subscription).status_code == 204
        )
        assign("One")
        assert len(PushReceiver.received) == 1
        assert as_walt("POST", "/logout", first).status_code == 204
        assign("Two")
        assert len(PushReceiver.received) == 1  # logged out: nothing more to that phone

        second = login()  # the app registers the browser again after a login
        assert (
            as_walt("POST", "/me/push-subscriptions", second, json=subscription).status_code == 204
        )
        assign("Three")
        assert len(PushReceiver.received) == 2

        token = make_token(srv.db, "walt")  # an API token registers the browser, then is revoked
        assert (
            as_walt("POST", "/me/push-subscriptions", token, json=subscription).status_code == 204
        )
        newest = max(t["id"] for t in as_walt("GET", "/me/tokens", token).json()["tokens"])
        assert as_walt("DELETE", f"/me/tokens/{newest}", second).status_code == 204
        assert as_walt("GET", "/me/tokens", token).status_code == 401
        assign("Four")
        assert len(PushReceiver.received) == 2
        assert [n["body"] for n in inbox(srv, "walt")][:4] == ["Four", "Three", "Two", "One"]
    finally:
        receiver.shutdown()


def test_notifications_stored_before_their_read_was_recorded_are_judged_by_what_they_link(
    tmp_path,
) -> None:
    """Rows from before migration 24 carry no read: a link to a task makes one a task
    notice, a mention elsewhere a chat notice, anything else a project notice."""
    conn = open_database(tmp_path / "tandem.db").conn
    rows = [
        ("assigned", "/#/p/p1/task/t1", "Task title"),
        ("mention", "/#/p/p1/chat", "Chat text"),
        ("automation", "/#/p/p1", "Project news"),
    ]
    with conn:
        for kind, url, body in rows:
            conn.execute(
                "INSERT INTO notifications (user, project, kind, title, body, url, created_at)"
                " VALUES ('ann', 'p1', ?, 't', ?, ?, 0)",
                (kind, body, url),
            )
    blind = Grant("ann", "p1", "viewer", removed=frozenset({Permission.VIEW_TASKS}))
    access.set_grant(conn, blind, "t")
    items, unread = stored_inbox(conn, "ann")
    assert [n["body"] for n in items] == ["Project news", "Chat text"]
    assert unread == 2
    access.set_grant(conn, Grant("ann", "p1", "viewer"), "t")
    items, unread = stored_inbox(conn, "ann")
    assert len(items) == 3 and unread == 3
    conn.close()
