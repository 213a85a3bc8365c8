"""OAuth2 connections end to end: a real `tandem serve` against a real authorization server
(authlib's, in a local stand-in of Google built from the Drive and OAuth2 references):
connect (authorization code with PKCE), refresh on expiry, revoke; the token is never in
the SQLite file, an answer or the log as plain text. Then files: search and attach."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import ServerProcess, free_port, start_server
from .providers import files
from .providers.base import CLIENT_ID, CLIENT_SECRET
from .test_api_v1 import call, new_project

CALLBACK = "/api/v1/connections/callback/"


@pytest.fixture(scope="module")
def google() -> Iterator[files.FilesStandIn]:
    stand_in = files.google().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def dropbox() -> Iterator[files.FilesStandIn]:
    stand_in = files.dropbox().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def microsoft() -> Iterator[files.FilesStandIn]:
    stand_in = files.microsoft().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, google, dropbox, microsoft) -> Iterator[ServerProcess]:
    env = {
        "TANDEM_API_RATE_LIMIT": "0",
        "TANDEM_OUTBOUND_ALLOW_PRIVATE": "true",  # the stand-ins are on 127.0.0.1
        "TANDEM_TIME_IMPORT_INTERVAL_SECONDS": "0",
    }
    for name, stand_in in (("GOOGLE", google), ("DROPBOX", dropbox), ("MICROSOFT", microsoft)):
        env[f"TANDEM_PROVIDER_{name}_URL"] = stand_in.url
        env[f"TANDEM_PROVIDER_{name}_CLIENT_ID"] = CLIENT_ID
        env[f"TANDEM_PROVIDER_{name}_CLIENT_SECRET"] = CLIENT_SECRET
    server = start_server(tmp_path_factory.mktemp("connections"), **env)
    try:
        yield server
    finally:
        server.stop()


def connect(srv: ServerProcess, project: str, provider: str, user: str = "owner") -> dict:
    """Start, follow the authorize URL as a browser would (the stand-in approves at once),
    land on Tandem's callback; returns the connection as the list shows it."""
    r = call(srv, "POST", f"/projects/{project}/connections/", user, json={"provider": provider})
    assert r.status_code == 201, r.text
    authorize = r.json()["authorize_url"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    assert query["state"] == [r.json()["state"]]
    assert query["redirect_uri"] == [srv.http_url + CALLBACK]
    approved = httpx.get(authorize, follow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    back = approved.headers["location"]
    assert back.startswith(srv.http_url + CALLBACK)
    landed = httpx.get(back, timeout=15)
    assert landed.status_code == 200, landed.text
    assert "is connected" in landed.text
    listed = call(srv, "GET", f"/projects/{project}/connections/", user).json()["connections"]
    return [c for c in listed if c["provider"] == provider][-1]


def stored_bytes(db: Path) -> bytes:
    """Every byte SQLite keeps for the database: the file and its write-ahead log."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


def test_connect_refresh_revoke_and_the_token_is_never_plain_text(srv, google):
    project = new_project(srv)
    grants_before = len(google.oauth.grants)
    connection = connect(srv, project, "google")
    assert connection["status"] == "active"
    assert connection["created_by"] == "owner"
    assert google.oauth.grants[grants_before:] == ["authorization_code"]
    token = google.oauth.tokens[-1]
    assert token.refresh_token
    # PKCE: the stand-in got a challenge, and authlib's server checked the verifier
    # against it (CodeChallenge(required=True)) before issuing the token
    assert google.oauth.challenges[-1]

    # the token is not in the file (nor its WAL), nor in any answer, nor in the log
    raw = stored_bytes(srv.db)
    for secret in (token.access_token, token.refresh_token):
        assert secret.encode() not in raw
        assert secret not in srv.log()
    listing = call(srv, "GET", f"/projects/{project}/connections/").text
    assert token.access_token not in listing
    with sqlite3.connect(srv.db) as db:
        kinds = db.execute("SELECT kind FROM secrets WHERE project = ?", (project,)).fetchall()
        assert kinds == [("oauth_token",)]  # the PKCE verifier was used once and forgotten
        assert db.execute("SELECT count(*) FROM oauth_states").fetchone()[0] == 0

    # a valid token is used as it is
    r = call(srv, "GET", f"/projects/{project}/connections/{connection['id']}/files/?q=budget")
    assert r.status_code == 200, r.text
    assert [f["name"] for f in r.json()["files"]] == ["Budget 2027.xlsx"]  # no folder
    assert google.oauth.grants[grants_before:] == ["authorization_code"]

    # expiry: the provider's clock moves past the token's life; Tandem refreshes and retries
    for t in google.oauth.tokens:
        t.issued_at -= 7200
    r = call(srv, "GET", f"/projects/{project}/connections/{connection['id']}/files/?q=design")
    assert r.status_code == 200, r.text
    assert [f["name"] for f in r.json()["files"]] == ["Design review.pdf"]
    assert google.oauth.grants[grants_before:] == ["authorization_code", "refresh_token"]
    refreshed = google.oauth.tokens[-1]
    assert refreshed.access_token != token.access_token
    assert token.revoked  # the old refresh token was rotated away
    raw = stored_bytes(srv.db)
    assert refreshed.access_token.encode() not in raw
    assert refreshed.refresh_token.encode() not in raw
    assert refreshed.access_token not in srv.log()

    # revoke: the provider is told (RFC 7009, the refresh token), Tandem forgets the token
    r = call(srv, "DELETE", f"/projects/{project}/connections/{connection['id']}/")
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": True, "revoked": True}
    assert google.oauth.revoked[-1] == "refresh_token"
    assert refreshed.revoked
    gone = httpx.get(
        f"{google.url}/drive/v3/files?q=name contains 'x'",
        headers={"Authorization": f"Bearer {refreshed.access_token}"},
    )
    assert gone.status_code == 401
    assert call(srv, "GET", f"/projects/{project}/connections/").json() == {"connections": []}
    with sqlite3.connect(srv.db) as db:
        assert (
            db.execute("SELECT count(*) FROM secrets WHERE project = ?", (project,)).fetchone()[0]
            == 0
        )


def test_a_token_about_to_expire_is_refreshed_before_it_is_used(srv, google):
    project = new_project(srv)
    google.oauth.lifetime = 10  # within the client's leeway (30 s): expired for Tandem
    try:
        connection = connect(srv, project, "google")
    finally:
        google.oauth.lifetime = 3600
    first = len(google.requests)
    r = call(srv, "GET", f"/projects/{project}/connections/{connection['id']}/files/?q=budget")
    assert r.status_code == 200, r.text
    # refreshed first, then one API call with the new token: no 401 on the way
    assert google.requests[first:] == [("POST", "/token"), ("GET", "/drive/v3/files")]


def test_the_callback_checks_the_state(srv, google):
    project = new_project(srv)
    r = call(srv, "POST", f"/projects/{project}/connections/", json={"provider": "google"})
    authorize = r.json()["authorize_url"]
    back = httpx.get(authorize, follow_redirects=False).headers["location"]
    query = parse_qs(urlsplit(back).query)
    forged = httpx.get(f"{srv.http_url}{CALLBACK}?code={query['code'][0]}&state=forged")
    assert forged.status_code == 400
    assert forged.headers["content-type"] == "application/problem+json"
    assert "state" in forged.json()["detail"]
    assert httpx.get(back).status_code == 200
    replay = httpx.get(back)  # the state is good once
    assert replay.status_code == 400
    refused = httpx.get(f"{srv.http_url}{CALLBACK}?error=access_denied&state=x")
    assert refused.status_code == 400
    assert "access_denied" in refused.json()["detail"]
    listed = call(srv, "GET", f"/projects/{project}/connections/").json()["connections"]
    assert len(listed) == 1


def test_connections_need_manage_team(srv):
    project = new_project(srv)
    srv.token("mia")
    srv.grant("mia", project, "member")
    time.sleep(1.05)  # the permission cache
    r = call(srv, "POST", f"/projects/{project}/connections/", "mia", json={"provider": "google"})
    assert r.status_code == 403
    assert r.json()["permission"] == "manage_team"
    assert call(srv, "GET", f"/projects/{project}/connections/", "mia").status_code == 403
    bad = call(srv, "POST", f"/projects/{project}/connections/", json={"provider": "myspace"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "provider"
    token_for_oauth = call(
        srv,
        "POST",
        f"/projects/{project}/connections/",
        json={"provider": "google", "api_token": "x"},
    )
    assert token_for_oauth.status_code == 422
    assert token_for_oauth.json()["field"] == "api_token"


def task_in(srv: ServerProcess, project: str, title: str = "Spec") -> str:
    r = call(srv, "POST", f"/projects/{project}/tasks/", json={"title": title})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(
    ("provider", "file_id", "link"),
    [
        ("google", "1QrStUvWxYz012345", "https://drive.google.com/file/d/1QrStUvWxYz012345/view"),
        ("dropbox", "id:1QrStUvWxYz012345", "https://www.dropbox.com/home/Projects/Design"),
        ("microsoft", "1QrStUvWxYz012345", "https://contoso-my.sharepoint.com/personal/ada/"),
    ],
)
def test_attach_a_file_to_a_task(srv, provider, file_id, link):
    project = new_project(srv)
    connection = connect(srv, project, provider)
    found = call(srv, "GET", f"/projects/{project}/connections/{connection['id']}/files/?q=review")
    assert found.status_code == 200, found.text
    (picked,) = found.json()["files"]
    assert picked["file_id"] == file_id
    task = task_in(srv, project)
    r = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/{task}/attachments/",
        json={"connection": connection["id"], "file_id": picked["file_id"]},
    )
    assert r.status_code == 201, r.text
    again = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/{task}/attachments/",
        json={"connection": connection["id"], "file_id": picked["file_id"]},
    )
    assert again.status_code == 200  # attached once
    shown = call(srv, "GET", f"/tasks/{task}/").json()
    (attachment,) = shown["attachments"]
    assert attachment["provider"] == provider
    assert attachment["name"] == "Design review.pdf"
    assert attachment["size"] == 1048576
    assert attachment["link"].startswith(link)
    assert attachment["added_by"] == "owner"


def test_attaching_checks_the_file_and_the_user(srv):
    project = new_project(srv)
    connection = connect(srv, project, "google")
    task = task_in(srv, project)
    base = f"/projects/{project}/tasks/{task}/attachments/"
    missing = call(srv, "POST", base, json={"connection": connection["id"], "file_id": "nope"})
    assert missing.status_code == 404
    folder = call(
        srv, "POST", base, json={"connection": connection["id"], "file_id": "1FolderIdFolderId"}
    )
    assert folder.status_code == 422
    assert "folder" in folder.json()["detail"]
    no_task = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/nosuchtask/attachments/",
        json={"connection": connection["id"], "file_id": "1QrStUvWxYz012345"},
    )
    assert no_task.status_code == 404
    srv.token("vic")
    srv.grant("vic", project, "viewer")
    time.sleep(1.05)
    viewer = call(
        srv,
        "POST",
        base,
        "vic",
        json={"connection": connection["id"], "file_id": "1QrStUvWxYz012345"},
    )
    assert viewer.status_code == 403
    sources = call(srv, "GET", f"/projects/{project}/file-sources/").json()["sources"]
    assert sources == [
        {"id": connection["id"], "provider": "google", "title": "Google Drive", "account": ""}
    ]
    assert call(srv, "GET", f"/projects/{project}/file-sources/", "vic").status_code == 403
    extra = call(srv, "POST", base, json={"connection": connection["id"], "file_id": "x", "y": 1})
    assert extra.status_code == 422
    assert call(srv, "GET", f"/tasks/{task}/").json().get("attachments") in (None, [])


def test_dropbox_revokes_with_its_own_endpoint_and_microsoft_cannot(srv, dropbox, microsoft):
    project = new_project(srv)
    box = connect(srv, project, "dropbox")
    token = dropbox.oauth.tokens[-1]
    r = call(srv, "DELETE", f"/projects/{project}/connections/{box['id']}/")
    assert r.json() == {"deleted": True, "revoked": True}
    assert token.revoked and dropbox.oauth.revoked[-1] == "access_token"
    one = connect(srv, project, "microsoft")
    r = call(srv, "DELETE", f"/projects/{project}/connections/{one['id']}/")
    # the Microsoft identity platform has no revocation endpoint: forgotten here only
    assert r.json() == {"deleted": True, "revoked": False}
    assert call(srv, "GET", f"/projects/{project}/connections/").json() == {"connections": []}


def test_return_to_and_config_are_checked(srv):
    project = new_project(srv)
    base = f"/projects/{project}/connections/"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        r = call(srv, "POST", base, json={"provider": "google", "return_to": bad})
        assert r.status_code == 422, bad
        assert r.json()["field"] == "return_to"
    r = call(srv, "POST", base, json={"provider": "google", "config": {"workspace_id": "../x"}})
    assert r.status_code == 422
    r = call(srv, "POST", base, json={"provider": "google", "config": {"token": "x"}})
    assert r.status_code == 422
    # the authorization code and state never reach the log
    connection = connect(srv, project, "google")
    assert "code=" not in srv.log()
    patched = call(
        srv, "PATCH", f"{base}{connection['id']}/", json={"config": {"auto_import": False}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {"auto_import": False}


def test_a_malformed_provider_setting_stops_the_start_saying_why(tmp_path):
    with pytest.raises(AssertionError) as failed:
        start_server(tmp_path, TANDEM_PROVIDERS='{"google": ')
    assert "TANDEM_PROVIDERS is not JSON" in str(failed.value)


def test_two_processes_refreshing_one_token_at_once_refresh_it_once(srv, google, tmp_path):
    """Two `tandem serve` processes on one database search one connection's files at the
    same moment with a token about to expire. Google rotates refresh tokens (a second
    refresh with the old one fails), so exactly one process refreshes (the stand-in's token
    endpoint sees one call, slowed so that the other process arrives meanwhile) and both
    search with the new token."""
    project = new_project(srv)
    google.oauth.lifetime = 10  # within the leeway (30 s): every process will refresh first
    try:
        connection = connect(srv, project, "google")
    finally:
        google.oauth.lifetime = 3600
    other = ServerProcess(db=srv.db, port=free_port(), env=srv.env, log_path=tmp_path / "other.log")
    other.start()
    try:
        grants = len(google.oauth.grants)
        bearers = len(google.bearers)
        url = f"/projects/{project}/connections/{connection['id']}/files/?q=budget"
        for server in (srv, other):
            server.token("owner")  # made before the race (a CLI run each)
        start = threading.Barrier(2)
        answers: dict[int, httpx.Response] = {}

        def search(server: ServerProcess) -> None:
            start.wait()
            answers[server.port] = call(server, "GET", url)

        google.oauth.token_delay = 1.0
        try:
            threads = [threading.Thread(target=search, args=(s,)) for s in (srv, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        finally:
            google.oauth.token_delay = 0.0
        for answer in answers.values():
            assert answer.status_code == 200, answer.text
            assert [f["name"] for f in answer.json()["files"]] == ["Budget 2027.xlsx"]
        assert len(answers) == 2
        assert google.oauth.grants[grants:] == ["refresh_token"]  # one refresh, not two
        fresh = google.oauth.tokens[-1].access_token
        assert google.bearers[bearers:] == [("/drive/v3/files", fresh)] * 2
        with sqlite3.connect(srv.db) as db:  # the claim was let go
            claim = db.execute(
                "SELECT refresh_holder, refresh_until FROM connections WHERE id = ?",
                (connection["id"],),
            ).fetchone()
            assert claim == (None, None)
    finally:
        other.stop()
