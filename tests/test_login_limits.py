"""Failed logins are limited per account and per address, whatever headers they carry."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ServerProcess, free_port, start_server, tandem
from .test_api_access import assert_problem


@pytest.fixture
def guarded(tmp_path) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path,
        TANDEM_API_RATE_LIMIT="100000",
        TANDEM_LOGIN_FAILURES_PER_ACCOUNT="3",
        TANDEM_LOGIN_FAILURES_PER_ADDRESS="6",
        TANDEM_LOGIN_WINDOW_SECONDS="60",
    )
    try:
        yield server
    finally:
        server.stop()


def login(server, user: str, password: str) -> httpx.Response:
    made_up = {"Authorization": f"Bearer tdm_{secrets.token_urlsafe(32)}"}  # a fresh one each time
    return httpx.post(
        f"{server.http_url}/api/v1/login",
        json={"username": user, "password": password},
        headers=made_up,
        timeout=10,
    )


def make_user(server, name: str) -> None:
    tandem("user", "create", name, "--password-stdin", db=server.db, stdin="right password\n")


def test_wrong_passwords_for_one_account_are_limited_whatever_the_headers(guarded) -> None:
    make_user(guarded, "lena")
    for _ in range(3):
        assert_problem(login(guarded, "lena", "wrong guess"), 401)
    limited = login(guarded, "lena", "right password")  # even the right one, while locked
    body = assert_problem(limited, 429, "this account")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert f"retry in {limited.headers['Retry-After']} s" in body["detail"]
    # another account from the same address still may
    make_user(guarded, "omar")
    assert login(guarded, "omar", "right password").status_code == 200


def test_guessing_across_accounts_is_limited_per_address(guarded) -> None:
    for i in range(6):
        assert_problem(login(guarded, f"user{i}", "guess"), 401)
    limited = login(guarded, "user99", "guess")
    assert_problem(limited, 429, "this address")
    assert int(limited.headers["Retry-After"]) >= 1


def test_a_successful_login_clears_its_accounts_failures(guarded) -> None:
    make_user(guarded, "pia")
    for _ in range(2):
        assert_problem(login(guarded, "pia", "typo"), 401)
    assert login(guarded, "pia", "right password").status_code == 200
    for _ in range(2):
        assert_problem(login(guarded, "pia", "typo"), 401)
    assert login(guarded, "pia", "right password").status_code == 200


def test_made_up_tokens_get_no_fresh_request_budget_on_login(tmp_path) -> None:
    server = start_server(tmp_path, TANDEM_API_RATE_LIMIT="5")
    try:
        statuses = [login(server, f"u{i}", "x").status_code for i in range(6)]
    finally:
        server.stop()
    assert statuses == [401] * 5 + [429]


def test_failed_logins_survive_a_restart_and_are_shared_by_every_server_on_the_file(
    guarded,
) -> None:
    """The counts are rows in the SQLite file: a restarted server keeps refusing, and a
    second server on the same file refuses too (in memory, each had its own fresh budget)."""
    make_user(guarded, "rory")
    for _ in range(2):
        assert_problem(login(guarded, "rory", "wrong guess"), 401)
    guarded.stop()
    guarded.start()  # a deploy, a crash: the third failure still counts with the first two
    assert_problem(login(guarded, "rory", "wrong guess"), 401)
    assert_problem(login(guarded, "rory", "right password"), 429, "this account")
    second = ServerProcess(
        db=guarded.db, port=free_port(), env=guarded.env, log_path=guarded.log_path
    )
    second.start()
    try:
        limited = login(second, "rory", "right password")
        assert_problem(limited, 429, "this account")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        second.stop()
    conn = sqlite3.connect(guarded.db)
    try:
        rows = conn.execute(
            "SELECT scope, key FROM login_failures WHERE key = 'rory' ORDER BY at"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("account", "rory")] * 3


def test_the_window_moves_and_old_failures_are_deleted(tmp_path) -> None:
    """In the guard itself, on a real file: a failure stops counting when it leaves the
    window, Retry-After is when the oldest counted one leaves it, and rows past the window
    are deleted as new ones are written."""
    from sync_server.identity.login_guard import LoginGuard
    from sync_server.storage.database import open_database

    conn = open_database(tmp_path / "t.db").conn
    guard = LoginGuard(per_account=2, per_address=100, window_seconds=60)
    guard.failed(conn, "kim", "1.2.3.4", now=1000.0)
    assert guard.check(conn, "kim", "1.2.3.4", now=1001.0) is None
    guard.failed(conn, "kim", "1.2.3.4", now=1030.0)
    refused = guard.check(conn, "kim", "5.6.7.8", now=1031.0)
    assert refused is not None and refused.scope == "account"
    assert refused.retry_after == 29  # the failure at 1000 leaves the window at 1060
    assert guard.check(conn, "kim", "1.2.3.4", now=1060.5) is None
    guard.failed(conn, "lee", "9.9.9.9", now=1200.0)  # deletes the rows from 1000 and 1030
    assert conn.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 2
