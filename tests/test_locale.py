"""An account's locale and time zone (PATCH /api/v1/me/), and what the server writes for
people in them: automation notifications per recipient, Slack messages as the rule's
owner writes, the daily e-mail digest per recipient. Real `tandem serve`, a real HTTP
receiver, a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from babel.dates import format_date
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st

from integrations.digest import Digest
from rules.automation import PLAIN
from sync_server.extensions.daily_digest import localized, recipient_day
from sync_server.identity.locales import (
    LocaleFormat,
    LocaleInvalid,
    normalize_locale,
    normalize_time_zone,
    text_format,
)

from .test_account_email import activity_rows, mail_server
from .test_api_v1 import add_task, call, new_project
from .test_automation import Receiver, make_rule, runs, wait_for
from .test_automation import receiver as receiver  # the fixture
from .test_automation import srv as srv  # the fixture: a server that may call 127.0.0.1

# -- checking what people set ----------------------------------------------------------


def test_locales_and_time_zones_are_checked_and_normalized() -> None:
    assert normalize_locale("de") == "de"
    assert normalize_locale("pt-br") == "pt-BR"
    assert normalize_locale("sr-Latn-RS") == "sr-Latn-RS"
    for bad in ("", "xx", "zz-ZZ", "en_US", "de-", "a" * 40, "../etc", "en US"):
        with pytest.raises(LocaleInvalid):
            normalize_locale(bad)
    assert normalize_time_zone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("", "Mars/Olympus", "localtime", "/etc/localtime", "../UTC", "europe/berlin"):
        with pytest.raises(LocaleInvalid):
            normalize_time_zone(bad)


@given(st.text(max_size=20))
def test_a_tag_is_refused_or_stored_in_a_form_that_reads_back_the_same(tag) -> None:
    try:
        normalized = normalize_locale(tag)
    except LocaleInvalid:
        return
    assert normalize_locale(normalized) == normalized
    assert text_format(normalized, None).number(1234.5)  # it formats


def test_formats_write_dates_and_numbers_as_the_locale_does() -> None:
    de = LocaleFormat("de-DE", "Europe/Berlin")
    assert de.date("2026-12-05") == "05.12.2026"
    assert de.number(1234.5) == "1.234,5"
    # a date-time is shown in the account's zone (14:00 UTC is 15:00 in Berlin)
    assert de.date("2026-12-05T14:00:00Z") == "05.12.2026, 15:00:00"
    assert de.date("not a date") == "not a date"
    assert text_format(None, None) is PLAIN
    assert PLAIN.date("2026-12-05") == "2026-12-05" and PLAIN.number(1234.5) == "1234.5"


def test_me_sets_checks_and_clears_locale_and_time_zone(srv) -> None:
    user = "lena"
    r = call(srv, "PATCH", "/me/", user, json={"email": "lena@example.com"})
    assert r.status_code == 200 and r.json()["locale"] is None and r.json()["time_zone"] is None
    r = call(srv, "PATCH", "/me/", user, json={"locale": "de-de", "time_zone": "Europe/Berlin"})
    assert r.status_code == 200, r.text
    assert (r.json()["locale"], r.json()["time_zone"]) == ("de-DE", "Europe/Berlin")
    assert call(srv, "GET", "/me/", user).json()["locale"] == "de-DE"

    for body, field in (
        ({"locale": "xx-nowhere"}, "locale"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"locale": "fr", "time_zone": "Nowhere/City", "email": "x@example.com"}, "time_zone"),
    ):
        r = call(srv, "PATCH", "/me/", user, json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"] == field, r.json()
    me = call(srv, "GET", "/me/", user).json()  # a refused change changed nothing
    assert (me["locale"], me["time_zone"], me["email"]) == (
        "de-DE",
        "Europe/Berlin",
        "lena@example.com",
    )
    r = call(srv, "PATCH", "/me/", user, json={"locale": None})
    assert (r.json()["locale"], r.json()["time_zone"]) == (None, "Europe/Berlin")
    assert call(srv, "PATCH", "/me/", user, json={"time_zone": None}).json()["time_zone"] is None


# -- what the server writes for people -------------------------------------------------------


def test_automation_writes_dates_and_numbers_as_each_reader_does(srv, receiver: Receiver) -> None:
    project = new_project(srv)
    for user in ("dora", "pete"):
        srv.token(user)
        r = call(srv, "PUT", f"/projects/{project}/grants/{user}", json={"role": "member"})
        assert r.status_code in (200, 201), r.text
    time.sleep(1.1)
    # the owner (whose rule it is) writes German; dora French in Paris; pete chose nothing
    assert call(srv, "PATCH", "/me/", "owner", json={"locale": "de-DE"}).is_success
    assert call(
        srv, "PATCH", "/me/", "dora", json={"locale": "fr-FR", "time_zone": "Europe/Paris"}
    ).is_success
    text = "{task.title} is due {task.due}, {task.estimate} h"
    rule = make_rule(
        srv,
        project,
        {
            "name": "due note",
            "trigger": {"type": "task_created"},
            "actions": [
                {"type": "notify", "to": {"users": ["dora", "pete"]}, "message": text},
                {"type": "slack", "url": receiver.url + "/slack", "text": text},
            ],
        },
    )
    task = add_task(srv, project, title="Ship", due="2026-12-05", estimate=1234.5)["id"]

    def notices(user: str) -> list[str]:
        items = call(srv, "GET", "/me/notifications", user).json()["items"]
        return [n["body"] for n in items if n["kind"] == "automation" and n["project"] == project]

    dora = wait_for(lambda: notices("dora"))
    french = f"Ship is due {format_date(dt.date(2026, 12, 5), 'medium', locale='fr_FR')}, "
    assert dora == [french + f"{format_decimal(1234.5, locale='fr_FR')} h"]
    assert "déc." in dora[0]  # (what Babel's French looks like: "5 déc. 2026")
    assert wait_for(lambda: notices("pete")) == ["Ship is due 2026-12-05, 1234.5 h"]

    assert wait_for(lambda: receiver.requests, 15)
    payload = json.loads(receiver.requests[0][2])
    assert payload["text"] == "Ship is due 05.12.2026, 1.234,5 h"  # as its owner writes
    facts = json.dumps(payload["blocks"][1], ensure_ascii=False)
    assert "05.12.2026" in facts and "2026-12-05" not in facts
    recorded = wait_for(
        lambda: [r for r in runs(srv, project, rule["id"]) if r["outcome"] == "ran"]
    )
    assert len(recorded) == 1 and task


@given(
    st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1)),
    st.integers(0, 23),
    st.sampled_from(
        ["UTC", "America/Los_Angeles", "Pacific/Auckland", "Asia/Kolkata", "Pacific/Kiritimati"]
    ),
)
def test_a_recipients_digest_day_is_the_last_that_ended_for_them(day, hour, zone) -> None:
    from zoneinfo import ZoneInfo

    got = recipient_day(day, hour, zone)
    sent = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(hour), dt.UTC)
    end_of_day = dt.datetime.combine(got + dt.timedelta(days=1), dt.time(), ZoneInfo(zone))
    assert end_of_day <= sent < end_of_day + dt.timedelta(days=1)
    assert recipient_day(day, hour, None) == day == recipient_day(day, hour, "UTC")


def test_a_digest_shows_its_day_as_the_reader_writes_dates_and_leaves_titles_alone() -> None:
    day = dt.date(2026, 11, 30)
    digest = Digest(
        "ann",
        "ann@example.com",
        day,
        "Tandem: 1 of your task changed on 2026-11-30",
        "Hello Ann,\n\nWhat changed in your tasks on 2026-11-30:\n\nL\n- Plan 2026-11-30: created",
        "<p>What changed in your tasks on 2026-11-30:</p><li>Plan 2026-11-30</li>",
        (),
        1,
    )
    shown = localized(digest, LocaleFormat("de", None))
    assert shown.subject == "Tandem: 1 of your task changed on 30.11.2026"
    assert "on 30.11.2026:" in shown.text and "- Plan 2026-11-30: created" in shown.text
    assert "on 30.11.2026:" in shown.html and "Plan 2026-11-30</li>" in shown.html
    assert localized(digest, PLAIN) is digest


def test_the_daily_digest_covers_the_readers_day_in_their_words(tmp_path: Path) -> None:
    # a zone whose date is today's UTC date now and when the digest goes out tomorrow 07:00
    zone = "America/Noronha" if dt.datetime.now(dt.UTC).hour >= 3 else "Africa/Johannesburg"
    with mail_server(tmp_path, TANDEM_DIGEST_HOUR="7") as (srv, mailbox):
        project = new_project(srv, name="Launch")
        srv.token("ann")
        srv.grant("ann", project, "member")
        time.sleep(1.1)
        me = {"email": "ann@example.com", "locale": "de-DE", "time_zone": zone}
        assert call(srv, "PATCH", "/me/", "ann", json=me).is_success
        task = add_task(srv, project, title="Ship", assignees=["ann"])["id"]
        r = call(srv, "PATCH", f"/tasks/{task}/status/", json={"status": "in_progress"})
        assert r.status_code == 200, r.text
        wait_for(lambda: activity_rows(srv.db, task))
        srv.stop()
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        at = dt.datetime.combine(tomorrow, dt.time(7, 30), dt.UTC).timestamp()
        srv.env["TANDEM_AUTOMATION_CLOCK_OFFSET_SECONDS"] = str(at - time.time())
        srv.start()
        wait_for(lambda: mailbox.messages, 15)
        ((_, rcpt, message),) = mailbox.messages
    today = dt.datetime.now(dt.UTC).date()
    assert rcpt == ["ann@example.com"]
    assert message["Subject"] == f"Tandem: 1 of your task changed on {today:%d.%m.%Y}"
    plain = message.get_body(("plain",))
    assert plain is not None and f"in your tasks on {today:%d.%m.%Y}:" in plain.get_content()
