"""Failed logins are limited per account and per address, whatever headers they carry."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ServerProcess, start_server, tandem
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
