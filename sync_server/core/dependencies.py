"""What an update needs that a document lacks, read from its structs before applying it.

Yjs integrates an update's structs only once everything they build on is in
the document: each client's earlier clocks, each item's origin, right origin
and parent. The rest it keeps pending, inside the document, and integrates
whenever the missing piece arrives, inside whoever's transaction brings it;
deletions of items it lacks wait the same way. pycrdt's ``get_state(update)``
cannot tell: it names only clients whose run starts at clock 0, so an update
that continues a client's run across a clock gap (its second update without
its first) looks self-contained.

:func:`unmet_dependencies` reads the update's structs and delete set (the
layout is in ``sync_server.core.update_squash``) against the document's state
vector, without touching the document, so the gate refuses such an update
whole before applying any of it. A reference is met when the document has its
clock, or when the update itself brings it (each client's run extends the
document's state when it starts at or before it; Yjs integrates an update's
structs in the order their references need). A Skip struct is a hole in the
update's own run: whatever follows it is pending too.

The structs are read once (:func:`read_needs`): the same reading says what the
update builds on (:meth:`UpdateNeeds.unmet`) and, once the document has integrated
exactly these bytes, where its state vector stands (:meth:`UpdateNeeds.advance`),
so the gate never reads an accepted keystroke twice. A typed string item, the
common struct, is read inline; every other struct through
``update_squash.read_struct``.
"""

from __future__ import annotations

from collections.abc import Callable

from sync_server.core.protocol import ProtocolError, varuint_at
from sync_server.core.update_squash import (
    CONTENT_REF,
    GC,
    ORIGIN,
    RIGHT_ORIGIN,
    SKIP,
    STRING,
    read_struct,
    utf16_length,
)


class CrossedOrigins(ValueError):
    """An item whose left and right origin are the same item, which no honest client
    writes. Yjs places such an item by the document's history, so a copy of the document
    rebuilt from its encoding can hold the characters in another order; the gate refuses
    it as not an update (docs/security.md, "Forged updates")."""


class UpdateNeeds:
    """What one update adds and builds on, read from its structs and delete set."""

    __slots__ = ("deletes", "names_root", "refs", "runs")

    def __init__(
        self,
        runs: list[tuple[int, int, int]],
        refs: list[tuple[int, int]],
        deletes: list[tuple[int, int, int]],
        names_root: bool = True,
    ) -> None:
        self.runs = runs  # (client, first clock, end clock); a Skip splits a client's run
        self.refs = refs  # ids (client, clock) its items build on: origins and parents
        self.deletes = deletes  # (client, first clock, end clock) of its delete set
        # whether an item's parent is a root named by the update: only such an update can
        # add a root to a document
        self.names_root = names_root

    @property
    def empty(self) -> bool:
        return not self.runs and not self.deletes

    def unmet(self, state: dict[int, int]) -> str | None:
        """Why the update would not integrate in full into a document with state vector
        ``state``, or None when it would."""
        have = self._extended(state)
        if isinstance(have, str):
            return have
        for client, clock in self.refs:
            if clock >= (have.get(client) or state.get(client, 0)):
                return (
                    f"update depends on changes the server does not have"
                    f" (it builds on client {client} clock {clock})"
                )
        for client, first, end in self.deletes:
            if end > (have.get(client) or state.get(client, 0)):
                return (
                    f"update deletes changes the server does not have"
                    f" (client {client} clocks {first}-{end - 1})"
                )
        return None

    def advance(self, state: dict[int, int]) -> bool:
        """Move ``state`` past the update, once a document with that state vector has
        integrated it in full (its own transaction's update is these very bytes); False,
        ``state`` untouched, when the update's runs do not continue it (a Skip, a gap):
        then ``state`` must be read from the document again."""
        have = self._extended(state)
        if isinstance(have, str):
            return False
        state.update(have)
        return True

    def _extended(self, state: dict[int, int]) -> dict[int, int] | str:
        """Each client's end once the update's runs are integrated, or why a run cannot
        be (it starts past what the document and the update's earlier runs hold)."""
        runs = self.runs
        if len(runs) > 1:
            runs = sorted(runs, key=lambda r: (r[0], r[1]))
        have: dict[int, int] = {}
        for client, first, end in runs:
            known = have.get(client) or state.get(client, 0)
            if first > known:
                return (
                    f"update depends on changes the server does not have"
                    f" (client {client} continues at clock {first}; the server has {known})"
                )
            have[client] = max(end, known)
        return have


def read_needs(update: bytes) -> UpdateNeeds:
    """Read ``update``'s structs and delete set. Raises ProtocolError when it does not
    decode, CrossedOrigins when one of its items has the same item as its left and
    right origin."""
    try:
        return _read(update)
    except IndexError as e:
        raise ProtocolError(f"update runs past its end: {e}") from e
    except UnicodeDecodeError as e:
        raise ProtocolError(f"update holds a malformed string: {e}") from e


def unmet_dependencies(update: bytes, state: Callable[[], dict[int, int]]) -> str | None:
    """Why ``update`` would not integrate in full into a document whose state vector
    ``state()`` returns (read only if the update holds anything), or None when it would.

    Raises ProtocolError when the update does not decode, CrossedOrigins when one of its
    items has the same item as its left and right origin."""
    needs = read_needs(update)
    return None if needs.empty else needs.unmet(state())


def _read_string_item(
    buf: bytes, pos: int, info: int, at: tuple[int, int], refs: list[tuple[int, int]]
) -> tuple[int, int]:
    """A typed string item (the commonest struct) from just past its info byte: its
    origins are added to ``refs``; returns its length in Yjs clocks (UTF-16 units) and the
    position after it. Raises CrossedOrigins for an item whose left and right origin are
    the same item (``at``: its client and clock, for the message)."""
    origin = None
    if info & ORIGIN:
        origin_client, pos = varuint_at(buf, pos)
        origin_clock, pos = varuint_at(buf, pos)
        origin = (origin_client, origin_clock)
        refs.append(origin)
    if info & RIGHT_ORIGIN:
        right_client, pos = varuint_at(buf, pos)
        right_clock, pos = varuint_at(buf, pos)
        right = (right_client, right_clock)
        if right == origin:
            raise CrossedOrigins(
                f"client {at[0]} clock {at[1]}: its left and right origin are the same item"
            )
        refs.append(right)
    length, pos = varuint_at(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolError("string runs past the end of the update")
    text = buf[pos:end]
    return (length if text.isascii() else utf16_length(text)), end


def _read_keystroke(buf: bytes, size: int) -> UpdateNeeds | None:
    """The commonest update, read in one pass: one client's one typed string item with an
    origin (left, right or both), and no deletions (a keystroke). None for anything else,
    or anything unusual in it (then :func:`_read` reads it, and says what is wrong)."""
    try:
        client, pos = varuint_at(buf, 2)
        clock, pos = varuint_at(buf, pos)
        info = buf[pos]
        if (info & CONTENT_REF) != STRING or not info & (ORIGIN | RIGHT_ORIGIN):
            return None
        refs: list[tuple[int, int]] = []
        length, end = _read_string_item(buf, pos + 1, info, (client, clock), refs)
        if end != size - 1 or buf[end] != 0:  # more structs, or a delete set
            return None
    except (ProtocolError, CrossedOrigins, IndexError, UnicodeDecodeError):
        return None
    # (an empty string adds no clock: no run, as the full reader says)
    return UpdateNeeds([(client, clock, clock + length)] if length else [], refs, [], False)


def _read(buf: bytes) -> UpdateNeeds:
    if len(buf) > 6 and buf[0] == 1 and buf[1] == 1:  # one client, one struct: a keystroke?
        keystroke = _read_keystroke(buf, len(buf))
        if keystroke is not None:
            return keystroke
    return _read_all(buf)


def _read_all(buf: bytes) -> UpdateNeeds:
    size = len(buf)
    clients, pos = varuint_at(buf, 0)
    if clients > size:
        raise ProtocolError(f"update claims {clients} clients in {size} bytes")
    runs: list[tuple[int, int, int]] = []
    refs: list[tuple[int, int]] = []
    names_root = False
    for _ in range(clients):
        count, pos = varuint_at(buf, pos)
        client, pos = varuint_at(buf, pos)
        clock, pos = varuint_at(buf, pos)
        start = clock
        for _ in range(count):
            info = buf[pos]
            if (info & CONTENT_REF) == STRING and info & (ORIGIN | RIGHT_ORIGIN):
                length, pos = _read_string_item(buf, pos + 1, info, (client, clock), refs)
                clock += length
                continue
            item = read_struct(buf, pos)
            pos = item.end
            if item.ref == SKIP:
                if clock > start:
                    runs.append((client, start, clock))
                start = clock + item.length
            elif item.ref != GC:
                if item.origin is None and item.right is None and item.parent is None:
                    names_root = True  # (no origins, no parent id: a root, by its name)
                if item.right is not None and item.origin == item.right:
                    raise CrossedOrigins(
                        f"client {client} clock {clock}: its left and right origin"
                        " are the same item"
                    )
                for encoded in (item.origin, item.right, item.parent):
                    if encoded is not None:
                        ref_client, at = varuint_at(encoded, 0)
                        refs.append((ref_client, varuint_at(encoded, at)[0]))
            clock += item.length
        if clock > start:
            runs.append((client, start, clock))
    deletes: list[tuple[int, int, int]] = []
    ds_clients, pos = varuint_at(buf, pos)
    if ds_clients > size:
        raise ProtocolError(f"delete set claims {ds_clients} clients in {size} bytes")
    for _ in range(ds_clients):
        client, pos = varuint_at(buf, pos)
        ranges, pos = varuint_at(buf, pos)
        if ranges > size:
            raise ProtocolError(f"delete set claims {ranges} ranges in {size} bytes")
        for _ in range(ranges):
            clock, pos = varuint_at(buf, pos)
            length, pos = varuint_at(buf, pos)
            deletes.append((client, clock, clock + length))
    if pos != size:
        raise ProtocolError(f"{size - pos} bytes after the update's delete set")
    return UpdateNeeds(runs, refs, deletes, names_root)


ADVANCE_LIMIT = 4096
"""Transactions longer than this (bytes) are not read for :func:`advance`: the state
vector is read from the document again instead."""


def advance(state: dict[int, int], update: bytes) -> bool:
    """Move ``state`` past what ``update`` (a transaction the document integrated in full,
    so no holes) adds; False when it cannot tell (a long or unreadable update, a Skip),
    and ``state`` must be read again."""
    if len(update) > ADVANCE_LIMIT:
        return False
    try:
        needs = read_needs(update)
    except (ProtocolError, CrossedOrigins):
        return False
    return needs.advance(state)
