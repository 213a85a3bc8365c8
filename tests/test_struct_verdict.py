"""Keystrokes judged from their structs (sync_server.core.struct_verdict) against the oracle.

The oracle is the gate's ordinary path: apply the update, read its events, check
schema and permissions, undo it if refused (``Gate(..., judge_from_structs=False)``).
Hypothesis drives several clients with random permission sets (custom roles: any
subset of the permissions, so field-level rules such as assignees needing
assign_tasks, and own-versus-all tasks) over tasks with random assignees. They
type runs of keystrokes into titles and descriptions (their own tasks and other
people's), delete text, paste past the title's limit, type into two tasks in one
transaction, delete other tasks, set fields, write forbidden roots, hold an update
back (a clock gap), and send hand-built keystrokes whose origin is any known
character (in any task's text, refused ones included). Every
update goes to both gates; verdicts, changes, domain events and the documents must
be identical after every update.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from doc_model import (
    DocKind,
    TaskCreate,
    add_member,
    create_project_meta,
    create_task,
    declare_roots,
    delete_task,
    new_document,
    parse_doc_name,
    set_task_field,
)
from rules import BUILTIN_ROLES, Permission, decide
from sync_server.core import state_vectors
from sync_server.core.gate import (
    Denial,
    Gate,
    GateResult,
    MissingDependencies,
    UnrevertableUpdate,
)
from sync_server.core.protocol import varuint
from sync_server.core.struct_verdict import read_text_edit
from sync_server.interfaces import Actor

USERS = ("ann", "bob", "cat")
NAME = parse_doc_name("p/x")


def _checker(grants: dict[str, frozenset[Permission]]):
    def check(actor, doc_name, changes, doc, task):
        def new_task_fields(task_id: str) -> list[str]:
            value = doc.get("tasks", type=Map).get(task_id)
            return list(value.keys()) if isinstance(value, Map) else []

        d = decide(
            grants[actor.user_id],
            actor.user_id,
            doc_name.kind,
            changes,
            task=task,
            new_task_fields=new_task_fields,
        )
        return None if d.allowed else Denial(d.reason, d.path, d.permission)

    return check


class Pair:
    """A gate that judges from structs, and for each update the oracle: a gate on a copy of
    the same document that takes the ordinary path. (The copy is made per update: what the
    gate's undo writes takes ids in yrs's own hash map order, which differs from one
    document to another, so two documents fed the same updates drift apart in their ids.)"""

    CLIENT = 1000  # the server document's own client id (what its undo writes)

    def __init__(self, base: bytes, check) -> None:
        self.check = check
        self.log = [base]  # what storage holds: the base, then every stored update
        self.fast = self._gate(self.log, judge_from_structs=True)

    def _gate(self, updates: list[bytes], *, judge_from_structs: bool) -> Gate:
        doc: Doc = Doc(client_id=self.CLIENT)
        declare_roots(doc, DocKind.MAIN)
        for update in updates:
            doc.apply_update(update)
        return Gate(doc, NAME, self.check, judge_from_structs=judge_from_structs)

    def reload(self) -> None:
        """What the room does after an unrevertable update: the document again from storage."""
        self.fast.close()
        self.fast = self._gate(self.log, judge_from_structs=True)

    def send(self, update: bytes, user: str) -> GateResult | str:
        before = self.fast.doc.get_update()
        oracle = self._gate([before], judge_from_structs=False)
        outcomes = [_outcome(g, update, user) for g in (self.fast, oracle)]
        assert _comparable(outcomes[0]) == _comparable(outcomes[1]), (update, outcomes)
        assert _content(self.fast.doc) == _content(oracle.doc), update
        result = outcomes[0]
        if isinstance(result, str):
            if not result.startswith("MissingDependencies(applied=False)"):
                self.reload()
            return result
        if result.splittable:
            self.reload()
            oracle = self._gate(self.log, judge_from_structs=False)
            parts = [g.apply_in_parts(update, Actor(user)) for g in (self.fast, oracle)]
            assert _comparable(parts[0]) == _comparable(parts[1])
            assert _content(self.fast.doc) == _content(oracle.doc)
            result = parts[0]
        if result.update is not None:
            self.log.append(result.update)
        return result


def _content(doc: Doc) -> object:
    """What a document holds: every root's value and its state vector (the encoding's byte
    order follows a hash map's, so the bytes are not compared)."""
    roots = {name: doc.get(name, type=Map).to_py() for name in ("tasks", "meta", "members")}
    return roots, state_vectors.decode(doc.get_state())


def _outcome(gate: Gate, update: bytes, user: str) -> GateResult | str:
    try:
        return gate.apply(update, Actor(user))
    except MissingDependencies as e:
        return f"MissingDependencies(applied={e.applied})"
    except UnrevertableUpdate as e:
        return f"UnrevertableUpdate: {e}"


def _comparable(outcome: GateResult | str) -> object:
    if isinstance(outcome, str):
        return outcome
    denial = outcome.denial
    if len(outcome.changes) > 1:
        # yrs reports a transaction's events in its own (hash map) order, which differs from
        # one document to another: the order, and so which refusal comes first, is not kept
        return (
            outcome.accepted,
            denial is not None,
            sorted(map(str, outcome.changes)),
            sorted(map(repr, outcome.events)),
            outcome.splittable,
            sorted(map(str, outcome.kept)),
        )
    return (
        outcome.accepted,
        (denial.reason, denial.path, denial.permission) if denial else None,
        outcome.changes,
        outcome.events,
        outcome.violations,
        outcome.splittable,
        outcome.kept,
    )


def _forged(client: int, clock: int, origin, right, text: str) -> bytes:
    """One string item of ``client`` at ``clock`` with the given origins (ids or None)."""
    info = 4 | (0x80 if origin else 0) | (0x40 if right else 0)
    out = varuint(1) + varuint(1) + varuint(client) + varuint(clock) + bytes([info])
    for ref in (origin, right):
        if ref:
            out += varuint(ref[0]) + varuint(ref[1])
    data = text.encode()
    return out + varuint(len(data)) + data + varuint(0)


OPS = (
    "type",
    "type",
    "burst",
    "burst",
    "burst",
    "backspace",
    "paste",
    "two",
    "delete_task",
    "status",
    "assign",
    "members",
    "hold",
    "forge",
    "forge",
    "unknown_root",
)

steps = st.lists(
    st.tuples(
        st.integers(0, len(USERS) - 1),
        st.sampled_from(OPS),
        st.integers(0, 3),
        st.sampled_from(("title", "description")),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=5,
    max_size=40,
)
roles = st.one_of(
    st.sampled_from([BUILTIN_ROLES[r].permissions for r in ("member", "manager", "viewer")]),
    st.frozensets(st.sampled_from(list(Permission))),  # custom roles
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    perms=st.tuples(roles, roles, roles),
    assignees=st.lists(st.lists(st.sampled_from(USERS), max_size=2), min_size=4, max_size=4),
    script=steps,
)
def test_the_struct_verdict_is_the_apply_and_inspect_verdict(perms, assignees, script) -> None:
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    ids = [
        create_task(server, TaskCreate(title=f"task {i}", assignees=a), created_by="x")
        for i, a in enumerate(assignees)
    ]
    pair = Pair(server.get_update(), _checker(dict(zip(USERS, perms, strict=True))))
    clients: list[Doc] = []
    outboxes: list[list[bytes]] = []
    for _ in USERS:
        doc = new_document(DocKind.MAIN)
        doc.apply_update(server.get_update())
        outbox: list[bytes] = []
        doc.observe(partial(lambda out, e: out.append(e.update), outbox))
        clients.append(doc)
        outboxes.append(outbox)
    known: list[tuple[int, int]] = []  # ids of characters typed so far (for forged origins)
    held: set[int] = set()  # clients holding an update back

    def deliver(i: int, update: bytes) -> None:
        user = USERS[i]
        edit = read_text_edit(update)
        result = pair.send(update, user)
        if isinstance(result, str):
            if result.startswith("MissingDependencies"):  # the room asks for a resync
                state = pair.fast.doc.get_state()
                resync = clients[i].get_update(state)
                held.discard(i)
                result = pair.send(resync, user)
                if isinstance(result, str):
                    return
            else:
                return
        if edit is not None:
            known.extend((edit.client, c) for c in range(edit.clock, edit.end))
        if result.update is not None:
            for doc in clients:
                doc.apply_update(result.update)

    for who, op, n, field, a, b in script:
        client = clients[who]
        tasks = client.get("tasks", type=Map)
        task_id = ids[n]
        outboxes[who].clear()
        exists = task_id in tasks and isinstance(tasks[task_id], Map)
        text: Any = tasks[task_id].get(field) if exists else None
        if op in ("type", "burst", "backspace", "paste", "hold") and text is None:
            continue
        if op == "type" or op == "hold":
            with client.transaction():
                text.insert(a % (len(str(text)) + 1), "xyz"[b % 3])
        elif op == "burst":
            at = a % (len(str(text)) + 1)
            for k in range(2 + b % 6):
                with client.transaction():
                    text.insert(at + k, "ab"[k % 2])
        elif op == "backspace":
            size = len(str(text))
            if size:
                at = a % size
                with client.transaction():
                    del text[at : min(size, at + 1 + b % 3)]
        elif op == "paste":
            with client.transaction():
                text.insert(a % (len(str(text)) + 1), "p" * (1 + b % 600))
        elif op == "two":
            other = ids[(n + 1) % len(ids)]
            if not exists or other not in tasks:
                continue
            with client.transaction():
                text.insert(0, "t")
                tasks[other][field].insert(0, "u")
        elif op == "delete_task":
            if not exists:
                continue
            with client.transaction():
                delete_task(client, task_id)
        elif op == "status":
            if not exists:
                continue
            with client.transaction():
                set_task_field(client, task_id, "status", ("done", "todo")[b % 2])
        elif op == "assign":
            if not exists:
                continue
            with client.transaction():
                tasks[task_id]["assignees"].append(USERS[b % 3])
        elif op == "members":
            with client.transaction():
                add_member(client, USERS[who], "owner")
        elif op == "unknown_root":
            with client.transaction():
                client.get("elsewhere", type=Map)["k"] = 1
        elif op == "forge":
            if not known:
                continue
            clock = state_vectors.decode(client.get_state()).get(client.client_id, 0)
            # one origin, left or right (an item whose two origins are not neighbours
            # integrates in an order that depends on the document's history: a copy of the
            # document made from its encoding can hold the characters in another order)
            origin, right = known[a % len(known)], None
            if b % 3 == 0:
                origin, right = None, origin
            outboxes[who].append(_forged(client.client_id, clock, origin, right, "f" * (1 + b % 2)))
        sent = list(outboxes[who])
        outboxes[who].clear()
        if op == "hold":
            held.add(who)  # this one never goes; the next one has a clock gap
            continue
        for update in sent:
            deliver(who, update)
    event(f"updates judged from their structs: {min(pair.fast.judged_from_structs, 5)}+")


def test_a_typing_burst_is_judged_from_its_structs_after_its_first_keystroke() -> None:
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    task_id = create_task(server, TaskCreate(title="a title"), created_by="x")
    check = _checker({"ann": BUILTIN_ROLES["manager"].permissions})
    pair = Pair(server.get_update(), check)
    client = new_document(DocKind.MAIN)
    client.apply_update(server.get_update())
    sent: list[bytes] = []
    client.observe(lambda e: sent.append(e.update))
    title = client.get("tasks", type=Map)[task_id]["title"]
    for k in range(10):
        with client.transaction():
            title.insert(2 + k, "x")
    for update in sent:
        result = pair.send(update, "ann")
        assert isinstance(result, GateResult) and result.accepted
    assert pair.fast.judged_from_structs == 9  # the first built on the server's characters
    assert str(pair.fast.doc.get("tasks", type=Map)[task_id]["title"]) == "a xxxxxxxxxxtitle"


def test_a_keystroke_in_somebody_elses_task_is_refused_as_before() -> None:
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    mine = create_task(server, TaskCreate(title="mine", assignees=["ann"]), created_by="x")
    theirs = create_task(server, TaskCreate(title="theirs", assignees=["bob"]), created_by="x")
    grants = {
        "ann": frozenset({Permission.EDIT_OWN_TASKS, Permission.VIEW_TASKS}),
        "bob": BUILTIN_ROLES["manager"].permissions,
    }
    pair = Pair(server.get_update(), _checker(grants))
    bob = new_document(DocKind.MAIN)
    bob.apply_update(server.get_update())
    sent: list[bytes] = []
    bob.observe(lambda e: sent.append(e.update))
    for k in range(3):  # bob types into his task: the gate learns its characters
        with bob.transaction():
            bob.get("tasks", type=Map)[theirs]["title"].insert(k, "b")
    for update in sent:
        assert isinstance(pair.send(update, "bob"), GateResult)
    edit = read_text_edit(sent[-1])
    assert edit is not None
    # ann's forged keystroke builds on bob's last character: it lands in bob's task
    ann_client = 12345
    forged = _forged(ann_client, 0, (edit.client, edit.end - 1), None, "!")
    result = pair.send(forged, "ann")
    assert isinstance(result, GateResult) and not result.accepted
    assert result.denial is not None and result.denial.permission == "edit_all_tasks"
    tasks = pair.fast.doc.get("tasks", type=Map)
    assert str(tasks[theirs]["title"]) == "bbbtheirs" and str(tasks[mine]["title"]) == "mine"
