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
"""

from __future__ import annotations

from collections.abc import Callable

from sync_server.core.protocol import ProtocolError, varuint_at
from sync_server.core.update_squash import SKIP, read_struct


class CrossedOrigins(ValueError):
    """An item whose left and right origin are the same item, which no honest client
    writes. Yjs places such an item by the document's history, so a copy of the document
    rebuilt from its encoding can hold the characters in another order; the gate refuses
    it as not an update (docs/security.md, "Forged updates")."""


def unmet_dependencies(update: bytes, state: Callable[[], dict[int, int]]) -> str | None:
    """Why ``update`` would not integrate in full into a document whose state vector
    ``state()`` returns (read only if the update holds anything), or None when it would.

    Raises ProtocolError when the update does not decode, CrossedOrigins when one of its
    items has the same item as its left and right origin."""
    try:
        return _unmet(update, state)
    except IndexError as e:
        raise ProtocolError(f"update runs past its end: {e}") from e
    except UnicodeDecodeError as e:
        raise ProtocolError(f"update holds a malformed string: {e}") from e


def _unmet(buf: bytes, state_of: Callable[[], dict[int, int]]) -> str | None:
    clients, pos = varuint_at(buf, 0)
    if clients > len(buf):
        raise ProtocolError(f"update claims {clients} clients in {len(buf)} bytes")
    runs: list[tuple[int, int, int]] = []  # (client, first clock, end clock), holes split them
    refs: list[bytes] = []  # encoded ids (client, clock) the structs build on
    for _ in range(clients):
        count, pos = varuint_at(buf, pos)
        client, pos = varuint_at(buf, pos)
        clock, pos = varuint_at(buf, pos)
        start = clock
        for _ in range(count):
            item = read_struct(buf, pos)
            pos = item.end
            if item.ref == SKIP:
                if clock > start:
                    runs.append((client, start, clock))
                start = clock + item.length
            else:
                if item.origin is not None:
                    refs.append(item.origin)
                if item.right is not None:
                    refs.append(item.right)
                    if item.origin == item.right:
                        raise CrossedOrigins(
                            f"client {client} clock {clock}: its left and right origin"
                            " are the same item"
                        )
                if item.parent is not None:
                    refs.append(item.parent)
            clock += item.length
        if clock > start:
            runs.append((client, start, clock))
    deletes: list[tuple[int, int, int]] = []
    ds_clients, pos = varuint_at(buf, pos)
    if ds_clients > len(buf):
        raise ProtocolError(f"delete set claims {ds_clients} clients in {len(buf)} bytes")
    for _ in range(ds_clients):
        client, pos = varuint_at(buf, pos)
        ranges, pos = varuint_at(buf, pos)
        if ranges > len(buf):
            raise ProtocolError(f"delete set claims {ranges} ranges in {len(buf)} bytes")
        for _ in range(ranges):
            clock, pos = varuint_at(buf, pos)
            length, pos = varuint_at(buf, pos)
            deletes.append((client, clock, clock + length))
    if pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} bytes after the update's delete set")
    if not runs and not deletes:
        return None
    state = state_of()  # read only: the update's own runs extend it in ``have``
    have: dict[int, int] = {}
    for client, first, end in sorted(runs, key=lambda r: (r[0], r[1])):
        known = have.get(client) or state.get(client, 0)
        if first > known:
            return (
                f"update depends on changes the server does not have"
                f" (client {client} continues at clock {first}; the server has {known})"
            )
        have[client] = max(end, known)
    for ref in refs:
        client, at = varuint_at(ref, 0)
        clock, _ = varuint_at(ref, at)
        if clock >= (have.get(client) or state.get(client, 0)):
            return (
                f"update depends on changes the server does not have"
                f" (it builds on client {client} clock {clock})"
            )
    for client, first, end in deletes:
        if end > (have.get(client) or state.get(client, 0)):
            return (
                f"update deletes changes the server does not have"
                f" (client {client} clocks {first}-{end - 1})"
            )
    return None


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
        clients, pos = varuint_at(update, 0)
        for _ in range(clients):
            count, pos = varuint_at(update, pos)
            client, pos = varuint_at(update, pos)
            clock, pos = varuint_at(update, pos)
            for _ in range(count):
                item = read_struct(update, pos)
                if item.ref == SKIP:
                    return False
                pos = item.end
                clock += item.length
            if clock > state.get(client, 0):
                state[client] = clock
    except (ProtocolError, IndexError, UnicodeDecodeError):
        return False
    return True
