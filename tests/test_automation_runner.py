"""The runner's own logic, without a server: chain depth in the actor, fire times, and the
run / schedule tables on a real SQLite file (the end-to-end tests are test_automation.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from doc_model import TaskCreate, create_task, declare_roots
from doc_model.names import DocKind
from rules.automation.schedule import approaching_at, overdue_at
from sync_server.extensions.automation import (
    Fire,
    add_subtasks,
    chain_depth,
    due_fires,
    fired,
    fires_for,
    record_runs,
    replace_schedule,
    rule_actor,
)
from sync_server.extensions.feed import parse_actor
from sync_server.interfaces import Actor
from sync_server.storage.database import open_database

ids = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
users = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True)


@given(users, ids, st.integers(0, 50))
def test_a_rules_write_tells_its_depth_through_the_feed(owner, rule, depth) -> None:
    actor = rule_actor(owner, rule, depth)
    back = parse_actor(str(actor))  # what the change feed row gives the runner
    assert back == actor and back.user_id == owner and back.kind == "user"
    assert chain_depth(back) == depth


@given(users)
def test_a_persons_change_is_depth_zero(user) -> None:
    assert chain_depth(Actor(user)) == 0
    assert chain_depth(Actor(user, via="integration:github")) == 0


dates = st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31))
tasks = st.lists(
    st.fixed_dictionaries({"id": ids, "due": st.none() | dates.map(dt.date.isoformat)}),
    max_size=8,
    unique_by=lambda t: t["id"],
)
triggers = st.one_of(
    st.just({"type": "task_overdue"}),
    st.builds(
        lambda n, unit, zone: {
            "type": "due_date_approaching",
            "within": {unit: n},
            "timezone": zone,
        },
        st.integers(1, 200),
        st.sampled_from(["hours", "days"]),
        st.sampled_from(["UTC", "Europe/Paris", "Pacific/Auckland", "America/New_York"]),
    ),
    st.builds(
        lambda cron: {"type": "schedule", "cron": cron},
        st.sampled_from(["0 9 * * 1", "*/15 * * * *", "30 2 1 * *"]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(tasks, st.dictionaries(ids, triggers, max_size=4), dates, st.integers(0, 86399))
def test_fire_times_follow_the_due_dates_and_the_clock(task_list, rule_triggers, day, second):
    now = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() + second
    rules = {
        rid: {"name": rid, "trigger": trig, "actions": [], "created_by": "a"}
        for rid, trig in rule_triggers.items()
    }
    snapshot = {"tasks": task_list}
    fires = fires_for("p", rules, snapshot, now)
    due_of = {t["id"]: t["due"] for t in task_list}
    keys = [(f.rule, f.entity) for f in fires]
    assert len(keys) == len(set(keys))  # one fire time per (rule, task)
    for fire in fires:
        trigger = rules[fire.rule]["trigger"]
        assert fire.kind == trigger["type"]
        if fire.kind == "schedule":
            assert fire.entity == "" and fire.at > now
            continue
        due = due_of[fire.entity]
        assert due is not None and fire.key == f"{fire.kind}:{fire.entity}:{due}"
        zone = trigger.get("timezone", "UTC")
        if fire.kind == "task_overdue":
            assert fire.at == overdue_at(due, zone).timestamp()
        else:
            unit, n = next(iter(trigger["within"].items()))
            window = dt.timedelta(**{unit: n})
            assert fire.at == approaching_at(due, window, zone).timestamp()
            assert overdue_at(due, zone).timestamp() > now  # not while overdue
    # every task with a due date has its overdue fire, whatever the clock says
    for rid, trig in rule_triggers.items():
        if trig["type"] == "task_overdue":
            assert {f.entity for f in fires if f.rule == rid} == {
                t["id"] for t in task_list if t["due"]
            }
    # recomputing one task gives exactly that task's fires
    for t in task_list:
        only = fires_for("p", rules, snapshot, now, only_task=t["id"])
        assert sorted(only, key=repr) == sorted([f for f in fires if f.entity == t["id"]], key=repr)


def test_a_run_is_claimed_once_per_rule_and_event(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "t.db").conn
    rows = [
        ("r1", "p", "feed:1:0", {"kind": "x"}, "running", "", 0, 1.0),
        ("r2", "p", "feed:1:0", {"kind": "x"}, "skipped", "conditions not met", 0, 1.0),
        ("r1", "p", "feed:1:1", {"kind": "y"}, "running", "", 0, 1.0),
    ]
    first = record_runs(conn, rows, [0, 2])
    assert sorted(first) == [0, 2]
    # the feed delivers the same batch again (at least once): nothing is claimed twice
    assert record_runs(conn, rows, [0, 2]) == {}
    assert conn.execute("SELECT count(*) FROM rule_runs").fetchone()[0] == 3


def test_the_schedule_keeps_a_missed_fire_and_drops_ones_that_ran(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "t.db").conn
    missed = Fire("s1", "p", "schedule", "", 100.0, "schedule:100")
    overdue = Fire("r1", "p", "task_overdue", "t1", 150.0, "task_overdue:t1:2026-01-01")
    replace_schedule(conn, "p", [missed, overdue], None, now=50.0)
    # the server was down past 100 and 150; at start a recompute (rules changed) must not
    # drop the schedule's missed fire, and the due date fire is computed the same again
    later = Fire("s1", "p", "schedule", "", 1000.0, "schedule:1000")
    replace_schedule(conn, "p", [later, overdue], None, now=500.0)
    assert {(f.rule, f.at) for f in due_fires(conn, 500.0)} == {("s1", 100.0), ("r1", 150.0)}
    fired(conn, missed, later)
    record_runs(conn, [("r1", "p", overdue.key, {}, "ran", "", 0, 500.0)], [])
    fired(conn, overdue, None)
    assert due_fires(conn, 500.0) == []
    # a fire that ran is not scheduled again by a recompute
    replace_schedule(conn, "p", [later, overdue], "t1", now=600.0)
    assert [(f.rule, f.at) for f in due_fires(conn, 10_000.0)] == [("s1", 1000.0)]


@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True), max_size=5), st.integers(1, 3))
def test_a_run_carried_out_again_adds_its_subtasks_once(titles, times) -> None:
    doc: Doc = Doc()
    declare_roots(doc, DocKind.MAIN)
    create_task(doc, TaskCreate(title="parent"), created_by="olive", task_id="t1")
    added = [add_subtasks(doc, "t1", titles, "todo", "olive", "run-7-0") for _ in range(times)]
    tasks = doc.get("tasks", type=Map).to_py()
    children = {tid: t for tid, t in tasks.items() if t.get("parent") == "t1"}
    assert sorted(t["title"] for t in children.values()) == sorted(titles)
    assert sorted(added[0]) == sorted(children)
    assert all(again == [] for again in added[1:])
    # another run of the rule is another set
    add_subtasks(doc, "t1", titles, "todo", "olive", "run-8-0")
    assert sum(
        t.get("parent") == "t1" for t in doc.get("tasks", type=Map).to_py().values()
    ) == 2 * len(titles)
