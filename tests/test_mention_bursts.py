"""Property: over any sequence of edits to a task's description, typed in bursts, the
members told are exactly the distinct mentions each settled text added (extensions.mentions
against a real SQLite file with grants, a real pycrdt document, a clock the test moves)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from doc_model import DocKind, declare_roots, doc_name
from doc_model.domain_events import MENTION
from doc_model.mentions import excerpt, mentions_in
from rules import Grant, parse_permissions
from sync_server.extensions.mentions import Bursts, read_task_text, settle_mentions
from sync_server.extensions.notifications import mention_notices, notices_for
from sync_server.identity import access
from sync_server.interfaces import Actor
from sync_server.storage.database import open_database

PROJECT = "proj"
TASK = "t1"
QUIET = 3.0
TYPIST = "olive"
READERS = {"alice", "al", "olive"}  # members who may read tasks
# bob is a member without view_tasks, zed has no grant at all

PIECES = ["@alice", "@al", "@bob", "@zed", "@olive", "ice", "@", " ", "x", "\n", "mail@al.x"]

edit = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(PIECES)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
)
# a burst: edits typed well within the quiet time of each other
burst = st.lists(st.tuples(edit, st.floats(0.0, QUIET * 0.9)), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def conn(tmp_path_factory) -> sqlite3.Connection:
    db = open_database(Path(tmp_path_factory.mktemp("bursts")) / "t.db").conn
    access.set_grant(db, Grant(TYPIST, PROJECT, "owner"), "test")
    access.set_grant(db, Grant("alice", PROJECT, "member"), "test")
    access.set_grant(db, Grant("al", PROJECT, "viewer"), "test")
    access.set_grant(
        db, Grant("bob", PROJECT, "member", removed=parse_permissions(["view_tasks"])), "test"
    )
    return db


def apply(text: Text, op: tuple) -> None:
    kind, pos, arg = op
    length = len(text)
    if kind == "insert":
        text.insert(pos % (length + 1), arg)
    elif length:
        start = pos % length
        del text[start : min(length, start + arg)]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(initial=st.sampled_from(["", "@alice hi", "for @al"]), bursts=st.lists(burst, max_size=6))
def test_told_once_per_mention_a_settled_text_adds(conn, initial, bursts) -> None:
    conn.execute("DELETE FROM mention_marks")
    doc: Doc = Doc()
    declare_roots(doc, DocKind.MAIN)
    tasks = doc.get("tasks", type=Map)
    tasks[TASK] = Map({"title": Text("Task"), "description": Text(initial)})
    description = tasks[TASK]["description"]
    name = doc_name(PROJECT)
    key = (name, TASK)
    watch = Bursts(QUIET)
    actor = Actor(TYPIST)
    now = 1000.0
    told: Counter[str] = Counter()
    expected: Counter[str] = Counter()

    def settle_due() -> None:
        for _, who in watch.settled(now):
            events = settle_mentions(conn, name, PROJECT, TASK, read_task_text(doc, TASK), who)
            notices = mention_notices(conn, notices_for(PROJECT, who.user_id, events))  # type: ignore[arg-type]
            told.update(n.user for n in notices)

    # the task is created with its text: that settles like any burst
    watch.touch(key, actor, now)
    settled = mentions_in(initial)
    expected.update(settled & READERS - {TYPIST})
    for edits in bursts:
        now += QUIET + 1.0  # a pause: the last burst settles
        settle_due()
        for op, gap in edits:
            now += gap
            settle_due()  # within a burst nothing settles
            apply(description, op)
            watch.touch(key, actor, now)
        after = mentions_in(str(description))
        expected.update((after - settled) & READERS - {TYPIST})
        settled = after
    now += QUIET + 1.0
    settle_due()
    assert len(watch) == 0
    assert told == expected
    marks = {r[0] for r in conn.execute("SELECT user FROM mention_marks WHERE task = ?", (TASK,))}
    assert marks == set(settled)


def test_a_deleted_task_forgets_its_marks_and_tells_nobody(conn) -> None:
    conn.execute("DELETE FROM mention_marks")
    conn.execute("DELETE FROM change_feed")
    name = doc_name(PROJECT)
    text = {"title": "x", "description": "@alice"}
    events = settle_mentions(conn, name, PROJECT, TASK, text, Actor(TYPIST))
    assert [e.entity for e in events] == ["alice"]
    assert settle_mentions(conn, name, PROJECT, TASK, None, Actor(TYPIST)) == []
    assert conn.execute("SELECT count(*) FROM mention_marks").fetchone()[0] == 0
    rows = conn.execute("SELECT events FROM change_feed WHERE seq = 0").fetchall()
    assert len(rows) == 1 and '"where":"task"' in rows[0][0]


@given(st.text(alphabet="ab@ .\n", max_size=60), st.sampled_from(["a", "ab", "b"]))
def test_an_excerpt_names_the_mention_it_is_for(text, name) -> None:
    got = excerpt(text, name, limit=20)
    if name in MENTION.findall(text):
        assert f"@{name}" in got.replace("…", "") or len(name) + 1 > 20
        assert "\n" not in got and len(got.strip("…")) <= 20
    else:
        assert got == text[:20]
