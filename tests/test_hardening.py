"""Security headers, the API docs served from here, the sync socket's Origin check, and
project creation that does not probe other teams' ids."""

from __future__ import annotations

import re
import uuid

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws

from .conftest import start_server
from .test_api_access import api, assert_problem


def test_every_response_carries_security_headers(server) -> None:
    token = server.token("hal")
    for path, policy in (
        ("/", "script-src 'self'"),
        ("/#/projects", "script-src 'self'"),
        ("/api/v1/me/notifications", "default-src 'none'"),
        ("/api/v1/nothing-here", "default-src 'none'"),
        ("/openapi.json", "default-src 'none'"),
        ("/docs", "script-src 'self'"),
    ):
        r = httpx.get(
            server.http_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        csp = r.headers["content-security-policy"]
        assert policy in csp and "frame-ancestors 'none'" in csp, (path, csp)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    app_csp = httpx.get(server.http_url + "/", timeout=10).headers["content-security-policy"]
    host = f"127.0.0.1:{server.port}"
    assert f"connect-src 'self' ws://{host} wss://{host}" in app_csp
    assert "unsafe-inline" not in app_csp and "unsafe-eval" not in app_csp


def test_the_api_docs_load_only_scripts_from_this_server(server) -> None:
    page = httpx.get(server.http_url + "/docs", timeout=10)
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/static/") for s in sources), sources
    assert "<script>" not in page.text  # no inline script either
    for source in sources:
        r = httpx.get(server.http_url + source, timeout=10)
        assert r.status_code == 200 and len(r.content) > 10, source
    start = httpx.get(server.http_url + "/docs/static/start.js", timeout=10).text
    assert '"/openapi.json"' in start and "validatorUrl: null" in start
    assert httpx.get(server.http_url + "/docs/static/index.css", timeout=10).status_code == 404


async def _open(server, origin: str | None, token: str):
    headers = {"Origin": origin} if origin else {}
    ws: AsyncWebSocketSession
    async with (
        httpx.AsyncClient() as http,
        aconnect_ws(
            f"{server.ws_url}/p/orig", http, params={"token": token}, headers=headers
        ) as ws,
    ):
        try:
            with anyio.fail_after(5):
                await ws.receive_bytes()  # sync step 1 from the server: the socket is open
            return None
        except WebSocketDisconnect as e:
            return e.code, e.reason


@pytest.mark.anyio
async def test_the_sync_socket_refuses_other_sites_origins(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_WS_ORIGINS="https://app.example.com")
    try:
        token = server.token("olga")
        server.grant("olga", "orig", "owner")
        refused = await _open(server, "https://evil.example", token)
        assert refused is not None and refused[0] == 4403, refused
        assert "origin https://evil.example may not connect" in refused[1]
        assert await _open(server, server.http_url, token) is None  # same origin
        assert await _open(server, "https://app.example.com", token) is None  # configured
        assert await _open(server, None, token) is None  # no Origin: not a browser
        other_port = f"http://127.0.0.1:{server.port + 1}"
        assert (await _open(server, other_port, token) or (0,))[0] == 4403
    finally:
        server.stop()


def test_creating_a_project_cannot_probe_other_teams_ids(server) -> None:
    """A chosen id must be a UUID: a meaningful id is refused with the same answer whether a
    project has it or not (an administrator may still make one with the CLI), and a 409 is
    about a UUID, which only says that an id its caller already had was used."""
    from sync_server.identity import projects
    from sync_server.storage.database import open_database

    conn = open_database(server.db).conn  # the CLI made a project with a meaningful id
    try:
        assert projects.register_project(conn, "acme-merger-2027", "Merger", "team-a")
    finally:
        conn.close()
    server.grant("team-a", "acme-merger-2027")
    answers = [
        assert_problem(
            api(server, "POST", "/projects/", "team-b", json={"id": probe, "name": "B"}),
            422,
            "UUID",
        )
        for probe in ("acme-merger-2027", "acme-merger-2028")  # taken, free
    ]
    assert answers[0] == answers[1]  # the same answer, byte for byte
    chosen = str(uuid.uuid4())
    for spelling in (chosen.upper(), chosen.replace("-", ""), "{" + chosen + "}", "k3J9xQ2mWv7Z"):
        refused = api(server, "POST", "/projects/", "team-a", json={"id": spelling, "name": "A"})
        assert assert_problem(refused, 422)["field"] == "id", spelling
    made = api(server, "POST", "/projects/", "team-a", json={"id": chosen, "name": "A"})
    assert made.status_code == 201, made.text
    assert made.json()["id"] == chosen
    # a UUID only its maker knows: taking it again says so, nothing more
    for who in ("team-b", "team-a"):
        again = api(server, "POST", "/projects/", who, json={"id": chosen, "name": "B"})
        assert_problem(again, 409, "not available")
    assert api(server, "GET", f"/projects/{chosen}/", "team-b").status_code == 404
    server_made = api(server, "POST", "/projects/", "team-b", json={"name": "B"})
    assert server_made.status_code == 201
