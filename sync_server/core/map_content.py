"""Find list content written into a map: items a Y.Map holds but no key of it shows.

A Y.Map's entries are items with a key (``parentSub``). An item without one whose
parent is a map is list content, which a client writes when it declares that
type as an array or a text (``ydoc.getArray('tasks')``): no map view, no
snapshot and no schema check ever sees it.

Why this is read from the update, not from the events: yrs reports both
of these as a ``MapEvent`` with no keys, and only the first is wrong:

- list content in the map;
- a write of a key that lost to a concurrent write of the same key (the
  incoming item is integrated to the left of the winner, deleted at once, and
  the key's value does not change, so ``MapEvent.keys`` leaves it out; yjs's
  ``YEvent.keys`` does the same). Two people setting one task's priority, one of
  them offline, is exactly this.

And list content written beside a key's write in the same map shows as that
key alone. So the gate reads the transaction's structs instead. An item's key
is written in the update only when the item has no origin; an item with an
origin takes its parent and key from that origin (yjs ``Item.getMissing``). List
content in a map therefore starts with an item that has no origin, no key and a
map for its parent; an item whose origin is in the document already inherits
that origin's key, because the document never holds list content in a map: the
gate does not revert it (that would leave its tombstone for later items to
chain onto) but reloads the document from storage, which never held it
(:class:`~sync_server.core.gate.UnrevertableUpdate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Doc, Map

from sync_server.core import state_vectors
from sync_server.core.protocol import ProtocolError, varuint_at
from sync_server.core.update_squash import (
    CONTENT_REF,
    GC,
    ORIGIN,
    PARENT_SUB,
    RIGHT_ORIGIN,
    SKIP,
    TYPE,
    _skip_uint,
    read_struct,
)

Y_MAP = 1  # the type ref of a Y.Map in ContentType (yjs: YMapRefID)


def keyless_map_content(update: bytes, doc: Doc[Any], root_types: Mapping[str, type]) -> str | None:
    """Where ``update`` (one transaction's own update, already applied to ``doc``) writes
    list content into a map, or None. ``root_types`` maps each root name to its type."""
    try:
        return _find(update, doc, root_types)
    except (ProtocolError, IndexError, UnicodeDecodeError) as e:
        return f"update does not decode: {e}"


def _find(buf: bytes, doc: Doc[Any], root_types: Mapping[str, type]) -> str | None:
    clients, pos = varuint_at(buf, 0)
    if clients == 1 and buf[pos] == 1:  # one struct: the common write of one field
        at = _skip_uint(buf, _skip_uint(buf, pos + 1))  # past its client and clock
        if buf[at] & (ORIGIN | RIGHT_ORIGIN | PARENT_SUB):
            return None  # it has a key, or takes its parent and key from its origin
    types: dict[tuple[int, int], int] = {}  # (client, clock) of each type item -> type ref
    keyless: list[tuple[str | tuple[int, int], int, int]] = []  # parent, client, clock
    for _ in range(clients):
        count, pos = varuint_at(buf, pos)
        client, pos = varuint_at(buf, pos)
        clock, pos = varuint_at(buf, pos)
        for _ in range(count):
            item = read_struct(buf, pos)
            info = buf[pos]
            ref = info & CONTENT_REF
            if ref == TYPE:
                type_ref, _ = varuint_at(buf, item.content_start)
                types[(client, clock)] = type_ref
            if ref not in (GC, SKIP) and not info & (ORIGIN | RIGHT_ORIGIN | PARENT_SUB):
                at = pos + 1
                is_root, at = varuint_at(buf, at)
                if is_root == 1:
                    size, at = varuint_at(buf, at)
                    keyless.append((buf[at : at + size].decode("utf-8"), client, clock))
                else:
                    parent_client, at = varuint_at(buf, at)
                    parent_clock, at = varuint_at(buf, at)
                    keyless.append(((parent_client, parent_clock), client, clock))
            pos = item.end
            clock += item.length
    for parent, client, clock in keyless:
        if isinstance(parent, str):
            if root_types.get(parent) is Map:
                return f"{parent}: list content (client {client} clock {clock}) in a map root"
            continue
        parent_ref = types.get(parent)
        if parent_ref is None:
            parent_ref = _type_ref_in(doc, *parent)
        if parent_ref == Y_MAP:
            return (
                f"list content (client {client} clock {clock}) in the map"
                f" created by client {parent[0]} at clock {parent[1]}"
            )
    return None


def _type_ref_in(doc: Doc[Any], client: int, clock: int) -> int | None:
    """The type ref of the type item ``(client, clock)`` in ``doc``, or None if it is not one.

    Reads it from the document's update from that clock of that client on (a state
    vector holding every other client's whole state). That walks the document's
    blocks for its delete set (about 1.5 ms for a 20,000-task project), and runs
    only for an item without an origin or key whose parent the transaction did
    not create: the first insert into an empty text or array that was written
    in the same transaction as a map.
    """
    state = state_vectors.decode(doc.get_state())
    if state.get(client, 0) <= clock:
        return None
    state[client] = clock
    rest = doc.get_update(state_vectors.encode(state))
    clients, pos = varuint_at(rest, 0)
    if clients == 0:
        return None
    _count, pos = varuint_at(rest, pos)
    pos = _skip_uint(rest, _skip_uint(rest, pos))  # client, first clock
    item = read_struct(rest, pos)
    if rest[pos] & CONTENT_REF != TYPE:
        return None
    return varuint_at(rest, item.content_start)[0]
