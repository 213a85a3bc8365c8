"""Time trackers end to end: a real `tandem serve` imports from and exports to local
stand-ins of Toggl Track, Clockify and Harvest (built from their API references) into the
finance document's time entries; importing twice adds nothing; edit_costs guards it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ServerProcess, start_server
from .providers import trackers
from .providers.base import CLIENT_ID, CLIENT_SECRET
from .test_api_v1 import call, new_project
from .test_connections import connect

RANGE = {"since": "2026-11-01", "until": "2026-11-30"}


@pytest.fixture(scope="module")
def toggl() -> Iterator[trackers.TimeStandIn]:
    s = trackers.toggl().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def clockify() -> Iterator[trackers.TimeStandIn]:
    s = trackers.clockify().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def harvest() -> Iterator[trackers.TimeStandIn]:
    s = trackers.harvest().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, toggl, clockify, harvest) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("time"),
        TANDEM_API_RATE_LIMIT="0",
        TANDEM_OUTBOUND_ALLOW_PRIVATE="true",
        TANDEM_TIME_IMPORT_INTERVAL_SECONDS="1",
        TANDEM_PROVIDER_TOGGL_URL=toggl.url,
        TANDEM_PROVIDER_CLOCKIFY_URL=clockify.url,
        TANDEM_PROVIDER_HARVEST_URL=harvest.url,
        TANDEM_PROVIDER_HARVEST_CLIENT_ID=CLIENT_ID,
        TANDEM_PROVIDER_HARVEST_CLIENT_SECRET=CLIENT_SECRET,
    )
    try:
        yield server
    finally:
        server.stop()


def add_token_connection(srv, project: str, provider: str, **config) -> dict:
    body: dict[str, Any] = {"provider": provider, "api_token": trackers.API_TOKEN}
    if config:
        body["config"] = config
    r = call(srv, "POST", f"/projects/{project}/connections/", json=body)
    assert r.status_code == 201, r.text
    assert trackers.API_TOKEN not in r.text
    return r.json()


def entries_of(srv, project: str) -> list[dict]:
    r = call(srv, "GET", f"/projects/{project}/time-entries/")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_toggl_import_twice_adds_nothing_and_export_goes_back_once(srv, toggl):
    project = new_project(srv)
    toggl.entries[:] = [
        trackers.toggl_entry(3_600_000_001, "2026-11-02T09:00:00+00:00", 5400, "Spec review"),
        trackers.toggl_entry(3_600_000_002, "2026-11-03T13:30:00+00:00", 1800, "Call"),
        trackers.toggl_entry(3_600_000_003, "2026-11-04T08:00:00+00:00", -1764000000, "running"),
        trackers.toggl_entry(3_600_000_004, "2026-10-04T08:00:00+00:00", 3600, "too early"),
    ]
    connection = add_token_connection(srv, project, "toggl", auto_import=False)
    assert connection["account"] == "ada@example.com"
    assert connection["config"]["workspace_id"] == 7_654_321
    path = f"/projects/{project}/connections/{connection['id']}/import/"

    first = call(srv, "POST", path, json=RANGE)
    assert first.status_code == 200, first.text
    assert first.json() == {"fetched": 2, "written": 2}
    second = call(srv, "POST", path, json=RANGE)
    assert second.json() == {"fetched": 2, "written": 0}
    got = sorted(entries_of(srv, project), key=lambda e: e["date"])
    assert [(e["id"], e["hours"], e["date"], e["note"]) for e in got] == [
        ("toggl-3600000001", 1.5, "2026-11-02", "Spec review"),
        ("toggl-3600000002", 0.5, "2026-11-03", "Call"),
    ]
    assert all(e["user"] == "owner" and e["source"] == "toggl" for e in got)

    # an entry changed at the provider updates its record, still one record
    toggl.entries[1]["duration"] = 2700
    third = call(srv, "POST", path, json=RANGE)
    assert third.json() == {"fetched": 2, "written": 1}
    assert {e["id"]: e["hours"] for e in entries_of(srv, project)}["toggl-3600000002"] == 0.75

    # export: the entries made in Tandem go to Toggl once; importing them back adds nothing
    made = call(
        srv,
        "POST",
        f"/projects/{project}/time-entries/",
        json={"user": "owner", "hours": 2.25, "date": "2026-11-05", "note": "Workshop"},
    )
    assert made.status_code == 201, made.text
    export = f"/projects/{project}/connections/{connection['id']}/export/"
    assert call(srv, "POST", export).json() == {"exported": 1}
    assert call(srv, "POST", export).json() == {"exported": 0}
    (sent,) = toggl.created
    assert sent["duration"] == 8100 and sent["description"] == "Workshop"
    assert sent["created_with"] == "Tandem" and sent["start"].startswith("2026-11-05")
    back = call(srv, "POST", path, json=RANGE).json()
    assert back == {"fetched": 3, "written": 0}
    assert len(entries_of(srv, project)) == 3


def test_clockify_import_twice_adds_nothing(srv, clockify):
    project = new_project(srv)
    clockify.entries[:] = [
        trackers.clockify_entry(
            "65a1f0e2b0c3d4e5f6a7b8c9", "2026-11-10T09:00:00Z", "2026-11-10T10:45:00Z", "Review"
        ),
        trackers.clockify_entry("65a1f0e2b0c3d4e5f6a7b8ca", "2026-11-11T09:00:00Z", None, "run"),
    ]
    connection = add_token_connection(srv, project, "clockify", auto_import=False)
    path = f"/projects/{project}/connections/{connection['id']}/import/"
    assert call(srv, "POST", path, json=RANGE).json() == {"fetched": 1, "written": 1}
    assert call(srv, "POST", path, json=RANGE).json() == {"fetched": 1, "written": 0}
    (entry,) = entries_of(srv, project)
    assert entry["id"] == "clockify-65a1f0e2b0c3d4e5f6a7b8c9"
    assert entry["hours"] == 1.75


def test_harvest_over_oauth2_import_twice_adds_nothing(srv, harvest):
    project = new_project(srv)
    harvest.entries[:] = [
        trackers.harvest_entry(636_709_355, "2026-11-12", 3.5, "Design"),
        trackers.harvest_entry(636_709_356, "2026-11-13", 1.0, "timer", running=True),
    ]
    connection = connect(srv, project, "harvest")
    assert connection["account"] == "ada@example.com"
    assert connection["config"] == {"account_id": 1_234_567, "user_id": 1_782_959}
    # a connection made over OAuth imports on the schedule (every second here): stopped, and
    # a scheduled import already under way let finish, so that the one below is the first
    base = f"/projects/{project}/connections/{connection['id']}/"
    off = call(srv, "PATCH", base, json={"config": {"auto_import": False}})
    assert off.status_code == 200, off.text
    time.sleep(1.5)
    scheduled = len(entries_of(srv, project))
    path = f"{base}import/"
    assert call(srv, "POST", path, json=RANGE).json() == {"fetched": 1, "written": 1 - scheduled}
    assert call(srv, "POST", path, json=RANGE).json() == {"fetched": 1, "written": 0}
    (entry,) = entries_of(srv, project)
    assert (entry["id"], entry["hours"], entry["note"]) == ("harvest-636709355", 3.5, "Design")


def test_a_bad_token_and_missing_edit_costs_are_refused(srv, toggl):
    project = new_project(srv)
    r = call(
        srv,
        "POST",
        f"/projects/{project}/connections/",
        json={"provider": "toggl", "api_token": "wrong"},
    )
    assert r.status_code == 422
    assert r.json()["field"] == "api_token"
    assert "wrong" not in srv.log()
    connection = add_token_connection(srv, project, "toggl", auto_import=False)
    srv.token("mia")
    srv.grant("mia", project, "member")
    time.sleep(1.05)
    path = f"/projects/{project}/connections/{connection['id']}/import/"
    refused = call(srv, "POST", path, "mia", json=RANGE)
    assert refused.status_code == 403
    assert refused.json()["permission"] == "edit_costs"
    backwards = call(srv, "POST", path, json={"since": "2026-11-30", "until": "2026-11-01"})
    assert backwards.status_code == 422
    assert backwards.json()["field"] == "since"


def test_scheduled_import_as_the_connections_user(srv, toggl):
    project = new_project(srv)
    toggl.entries[:] = []
    connection = add_token_connection(srv, project, "toggl")  # auto_import by default
    today = time.strftime("%Y-%m-%d", time.gmtime())
    toggl.entries.append(
        trackers.toggl_entry(3_600_000_900, f"{today}T07:00:00+00:00", 900, "Standup")
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [e for e in entries_of(srv, project) if e["id"] == "toggl-3600000900"]
        if found:
            break
        time.sleep(0.3)
    assert found, "the scheduled import did not run"
    assert found[0]["user"] == "owner" and found[0]["hours"] == 0.25
    listed = call(srv, "GET", f"/projects/{project}/connections/").json()["connections"]
    assert [c["last_error"] for c in listed if c["id"] == connection["id"]] == [None]


def test_harvest_export_needs_its_project_and_task(srv, harvest):
    project = new_project(srv)
    harvest.entries[:] = []
    connection = connect(srv, project, "harvest")
    made = call(
        srv,
        "POST",
        f"/projects/{project}/time-entries/",
        json={"user": "owner", "hours": 1.5, "date": "2026-11-20", "note": "Planning"},
    )
    assert made.status_code == 201, made.text
    export = f"/projects/{project}/connections/{connection['id']}/export/"
    missing = call(srv, "POST", export)
    assert missing.status_code == 422
    assert "export_project_id" in missing.json()["detail"]
    r = call(
        srv,
        "PATCH",
        f"/projects/{project}/connections/{connection['id']}/",
        json={"config": {"export_project_id": 14307913, "export_task_id": 8083365}},
    )
    assert r.status_code == 200, r.text
    assert call(srv, "POST", export).json() == {"exported": 1}
    assert harvest.created[-1] == {
        "project_id": 14307913,
        "task_id": 8083365,
        "spent_date": "2026-11-20",
        "hours": 1.5,
        "notes": "Planning",
    }
    (entry,) = entries_of(srv, project)
    assert entry["source"] == "harvest" and entry["external_id"] == str(harvest.entries[-1]["id"])


def test_only_the_chosen_provider_projects_are_imported(srv, toggl):
    project = new_project(srv)
    toggl.entries[:] = [
        trackers.toggl_entry(3_600_000_501, "2026-11-06T09:00:00+00:00", 3600, "ours", 111),
        trackers.toggl_entry(3_600_000_502, "2026-11-06T11:00:00+00:00", 3600, "theirs", 222),
        trackers.toggl_entry(3_600_000_503, "2026-11-06T13:00:00+00:00", 3600, "none", None),
    ]
    connection = add_token_connection(srv, project, "toggl", auto_import=False, projects=[111])
    path = f"/projects/{project}/connections/{connection['id']}/import/"
    assert call(srv, "POST", path, json=RANGE).json() == {"fetched": 3, "written": 1}
    assert [e["note"] for e in entries_of(srv, project)] == ["ours"]


def test_a_paused_connection_imports_nothing_until_it_is_resumed(srv, toggl):
    """Paused: the scheduled import (every second here) skips it and an import asked for is
    refused (409), so nothing is fetched: its last use stays put and a new Toggl entry does
    not arrive. Resumed: the next scheduled run imports it."""
    project = new_project(srv)
    connection = add_token_connection(srv, project, "toggl")
    base = f"/projects/{project}/integrations/{connection['id']}"

    def listed() -> dict:
        found = call(srv, "GET", f"/projects/{project}/connections/").json()["connections"]
        return next(c for c in found if c["id"] == connection["id"])

    paused = call(srv, "POST", base + "/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    time.sleep(1.5)  # a scheduled run that had already read the connection ends
    used = listed()["last_used"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    toggl.entries.append(
        trackers.toggl_entry(3_600_000_777, f"{today}T09:00:00+00:00", 1800, "While paused")
    )
    asked = call(srv, "POST", f"/projects/{project}/connections/{connection['id']}/import/")
    assert asked.status_code == 409 and "paused" in asked.json()["detail"], asked.text
    time.sleep(3.5)  # three scheduled runs
    assert listed()["last_used"] == used and listed()["status"] == "paused"
    assert not [e for e in entries_of(srv, project) if e["id"] == "toggl-3600000777"]

    resumed = call(srv, "POST", base + "/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active", resumed.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if [e for e in entries_of(srv, project) if e["id"] == "toggl-3600000777"]:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the scheduled import did not resume")
    assert listed()["last_used"] > (used or 0)
