"""Domain events (doc_model.domain_events): each event's before and after values are the
document's values before and after its transaction.

The property tests drive the real gate (sync_server.core.gate.Gate) with random edit
sequences: server-side edits with doc_model's write helpers, clients' own pycrdt
edits (typing, deleting, reassigning), and two clients' offline edits merged
concurrently; the gate is replaced now and then, as a room does when it reloads,
so that before values come from its index as well as from the transactions' own
events. Every accepted transaction's events are checked against JSON snapshots of
the document taken before and after it, one by one, and as a whole against the
events of the same changes computed from those snapshots. The last tests take the
real path: a WebSocket client's edit and a REST edit reach an observer of a real
server with their events.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import string
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from doc_model import (
    Change,
    DocKind,
    DomainEvent,
    TaskCreate,
    TaskUpdate,
    add_cost,
    add_member,
    add_time_entry,
    create_milestone,
    create_project_meta,
    create_task,
    delete_record,
    delete_task,
    move_task,
    new_document,
    parse_doc_name,
    post_chat_message,
    remove_member,
    set_budget,
    update_project_meta,
    update_record,
    update_task,
)
from doc_model.domain_events import (
    MENTION,
    UNVALUED,
    RepeatEvents,
    domain_events,
    snapshot,
    touched_from_snapshots,
)
from doc_model.schema import TASK_STATUSES
from sync_server.core.gate import Gate, GateResult
from sync_server.interfaces import Actor, DocumentChanged

from .test_permissions import _gate_with_project

EXAMPLES = int(os.environ.get("TANDEM_DOMAIN_EVENT_EXAMPLES", "60"))
USERS = ["ann", "bob", "cy", "dee"]
ACTOR = Actor("ann")

ROOT_OF = {
    "task": "tasks",
    "milestone": "milestones",
    "rule": "rules",
    "cost": "costs",
    "time_entry": "time_entries",
    "allocation": "allocations",
}

# a chosen project id must be a UUID (POST /projects/ cannot probe other teams' ids)
EVENTS_PROJECT = "0d5e8a52-7c1f-4b8e-9a55-2f6f7c1e0b19"


def _root_of(kind: str) -> str | None:
    for prefix, root in sorted(ROOT_OF.items(), key=lambda p: -len(p[0])):
        if kind.startswith(prefix + "_"):
            return root
    return None


def _strip(root: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in UNVALUED.get(root, ())}
    return value


def check_events(
    result: GateResult, before: dict, after: dict, kind: DocKind, changes=None
) -> None:
    """Each event against the snapshots; then all of them against the snapshots' diff
    (of ``changes``: the result's own, unless given)."""
    for e in result.events:
        assert DomainEvent.from_json(json.loads(json.dumps(e.to_json()))) == e  # plain JSON
        root = _root_of(e.kind)
        if root is not None:
            was, now = before[root].get(e.entity), after[root].get(e.entity)
            if e.kind.endswith(("_created", "_added")):
                assert was is None and e.before is None, e
                assert e.after == _strip(root, now), e
            elif e.kind.endswith("_deleted"):
                assert now is None and e.after is None, e
                assert e.before == _strip(root, was), e
            else:
                assert e.field is not None, e
                old = (was or {}).get(e.field)
                new = (now or {}).get(e.field)
                if e.field in UNVALUED.get(root, ()):
                    assert e.detail.get("unvalued") and e.before is None and e.after is None
                elif e.kind == "task_assignees_changed":
                    assert e.before == sorted(old or []) and e.after == sorted(new or []), e
                    assert e.detail["added"] == sorted(set(new or []) - set(old or []))
                    assert e.detail["removed"] == sorted(set(old or []) - set(new or []))
                else:
                    assert (e.before, e.after) == (old, new), e
                    assert old != new, e
                if e.kind == "milestone_completed":
                    assert new is True and old is not True
            if root == "tasks":  # the task's title, as it is after (or was, if deleted)
                assert e.detail.get("title") == (now or was).get("title"), e
        elif e.kind in ("project_changed", "budget_changed"):
            record = "meta" if e.kind == "project_changed" else "budget"
            old, new = before[record].get(e.field), after[record].get(e.field)
            assert (e.before, e.after) == (old, new) and old != new, e
        elif e.kind == "member_role_changed":
            old, new = before["members"].get(e.entity), after["members"].get(e.entity)
            assert (e.before, e.after) == (old, new) and old != new, e
        elif e.kind == "columns_changed":
            assert (e.before, e.after) == (before["columns"], after["columns"]), e
        elif e.kind in ("chat_message_posted", "comment_posted"):
            assert e.before is None and e.after in after["messages"], e
            assert e.after not in before["messages"], e
        elif e.kind == "mention":
            messages = {m["id"]: m for m in after["messages"]}
            text = messages[e.detail["message"]]["text"]
            assert e.entity == e.after and e.entity in MENTION.findall(text), e
        else:
            raise AssertionError(f"unexpected event {e}")
    changes = result.changes if changes is None else changes
    expected = domain_events(touched_from_snapshots(kind, changes, before, after))
    assert list(result.events) == expected


# -- the model of a session: a server document behind a gate, and two clients ----------------


@dataclass
class Session:
    kind: DocKind
    doc: Doc
    gate: Gate
    clients: list[Doc] = field(default_factory=list)
    accepted: int = 0
    events: int = 0
    modes: set[str] = field(default_factory=set)  # where before values came from

    @classmethod
    def start(cls, name: str) -> Session:
        doc_name = parse_doc_name(name)
        doc = new_document(doc_name.kind)
        return cls(doc_name.kind, doc, Gate(doc, doc_name))

    def gated(self, run) -> GateResult:
        before = snapshot(self.doc, self.kind)
        indexed = self.gate._index.built
        result = run()
        after = snapshot(self.doc, self.kind)
        if result.accepted:
            self.accepted += 1
            self.events += len(result.events)
            if result.events:
                self.modes.add("index" if indexed or self.gate._index.built else "own events")
            check_events(result, before, after, self.kind)
        else:
            assert result.events == ()
            assert after == before
        return result

    def edit(self, fn) -> GateResult:
        return self.gated(lambda: self.gate.edit(fn, ACTOR))

    def apply(self, update: bytes) -> GateResult:
        return self.gated(lambda: self.gate.apply(update, ACTOR))

    def client(self, i: int) -> Doc:
        while len(self.clients) <= i:
            self.clients.append(Doc())
        return self.clients[i]

    def sync(self, i: int) -> None:
        client = self.client(i)
        client.apply_update(self.doc.get_update(client.get_state()))

    def rebuild(self) -> None:
        """The document rebuilt from its own encoding, as a room does to free deleted
        content: the new gate takes the old one's index over."""
        doc_name = self.gate.doc_name
        doc = new_document(doc_name.kind)
        doc.apply_update(self.doc.get_update())
        old = self.gate
        old.close()
        self.doc = doc
        self.gate = Gate(doc, doc_name, same_content_as=old)

    def reload(self) -> None:
        """A new gate on the same document: no index until something is deleted."""
        self.gate.close()
        self.gate = Gate(self.doc, parse_doc_name(self.gate.doc_name.name))


def client_edit(client: Doc, fn) -> bytes | None:
    updates: list[bytes] = []
    sub = client.observe(lambda e: updates.append(e.update))
    try:
        with client.transaction():
            fn(client)
    finally:
        client.unobserve(sub)
    return updates[0] if updates else None


words = st.text(string.ascii_letters + " ", min_size=1, max_size=12).filter(str.strip)
users = st.lists(st.sampled_from(USERS), max_size=3, unique=True)
dates = st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31))


def task_ids(doc: Doc) -> list[str]:
    return sorted(doc.get("tasks", type=Map).keys())


def _server_edit(data, doc: Doc):
    """A random server-side edit of the main document (a function of the document)."""
    tasks = task_ids(doc)
    milestones = sorted(doc.get("milestones", type=Map).keys())
    choices = ["create", "member", "milestone", "meta"]
    if tasks:
        choices += ["update", "update", "move", "delete"]
    if milestones:
        choices += ["milestone_done", "milestone_delete"]
    what = data.draw(st.sampled_from(choices))
    if what == "create":
        task = TaskCreate(
            title=data.draw(words),
            assignees=data.draw(users),
            labels=data.draw(st.lists(st.sampled_from(["ui", "db", "ops"]), max_size=2)),
            status=data.draw(st.sampled_from(TASK_STATUSES)),
            description=data.draw(st.sampled_from(["", "why"])),
        )
        return lambda d: create_task(d, task, created_by="ann")
    if what == "update":
        tid = data.draw(st.sampled_from(tasks))
        values = data.draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "title": words,
                    "description": st.sampled_from(["", "a", "longer text"]),
                    "status": st.sampled_from(TASK_STATUSES),
                    "priority": st.sampled_from(["low", "high"]),
                    "assignees": users,
                    "labels": st.lists(st.sampled_from(["ui", "db"]), max_size=2),
                    "due": st.none() | dates,
                    "estimate": st.none() | st.integers(0, 40) | st.sampled_from([1.5, 2.0]),
                    "custom": st.dictionaries(
                        st.sampled_from(["k", "v"]), st.integers(0, 3) | st.none(), max_size=2
                    ),
                    "milestone": st.none() | st.sampled_from(milestones or ["m1"]),
                },
            )
        )
        update = TaskUpdate.model_validate(values)
        return lambda d: update_task(d, tid, update)
    if what == "move":
        tid = data.draw(st.sampled_from(tasks))
        status = data.draw(st.sampled_from(TASK_STATUSES))
        return lambda d: move_task(d, tid, status)
    if what == "delete":
        tid = data.draw(st.sampled_from(tasks))
        return lambda d: delete_task(d, tid)
    if what == "member":
        user = data.draw(st.sampled_from(USERS))
        if data.draw(st.booleans()):
            role = data.draw(st.sampled_from(["owner", "member", "viewer"]))
            return lambda d: add_member(d, user, role)
        return lambda d: remove_member(d, user)
    if what == "milestone":
        name = data.draw(words)
        return lambda d: create_milestone(d, name, due=dt.date(2026, 12, 24))
    if what == "milestone_done":
        mid = data.draw(st.sampled_from(milestones))
        values = {"done": data.draw(st.booleans()), "name": data.draw(words)}
        return lambda d: update_record(d, "milestones", mid, values)
    if what == "milestone_delete":
        mid = data.draw(st.sampled_from(milestones))
        return lambda d: delete_record(d, "milestones", mid)
    values = {"name": data.draw(words), "status": data.draw(st.sampled_from(["active", "on_hold"]))}
    return lambda d: update_project_meta(d, values)


def _client_edit(data, doc: Doc):
    """A random edit a client makes with pycrdt directly (None: nothing to edit)."""
    tasks = task_ids(doc)
    if not tasks:
        return None
    tid = data.draw(st.sampled_from(tasks))
    what = data.draw(
        st.sampled_from(["type", "erase", "assign", "unassign", "status", "custom", "describe"])
    )
    position = data.draw(st.integers(0, 1000))
    text = data.draw(words)
    user = data.draw(st.sampled_from(USERS))
    status = data.draw(st.sampled_from(TASK_STATUSES))

    def edit(d: Doc) -> None:
        task = d.get("tasks", type=Map).get(tid)
        if not isinstance(task, Map):
            return
        title = task["title"]
        if what == "type":
            title.insert(position % (len(title) + 1), text)
        elif what == "erase" and len(title) > 1:
            start = position % len(title)
            del title[start : min(len(title), start + 3)]
            if not str(title).strip():
                title.insert(0, "x")
        elif what == "assign":
            task["assignees"].append(user)
        elif what == "unassign" and len(task["assignees"]):
            del task["assignees"][position % len(task["assignees"])]
        elif what == "status":
            task["status"] = status
        elif what == "custom":
            task["custom"][text[:3]] = position
        elif what == "describe":
            task["description"].insert(0, text)

    return edit


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_events_of_random_edit_sequences_match_the_document_before_and_after(data) -> None:
    s = Session.start("p/events")
    s.gate.close()  # a stored project, as a room loads it: no index until a deletion
    create_project_meta(s.doc, "Events")
    for title in ("One", "Two"):
        create_task(s.doc, TaskCreate(title=title, assignees=["bob"]), created_by="ann")
    s.gate = Gate(s.doc, parse_doc_name("p/events"))
    steps = ["server", "client", "client", "client", "concurrent", "concurrent"]
    steps += ["reload", "rebuild"]
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        step = data.draw(st.sampled_from(steps))
        if step == "server":
            s.edit(_server_edit(data, s.doc))
        elif step == "client":
            s.sync(0)
            edit = _client_edit(data, s.client(0))
            update = client_edit(s.client(0), edit) if edit else None
            if update:
                s.apply(update)
        elif step == "concurrent":  # two clients edit offline; the server merges both
            s.sync(0)
            s.sync(1)
            updates = []
            for i in (0, 1):
                edit = _client_edit(data, s.client(i))
                update = client_edit(s.client(i), edit) if edit else None
                if update:
                    updates.append(update)
            for update in updates:
                s.apply(update)
        elif step == "rebuild":
            s.rebuild()
        else:
            s.reload()
    s.edit(lambda d: update_project_meta(d, {"name": "Done"}))
    event(f"before values from: {', '.join(sorted(s.modes))}")
    assert s.accepted >= 1 and s.events >= 1


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None)
@given(data=st.data())
def test_finance_events_match_the_document_before_and_after(data) -> None:
    s = Session.start("p/events/finance")
    s.edit(lambda d: set_budget(d, currency="EUR", total=100))
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        costs = sorted(s.doc.get("costs", type=Map).keys())
        what = data.draw(
            st.sampled_from(["budget", "cost", "time", "reload"] + ["edit"] * bool(costs))
        )
        if what == "budget":
            total = data.draw(st.integers(0, 5000))
            cats = data.draw(st.dictionaries(st.sampled_from(["ops", "dev"]), st.integers(0, 9)))
            s.edit(lambda d, t=total, c=cats: set_budget(d, currency="EUR", total=t, categories=c))
        elif what == "cost":
            amount = data.draw(st.integers(-50, 500))
            s.edit(lambda d, a=amount: add_cost(d, amount=a, currency="EUR", category="ops"))
        elif what == "time":
            hours = data.draw(st.sampled_from([0.5, 1, 8]))
            s.edit(
                lambda d, h=hours: add_time_entry(d, user="bob", hours=h, date=dt.date(2026, 1, 2))
            )
        elif what == "edit":
            cid = data.draw(st.sampled_from(costs))
            if data.draw(st.booleans()):
                amount = data.draw(st.integers(0, 99))
                s.edit(lambda d, c=cid, a=amount: update_record(d, "costs", c, {"amount": a}))
            else:
                s.edit(lambda d, c=cid: delete_record(d, "costs", c))
        else:
            s.reload()
    event(f"before values from: {', '.join(sorted(s.modes))}")
    assert s.accepted >= 1 and s.events >= 1


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.lists(st.sampled_from(["hi", "@bob", "@cy", "mail@dee.example", "@@x", "see"])),
            st.none() | st.sampled_from(["t1", "t2"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_chat_messages_comments_and_mentions(messages) -> None:
    s = Session.start("p/events/chat")
    for words_, task in messages:
        text = " ".join(words_) or "empty"
        result = s.edit(
            lambda d, text=text, task=task: post_chat_message(d, "ann", text, task=task)
        )
        posted = [e for e in result.events if e.kind in ("chat_message_posted", "comment_posted")]
        assert len(posted) == 1
        assert posted[0].kind == ("comment_posted" if task else "chat_message_posted")
        mentioned = [e.entity for e in result.events if e.kind == "mention"]
        assert mentioned == sorted(set(MENTION.findall(text)))
        assert "dee" not in mentioned  # an e-mail address is no mention


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["create", "title", "untitle", "priority", "assign", "delete"]),
            st.integers(0, 3),
            st.text("abc", min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_a_batch_kept_in_part_has_the_events_of_the_kept_part_only(steps) -> None:
    """A member's offline batch, refused whole and applied again in parts (the room's
    path for it, sync_server.core.split): its events are those of what was kept."""
    server, ids, gate = _gate_with_project()
    pre = server.get_update()
    before = snapshot(server, DocKind.MAIN)
    client = new_document(DocKind.MAIN)
    client.apply_update(pre)
    state = client.get_state()
    tasks = client.get("tasks", type=Map)
    for op, n, text in steps:
        with client.transaction():
            if op == "create":
                create_task(client, TaskCreate(title=text, assignees=["ann"]), created_by="ann")
                continue
            task_id = ids[n]
            if task_id not in tasks:
                continue
            task = tasks[task_id]
            if op == "delete":
                delete_task(client, task_id)
            elif op == "title":
                task["title"].insert(n % (len(task["title"]) + 1), text)
            elif op == "untitle" and len(task["title"]) > 1:
                del task["title"][0:1]
            elif op == "assign":
                task["assignees"].append(text)
            else:
                task["priority"] = ["low", "high", "urgent", "medium"][n]
    batch = client.get_update(state)
    result = gate.apply(batch, Actor("ann"))
    if result.splittable:
        server = Doc()
        server.apply_update(pre)
        gate = Gate(server, parse_doc_name("p/x"), gate.permission_check)
        result = gate.apply_in_parts(batch, Actor("ann"))
    after = snapshot(server, DocKind.MAIN)
    event("accepted" if result.accepted else "kept in part" if result.kept else "refused")
    if result.accepted:
        check_events(result, before, after, DocKind.MAIN)
    elif result.kept:
        check_events(result, before, after, DocKind.MAIN, result.kept)
        kept = {str(c.path[1]) for c in result.kept if c.root == "tasks" and len(c.path) > 1}
        assert {e.entity for e in result.events} <= kept
    else:
        assert result.events == () and after == before


def test_a_rejected_transaction_has_no_events_and_the_index_stays_true() -> None:
    s = Session.start("p/events")
    s.edit(lambda d: create_project_meta(d, "Events"))
    ids: list[str] = []
    s.edit(
        lambda d: ids.append(
            create_task(d, TaskCreate(title="A", assignees=["bob"]), created_by="ann")
        )
    )
    s.edit(lambda d: delete_task(d, "nope"))  # raises inside: reverted, no events
    s.sync(0)
    bad = client_edit(
        s.client(0), lambda d: d.get("tasks", type=Map)[ids[0]].__setitem__("status", 5)
    )
    assert bad is not None and not s.apply(bad).accepted
    result = s.edit(lambda d: update_task(d, ids[0], TaskUpdate(status="done", assignees=["cy"])))
    assert [(e.kind, e.before, e.after) for e in result.events] == [
        ("task_assignees_changed", ["bob"], ["cy"]),
        ("task_field_changed", "todo", "done"),
    ]


def test_typing_in_a_document_without_an_index_needs_none() -> None:
    """Insert-only transactions take their before values from their own events: the
    gate builds no index of the document for them (its cost stays per keystroke)."""
    s = Session.start("p/events")
    s.edit(lambda d: create_project_meta(d, "Events"))
    ids: list[str] = []
    s.edit(lambda d: ids.append(create_task(d, TaskCreate(title="Plan"), created_by="ann")))
    s.reload()
    s.sync(0)
    title = s.client(0).get("tasks", type=Map)[ids[0]]["title"]
    for ch in " it":
        update = client_edit(s.client(0), lambda d, ch=ch: title.insert(len(title), ch))
        assert update is not None
        result = s.apply(update)
        assert result.events[0].kind == "task_field_changed"
    assert result.events[0].before == "Plan i" and result.events[0].after == "Plan it"
    assert not s.gate._index.built
    update = client_edit(s.client(0), lambda d: title.__delitem__(slice(0, 1)))
    assert update is not None
    assert s.apply(update).events[0].before == "Plan it"
    assert s.gate._index.built


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_typing_bursts_reuse_their_events_only_while_the_task_and_its_title_stand(data) -> None:
    """The gate keeps the events of description keystrokes by their changes
    (doc_model.domain_events.RepeatEvents) and reuses them for the next keystroke of the
    same shape. Between keystrokes, the task's title changes every way it can (a
    client's typing, a server edit, another process's write applied outside the gate,
    an over-long title refused and undone, the whole task replaced under the same id,
    the task deleted), and every keystroke's events must still be those the
    snapshots before and after it give (check_events: the title in ``detail`` included)."""
    s = Session.start("p/events")
    s.edit(lambda d: create_project_meta(d, "Events"))
    ids: list[str] = []
    for title in ("One", "Two"):
        s.edit(lambda d, t=title: ids.append(create_task(d, TaskCreate(title=t), created_by="ann")))
    if data.draw(st.booleans(), label="indexed"):
        s.edit(lambda d: delete_task(d, create_task(d, TaskCreate(title="x"), created_by="ann")))
    steps = ["type"] * 6 + ["title", "server", "external", "refused", "replace", "delete"]
    reused = 0
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        step = data.draw(st.sampled_from(steps))
        tid = data.draw(st.sampled_from(ids))
        text = data.draw(words)
        where = data.draw(st.integers(0, 100))
        reused += _burst_step(s, step, tid, text, where)
    event(f"repeats reused: {'some' if reused else 'none'}")


def _burst_step(s: Session, step: str, tid: str, text: str, where: int) -> bool:
    """One step of the typing-burst test; True if a keystroke's events were reused."""
    s.sync(0)
    task = s.client(0).get("tasks", type=Map).get(tid)
    if step == "replace":
        fresh: dict[str, Any] = {"title": Text(text), "description": Text(""), "status": "todo"}
        fresh |= {"priority": "medium", "order": "a0", "created_by": "ann"}
        fresh |= {"created_at": "2026-01-01T00:00:00Z", "custom": Map({})}
        for name in ("assignees", "labels", "depends_on"):
            fresh[name] = Array([])
        tasks = s.client(0).get("tasks", type=Map)
        update = client_edit(s.client(0), lambda d: tasks.__setitem__(tid, Map(fresh)))
        assert update is not None and s.apply(update).accepted
        return False
    if not isinstance(task, Map):
        return False
    if step == "type":
        desc = task["description"]
        update = client_edit(s.client(0), lambda d: desc.insert(where % (len(desc) + 1), text))
        assert update is not None
        kept = dict(s.gate._repeats._kept)
        result = s.apply(update)
        assert result.accepted and [e.field for e in result.events] == ["description"]
        reused = [pair for pair in kept.values() if pair[1] is result.events]
        if reused:  # the very tuples kept, equal to what this transaction changed
            assert reused[0][0] is result.changes
        return bool(reused)
    if step in ("title", "external"):
        update = client_edit(s.client(0), lambda d: task["title"].insert(0, text))
        assert update is not None
        if step == "title":
            assert s.apply(update).accepted
        else:  # another process's write, applied as a room applies it (not through the gate)
            with s.doc.transaction(origin="storage"):
                s.doc.apply_update(update)
    elif step == "server":
        s.edit(lambda d: update_task(d, tid, TaskUpdate(title=text)))
    elif step == "refused":
        update = client_edit(s.client(0), lambda d: task["title"].insert(0, "x" * 600))
        assert update is not None and not s.apply(update).accepted
        s.clients.clear()  # that client holds the refused title: a fresh one syncs
    elif step == "delete":
        s.edit(lambda d: delete_task(d, tid))
    return False


# -- the real path --------------------------------------------------------------------------


@dataclass
class Recorder:
    seen: list[DocumentChanged] = field(default_factory=list)

    async def documents_changed(self, events) -> None:
        self.seen.extend(events)

    def events(self, kind: str) -> list:
        """Events of ``kind`` from people's edits (not the server's task key after them)."""
        return [
            e
            for c in self.seen
            for e in c.events
            if e.kind == kind and str(c.actor) != "system:task-keys"
        ]


@pytest.mark.anyio
async def test_a_websocket_edit_and_a_rest_edit_reach_observers_with_their_events(
    tmp_path,
) -> None:
    from hypercorn.asyncio import serve

    from sync_server.shell.app import create_app
    from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
    from sync_server.shell.settings import Settings

    from .conftest import free_port
    from .raw_client import RawClient
    from .test_rooms import InProcessServer

    settings = Settings(db=str(tmp_path / "ev.db"), port=free_port())
    recorder = Recorder()
    refuse_permessage_deflate()
    app = create_app(settings, observers=[recorder])
    stop = anyio.Event()
    srv = InProcessServer(tmp_path / "ev.db", settings.port)
    token = await anyio.to_thread.run_sync(srv.token, "alice")
    base = f"http://127.0.0.1:{settings.port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait))
        try:
            async with httpx.AsyncClient(headers=headers) as http:
                with anyio.fail_after(10):
                    while True:
                        try:
                            if (
                                await http.get(f"http://127.0.0.1:{settings.port}/healthz")
                            ).is_success:
                                break
                        except httpx.HTTPError:
                            await anyio.sleep(0.05)
                r = await http.post(
                    f"{base}/projects/", json={"id": EVENTS_PROJECT, "name": "Events"}
                )
                assert r.status_code == 201, r.text
                r = await http.post(
                    f"{base}/projects/{EVENTS_PROJECT}/tasks/",
                    json={"title": "Ship", "assignees": ["bob"]},
                )
                assert r.status_code == 201, r.text
                task = r.json()["id"]
                async with RawClient.connect(srv, f"p/{EVENTS_PROJECT}", "alice") as client:
                    await client.sync()
                    t = client.doc.get("tasks", type=Map)[task]

                    def edit(d: Doc) -> None:
                        t["title"].insert(4, " it")
                        t["assignees"].append("cy")
                        t["status"] = "review"

                    n = await client.send_update(client.edit(edit))
                    assert (await client.outcome(n))["type"] == "ack"
                r = await http.patch(
                    f"{base}/tasks/{task}/", json={"status": "done", "due": "2026-12-24"}
                )
                assert r.status_code == 200, r.text
                with anyio.fail_after(5):
                    while len(recorder.events("task_field_changed")) < 4:
                        await anyio.sleep(0.02)
        finally:
            stop.set()
    created = recorder.events("task_created")
    assert [(e.entity, e.after["title"], e.after["assignees"]) for e in created] == [
        (task, "Ship", ["bob"])
    ]
    changed = [(e.field, e.before, e.after) for e in recorder.events("task_field_changed")]
    assert changed == [
        ("status", "todo", "review"),
        ("title", "Ship", "Ship it"),
        ("due", None, "2026-12-24"),
        ("status", "review", "done"),
    ]
    (assigned,) = recorder.events("task_assignees_changed")
    assert (assigned.before, assigned.after, assigned.detail["added"]) == (
        ["bob"],
        ["bob", "cy"],
        ["cy"],
    )
    assert all(e.detail["title"] == "Ship it" for e in recorder.events("task_field_changed")[1:])
    by_actor = {str(c.actor) for c in recorder.seen if c.events}
    assert "alice" in by_actor


@pytest.mark.anyio
async def test_a_cli_write_carries_its_events_in_the_update_record(tmp_path) -> None:
    from sync_server.storage.offline_edit import edit_stored_document
    from sync_server.storage.sqlite_store import SQLiteStore

    records: list = []

    class Spy(SQLiteStore):
        async def append(self, doc_name, batch):
            records.extend(batch)
            return await super().append(doc_name, batch)

    store = Spy(str(tmp_path / "cli.db"))
    try:
        await edit_stored_document(
            store, "p/cli", "system:cli", lambda d: create_project_meta(d, "C")
        )
        await edit_stored_document(
            store, "p/cli", "system:cli", lambda d: add_member(d, "bob", "member")
        )
        await edit_stored_document(
            store, "p/cli", "system:cli", lambda d: add_member(d, "bob", "viewer")
        )
        await edit_stored_document(store, "p/cli", "system:cli", lambda d: remove_member(d, "bob"))
    finally:
        await store.close()
    roles = [
        (e.before, e.after) for r in records for e in r.events if e.kind == "member_role_changed"
    ]
    assert roles == [(None, "member"), ("member", "viewer"), ("viewer", None)]
    assert all(r.changes for r in records)
    assert any(e.kind == "project_changed" and e.field == "name" for e in records[0].events)


def test_activity_rows_are_worked_out_from_the_events_alone() -> None:
    from sync_server.extensions.activity import entries_for

    s = Session.start("p/events")
    rows = lambda result: entries_for(DocKind.MAIN, result.events)  # noqa: E731
    assert {r["action"] for r in rows(s.edit(lambda d: create_project_meta(d, "A")))} == {
        "columns.added",
        "project.added",
    }
    ids: list[str] = []
    created = s.edit(
        lambda d: ids.append(create_task(d, TaskCreate(title="T", status="todo"), created_by="x"))
    )
    assert rows(created) == [
        {"action": "task.created", "task": ids[0], "detail": {"title": "T", "status": "todo"}}
    ]
    moved = s.edit(lambda d: move_task(d, ids[0], "done"))
    assert rows(moved) == [{"action": "task.status", "task": ids[0], "detail": {"status": "done"}}]
    assigned = s.edit(lambda d: update_task(d, ids[0], TaskUpdate(assignees=["bob", "ann"])))
    assert rows(assigned) == [
        {"action": "task.assigned", "task": ids[0], "detail": {"assignees": ["ann", "bob"]}}
    ]
    edited = s.edit(lambda d: update_task(d, ids[0], TaskUpdate(title="U", description="why")))
    assert rows(edited) == [
        {"action": "task.updated", "task": ids[0], "detail": {"fields": ["description", "title"]}}
    ]
    member = s.edit(lambda d: add_member(d, "bob", "member"))
    assert rows(member) == [{"action": "member.added", "task": None, "detail": {"user": "bob"}}]
    renamed = s.edit(lambda d: update_project_meta(d, {"name": "B"}))
    assert rows(renamed) == [
        {"action": "project.updated", "task": None, "detail": {"fields": ["name"]}}
    ]
    gone = s.edit(lambda d: delete_task(d, ids[0]))
    assert rows(gone) == [{"action": "task.deleted", "task": ids[0], "detail": {}}]


def test_kept_repeat_events_and_their_index_stay_bounded_over_many_renames() -> None:
    """Typing into two tasks' descriptions at once keeps that shape's events; renaming one
    of the tasks drops them. Over many such rounds nothing is left behind: neither the
    kept events nor the index of which tasks they touch."""
    repeats = RepeatEvents()
    for i in range(2_000):
        a, b = f"t{i}", f"t{i + 1}"
        changes = (
            Change(("tasks", a, "description"), "edit"),
            Change(("tasks", b, "description"), "edit"),
        )
        events = tuple(
            DomainEvent("task_field_changed", t, "description", None, None, {"unvalued": True})
            for t in (a, b)
        )
        repeats.put(changes, events)
        assert repeats.get(changes) == (changes, events)
        repeats.forget([Change(("tasks", a, "title"), "edit")])  # a renamed
        assert repeats.get(changes) is None
    assert not repeats._kept
    assert not repeats._by_entity
