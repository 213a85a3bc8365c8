"""doc_model: names, order keys, write helpers and the schema check, on real pycrdt documents."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from doc_model import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Change,
    DocKind,
    InvalidDocName,
    InvalidWrite,
    TaskCreate,
    TaskNotFound,
    TaskUpdate,
    add_allocation,
    add_cost,
    add_member,
    add_time_entry,
    changes_from_events,
    chat_snapshot,
    check_changes,
    create_milestone,
    create_project_meta,
    create_task,
    delete_task,
    finance_snapshot,
    migrate,
    move_task,
    new_document,
    order_key_between,
    parse_doc_name,
    post_chat_message,
    project_snapshot,
    resources_snapshot,
    schema_version,
    set_budget,
    set_task_field,
    unknown_roots,
    update_task,
)
from doc_model.schema import ROOTS

# -- names --------------------------------------------------------------------


@given(st.text(max_size=90))
def test_any_string_parses_to_a_name_that_round_trips_or_is_refused(name: str) -> None:
    try:
        parsed = parse_doc_name(name)
    except InvalidDocName:
        return
    assert parsed.name == name


@pytest.mark.parametrize(
    "name",
    [
        "p/demo/../other",
        "p/demo//finance",
        "p/demo/",
        "p//finance",
        "p/demo/finance/",
        "p/demo/secrets",
        "p/dem\u043e",  # Cyrillic o
        "P/demo",
        "/p/demo",
        "p/" + "a" * 65,
        "p/-demo",
        "",
    ],
)
def test_path_tricks_are_not_document_names(name: str) -> None:
    with pytest.raises(InvalidDocName):
        parse_doc_name(name)


def test_the_four_documents_of_a_project() -> None:
    assert parse_doc_name("p/demo").kind is DocKind.MAIN
    assert parse_doc_name("p/demo/finance").kind is DocKind.FINANCE
    assert parse_doc_name("p/demo/resources").kind is DocKind.RESOURCES
    assert parse_doc_name("p/demo/chat").kind is DocKind.CHAT


# -- order keys ---------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), max_size=60))
def test_order_keys_stay_strictly_ordered_under_any_insertions(ops) -> None:
    keys: list[str] = []
    for n, at_end in ops:
        if not keys or at_end:
            key = order_key_between(keys[-1] if keys else None, None)
            keys.append(key)
        else:
            i = n % (len(keys) + 1)
            before = keys[i - 1] if i > 0 else None
            after = keys[i] if i < len(keys) else None
            key = order_key_between(before, after)
            keys.insert(i, key)
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_a_key_exists_between_any_two_foreign_keys(a: str, b: str) -> None:
    if a == b:
        return
    lo, hi = sorted((a, b))
    try:
        key = order_key_between(lo, hi)
    except ValueError:
        # only impossible when nothing lies between them, e.g. "a" and "a\x00"
        assert hi == lo + "\x00" * (len(hi) - len(lo))
        return
    assert lo < key < hi


def test_appending_ten_thousand_cards_keeps_keys_short() -> None:
    key = None
    for _ in range(10_000):
        key = order_key_between(key, None)
    assert key is not None and len(key) <= 4


# -- write helpers and the check ----------------------------------------------


class GateWiring:
    """The gate's view of a document: deep events of every root, as Changes."""

    def __init__(self, kind: DocKind) -> None:
        self.kind = kind
        self.doc = new_document(kind)
        self.changes: list = []
        self._roots = {n: self.doc.get(n, type=t) for n, t in ROOTS[kind].items()}
        for name, root in self._roots.items():
            root.observe_deep(self._collector(name))

    def _collector(self, name: str):
        # one parameter only: pycrdt passes the transaction to callbacks that take two
        def collect(events) -> None:
            self.changes.extend(changes_from_events(events, root=name))

        return collect

    def apply(self, update: bytes):
        self.changes.clear()
        self.doc.apply_update(update)
        return unknown_roots(self.doc, self.kind) or check_changes(
            self.kind, self.doc, self.changes
        )


def own_update(doc: Doc, fn) -> bytes:
    updates: list[bytes] = []
    sub = doc.observe(lambda e: updates.append(e.update))
    with doc.transaction():
        fn(doc)
    doc.unobserve(sub)
    return updates[0] if updates else b"\x00\x00"  # a no-op write (e.g. a move to the same column)


def seeded_client(kind: DocKind = DocKind.MAIN) -> tuple[Doc, GateWiring]:
    server = GateWiring(kind)
    client = new_document(kind)
    if kind is DocKind.MAIN:
        assert server.apply(own_update(client, lambda d: create_project_meta(d, "P"))) == []
    return client, server


task_inputs = st.builds(
    TaskCreate,
    title=st.text(alphabet="abc xyz", min_size=1, max_size=20).filter(str.strip),
    priority=st.sampled_from(["low", "medium", "high", "urgent"]),
    status=st.sampled_from(["todo", "in_progress", "review", "done"]),
    assignees=st.lists(st.sampled_from(["ann", "ben"]), max_size=2),
    estimate=st.none() | st.floats(0, 100),
    due=st.none() | st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)),
    custom=st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9) | st.text(max_size=3)),
)


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["create", "update", "move", "delete"]), task_inputs), max_size=15
    )
)
def test_everything_the_helpers_write_passes_the_schema_check(ops) -> None:
    client, server = seeded_client()
    for op, data in ops:
        ids = sorted(client.get("tasks", type=Map).keys())

        def write(doc, op=op, data=data, ids=ids):
            if op == "create" or not ids:
                create_task(doc, data, created_by="ann")
            elif op == "update":
                update_task(doc, ids[0], TaskUpdate(title=data.title, due=data.due, labels=["x"]))
            elif op == "move":
                move_task(doc, ids[-1], data.status)
            else:
                delete_task(doc, ids[0])

        assert server.apply(own_update(client, write)) == []
    snapshot = project_snapshot(server.doc, "p1")
    assert {t.id for t in snapshot.tasks} == set(client.get("tasks", type=Map).keys())


def test_finance_resources_and_chat_helpers_pass_the_check() -> None:
    def finance(d: Doc) -> None:
        set_budget(d, currency="EUR", total=1000, categories={"dev": 500})
        add_cost(d, amount=12.5, currency="EUR", category="dev", date=dt.date(2026, 1, 2))
        add_time_entry(d, user="ann", hours=2, date=dt.date(2026, 1, 2))

    for kind, write in [
        (DocKind.FINANCE, finance),
        (DocKind.RESOURCES, lambda d: add_allocation(d, user="ann", percent=50)),
        (DocKind.CHAT, lambda d: post_chat_message(d, "ann", "hello")),
    ]:
        client, server = seeded_client(kind)
        assert server.apply(own_update(client, write)) == []
    assert finance_snapshot(new_document(DocKind.FINANCE)).costs == []
    assert resources_snapshot(new_document(DocKind.RESOURCES)).allocations == []
    assert chat_snapshot(new_document(DocKind.CHAT)).messages == []


@pytest.mark.parametrize(
    ("write", "path", "expected"),
    [
        (
            lambda t: t.__setitem__("x1", Map({"title": "plain", "status": "todo"})),
            "tasks/x1/title",
            "Text",
        ),
        (
            lambda t: t.__setitem__(
                "x1", Map({"title": Text("t"), "status": "todo", "priority": "whatever"})
            ),
            "tasks/x1/priority",
            "one of low",
        ),
        (
            lambda t: t.__setitem__(
                "x1", Map({"title": Text("t"), "status": "todo", "estimate": -3})
            ),
            "tasks/x1/estimate",
            "number >= 0",
        ),
        (
            lambda t: t.__setitem__(
                "x1", Map({"title": Text("t"), "status": "todo", "colour": "red"})
            ),
            "tasks/x1/colour",
            "one of the fields",
        ),
        (
            lambda t: t.__setitem__("x1", Map({"title": Text("t")})),
            "tasks/x1/status",
            "required field",
        ),
        (
            lambda t: t.__setitem__("x1", Map({"title": Text("t"), "status": "nope"})),
            "tasks/x1/status",
            "one of the columns",
        ),
        (
            lambda t: t.__setitem__(
                "x1", Map({"title": Text("t"), "status": "todo", "due": "tomorrow"})
            ),
            "tasks/x1/due",
            "date YYYY-MM-DD",
        ),
        (
            lambda t: t.__setitem__(
                "x1", Map({"title": Text("t"), "status": "todo", "assignees": Array([1])})
            ),
            "tasks/x1/assignees",
            "Array of strings",
        ),
        (
            lambda t: t.__setitem__("bad id!", Map({"title": Text("t"), "status": "todo"})),
            "tasks/bad id!",
            "an id",
        ),
        (lambda t: t.__setitem__("x1", "just a string"), "tasks/x1", "Map (task)"),
    ],
)
def test_bad_task_writes_are_named_precisely(write, path, expected) -> None:
    client, server = seeded_client()
    violations = server.apply(own_update(client, lambda d: write(d.get("tasks", type=Map))))
    assert violations, "must be rejected"
    assert violations[0].path == path
    assert expected in violations[0].expected


def test_unknown_roots_are_caught() -> None:
    # (list content in a map is read from the update by the gate: test_bad_input.py)
    _, server = seeded_client()
    rogue2: Doc = Doc()
    rogue2.get("sneaky", type=Text).insert(0, "hi")
    assert server.apply(rogue2.get_update()) == ["sneaky"]


def test_a_write_that_loses_to_a_concurrent_write_of_the_same_field_changes_nothing() -> None:
    """yrs reports it as a map event with no keys: the task did not change, so no Change
    and nothing for the schema check to refuse; the winner's write is the one that shows."""
    client, server = seeded_client()
    task_id = "t1"
    base = own_update(
        client, lambda d: create_task(d, TaskCreate(title="x"), created_by="a", task_id=task_id)
    )
    assert server.apply(base) == []
    winner: Doc = Doc(client_id=2_000)  # lower id: placed left, loses
    loser: Doc = Doc(client_id=1_000)
    for doc in (winner, loser):
        doc.apply_update(server.doc.get_update())
    win = own_update(winner, lambda d: set_task_field(d, task_id, "priority", "urgent"))
    lose = own_update(loser, lambda d: set_task_field(d, task_id, "priority", "low"))
    assert server.apply(win) == []
    assert server.changes == [Change(("tasks", task_id, "priority"), "update")]
    assert server.apply(lose) == []
    assert server.changes == []
    assert server.doc.get("tasks", type=Map)[task_id]["priority"] == "urgent"


def test_helpers_refuse_what_the_schema_refuses() -> None:
    doc = new_document(DocKind.MAIN)
    create_project_meta(doc, "P")
    with pytest.raises(InvalidWrite):
        create_task(doc, TaskCreate(title="t", status="nowhere"), created_by="a")
    with pytest.raises(TaskNotFound):
        move_task(doc, "missing", "done")
    with pytest.raises(InvalidWrite):
        add_member(doc, "ann", "Emperor of Everything!")
    with pytest.raises(InvalidWrite):
        create_milestone(doc, "  ")
    with pytest.raises(ValueError):
        # the point of the test: an unknown field, refused at run time
        TaskCreate(title="t", surprise=1)  # type: ignore[call-arg]


def test_migrations_run_in_order_and_record_the_version() -> None:
    doc = new_document(DocKind.MAIN)
    create_project_meta(doc, "P")
    doc.get("meta", type=Map)["schema_version"] = 0
    seen = []
    MIGRATIONS[0] = lambda d: seen.append(schema_version(d))
    try:
        assert migrate(doc, DocKind.MAIN, target=SCHEMA_VERSION) == SCHEMA_VERSION
    finally:
        del MIGRATIONS[0]
    assert seen == [0]
    assert schema_version(doc) == SCHEMA_VERSION


def test_text_edits_skip_the_read_back_but_replacing_the_text_in_the_same_txn_does_not() -> None:
    client, server = seeded_client()
    create = own_update(
        client, lambda d: create_task(d, TaskCreate(title="hello"), created_by="a", task_id="t1")
    )
    assert server.apply(create) == []
    title = client.get("tasks", type=Map)["t1"]["title"]
    assert server.apply(own_update(client, lambda d: title.insert(5, " world"))) == []
    assert str(server.doc.get("tasks", type=Map)["t1"]["title"]) == "hello world"

    def edit_then_replace(doc) -> None:
        task = doc.get("tasks", type=Map)["t1"]
        task["title"].insert(0, ">")
        task["title"] = "a plain string"

    violations = server.apply(own_update(client, edit_then_replace))
    assert [v.path for v in violations] == ["tasks/t1/title"]
    assert violations[0].expected == "Text"


def _whole_entity_check(entity: object, path: str) -> list:
    from doc_model import Violation

    return [Violation(path, "an entity nobody writes", "an entity")]


@settings(max_examples=150)
@given(
    field=st.sampled_from(["title", "description"]),
    size=st.integers(490, 510) | st.integers(0, 20),
    chars=st.text(alphabet="aé😀 ", min_size=1, max_size=4),
    at=st.integers(0, 600),
    typed=st.text(alphabet="aé😀\n", min_size=1, max_size=8),
    replace=st.booleans(),
    checked=st.booleans(),
)
def test_the_one_keystroke_shortcut_agrees_with_the_full_check(
    field: str, size: int, chars: str, at: int, typed: str, replace: bool, checked: bool
) -> None:
    """The check's shortcut for a transaction that is one edit inside a task's Text field
    gives the same violations as the full check, at any length around the title's limit
    of 500 characters (non-ASCII: more bytes than characters), and a text replaced whole
    is left to the full check, as is typing in an entity that is checked whole."""
    from doc_model import check as check_module

    before = (chars * size)[:size]
    doc = new_document(DocKind.MAIN)
    roots = {n: doc.get(n, type=t) for n, t in ROOTS[DocKind.MAIN].items()}
    tasks = roots["tasks"]
    with doc.transaction():
        create_task(doc, TaskCreate(title="t"), created_by="ann", task_id="t1")
        text = tasks["t1"][field]
        del text[:]
        text.insert(0, before)
    changes: list[Change] = []
    tasks.observe_deep(lambda events: changes.extend(changes_from_events(events, root="tasks")))
    with doc.transaction():
        text = tasks["t1"][field]
        if replace:
            tasks["t1"][field] = Text(typed)
        else:  # pycrdt positions are UTF-8 bytes
            text.insert(len(before[: at % (len(before) + 1)].encode()), typed)
    checks = {"task" if checked else "rule": _whole_entity_check}
    with doc.transaction():
        quick = check_changes(DocKind.MAIN, doc, changes, roots, checks)
        shortcut = check_module._one_short_text_edit
        check_module._one_short_text_edit = lambda *_a: False  # type: ignore[assignment]
        try:
            full = check_changes(DocKind.MAIN, doc, changes, roots, checks)
        finally:
            check_module._one_short_text_edit = shortcut
    assert quick == full
    too_long = field == "title" and len(before) + len(typed) > 500
    assert bool(full) == ((too_long and not replace) or checked)


# -- references a write names ----------------------------------------------------------------

NAMES = ("t0", "t1", "t2", "t3", "gone")  # t0-t2 exist at the start; "gone" never does
name = st.sampled_from(NAMES[:3] * 3 + NAMES[3:])  # mostly tasks that exist
reference_ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(NAMES), st.none() | name),
        st.tuples(st.just("parent"), name, st.none() | name),
        st.tuples(st.just("depend"), name, st.lists(name, max_size=3)),
        st.tuples(st.just("delete"), name, st.none()),
    ),
    min_size=2,
    max_size=30,
)


@given(reference_ops)
@example([("parent", "t1", "t0"), ("delete", "t0", None), ("create", "t0", "t1")])
@example([("depend", "t0", ["t1"]), ("depend", "t1", ["t2"]), ("depend", "t2", ["t0"])])
@settings(max_examples=400, deadline=None)
def test_task_writes_never_name_what_is_not_there_nor_make_a_parent_cycle(ops) -> None:
    """Random creates, parent and dependency changes and deletes through the write helpers,
    against a plain model: a write is refused exactly when it names a task the document
    lacks (among the values it changes), makes a task its own parent or dependency, or
    closes a loop of parents or of dependencies; refused writes leave the document as it
    was, and no parent chain the helpers wrote ever loops."""
    doc = new_document(DocKind.MAIN)
    parent: dict[str, str | None] = {}  # the model: live tasks and their parents
    depends: dict[str, list[str]] = {}
    for task in NAMES[:3]:
        create_task(doc, TaskCreate(title=task), created_by="u", task_id=task)
        parent[task], depends[task] = None, []
    for op, task, value in ops:
        before = doc.get_update()
        if op == "delete":
            if task in parent:
                delete_task(doc, task)
                del parent[task], depends[task]
            continue
        if op == "create" and task in parent:
            continue
        if op != "create" and task not in parent:
            continue
        if op == "depend":
            new = [v for v in value if v not in depends[task]]

            def reaches(start: str, task: str = task) -> bool:  # start depends on task
                seen, frontier = set(), [start]
                while frontier:
                    at = frontier.pop()
                    if at == task:
                        return True
                    if at not in seen and at in depends:
                        seen.add(at)
                        frontier += depends[at]
                return False

            refused = any(v == task or v not in parent or reaches(v) for v in new)
        elif value is None or (op == "parent" and value == parent[task]):
            refused = False
        else:
            # (a loop may close through a dangling reference to the task being created)
            chain: set[str] = set()
            at: str | None = value
            while at is not None and at not in chain and at != task:
                chain.add(at)
                at = parent.get(at)
            refused = value == task or value not in parent or at == task
        try:
            if op == "create":
                create_task(doc, TaskCreate(title=task, parent=value), created_by="u", task_id=task)
            elif op == "parent":
                update_task(doc, task, TaskUpdate(parent=value))
            else:
                update_task(doc, task, TaskUpdate(depends_on=value))
        except InvalidWrite:
            assert refused, (op, task, value, parent)
            assert doc.get_update() == before  # nothing written
            continue
        assert not refused, (op, task, value, parent)
        if op == "depend":
            depends[task] = list(value)
        else:
            parent[task] = value
            depends.setdefault(task, [])
    tasks = doc.get("tasks", type=Map)
    assert {t: tasks[t].get("parent") for t in tasks} == parent
    for start in parent:
        seen, at = set(), start
        while at is not None and at in parent:
            assert at not in seen, f"a loop of parents through {at}"
            seen.add(at)
            at = parent[at]
    assert {t: list(tasks[t]["depends_on"]) for t in tasks} == depends
