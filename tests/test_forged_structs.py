"""Forged updates the gate must refuse whole, through a real WebSocket.

An item whose parent is named by id must name a shared type; pycrdt raises
RuntimeError mid-integration when it names a character, after integrating the
update's other structs. The gate refuses such an update as not a Yjs update
(close 4400), the room document exactly as before.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text, merge_updates

from doc_model import (
    DocKind,
    TaskCreate,
    create_project_meta,
    create_task,
    declare_roots,
    parse_doc_name,
)
from sync_server.core import state_vectors
from sync_server.core.gate import (
    Gate,
    GateResult,
    MissingDependencies,
    NotAnUpdate,
    UnrevertableUpdate,
)
from sync_server.core.protocol import varuint
from sync_server.interfaces import Actor

from .conftest import stored_doc, without_keys
from .raw_client import RawClient

pytestmark = pytest.mark.anyio

DOC = "p/forged"
USERS = ("ann", "bob", "cat")


def forged_child(client: int, clock: int, parent: tuple[int, int], text: str) -> bytes:
    """One string item of ``client`` at ``clock`` with no origins, its parent named by id."""
    out = varuint(1) + varuint(1) + varuint(client) + varuint(clock) + bytes([4])
    out += varuint(0) + varuint(parent[0]) + varuint(parent[1])
    data = text.encode()
    return out + varuint(len(data)) + data + varuint(0)


def _tasks(doc: Doc) -> dict:
    return without_keys(doc.get("tasks", type=Map).to_py())


async def test_an_item_whose_parent_is_a_character_is_refused_whole(server) -> None:
    async with (
        RawClient.connect(server, DOC, "olga") as olga,
        RawClient.connect(server, DOC, "mal") as mal,
    ):
        await olga.sync()
        update = olga.edit(lambda d: create_task(d, TaskCreate(title="plan"), created_by="o"))
        assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
        task = next(iter(olga.doc.get("tasks", type=Map).values()))
        title: Text = task["title"]
        first = state_vectors.decode(olga.doc.get_state())[olga.doc.client_id]
        typed = olga.edit(lambda d: title.insert(0, "abc"))
        assert (await olga.outcome(await olga.send_update(typed)))["type"] == "ack"
        await mal.sync()
        before = _tasks(mal.doc)
        # an honest keystroke and, in the same update, an item whose parent is olga's "a"
        mtitle: Text = next(iter(mal.doc.get("tasks", type=Map).values()))["title"]
        honest = mal.edit(lambda d: mtitle.insert(0, "Q"))
        low = min(mal.doc.client_id, olga.doc.client_id) - 1
        forged = forged_child(low, 0, (olga.doc.client_id, first), "Z")
        await mal.send_update(merge_updates(honest, forged))
        closed = await mal.wait_closed()
        assert closed.code == 4400 and closed.reason.startswith("not a valid Yjs update")
        assert "must be deleted or shared ref type" in closed.reason
        await olga.drain()
        assert _tasks(olga.doc) == before  # nothing of it was broadcast
        async with RawClient.connect(server, DOC, "fresh") as fresh:  # the live room
            await fresh.sync()
            assert _tasks(fresh.doc) == before  # nothing of it was kept (pycrdt had put "Q")
        # the room is as before: the honest keystroke alone, sent again, is new to it
        async with RawClient.connect(server, DOC, "mal") as again:
            again.doc.apply_update(mal.doc.get_update())
            await again.sync()
            assert (await again.outcome(await again.send_update(honest)))["type"] == "ack"
        await olga.drain()
        assert str(title) == "Qabcplan"
        more = olga.edit(lambda d: title.insert(len(title), "!"))
        assert (await olga.outcome(await olga.send_update(more)))["type"] == "ack"
    server.stop()
    assert next(iter(_tasks(stored_doc(server.db, DOC)).values()))["title"] == "Qabcplan!"
    log = server.log()
    assert "closing on bad message: not a valid Yjs update" in log and "doc=p/forged" in log
    assert "Error in ASGI" not in log and "Traceback" not in log


def forged_item(client: int, clock: int, origin, right, text: str) -> bytes:
    """One string item of ``client`` at ``clock`` with the given origins (ids or None;
    with neither, its parent is ``parent`` named by id in the caller's bytes)."""
    info = 4 | (0x80 if origin else 0) | (0x40 if right else 0)
    out = varuint(1) + varuint(1) + varuint(client) + varuint(clock) + bytes([info])
    for ref in (origin, right):
        if ref:
            out += varuint(ref[0]) + varuint(ref[1])
    data = text.encode()
    return out + varuint(len(data)) + data + varuint(0)


async def _typed(server, olga: RawClient) -> tuple[Text, str, Doc]:
    """A task whose title olga typed "abcdef" into; (her title, the task id, a mirror)."""
    update = olga.edit(lambda d: create_task(d, TaskCreate(title="."), created_by="o"))
    assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
    task_id, task = next(iter(olga.doc.get("tasks", type=Map).items()))
    title: Text = task["title"]
    typed = olga.edit(lambda d: title.insert(0, "abcdef"))
    assert (await olga.outcome(await olga.send_update(typed)))["type"] == "ack"
    return title, task_id, olga.doc


async def test_an_item_whose_origins_are_one_item_is_refused_whole(server) -> None:
    """Left and right origin the same character: no honest client writes it, and Yjs
    would place the item by the document's history. (A right origin before the left one
    is the documented limit, docs/security.md: telling it costs a walk of the text per
    keystroke.)"""
    async with RawClient.connect(server, DOC, "olga") as olga:
        await olga.sync()
        title, task_id, _ = await _typed(server, olga)
        me, at = olga.doc.client_id, state_vectors.decode(olga.doc.get_state())[olga.doc.client_id]
        chars = list(range(at - 6, at))  # the clocks of "abcdef"
        cases = {
            "are the same item": ((me, chars[2]), (me, chars[2])),
        }
        for k, (reason, (left, right)) in enumerate(cases.items()):
            async with RawClient.connect(server, DOC, f"mal{k}") as mal:
                await mal.sync()
                await mal.send_update(forged_item(4242 + k, 0, left, right, "Z"))
                closed = await mal.wait_closed()
                assert closed.code == 4400 and reason in closed.reason, closed
        async with RawClient.connect(server, DOC, "fresh") as fresh:
            await fresh.sync()
            fresh_title = fresh.doc.get("tasks", type=Map)[task_id]["title"]
            assert str(fresh_title) == str(title) == "abcdef."
        # an honest edit between two characters still goes through
        honest = olga.edit(lambda d: title.insert(3, "-"))
        assert (await olga.outcome(await olga.send_update(honest)))["type"] == "ack"
    server.stop()
    stored = stored_doc(server.db, DOC)
    assert str(stored.get("tasks", type=Map)[task_id]["title"]) == "abc-def."


async def test_an_item_whose_origins_leave_a_gap_is_kept_in_an_order_copies_may_not_share(
    server,
) -> None:
    """The documented limit (docs/security.md, "Forged origins"): origins in the right
    order with known characters between them. The server keeps the item where Yjs puts it
    in the live room; a fresh client rebuilds it elsewhere in the same title. The same
    characters, in the same title: no other entity is touched."""
    async with RawClient.connect(server, DOC, "olga") as olga:
        await olga.sync()
        update = olga.edit(lambda d: create_task(d, TaskCreate(title="."), created_by="o"))
        assert (await olga.outcome(await olga.send_update(update)))["type"] == "ack"
        task_id = next(iter(olga.doc.get("tasks", type=Map)))
        live: Doc = Doc()
        live.apply_update(olga.doc.get_update())
        writers: dict[int, Doc] = {c: Doc(client_id=c) for c in (50, 500)}
        for w in writers.values():
            w.apply_update(live.get_update())
        # two writers, one of them typing on without what the other sent (offline)
        for client, sync, pos, char in [
            (50, True, 0, "a"),
            (50, False, 1, "b"),
            (500, True, 2, "c"),
            (50, False, 2, "d"),
            (500, True, 0, "e"),
        ]:
            w = writers[client]
            if sync:
                w.apply_update(live.get_update())
            before = w.get_state()
            w.get("tasks", type=Map)[task_id]["title"].insert(pos, char)
            sent = w.get_update(before)
            live.apply_update(sent)
            assert (await olga.outcome(await olga.send_update(sent)))["type"] == "ack"
        async with (
            RawClient.connect(server, DOC, "mal") as mal,
            RawClient.connect(server, DOC, "watch") as watch,
        ):
            await mal.sync()
            await watch.sync()
            forged = forged_item(700, 0, (50, 0), (50, 2), "Z")  # between "a" and "d"
            assert (await mal.outcome(await mal.send_update(forged)))["type"] == "ack"
            live.apply_update(forged)  # what the room did
            await watch.drain()  # a client that was there: the order of the live room
            assert str(watch.doc.get("tasks", type=Map)[task_id]["title"]) == "eabZdc."
        async with RawClient.connect(server, DOC, "fresh") as fresh:
            await fresh.sync()
            fresh_title = str(fresh.doc.get("tasks", type=Map)[task_id]["title"])
        assert str(live.get("tasks", type=Map)[task_id]["title"]) == "eabZdc."
        assert fresh_title == "eabcZd."  # the limit: if yrs fixes it, update docs/security.md
        assert sorted(fresh_title) == sorted("eabZdc.")
        assert _tasks(fresh.doc).keys() == _tasks(watch.doc).keys()


class Room:
    """What sync_server.core.room does around the gate: store what it returns, reload the
    document from storage after an update the gate could not take back."""

    NAME = parse_doc_name("p/x")

    def __init__(self, base: bytes) -> None:
        self.log = [base]
        self.reloads = 0
        self.gate = self._load()

    def _load(self) -> Gate:
        doc: Doc = Doc(client_id=1000)
        declare_roots(doc, DocKind.MAIN)
        for update in self.log:
            doc.apply_update(update)
        return Gate(doc, self.NAME)

    def reload(self) -> None:
        self.reloads += 1
        self.gate.close()
        self.gate = self._load()

    def receive(self, update: bytes, user: str) -> GateResult | None:
        """The gate's result; None when the update was refused whole (the room reloaded
        if the gate said so). Any other exception fails the test."""
        try:
            result = self.gate.apply(update, Actor(user))
        except MissingDependencies as e:
            if e.applied:
                self.reload()
            return None
        except (NotAnUpdate, UnrevertableUpdate) as e:
            if not isinstance(e, NotAnUpdate) or e.applied:
                self.reload()
            return None
        if result.update is not None:
            self.log.append(result.update)
        return result


def _roots(doc: Doc) -> dict:
    return {name: doc.get(name, type=Map).to_py() for name in ("tasks", "meta", "members")}


def _letters(value: object) -> object:
    """A document's values with every string as its sorted characters: what a copy holds
    even when a forged item's characters stand in another order (docs/security.md)."""
    if isinstance(value, dict):
        return {k: _letters(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_letters(v) for v in value]
    if isinstance(value, str):
        return sorted(value)
    return value


def _doc(client_id: int) -> Doc:
    doc: Doc = Doc(client_id=client_id)
    declare_roots(doc, DocKind.MAIN)
    return doc


FORGE_OPS = ("type", "type", "burst", "backspace", "left", "right", "both", "parent", "mixed")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same 300 scripts each run: a red run is one anybody can replay
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    script=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(FORGE_OPS),
            st.integers(0, 3),
            st.sampled_from(("title", "description")),
            st.integers(0, 10_000),
            st.integers(0, 10_000),
        ),
        min_size=3,
        max_size=30,
    )
)
def test_forged_updates_are_refused_whole_or_kept_as_every_copy_holds_them(script) -> None:
    # fixed client and task ids: Yjs orders concurrent items by client id, so random ones
    # made a run's outcome differ from its replay (hypothesis reported it as flaky)
    server = _doc(1)
    create_project_meta(server, "P")
    ids = [
        create_task(server, TaskCreate(title=f"task {i}"), created_by="x", task_id=f"t{i}")
        for i in range(4)
    ]
    room = Room(server.get_update())
    clients = []
    for i in range(3):
        doc = _doc(10 + i)
        doc.apply_update(server.get_update())
        clients.append(doc)
    forged_kept = False  # a forged item with origins no honest client writes was kept
    for step, (who, op, n, field, a, b) in enumerate(script):
        forger = 100 + step  # a client id of its own: its honest edits never reuse the ids
        client = clients[who]
        text = client.get("tasks", type=Map)[ids[n]][field]
        before = client.get_state()
        state = state_vectors.decode(room.gate.doc.get_state())
        known = [(c, k) for c, end in sorted(state.items()) for k in range(end)]
        pick = [known[a % len(known)], known[b % len(known)]]
        forged = None
        if op == "type":
            text.insert(a % (len(str(text)) + 1), "xyz"[b % 3])
        elif op == "burst":
            at = a % (len(str(text)) + 1)
            for k in range(2 + b % 5):
                text.insert(at + k, "ab"[k % 2])
        elif op == "backspace" and len(str(text)):
            at = a % len(str(text))
            del text[at : min(len(str(text)), at + 1 + b % 3)]
        elif op == "left":
            forged = forged_item(forger, 0, pick[0], None, "f")
        elif op == "right":
            forged = forged_item(forger, 0, None, pick[0], "g")
        elif op == "both":
            forged = forged_item(forger, 0, pick[0], pick[1], "h")
        elif op in ("parent", "mixed"):
            forged = forged_child(forger, 0, pick[0], "p")
            if op == "mixed":  # with an honest keystroke in the same update
                text.insert(0, "q")
                forged = merge_updates(client.get_update(before), forged)
        update = forged if forged is not None else client.get_update(before)
        if update == b"\x00\x00":
            continue
        live_before = _roots(room.gate.doc)
        reloads = room.reloads
        result = room.receive(update, USERS[who])
        live = room.gate.doc
        event(f"{op}: {'refused whole' if result is None else result.accepted}")
        if op == "both" and pick[0] == pick[1]:  # never honest: refused from its structs
            assert result is None
        if result is None or not result.accepted:  # refused: the room as it was
            if not (forged_kept and room.reloads > reloads):  # (reloaded: storage's order)
                # once a forged order was kept, reverting a refused update may put its
                # characters in another order (the documented limit): the same characters
                same = _letters if forged_kept else (lambda roots: roots)
                assert same(_roots(live)) == same(live_before)
            if result is None:
                # the sender's copy holds its own refused edit; it starts again from the room
                fresh_client = _doc(10_000 + step)
                fresh_client.apply_update(live.get_update())
                clients[who] = fresh_client
            continue
        if forged is not None:
            forged_kept = True
        copy: Doc = Doc()
        copy.apply_update(live.get_update())  # a fresh client's sync step 2
        if not forged_kept:
            assert _roots(copy) == _roots(live), (op, pick, update)
        # else: a forged item whose origins are not neighbours was kept; a copy may hold
        # characters or map values in another order (docs/security.md, "Forged origins")
        if result.update is not None:
            for doc in clients:
                doc.apply_update(result.update)
