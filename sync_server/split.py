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

from doc_model import Change
from doc_model.schema import ROOT_SPECS

from .protocol import ProtocolError, varuint, varuint_at
from .update_squash import _read_struct

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


def parts_of(update: bytes) -> list[bytes]:
    """``update`` as updates of one struct each (clients and clocks in the update's order),
    then one per deletion range. Raises ProtocolError when it does not decode, or when it
    has more than MAX_PARTS parts."""
    try:
        return _parts(update)
    except (IndexError, UnicodeDecodeError) as e:
        raise ProtocolError(f"update does not decode: {e}") from e


def _parts(buf: bytes) -> list[bytes]:
    parts: list[bytes] = []
    no_deletions = b"\x00"
    clients, pos = varuint_at(buf, 0)
    for _ in range(clients):
        count, pos = varuint_at(buf, pos)
        client, pos = varuint_at(buf, pos)
        clock, pos = varuint_at(buf, pos)
        head = varuint(1) + varuint(1) + varuint(client)
        for _ in range(count):
            item = _read_struct(buf, pos)
            parts.append(head + varuint(clock) + buf[pos : item.end] + no_deletions)
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
            parts.append(
                b"\x00"
                + varuint(1)
                + varuint(client)
                + varuint(1)
                + varuint(clock)
                + varuint(length)
            )
            if len(parts) > MAX_PARTS:
                raise ProtocolError(f"more than {MAX_PARTS} parts")
    if pos != len(buf):
        raise ProtocolError(f"{len(buf) - pos} bytes after the update")
    return parts


def join_groups(part_changes: Sequence[Sequence[Change]]) -> list[tuple[list[int], list[Change]]]:
    """Parts grouped by the entities they touch: parts that share an entity are one group
    (a deletion range over two tasks joins them). Returns (part indexes, changes) per group;
    parts that changed nothing visible are in no group (they are kept)."""
    owner: dict[EntityKey, int] = {}  # entity -> group id
    parent: list[int] = []

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    part_group: list[int | None] = []
    for changes in part_changes:
        keys = {entity_of(c) for c in changes}
        if not keys:
            part_group.append(None)
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
    for i, g in enumerate(part_group):
        if g is None:
            continue
        parts, changes = out.setdefault(find(g), ([], []))
        parts.append(i)
        changes.extend(part_changes[i])
    return list(out.values())
