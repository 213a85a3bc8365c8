"""A refusal costs only what is forbidden: a refused update's parts, judged entity by entity.

A stock y-websocket client that was offline sends everything it did meanwhile
as one update (its sync step 2): a task it may create and a rename it may not
make arrive together. The gate judges that update whole first (the fast path,
and all an honest update ever needs). When it is refused and its changes touch
several entities of which some would be allowed alone (:func:`mixed_verdicts`),
the room reloads the document from storage (which never held the update) and
the gate applies it again in parts (:func:`parts_of`), one transaction each,
so that each part's events say which entity it touched and the undo manager
holds one stack item per part. Parts are grouped by entity (:func:`entity_of`),
each group is judged alone, and only the refused groups' stack items are undone.

The unit is the entity (a task, a milestone, a member; the project's record; a
list root), because that is the unit of the permission rules (whose task it
is, who may delete it) and of the schema check (a task is valid whole: a new
task's fields arrive as separate items under it). A finer unit (a field)
would keep a new task's title but drop its priority; a coarser one (the
update) is what sank honest work before.

Dependencies between parts stay inside one group: an item's origin is a
neighbour in the same parent type, and its parent is a type inside the same
entity, so an item building on a refused item is in the refused group too. A
deletion range that spans items of several entities makes those entities one
group (judged together). Parts of several clients are applied in the order
the update lists them; one that depends on a later part waits in Yjs's pending
structs and is integrated (and judged) with that part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from doc_model import Change
from doc_model.schema import ROOT_SPECS
from sync_server.core.protocol import ProtocolError, varuint, varuint_at
from sync_server.core.update_squash import read_struct

MAX_PARTS = 512  # past this many, the update is refused whole (no reload, no split)

EntityKey = tuple[str | int, ...]


def entity_of(change: Change) -> EntityKey:
    """The entity a change belongs to: (root, id) in a map of entities or of values,
    (root,) for a record (the project's meta) or a list root."""
    spec = ROOT_SPECS.get(change.root)
    if spec is not None and spec.shape in ("collection", "dict") and len(change.path) > 1:
        return change.path[:2]
    return change.path[:1]


def group_changes(changes: Iterable[Change]) -> dict[EntityKey, list[Change]]:
    groups: dict[EntityKey, list[Change]] = {}
    for change in changes:
        groups.setdefault(entity_of(change), []).append(change)
    return groups


class Part(NamedTuple):
    """One struct (``length`` clocks of ``client`` from ``clock``, with the ids it builds on:
    its origins, or its parent when it has none) or one deletion range (``length`` 0)."""

    update: bytes
    client: int
    clock: int
    length: int
    builds_on: tuple[tuple[int, int], ...]


def parts_of(update: bytes) -> list[Part]:
    """``update`` as updates of one struct each (clients and clocks in the update's order),
    then one per deletion range. Raises ProtocolError when it does not decode, or when it
    has more than MAX_PARTS parts."""
    try:
        return _parts(update)
    except (IndexError, UnicodeDecodeError) as e:
        raise ProtocolError(f"update does not decode: {e}") from e


def _ids(raw: bytes | None) -> tuple[tuple[int, int], ...]:
    if raw is None:
        return ()
    client, at = varuint_at(raw, 0)
    return ((client, varuint_at(raw, at)[0]),)


def _parts(buf: bytes) -> list[Part]:
    parts: list[Part] = []
    no_deletions = b"\x00"
    clients, pos = varuint_at(buf, 0)
    for _ in range(clients):
        count, pos = varuint_at(buf, pos)
        client, pos = varuint_at(buf, pos)
        clock, pos = varuint_at(buf, pos)
        head = varuint(1) + varuint(1) + varuint(client)
        for _ in range(count):
            item = read_struct(buf, pos)
            builds_on = _ids(item.origin) + _ids(item.right)
            parts.append(
                Part(
                    head + varuint(clock) + buf[pos : item.end] + no_deletions,
                    client,
                    clock,
                    item.length,
                    builds_on,
                )
            )
            pos = item.end
            clock += item.length
            if len(parts) > MAX_PARTS:
                raise ProtocolError(f"more than {MAX_PARTS} parts")
    deleters, pos = varuint_at(buf, pos)
    for _ in range(deleters):
        client, pos = varuint_at(buf, pos)
        ranges, pos = varuint_at(buf, pos)
        for _ in range(ranges):
            clock, pos = varuint_at(buf, pos)
            length, pos = varuint_at(buf, pos)
            deletion = b"\x00" + varuint(1) + varuint(client) + varuint(1) + varuint(clock)
            parts.append(Part(deletion + varuint(length), client, clock, 0, ()))
            if len(parts) > MAX_PARTS:
                raise ProtocolError(f"more than {MAX_PARTS} parts")
    if pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} bytes after the update")
    return parts


def join_groups(
    parts: Sequence[Part], part_changes: Sequence[Sequence[Change]]
) -> list[tuple[list[int], list[Change]]]:
    """Parts grouped by the entities they touch: parts that share an entity are one group
    (a deletion range over two tasks joins them). A struct that changed nothing visible
    (one integrated deleted: a value the sender overwrote offline) joins the group of the
    struct it builds on, so that reverting that group reverts it too. Returns (part
    indexes, changes) per group; parts in no group are kept."""
    owner: dict[EntityKey, int] = {}  # entity -> group id
    parent: list[int] = []

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    part_group: list[int | None] = []
    starts: dict[int, list[tuple[int, int, int]]] = {}  # client -> (clock, length, part)
    for index, (part, changes) in enumerate(zip(parts, part_changes, strict=True)):
        if part.length:
            starts.setdefault(part.client, []).append((part.clock, part.length, index))
        keys = {entity_of(c) for c in changes}
        if not keys:
            part_group.append(_group_built_on(part, starts, part_group))
            continue
        groups = {find(owner[k]) for k in keys if k in owner}
        if groups:
            g = min(groups)
            for other in groups:
                parent[other] = g
        else:
            g = len(parent)
            parent.append(g)
        for k in keys:
            owner[k] = g
        part_group.append(g)
    out: dict[int, tuple[list[int], list[Change]]] = {}
    for i, group in enumerate(part_group):
        if group is None:
            continue
        indexes, changes = out.setdefault(find(group), ([], []))
        indexes.append(i)
        changes.extend(part_changes[i])
    return list(out.values())


def _group_built_on(
    part: Part, starts: dict[int, list[tuple[int, int, int]]], part_group: list[int | None]
) -> int | None:
    for client, clock in part.builds_on:
        for start, length, index in starts.get(client, ()):
            found = part_group[index] if index < len(part_group) else None
            if start <= clock < start + length and found is not None:
                return found
    return None


def id_set(parts: Iterable[Part]) -> bytes:
    """The ids of these parts' structs, encoded as a Yjs delete set (an IdSet)."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for part in parts:
        if part.length:
            ranges.setdefault(part.client, []).append((part.clock, part.length))
    out = bytearray(varuint(len(ranges)))
    for client, runs in ranges.items():
        out += varuint(client) + varuint(len(runs))
        for clock, length in sorted(runs):
            out += varuint(clock) + varuint(length)
    return bytes(out)
