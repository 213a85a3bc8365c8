"""Schemathesis against the server's own /openapi.json: no server errors, and every response
(status, content type, body) matches the document. Runs against a real server with the demo."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import ServerProcess, start_server, tandem

EXAMPLES = int(os.environ.get("TANDEM_SCHEMATHESIS_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("schema")
    tandem("demo", db=tmp / "tandem.db")
    server = start_server(tmp, TANDEM_API_RATE_LIMIT="1000000")
    try:
        yield server
    finally:
        server.stop()


def served_spec() -> dict:
    """The document the server serves at /openapi.json (quart-schema builds it from the routes;
    no database is touched for it)."""
    from sync_server.shell.app import create_app
    from sync_server.shell.settings import Settings

    async def fetch() -> dict:
        app = create_app(Settings(db=":memory:"))
        response = await app.test_client().get("/openapi.json")
        return await response.get_json()

    return asyncio.run(fetch())


def _token_in_use_id(server: ServerProcess) -> str:
    digest = hashlib.sha256(server.token("demo").encode()).hexdigest()
    conn = sqlite3.connect(server.db)
    try:
        row = conn.execute("SELECT id FROM api_tokens WHERE token_hash = ?", (digest,)).fetchone()
    finally:
        conn.close()
    return str(row[0])


def _names_token(value: str, token_id: str) -> bool:
    """Whether the server reads ``value`` as ``token_id`` (digits, leading zeros allowed)."""
    return value.isascii() and value.isdigit() and len(value) <= 19 and int(value) == int(token_id)


def _throwaway_token_id(server: ServerProcess) -> str:
    tandem("token", "create", "demo", "--label", "throwaway", db=server.db)
    return tandem("token", "list", "demo", db=server.db).splitlines()[-1].split("\t")[0]


# schemathesis.pytest.from_fixture would read it from the running server, but it relies on a
# pytest internal (Node._nodeid) that pytest 9 removed; the document is the same.
schema = schemathesis.openapi.from_dict(served_spec())


def not_a_server_error_but_upstream(ctx, response, case) -> bool | None:
    """A 502 is a provider's failure (a connector's call; this machine reaches none), and
    only where the operation documents it; any other 5xx is the server's own."""
    documented = case.operation.definition.raw.get("responses") or {}
    if response.status_code == 502 and "502" in documented:
        return None
    return not_a_server_error(ctx, response, case)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms(case, demo_server) -> None:
    params = case.path_parameters or {}
    if "project" in params and not (case.method == "DELETE" and case.path.endswith("{project}/")):
        params["project"] = "demo"  # mostly a real project, so the routes do real work
    revoking = case.method == "DELETE" and case.path == "/api/v1/me/tokens/{token_id}"
    if revoking and _names_token(str(params.get("token_id")), _token_in_use_id(demo_server)):
        # never revoke the token every case authenticates with: name a throwaway one instead
        params["token_id"] = _throwaway_token_id(demo_server)
    case.call_and_validate(
        base_url=demo_server.http_url,
        headers={"Authorization": f"Bearer {demo_server.token('demo')}"},
        checks=[
            not_a_server_error_but_upstream,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
