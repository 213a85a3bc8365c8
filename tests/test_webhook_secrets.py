"""Inbound webhook secrets at rest and the intake's body limit, against a real `tandem serve`.

- Secrets are encrypted in the ``secrets`` table (migration 21 moves a file's plain-text
  ones there): the SQLite file holds no secret in plain text, and signatures made with the
  secret still check after the migration and after a key rotation.
- The intake takes deliveries of up to 25 MB (GitHub's limit) while every other route keeps
  1 MB; above 25 MB it answers 413 problem details while the upload is still under way.
"""

from __future__ import annotations

import hmac
import json
import os
import select
import socket
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from integrations.vcs import sign_github, signatures
from sync_server.storage import database

from .conftest import ServerProcess, free_port, start_server, tandem
from .conftest import api_client as api
from .conftest import wait_until as wait_for
from .test_webhooks import Project, github_push, needs_node, post_github

PLAIN = "an-old-plain-text-secret-" + "q" * 24  # as migration 16's rows held them


def file_bytes(db: Path) -> bytes:
    """Everything SQLite keeps of the database on disk (the file, its WAL and journal)."""
    data = b""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")):
        if path.exists():
            data += path.read_bytes()
    return data


def old_database(db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file at schema version 19 with one GitHub endpoint whose secret is plain text."""
    with monkeypatch.context() as m:
        m.setattr(database, "MIGRATIONS", database.MIGRATIONS[:19])
        conn = database.connect(db)
        assert database.migrate(conn) == 19
    endpoint = "0123456789abcdef"
    conn.execute(
        "INSERT INTO webhook_endpoints (id, provider, project, secret, identity, created_by,"
        " created_at) VALUES (?, 'github', 'p1', ?, ?, 'admin', ?)",
        (endpoint, PLAIN, f"integration:github-{endpoint}", time.time()),
    )
    conn.close()
    assert PLAIN.encode() in file_bytes(db)
    return f"/api/v1/webhooks/github/{endpoint}/"


def test_migration_21_encrypts_stored_secrets_and_signatures_still_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tandem.db"
    path = old_database(db, monkeypatch)
    server = ServerProcess(
        db=db, port=free_port(), env=dict(os.environ), log_path=tmp_path / "server.log"
    )
    server.start()  # migration 21 runs here
    try:
        body = {"zen": "Keep it logically awesome."}
        accepted = post_github(server, path, PLAIN, "ping", body)
        assert accepted.status_code == 202, accepted.text
        forged = post_github(server, path, "not-the-secret-" + "x" * 30, "ping", body)
        assert forged.status_code == 401, forged.text
        assert forged.headers["content-type"].startswith("application/problem+json")
    finally:
        server.stop()

    assert PLAIN.encode() not in file_bytes(db)  # not even in freed pages
    conn = sqlite3.connect(db)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(webhook_endpoints)")]
        assert "secret" not in columns and "secret_ref" in columns
        [(ref,)] = conn.execute("SELECT secret_ref FROM webhook_endpoints").fetchall()
        kind, value = conn.execute(
            "SELECT kind, value FROM secrets WHERE id = ?", (ref.removeprefix("secret:"),)
        ).fetchone()
        assert kind == "webhook" and PLAIN.encode() not in bytes(value)
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 21
    finally:
        conn.close()
    key = (tmp_path / "tandem.db.key").read_text().strip()
    assert Fernet(key.encode()).decrypt(bytes(value)).decode() == PLAIN


def test_new_endpoints_secrets_never_reach_the_file_in_plain_text(server) -> None:
    with api(server) as client:
        project = client.post("/projects/", json={"name": "Tandem"}).json()["id"]
        secrets = []
        for provider in ("github", "gitlab", "bitbucket"):
            made = client.post(f"/projects/{project}/webhooks/", json={"provider": provider})
            assert made.status_code == 201, made.text
            secrets.append((made.json()["path"], made.json()["secret"]))
        cli = tandem("webhook", "create", "github", "--project", project, db=server.db)
        cli_path, cli_secret = cli.strip().splitlines()[-2:]
        secrets.append((cli_path, cli_secret))
    github_paths = [(p, s) for p, s in secrets if "/github/" in p]
    for path, secret in github_paths:
        assert post_github(server, path, secret, "ping", {"zen": "x"}).status_code == 202
    data = file_bytes(server.db)
    for _, secret in secrets:
        assert secret.encode() not in data
    server.stop()
    data = file_bytes(server.db)
    for _, secret in secrets:
        assert secret.encode() not in data


def test_the_check_stays_constant_time_on_the_decrypted_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every provider's check ends in ``hmac.compare_digest`` (a comparison whose time does
    not depend on where the values differ), given the secret the store decrypted."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module signatures calls it in
    body = b'{"a": 1}'
    good = sign_github(PLAIN, body)
    assert signatures.verify("github", PLAIN, {"X-Hub-Signature-256": good}, body)
    assert not signatures.verify(
        "github",
        PLAIN,
        {"X-Hub-Signature-256": good[:-1] + ("1" if good[-1] == "0" else "0")},
        body,
    )
    assert signatures.verify("bitbucket", PLAIN, {"X-Hub-Signature": good}, body)
    assert signatures.verify("gitlab", PLAIN, {"X-Gitlab-Token": PLAIN}, body)
    assert not signatures.verify("gitlab", PLAIN, {"X-Gitlab-Token": PLAIN + "x"}, body)
    assert len(compared) == 5


def test_a_key_rotation_writes_every_secret_again_with_the_new_key(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    server = start_server(tmp_path, TANDEM_SECRET_KEY=old)
    try:
        with api(server) as client:
            project = client.post("/projects/", json={"name": "Tandem"}).json()["id"]
            made = client.post(f"/projects/{project}/webhooks/", json={"provider": "github"})
            path, secret = made.json()["path"], made.json()["secret"]
        body = {"zen": "rotate"}
        assert post_github(server, path, secret, "ping", body).status_code == 202
        server.stop()

        server.env["TANDEM_SECRET_KEY"] = new  # the old key dropped too early
        server.start()
        unreadable = post_github(server, path, secret, "ping", body)
        assert unreadable.status_code == 503, unreadable.text
        assert "decrypt" in unreadable.json()["detail"]
        server.stop()

        out = _cli_with_key(server.db, f"{new},{old}", "secrets", "rotate")
        assert "encrypted again" in out
        server.env["TANDEM_SECRET_KEY"] = new  # now only the new key
        server.start()
        assert post_github(server, path, secret, "ping", body).status_code == 202
        assert post_github(server, path, "x" * 43, "ping", body).status_code == 401
    finally:
        server.stop()
    # a secret made with a key not configured stops the rotation, changing nothing
    bad = _cli_with_key(server.db, Fernet.generate_key().decode(), "secrets", "rotate", ok=False)
    assert "cannot be decrypted" in bad and "nothing was changed" in bad


def _cli_with_key(db: Path, key: str, *args: str, ok: bool = True) -> str:
    import subprocess

    from .conftest import TANDEM

    env = {**os.environ, "TANDEM_SECRET_KEY": key}
    done = subprocess.run(
        [*TANDEM, *args, "--db", str(db)], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done.stdout + done.stderr


# -- the intake's body limit ----------------------------------------------------------------


@needs_node
def test_a_signed_push_over_1_mb_is_accepted_by_the_intake_alone(server) -> None:
    project = Project(server, ["Login bug"])
    try:
        path, secret = project.endpoint("github")
        push = github_push("fixes TDM-1")
        push["commits"][0]["padding"] = "x" * (3 * 1024 * 1024)  # a large push: 3 MB
        response = post_github(server, path, secret, "push", push)
        assert response.status_code == 202, response.text
        wait_for(lambda: project.by_key("TDM-1")["status"] == "done", what="TDM-1 done")
        # every other route keeps its 1 MB limit
        big = project.client.post(
            f"/projects/{project.id}/tasks/", json={"title": "t", "description": "x" * 2**21}
        )
        assert big.status_code == 413, big.text
    finally:
        project.client.close()


def _raw_post(port: int, path: str, headers: dict[str, str]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    sock.settimeout(30)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length])


def test_a_delivery_over_25_mb_gets_413_while_it_is_still_being_sent(server) -> None:
    with api(server) as client:
        project = client.post("/projects/", json={"name": "Tandem"}).json()["id"]
        made = client.post(f"/projects/{project}/webhooks/", json={"provider": "github"})
        path = made.json()["path"]
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + "0" * 64,
    }

    # declared too large: refused before a byte of the body is sent
    sock = _raw_post(server.port, path, {**headers, "Content-Length": str(30 * 2**20)})
    try:
        status, problem = _read_response(sock)
    finally:
        sock.close()
    assert status == 413 and "26214400 bytes" in problem["detail"], problem

    # streamed (chunked, no length given): answered once 25 MB have passed, long before the
    # 200 MB the client means to send
    total = 200 * 2**20
    chunk = b"x" * (256 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sock = _raw_post(server.port, path, {**headers, "Transfer-Encoding": "chunked"})
    sent = 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came while we were still sending
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, problem = _read_response(sock)
    finally:
        sock.close()
    assert status == 413, problem
    assert problem["status"] == 413 and "at most 26214400 bytes" in problem["detail"]
    assert 25 * 2**20 <= sent < 100 * 2**20, f"sent {sent} bytes before the answer"
    with api(server) as client:  # nothing was stored
        endpoint = path.rstrip("/").rsplit("/", 1)[1]
        items = client.get(f"/projects/{project}/webhooks/{endpoint}/deliveries/").json()["items"]
        assert items == []
