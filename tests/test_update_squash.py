"""A squashed batch means exactly what the merged batch means, to any receiver."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, merge_updates

from sync_server.core.state_vectors import decode as decode_state
from sync_server.core.update_squash import squash_update

from .conftest import utf8_offset

WORDS = st.text(alphabet="abc é—ß中\n", min_size=1, max_size=4)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(-5, 300), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**31), 2**31), max_size=2),
)
OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # which client
        st.sampled_from(
            ["type", "type", "type", "cut in", "insert", "delete", "set", "push", "sync", "sync"]
        ),
        WORDS,
        st.integers(0, 1000),
        VALUES,
    ),
    min_size=10,
    max_size=60,
)


def content(doc: Doc) -> dict:
    return {
        "title": str(doc.get("title", type=Text)),
        "meta": doc.get("meta", type=Map).to_py(),
        "list": doc.get("list", type=Array).to_py(),
    }


def copy_of(doc: Doc) -> Doc:
    clone: Doc = Doc()
    clone.apply_update(doc.get_update())
    return clone


def replay(ops) -> tuple[Doc, list[bytes]]:
    """Three clients edit from one base, syncing now and then; every transaction's update
    in the order they were made (so each arrives after everything it builds on)."""
    base: Doc = Doc()
    base.get("title", type=Text).insert(0, "||")
    base.get("meta", type=Map)
    base.get("list", type=Array)
    clients = [copy_of(base) for _ in range(3)]
    cursors = [1, 1, 1]
    made: list[bytes] = []
    subs = [c.observe(lambda event: made.append(event.update)) for c in clients]
    for who, kind, word, number, value in ops:
        doc = clients[who]
        text = doc.get("title", type=Text)
        chars = str(text)
        size = len(chars)
        if kind == "type":  # typing on: right after the client's own last character
            cursor = min(cursors[who], size)
            text.insert(utf8_offset(chars, cursor), word)
            cursors[who] = cursor + len(word)
        elif kind == "cut in":  # at another typist's cursor: its next keystroke's right origin
            text.insert(utf8_offset(chars, min(cursors[(who + 1) % 3], size)), word)
        elif kind == "insert":
            text.insert(utf8_offset(chars, number % (size + 1)), word)
        elif kind == "delete" and size:
            start = number % size
            stop = min(size, start + 1 + number % 3)
            del text[utf8_offset(chars, start) : utf8_offset(chars, stop)]
        elif kind == "set":
            doc.get("meta", type=Map)[word] = value
        elif kind == "push":
            doc.get("list", type=Array).append(value)
        elif kind == "sync":
            other = clients[(who + 1) % 3]
            with doc.transaction(origin="sync"):
                doc.apply_update(other.get_update(doc.get_state()))
    for doc, sub in zip(clients, subs, strict=True):
        doc.unobserve(sub)
    return base, made  # a sync's update re-sends what it applied: the server has it already


@settings(max_examples=300, deadline=None)
@given(OPS, st.data())
def test_a_squashed_batch_builds_the_same_document_as_the_merged_one(ops, data) -> None:
    base, updates = replay(ops)
    server = copy_of(base)
    cut = 0
    while cut < len(updates):
        size = data.draw(st.integers(1, len(updates) - cut), label="batch size")
        batch = updates[cut : cut + size]
        cut += size
        merged = merge_updates(*batch)
        squashed = squash_update(merged)
        assert len(squashed) <= len(merged)

        # a receiver that had none of the batch, and one that had some of it already
        # (each sender is sent its own edits back with everyone else's)
        had = data.draw(st.integers(0, len(batch)), label="already had")
        receivers = [copy_of(server), copy_of(server)]
        for update in batch[:had]:
            receivers[1].apply_update(update)
        for update in batch:
            server.apply_update(update)
        for receiver in receivers:
            receiver.apply_update(squashed)
            assert content(receiver) == content(server)
            assert decode_state(receiver.get_state()) == decode_state(server.get_state())


def test_a_typed_word_becomes_one_item_a_third_of_the_size() -> None:
    doc: Doc = Doc()
    title = doc.get("title", type=Text)
    title.insert(0, "|")
    base = doc.get_update()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for ch in "squashed é中":
        title.insert(len(title), ch)  # typing at the end (pycrdt counts UTF-8 bytes)
    merged = merge_updates(*updates)
    squashed = squash_update(merged)
    assert len(squashed) < len(merged) / 3  # one item header for 11 characters, not 11

    receiver: Doc = Doc()
    receiver.apply_update(base)
    receiver.apply_update(squashed)
    assert str(receiver.get("title", type=Text)) == "|squashed é中"


def squashed_at_a_newcomer(title: str, alice: int, bob: int, steps: str) -> tuple[str, str]:
    """alice and bob start from ``title`` and take ``steps`` in turn: "a<i><text>" / "b<i><text>"
    inserts at index i on that side, "a<" / "b<" takes in the other side's edits. Returns
    alice's title and the title a newcomer builds from the squashed batch of all their edits."""
    base: Doc = Doc(client_id=99)
    base.get("title", type=Text).insert(0, title)
    docs: dict[str, Doc] = {"a": Doc(client_id=alice), "b": Doc(client_id=bob)}
    made: list[bytes] = []
    for doc in docs.values():
        doc.apply_update(base.get_update())
        doc.observe(lambda event: made.append(event.update))
    for step in steps.split():
        doc, other = docs[step[0]], docs["b" if step[0] == "a" else "a"]
        if step[1] == "<":
            doc.apply_update(other.get_update(doc.get_state()))
        else:
            doc.get("title", type=Text).insert(int(step[1]), step[2:])
    newcomer = copy_of(base)
    newcomer.apply_update(squash_update(merge_updates(*made)))
    return str(docs["a"].get("title", type=Text)), str(newcomer.get("title", type=Text))


@pytest.mark.parametrize("alice, bob", [(1, 2), (2, 1)])
def test_a_keystroke_typed_before_someone_elses_insert_stays_its_own_item(alice, bob) -> None:
    """alice types "ab"; bob, synced, inserts "E" right after her "b"; alice, synced, types
    "c" at her cursor, between "b" and "E". "c" follows "b" but its right origin is "E",
    so it must not join "ab": as one item, it would lose its place before "E"."""
    at_alice, at_newcomer = squashed_at_a_newcomer("||", alice, bob, "a1a a2b b< b3E a< a3c")
    assert at_alice == at_newcomer == "|abcE|"


def test_a_keystroke_typed_after_someone_elses_stays_its_own_item() -> None:
    """alice types "a"; bob, synced, types "Z" after it; alice, synced, types "b" after
    "Z". Her "a" and "b" have consecutive clocks and the same (no) right origin, but "b"
    follows "Z", not "a": as one item "ab", it would jump ahead of "Z"."""
    at_alice, at_newcomer = squashed_at_a_newcomer("|", 1, 2, "a1a b< b2Z a< a3b")
    assert at_alice == at_newcomer == "|aZb"


def test_nothing_to_merge_returns_the_update_itself() -> None:
    doc: Doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    doc.get("meta", type=Map)["a"] = 1
    doc.get("meta", type=Map)["b"] = "two"
    merged = merge_updates(*updates)
    assert squash_update(merged) is merged


def typed_batch() -> bytes:
    doc: Doc = Doc()
    title = doc.get("title", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i, ch in enumerate("abcdé"):
        title.insert(i, ch)
    doc.get("meta", type=Map)["k"] = {"a": [1, 2.5, None, True]}
    return merge_updates(*updates)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200), st.integers(0, 255), st.booleans())
def test_bytes_that_are_no_update_never_raise(junk: bytes, at: int, byte: int, cut: bool) -> None:
    valid = typed_batch()
    at %= len(valid)
    mutated = valid[:at] if cut else valid[:at] + bytes([byte]) + valid[at + 1 :]
    for update in (junk, mutated):
        out = squash_update(update)  # unreadable: returned as it came, never an exception
        assert out is update or len(out) < len(update)
