"""The struct-read dependency check (sync_server.core.dependencies) against Yjs itself.

The oracle is applying: an update integrates in full exactly when, applied to a
copy of the document, nothing of it stays pending (gate.missing_dependencies,
which reads what the copy's state vector leaves of it). Hypothesis builds edits
by several clients that sync with each other now and then (so items build on
other clients' items: origins, parents, deletions), and delivers each client's
transactions to a server in a random order with random ones held back; the
server refuses an update the check refuses and then, like the room, gets the
sender's whole diff (its resync). At the end the server equals every client
and nothing is pending.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from sync_server.core import state_vectors
from sync_server.core.dependencies import UpdateNeeds, advance, read_needs, unmet_dependencies
from sync_server.core.gate import missing_dependencies
from sync_server.core.protocol import varuint


def _sv(doc: Doc) -> dict[int, int]:
    return state_vectors.decode(doc.get_state())


def _oracle(server: Doc, update: bytes) -> str | None:
    copy: Doc = Doc()
    copy.apply_update(server.get_update())
    copy.apply_update(update)
    return missing_dependencies(update, copy.get_state())


def _check(server: Doc, update: bytes) -> str | None:
    verdict = unmet_dependencies(update, lambda: _sv(server))
    assert (verdict is None) == (_oracle(server, update) is None), (verdict, update)
    return verdict


def _content(doc: Doc) -> dict:
    return {
        "text": str(doc.get("text", type=Text)),
        "map": doc.get("map", type=Map).to_py(),
        "list": doc.get("list", type=Array).to_py(),
    }


def _edit(doc: Doc, op: int, arg: int) -> None:
    text = doc.get("text", type=Text)
    tasks = doc.get("map", type=Map)
    items = doc.get("list", type=Array)
    if op == 0:
        text.insert(arg % (len(text) + 1), f"<{doc.client_id % 97}.{arg}>")
    elif op == 1 and len(text):
        start = arg % len(text)
        del text[start : min(len(text), start + 1 + arg % 3)]
    elif op == 2:
        tasks[f"k{arg % 4}"] = arg  # overwrites delete the earlier value
    elif op == 3:
        key = f"t{arg % 3}"
        if key not in tasks:
            tasks[key] = Map({"title": Text("x")})
        else:  # builds inside an item of the map (a parent id)
            inner = tasks[key]
            if isinstance(inner, Map):
                title = inner["title"]
                title.insert(len(title), str(arg % 10))
    elif op == 4:
        items.insert(arg % (len(items) + 1), arg)
    elif len(items):
        del items[arg % len(items)]


operations = st.lists(
    st.tuples(
        st.integers(0, 2),  # which client
        st.integers(0, 8),  # an edit (0-5) or 6-8: sync this client with another
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    order=st.randoms(use_true_random=False),
    drop=st.integers(0, 5),
    # client ids of one byte, of Yjs's 32 bits (5 bytes) and of pycrdt's up to 53 (8 bytes)
    first_client=st.sampled_from([100, 3_000_000_000, 4_000_000_000_000_000]),
)
def test_struct_verdict_matches_applying_and_the_server_converges(
    ops, order, drop, first_client
) -> None:
    clients: list[Doc] = [Doc(client_id=first_client + i) for i in range(3)]
    sent: list[list[bytes]] = [[] for _ in clients]
    syncing = [False]
    for doc, log in zip(clients, sent, strict=True):

        def own(event, log: list[bytes] = log) -> None:
            if not syncing[0]:  # a client sends its own edits, not what it received
                log.append(event.update)

        doc.observe(own)
    for who, op, arg in ops:
        doc = clients[who]
        if op >= 6:  # two clients sync with each other (what a server relay would do)
            other = clients[(who + 1 + arg % 2) % 3]
            syncing[0] = True
            doc.apply_update(other.get_update(doc.get_state()))
            syncing[0] = False
        else:
            with doc.transaction():
                _edit(doc, op, arg)
    server: Doc = Doc()
    tracked: dict[int, int] = {}  # the state vector as the gate keeps it (advance)
    # ... and as it keeps it from what the pre-check read, when the transaction
    # integrated exactly the bytes that were read
    read: dict[int, int] = {}
    applying: list[tuple[bytes, UpdateNeeds]] = []
    reread = [False]  # the gate reads the state vector from the document again
    lost = [False]

    def track(event) -> None:
        if not advance(tracked, event.update):
            lost[0] = True
            tracked.clear()
            tracked.update(_sv(server))
        if applying and event.update == applying[0][0]:
            reread[0] = not applying[0][1].advance(read)
        else:  # (not read in here: no document reads inside its observer)
            reread[0] = True

    def apply(update: bytes) -> None:
        needs = read_needs(update)
        applying[:] = [(update, needs)]
        roots = set(server.keys())
        server.apply_update(update)
        if not needs.names_root:  # what lets the gate skip looking for new roots
            assert set(server.keys()) == roots
        if reread[0]:
            read.clear()
            read.update(_sv(server))
            reread[0] = False
        applying.clear()

    server.observe(track)
    queue = [(who, u) for who, log in enumerate(sent) for u in log if u != b"\x00\x00"]
    order.shuffle(queue)
    if queue:
        del queue[drop % len(queue)]  # one never arrives: only a resync brings it
    for who, update in queue:
        if _check(server, update) is None:
            apply(update)
        else:  # refused whole; the sender's resync: all it has that the server lacks
            diff = clients[who].get_update(server.get_state())
            assert _check(server, diff) is None
            apply(diff)
        assert missing_dependencies(update, server.get_state()) is None  # none of it pending
        assert read == _sv(server)
    for doc in clients:  # everyone's resync at the end
        diff = doc.get_update(server.get_state())
        assert _check(server, diff) is None
        apply(diff)
    assert tracked == _sv(server)
    assert read == _sv(server)
    merged: Doc = Doc()
    for doc in clients:
        merged.apply_update(doc.get_update())
    assert _content(server) == _content(merged)
    # nothing pending: the server's own encoding is everything it holds
    whole = server.get_update()
    assert missing_dependencies(whole, server.get_state()) is None


def test_a_second_update_without_its_first_is_refused_before_applying() -> None:
    client: Doc = Doc(client_id=7)
    text = client.get("text", type=Text)
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    text += "first"
    text += " second"
    server: Doc = Doc()
    verdict = unmet_dependencies(updates[1], lambda: _sv(server))
    assert verdict is not None and "client 7 continues at clock 5" in verdict
    server.apply_update(updates[0])
    assert unmet_dependencies(updates[1], lambda: _sv(server)) is None


def test_deleting_what_the_server_lacks_is_refused() -> None:
    ds = b"\x00" + varuint(1) + varuint(9) + varuint(1) + varuint(0) + varuint(3)
    verdict = unmet_dependencies(ds, lambda: {})
    assert verdict is not None and "deletes" in verdict
    assert unmet_dependencies(ds, lambda: {9: 3}) is None


def test_an_empty_update_reads_no_state() -> None:
    def boom() -> dict[int, int]:
        raise AssertionError("state vector read for an empty update")

    assert unmet_dependencies(b"\x00\x00", boom) is None


def test_building_on_another_clients_item_the_server_lacks_is_refused() -> None:
    """The run check alone passes these: the sender's own run starts at clock 0."""
    bob: Doc = Doc(client_id=2)
    tasks = bob.get("map", type=Map)
    bob.get("text", type=Text).insert(0, "hello")
    tasks["t"] = Map({"title": Text()})  # an empty text: a first insert names its parent
    alice: Doc = Doc(client_id=1)
    alice.apply_update(bob.get_update())
    updates: list[bytes] = []
    alice.observe(lambda e: updates.append(e.update))
    alice.get("text", type=Text).insert(2, "X")  # its origin is bob's item
    alice2: Doc = Doc(client_id=3)
    alice2.apply_update(bob.get_update())
    alice2.observe(lambda e: updates.append(e.update))
    alice2.get("map", type=Map)["t"]["title"].insert(0, "Y")  # its parent is bob's text
    server: Doc = Doc()
    for update in updates:
        verdict = unmet_dependencies(update, lambda: _sv(server))
        assert verdict is not None and "builds on client 2" in verdict
        assert _oracle(server, update) is not None
    server.apply_update(bob.get_update())
    assert all(unmet_dependencies(u, lambda: _sv(server)) is None for u in updates)


def test_an_update_naming_a_root_says_so_and_the_gate_refuses_an_unknown_one() -> None:
    """The gate looks for roots the schema does not know only after an update whose items
    name a root; one that names none cannot add one (the property above checks that)."""
    from doc_model import parse_doc_name
    from sync_server.core.gate import Gate, UnrevertableUpdate
    from sync_server.interfaces import Actor

    client: Doc = Doc(client_id=3_000_000_000)
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    client.get("chat", type=Text).insert(0, "hi")  # a root no main document has
    (named,) = updates
    assert read_needs(named).names_root
    server: Doc = Doc()
    gate = Gate(server, parse_doc_name("p/x"))
    try:
        gate.apply(named, Actor("ann"))
    except UnrevertableUpdate as e:
        assert "unknown root type 'chat'" in str(e)
    else:
        raise AssertionError("an unknown root was accepted")
    client.get("chat", type=Text).insert(2, "!")  # typed after its own item: no root named
    assert not read_needs(updates[-1]).names_root


def test_an_unknown_root_another_writer_added_is_still_found() -> None:
    """The gate skips the look for unknown roots only while nothing but its own
    transactions ran since it last found none."""
    from doc_model import parse_doc_name
    from sync_server.core.gate import Gate, UnrevertableUpdate
    from sync_server.interfaces import Actor

    client: Doc = Doc(client_id=3_000_000_000)
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    columns = client.get("columns", type=Array)
    columns.append("backlog")
    server: Doc = Doc()
    gate = Gate(server, parse_doc_name("p/x"))
    assert gate.apply(updates[-1], Actor("ann")).accepted
    columns.append("shipped")  # names no root: judged without looking, had nothing changed
    assert not read_needs(updates[-1]).names_root
    server.get("chat", type=Text).insert(0, "x")  # a write past the gate (another process)
    try:
        gate.apply(updates[-1], Actor("ann"))
    except UnrevertableUpdate as e:
        assert "unknown root type 'chat'" in str(e)
    else:
        raise AssertionError("a document holding an unknown root took an update")


def _needs(needs: UpdateNeeds) -> tuple:
    return needs.runs, needs.refs, needs.deletes, needs.names_root


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.text(min_size=1, max_size=3), st.booleans()),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    st.integers(1, 2**53 - 1),
)
def test_the_keystroke_reader_agrees_with_the_full_one_on_any_bytes(
    edits: list[tuple[int, str, bool]], flips: list[tuple[int, int]], client_id: int
) -> None:
    """Keystrokes (any text, Unicode included, typed anywhere, some with a deletion) read
    by the one-pass reader say exactly what the full reader says; with bytes flipped, it
    either agrees or leaves the update to the full reader (which may refuse it)."""
    from sync_server.core.dependencies import CrossedOrigins, _read_all, _read_keystroke
    from sync_server.core.protocol import ProtocolError

    doc: Doc = Doc(client_id=client_id)
    text = doc.get("t", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text += "seed"
    for at, chars, delete in edits:
        with doc.transaction():
            where = at % (len(str(text)) + 1)
            text.insert(where, chars)
            if delete and len(str(text)) > len(chars):
                text.__delitem__(slice(0, 1))
    read_fast = 0  # (counted for a reader of this test: how many took the one-pass reader)
    for update in updates:
        for flip_at, value in [(0, None), *flips]:
            buf = bytearray(update)
            if value is not None:
                buf[flip_at % len(buf)] = value
            candidate = bytes(buf)
            fast = (
                _read_keystroke(candidate, len(candidate)) if candidate[:2] == b"\x01\x01" else None
            )
            try:
                full = _read_all(candidate)
            except (ProtocolError, CrossedOrigins, IndexError, UnicodeDecodeError):
                assert fast is None, candidate.hex()
                continue
            if fast is not None:
                read_fast += 1
                assert _needs(fast) == _needs(full), candidate.hex()
            elif value is None and candidate[:2] == b"\x01\x01" and full.refs:
                # a plain keystroke (one struct, with an origin) takes the one-pass reader
                # unless it deletes something too
                assert full.deletes, candidate.hex()
            assert _needs(read_needs(candidate)) == _needs(full)
