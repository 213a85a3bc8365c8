"""An account's e-mail address: set over REST and the CLI, used by e-mail rule actions and
the daily digest, which a real server sends to a real SMTP server (aiosmtpd) once a day."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sync_server.extensions.daily_digest import due_day, subscriber_projects
from sync_server.storage.database import open_database

from .conftest import ROOT, TANDEM, ServerProcess, grant_role, start_server, tandem
from .test_api_v1 import add_task, call, grant, new_project
from .test_automation import ENV, make_rule, runs, wait_for
from .test_outbox import Mailbox, smtp_server


@contextmanager
def mail_server(tmp_path: Path, **env: str) -> Iterator[tuple[ServerProcess, Mailbox]]:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        server = start_server(
            tmp_path,
            **ENV,
            TANDEM_SMTP_HOST="127.0.0.1",
            TANDEM_SMTP_PORT=str(port),
            TANDEM_SMTP_SECURITY="none",
            TANDEM_SMTP_FROM="tandem@example.com",
            **env,
        )
        try:
            yield server, mailbox
        finally:
            server.stop()
            tail = server.log()[-4000:]
            if "Traceback" in tail:
                print(f"--- server log ---\n{tail}")


def activity_rows(db: Path, task: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT actor, action FROM activity WHERE task = ? ORDER BY id", (task,)
        ).fetchall()
    finally:
        conn.close()


def test_me_sets_and_clears_the_address_and_names_the_field_at_fault(tmp_path: Path) -> None:
    with mail_server(tmp_path) as (srv, _mailbox):
        project = new_project(srv)
        grant(srv, project, "ann", "member")
        me = call(srv, "GET", "/me/", "ann")
        assert me.status_code == 200 and me.json() == {
            "name": "ann",
            "display_name": "ann",
            "email": None,
            "digest": "daily",
            "locale": None,
            "time_zone": None,
        }
        for bad in ("ann", "ann@@example.com", "a" * 250 + "@example.com", 5):
            r = call(srv, "PATCH", "/me/", "ann", json={"email": bad})
            assert r.status_code == 422, r.text
            assert "email" in r.text and r.headers["content-type"].startswith(
                "application/problem+json"
            )
        r = call(srv, "PATCH", "/me/", "ann", json={"digest": "weekly"})
        assert r.status_code == 422 and "digest" in r.text
        r = call(srv, "PATCH", "/me/", "ann", json={"nickname": "x"})
        assert r.status_code == 422 and "nickname" in r.text
        assert call(srv, "GET", "/me/", "ann").json()["email"] is None  # nothing half-done
        r = call(srv, "PATCH", "/me/", "ann", json={"email": "Ann@Example.COM"})
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "Ann@example.com"  # the domain normalized
        r = call(srv, "PATCH", "/me/", "ann", json={"digest": "off"})
        assert r.json() == {
            "name": "ann",
            "display_name": "ann",
            "email": "Ann@example.com",
            "digest": "off",
            "locale": None,
            "time_zone": None,
        }
        # another member sees the name, never the address
        for path in (f"/projects/{project}/members/", f"/projects/{project}/grants"):
            listing = call(srv, "GET", path)
            assert listing.status_code == 200 and "ann" in listing.text
            assert "example.com" not in listing.text.lower()
        r = call(srv, "PATCH", "/me/", "ann", json={"email": None})
        assert r.status_code == 200 and r.json()["email"] is None


def tomorrow_at(hour: int, minute: int = 30) -> float:
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC).timestamp()


def test_one_daily_digest_reaches_the_users_address_and_a_restart_sends_no_second(
    tmp_path: Path,
) -> None:
    with mail_server(tmp_path, TANDEM_DIGEST_HOUR="7") as (srv, mailbox):
        project = new_project(srv, name="Launch")
        grant(srv, project, "ann", "member")
        grant(srv, project, "carl", "member")  # no address: no digest, no trouble
        assert call(srv, "PATCH", "/me/", "ann", json={"email": "ann@example.com"}).is_success
        task = add_task(srv, project, title="Ship the beta", assignees=["ann", "carl"])["id"]
        other = add_task(srv, project, title="Not hers")["id"]
        # another user (the owner) changes her task; she changes it too (left out)
        r = call(srv, "PATCH", f"/tasks/{task}/status/", json={"status": "in_progress"})
        assert r.status_code == 200, r.text
        assert call(srv, "PATCH", f"/tasks/{other}/status/", json={"status": "done"}).is_success
        r = call(srv, "PATCH", f"/tasks/{task}/", "ann", json={"title": "Ship the beta"})
        wait_for(lambda: len(activity_rows(srv.db, task)) >= 2)
        time.sleep(1.0)
        assert mailbox.messages == []  # today's changes go out tomorrow
        # the server is down over the digest hour; it sends the missed digest at start
        srv.stop()
        srv.env["TANDEM_AUTOMATION_CLOCK_OFFSET_SECONDS"] = str(tomorrow_at(7) - time.time())
        srv.start()
        wait_for(lambda: mailbox.messages, 15)
        time.sleep(1.0)
        ((mail_from, rcpt, message),) = mailbox.messages
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert mail_from == "tandem@example.com" and rcpt == ["ann@example.com"]
        assert message["Subject"] == f"Tandem: 1 of your task changed on {today}"
        plain = message.get_body(("plain",))
        assert plain is not None
        text = plain.get_content()
        assert (
            "Launch" in text and "Ship the beta" in text and "moved to in_progress (owner)" in text
        )
        assert "Not hers" not in text and "(ann)" not in text
        # a restart the same day: the digest of that day is not sent again
        srv.restart()
        time.sleep(2.0)
        assert len(mailbox.messages) == 1
        conn = sqlite3.connect(srv.db)
        try:
            keys = [r[0] for r in conn.execute("SELECT key FROM outbox WHERE channel = 'email'")]
        finally:
            conn.close()
        assert keys == [f"digest:ann:{today}"]


def test_an_email_rule_reaches_the_assignees_addresses_and_names_who_has_none(
    tmp_path: Path,
) -> None:
    with mail_server(tmp_path) as (srv, mailbox):
        project = new_project(srv)
        for user in ("ann", "bob"):  # members of the project document too (the rule's scope)
            srv.token(user)
            r = call(srv, "PUT", f"/projects/{project}/grants/{user}", json={"role": "member"})
            assert r.status_code in (200, 201), r.text
        # a member whose role cannot see tasks, named by the rule: not sent what a task says
        perms = ["view_project", "view_costs"]
        bookkeeper = {"name": "bookkeeper", "project": project, "permissions": perms}
        assert call(srv, "POST", f"/projects/{project}/roles", json=bookkeeper).is_success
        srv.token("cleo")
        r = call(srv, "PUT", f"/projects/{project}/grants/cleo", json={"role": "bookkeeper"})
        assert r.status_code in (200, 201), r.text
        time.sleep(1.1)
        assert call(srv, "PATCH", "/me/", "ann", json={"email": "ann@example.com"}).is_success
        assert call(srv, "PATCH", "/me/", "cleo", json={"email": "cleo@example.com"}).is_success
        rule = make_rule(
            srv,
            project,
            {
                "name": "done mail",
                "trigger": {"type": "task_status_changed", "to": "done"},
                "actions": [
                    {
                        "type": "email",
                        "to": {"assignees": True, "users": ["cleo"]},
                        "subject": "Done: {task.title}",
                        "text": "{task.title} is done",
                    }
                ],
            },
        )
        task = add_task(srv, project, title="Ship", assignees=["ann", "bob"])["id"]
        assert call(srv, "PATCH", f"/tasks/{task}/status/", json={"status": "done"}).is_success
        wait_for(lambda: mailbox.messages, 15)
        ((_from, rcpt, message),) = mailbox.messages
        assert rcpt == ["ann@example.com"] and message["Subject"] == "Done: Ship"
        recorded = runs(srv, project, rule["id"])
        assert len(recorded) == 1 and recorded[0]["outcome"] == "ran"
        assert "no e-mail address: bob" in recorded[0]["detail"], recorded


def cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TANDEM, *args, "--db", str(db)],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_the_cli_sets_an_address_and_refuses_a_bad_one_with_exit_code_2(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    bad = cli("user", "create", "ann", "--email", "ann@@example.com", db=db)
    assert bad.returncode == 2 and "not an e-mail address" in bad.stderr, bad.stderr
    assert "ann" not in tandem("user", "list", db=db)  # refused before the account was made
    ok = cli("user", "create", "ann", "--email", "ann@example.com", db=db)
    assert ok.returncode == 0 and "ann@example.com" in ok.stdout
    bad = cli("user", "set-email", "ann", "not-an-address", db=db)
    assert bad.returncode == 2 and "not an e-mail address" in bad.stderr
    missing = cli("user", "set-email", "nobody", "x@example.com", db=db)
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr
    out = tandem("user", "set-email", "ann", "ann@work.example", "--digest", "off", db=db)
    assert out.strip() == "ann\tann@work.example\tdigest off"
    out = tandem("user", "set-email", "ann", "--clear", db=db)
    assert out.strip() == "ann\t(no address)\tdigest off"


@given(now=st.floats(1_600_000_000, 2_500_000_000), hour=st.integers(0, 23))
def test_the_due_day_is_yesterday_from_the_digest_hour_on(now: float, hour: int) -> None:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    day = due_day(now, hour)
    assert day == moment.date() - dt.timedelta(days=1 if moment.hour >= hour else 2)
    # the next digest is due exactly when the clock reaches the hour of the next day
    fire = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(hour), dt.UTC).timestamp()
    assert fire > now
    assert due_day(fire, hour) == day + dt.timedelta(days=1)
    assert due_day(fire - 0.001, hour) == day


def test_a_digest_covers_only_projects_whose_tasks_the_user_may_read(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    open_database(db).conn.close()
    grant_role(db, "ann", "p1", "viewer")
    grant_role(db, "ann", "p2", "member", removed=["view_tasks"])
    grant_role(db, "bob", "p2", "member")
    conn = open_database(db).conn
    try:
        assert subscriber_projects(conn, ["ann", "bob", "carl"]) == {
            "ann": ["p1"],
            "bob": ["p2"],
            "carl": [],
        }
    finally:
        conn.close()


def test_a_digest_hour_out_of_range_is_refused_at_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TANDEM, "serve", "--db", str(tmp_path / "t.db"), "--port", "0"],
        env={**os.environ, "TANDEM_DIGEST_HOUR": "24"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "TANDEM_DIGEST_HOUR must be an hour 0-23 (UTC), not 24" in proc.stderr
