"""Domain events of one transaction, from the values its entities had before and after it.

Pure (no I/O): :func:`domain_events` turns the before / after values of the
entities a transaction touched into :class:`~doc_model.events.DomainEvent`\\ s.
Where those values come from is the caller's business:

- :func:`touched_from_snapshots` diffs two whole-document JSON snapshots (the CLI's
  ``offline_edit``, tests);
- the gate (``sync_server.core.gate``) reads the after values of just the touched
  fields, and takes the before values from a :class:`BeforeIndex` (an index of
  the document's entities, built on the first transaction that deletes
  anything) or, while there is no index, derives them from the transaction's own
  raw events (:class:`Touch`): a transaction that deleted nothing only inserted,
  so the value before is the value after without the inserted items, and a map
  key it set had no value before.

Values are plain JSON (:func:`normalize`): Text -> str, Array -> list, Map ->
dict, whole floats -> int. A task's ``description`` (up to 100,000 characters,
edited a keystroke at a time) carries no values: its events say that it changed,
and the index does not keep it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map, Text

from .changes import Change
from .events import DomainEvent
from .names import DocKind
from .schema import ROOT_SPECS, ROOTS

MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")
"""An @mention in a chat message or comment: the user id it names."""

UNVALUED: dict[str, frozenset[str]] = {"tasks": frozenset({"description"})}
"""Fields whose events carry no values (large texts), per root."""

EntityKey = tuple[str, str]
"""(root, id); id is "" for a record root (meta, budget) and a list root (columns)."""

# the singular of each collection, and its verbs for created / deleted / changed
_COLLECTIONS: dict[str, tuple[str, str, str, str]] = {
    "tasks": ("task", "task_created", "task_deleted", "task_field_changed"),
    "milestones": ("milestone", "milestone_created", "milestone_deleted", "milestone_changed"),
    "rules": ("rule", "rule_created", "rule_deleted", "rule_changed"),
    "costs": ("cost", "cost_added", "cost_deleted", "cost_changed"),
    "time_entries": (
        "time_entry",
        "time_entry_added",
        "time_entry_deleted",
        "time_entry_changed",
    ),
    "allocations": ("allocation", "allocation_added", "allocation_deleted", "allocation_changed"),
}
_RECORDS = {"meta": "project_changed", "budget": "budget_changed"}
INDEXED_ROOTS = frozenset({*_COLLECTIONS, *_RECORDS, "members", "columns"})
"""The roots a BeforeIndex keeps (chat messages are only ever posted: no before values)."""


class _Missing:
    """A field or entity that has no value (absent) — distinct from a stored null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
"""A before value nobody can know: a nested type a concurrent write replaced while no
index existed (see BeforeIndex). Events with it say so in ``detail["before_unknown"]``."""


def normalize(value: Any) -> Any:
    """A document value as plain JSON: Text/Array/Map -> str/list/dict, whole floats -> int."""
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, Array):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _strip(root: str, fields: Any) -> Any:
    if isinstance(fields, dict) and root in UNVALUED:
        return {k: v for k, v in fields.items() if k not in UNVALUED[root]}
    return fields


# -- what one transaction touched ----------------------------------------------------------


@dataclass
class Touched:
    """One entity a transaction touched: its values before and after (MISSING: it did not
    exist), and which of its fields changed (None: the entity as a whole, created, deleted
    or replaced). For a partial change, ``before`` and ``after`` hold those fields only."""

    before: Any = MISSING
    after: Any = MISSING
    fields: set[str] | None = field(default_factory=set)
    label: str | None = None  # a task's title / a milestone's name (after, else before)


def touched_keys(kind: DocKind, changes: Iterable[Change]) -> dict[EntityKey, set[str] | None]:
    """The entities ``changes`` touched, with the fields (None: the whole entity).

    Chat messages are keyed by their index in ``messages`` (only additions count:
    edits and deletions of chat history make no events)."""
    out: dict[EntityKey, set[str] | None] = {}
    roots = ROOTS[kind]
    for change in changes:
        root = change.root
        if root not in roots:
            continue
        spec = ROOT_SPECS[root]
        path = change.path
        if spec.shape == "collection":
            if len(path) < 2:
                continue
            key: EntityKey = (root, str(path[1]))
            if len(path) == 2:
                out[key] = None
            else:
                fields = out.setdefault(key, set())
                if fields is not None:
                    fields.add(str(path[2]))
        elif spec.shape == "record":
            if len(path) < 2:
                continue
            fields = out.setdefault((root, ""), set())
            if fields is not None:
                fields.add(str(path[1]))
        elif spec.shape == "dict":
            if len(path) >= 2:
                out[(root, str(path[1]))] = None
        elif root == "messages":
            if len(path) == 2 and change.action == "add":
                out[(root, str(path[1]))] = None
        else:  # columns
            out[(root, "")] = None
    return out


def touched_from_snapshots(
    kind: DocKind, changes: Iterable[Change], before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[EntityKey, Touched]:
    """The touched entities' values, taken from whole-document snapshots
    (:func:`snapshot`) before and after the transaction."""
    out: dict[EntityKey, Touched] = {}
    for key, fields in touched_keys(kind, changes).items():
        b, a = _entity_of(before, key), _entity_of(after, key)
        if key[0] == "messages":
            b = MISSING  # only ever added
        label = label_of(key[0], a if isinstance(a, dict) else b)
        if fields is not None and isinstance(b, dict) and isinstance(a, dict):
            unvalued = UNVALUED.get(key[0], frozenset())
            b = {f: b.get(f, MISSING) for f in fields if f not in unvalued}
            a = {f: a.get(f, MISSING) for f in fields if f not in unvalued}
            out[key] = Touched(b, a, set(fields), label)
        else:
            out[key] = Touched(_strip(key[0], b), _strip(key[0], a), None, label)
    return out


LABELS = {"tasks": "title", "milestones": "name"}
"""The field that names an entity in its events' ``detail``, per root."""


def label_of(root: str, values: Any) -> str | None:
    name = LABELS.get(root)
    if name is None or not isinstance(values, dict):
        return None
    label = values.get(name)
    return label if isinstance(label, str) else None


def _entity_of(snap: Mapping[str, Any], key: EntityKey) -> Any:
    root, ident = key
    value = snap.get(root, MISSING)
    if value is MISSING:
        return MISSING
    spec = ROOT_SPECS[root]
    if spec.shape in ("collection", "dict"):
        return value.get(ident, MISSING) if isinstance(value, dict) else MISSING
    if root == "messages":
        index = int(ident)
        return value[index] if isinstance(value, list) and index < len(value) else MISSING
    return value


def snapshot(doc: Doc[Any], kind: DocKind) -> dict[str, Any]:
    """Every root of a document as plain JSON (:func:`normalize`)."""
    return {name: normalize(doc.get(name, type=t)) for name, t in ROOTS[kind].items()}


# -- the events ----------------------------------------------------------------------------


def domain_events(touched: Mapping[EntityKey, Touched]) -> list[DomainEvent]:
    """The events of one transaction, in the order its entities were first touched."""
    out: list[DomainEvent] = []
    for (root, ident), t in touched.items():
        if root in _COLLECTIONS:
            out += _collection_events(root, ident, t)
        elif root in _RECORDS:
            out += _record_events(_RECORDS[root], t)
        elif root == "members":
            before = None if t.before is MISSING else t.before
            after = None if t.after is MISSING else t.after
            if before != after:
                out.append(DomainEvent("member_role_changed", ident, None, before, after))
        elif root == "columns":
            if t.before != t.after:
                out.append(DomainEvent("columns_changed", None, None, _v(t.before), _v(t.after)))
        elif root == "messages" and isinstance(t.after, dict):
            out += _message_events(t.after)
    return out


def _v(value: Any) -> Any:
    return None if value is MISSING or value is UNKNOWN else value


def _unknown(value: Any) -> dict[str, Any]:
    return {"before_unknown": True} if value is UNKNOWN else {}


def _collection_events(root: str, ident: str, t: Touched) -> list[DomainEvent]:
    _, created, deleted, changed = _COLLECTIONS[root]
    task = root == "tasks"
    label = LABELS.get(root)
    detail: dict[str, Any] = {label: t.label} if label and t.label is not None else {}
    if t.before is MISSING or t.before is UNKNOWN:
        if t.after is MISSING:
            return []
        if t.fields is None:
            return [
                DomainEvent(created, ident, None, None, t.after, {**detail, **_unknown(t.before)})
            ]
    if t.after is MISSING:
        return [
            DomainEvent(deleted, ident, None, _v(t.before), None, {**detail, **_unknown(t.before)})
        ]
    before = t.before if isinstance(t.before, dict) else {}
    after = t.after if isinstance(t.after, dict) else {}
    names = sorted(t.fields) if t.fields is not None else sorted({*before, *after})
    out: list[DomainEvent] = []
    for name in names:
        if name in UNVALUED.get(root, ()):
            out.append(DomainEvent(changed, ident, name, None, None, {**detail, "unvalued": True}))
            continue
        b, a = before.get(name, MISSING), after.get(name, MISSING)
        if _v(b) == _v(a) and b is not UNKNOWN:
            continue  # (absent and null are both "no value")
        extra = _unknown(b)
        if task and name == "assignees":
            old = sorted(x for x in _v(b) or [] if isinstance(x, str))
            new = sorted(x for x in _v(a) or [] if isinstance(x, str))
            if old == new and not extra:
                continue
            diff = {
                "added": sorted(set(new) - set(old)),
                "removed": sorted(set(old) - set(new)),
            }
            out.append(
                DomainEvent(
                    "task_assignees_changed", ident, name, old, new, {**detail, **diff, **extra}
                )
            )
        elif root == "milestones" and name == "done" and a is True and _v(b) is not True:
            out.append(
                DomainEvent("milestone_completed", ident, name, _v(b), a, {**detail, **extra})
            )
        else:
            out.append(DomainEvent(changed, ident, name, _v(b), _v(a), {**detail, **extra}))
    return out


def _record_events(kind: str, t: Touched) -> list[DomainEvent]:
    before = t.before if isinstance(t.before, dict) else {}
    after = t.after if isinstance(t.after, dict) else {}
    names = sorted(t.fields) if t.fields is not None else sorted({*before, *after})
    out: list[DomainEvent] = []
    for name in names:
        b, a = before.get(name, MISSING), after.get(name, MISSING)
        if _v(b) != _v(a) or b is UNKNOWN:
            out.append(DomainEvent(kind, None, name, _v(b), _v(a), _unknown(b)))
    return out


def _message_events(message: dict[str, Any]) -> list[DomainEvent]:
    text = message.get("text")
    task = message.get("task")
    ident = message.get("id") if isinstance(message.get("id"), str) else None
    where = "comment" if isinstance(task, str) else "chat"
    if where == "comment":
        out = [DomainEvent("comment_posted", task, None, None, message, {"message": ident})]
    else:
        out = [DomainEvent("chat_message_posted", ident, None, None, message)]
    if isinstance(text, str):
        author = message.get("author")
        for name in sorted(set(MENTION.findall(text))):
            detail: dict[str, Any] = {"where": where, "text": text, "message": ident}
            if isinstance(author, str):
                detail["author"] = author
            if where == "comment":
                detail["task"] = task
            out.append(DomainEvent("mention", name, None, None, name, detail))
    return out


# -- before values without an index: a transaction's raw events --------------------------------


@dataclass(frozen=True)
class Touch:
    """What a raw deep event says beyond its Change: a map's keys with their old values,
    or a text's / an array's delta. Built from pycrdt's raw events (see changes_from_events)."""

    path: tuple[str | int, ...]  # from the root
    kind: str  # "map" | "text" | "array"
    keys: Mapping[str, tuple[str, Any]] = field(default_factory=dict)  # key -> (action, old)
    delta: Sequence[Mapping[str, Any]] = ()


def touches_from_events(events: Iterable[Any], root: str) -> list[Touch]:
    out: list[Touch] = []
    for event in events:
        path: tuple[str | int, ...] = (root, *event.path)
        name = type(event).__name__
        if name == "MapEvent":
            keys = {
                k: (info["action"], _old(info.get("oldValue", MISSING)))
                for k, info in event.keys.items()
            }
            out.append(Touch(path, "map", keys))
        elif name == "TextEvent":
            # a field whose events carry no value (UNVALUED: a task's description) needs no
            # before value (and reading a text event's delta converts all of it)
            if len(path) == 3 and path[2] in UNVALUED.get(root, frozenset()):
                continue
            out.append(Touch(path, "text", delta=list(event.delta)))
        elif name == "ArrayEvent":
            out.append(Touch(path, "array", delta=list(event.delta)))
    return out


def _old(value: Any) -> Any:
    """A map key's old value: scalars as they are; a nested type (its content is deleted
    along with it, and no longer readable) is UNKNOWN."""
    if value is MISSING:
        return MISSING
    if isinstance(value, str | int | float | bool) or value is None:
        return normalize(value)
    if isinstance(value, dict | list):
        return normalize(value)
    return UNKNOWN


def _uninsert(after: Any, delta: Sequence[Mapping[str, Any]]) -> Any:
    """The value of a text (str) or array (list) before a delta that only inserted."""
    if after is MISSING or after is UNKNOWN:
        return UNKNOWN
    pieces: list[Any] = []
    index = 0
    for op in delta:
        if "retain" in op:
            n = int(op["retain"])
            pieces.append(after[index : index + n])
            index += n
        elif "insert" in op:
            inserted = op["insert"]
            index += len(inserted) if isinstance(inserted, str | list | tuple) else 1
        elif "delete" in op:
            return UNKNOWN  # deleted content is not in the delta (the index knows it)
    pieces.append(after[index:])
    if isinstance(after, str):
        return "".join(pieces)
    return [x for piece in pieces for x in piece]


def before_from_touches(
    key: EntityKey, fields: set[str] | None, after: Any, touches: Sequence[Touch]
) -> Any:
    """An entity's before value (of ``fields``, or whole) from the transaction's own events.

    ``after`` is the entity's after value (the fields, or whole). Exact when the
    transaction deleted nothing (the gate uses an index otherwise); UNKNOWN where a
    concurrent write replaced a nested type."""
    root, ident = key
    spec = ROOT_SPECS[root]
    if spec.shape == "list":  # columns
        for touch in touches:
            if touch.path == (root,):
                return _uninsert(after, touch.delta)
        return after
    if spec.shape == "dict" or (spec.shape == "collection" and fields is None):
        for touch in touches:
            if touch.path == (root,) and ident in touch.keys:
                return touch.keys[ident][1]
        return MISSING
    base: tuple[str | int, ...] = (root,) if spec.shape == "record" else (root, ident)
    assert fields is not None
    out: dict[str, Any] = {}
    after_fields = after if isinstance(after, dict) else {}
    for name in fields:
        value = after_fields.get(name, MISSING)
        for touch in touches:
            if touch.path == base and name in touch.keys:
                value = touch.keys[name][1]
                break
            if touch.path == (*base, name):
                if touch.kind == "map":
                    value = _unset_keys(value, touch.keys)
                else:
                    value = _uninsert(value, touch.delta)
            elif touch.path[: len(base) + 1] == (*base, name) and len(touch.path) > len(base) + 1:
                value = UNKNOWN  # deeper nesting (free-form rule fields): not derived
        out[name] = value
    return out


def _unset_keys(after: Any, keys: Mapping[str, tuple[str, Any]]) -> Any:
    if not isinstance(after, dict):
        return UNKNOWN
    value = dict(after)
    for key, (action, old) in keys.items():
        if action == "add":
            value.pop(key, None)
        else:
            value[key] = old
    return value


# -- reading after values, and the index of before values -------------------------------------


def read_entity(
    doc: Doc[Any], key: EntityKey, fields: set[str] | None, txn: Any = None, container: Any = None
) -> Any:
    """An entity's current value: the given fields (a dict), or whole; MISSING if absent.
    Call inside a transaction when reading several (pycrdt opens one per access otherwise);
    given that transaction and the root's object, some fields of a record in a map are
    read through yrs's own types (pycrdt's wrappers cost five times more: this is the
    read made for every accepted transaction)."""
    root, ident = key
    spec = ROOT_SPECS[root]
    if container is None:
        container = doc.get(root, type=ROOTS_BY_NAME[root])
    if spec.shape == "collection" and txn is not None:
        fast = _read_fields_raw(container, txn, root, ident, fields)
        if fast is not None:
            return fast
    if spec.shape == "list":
        if root == "messages":
            index = int(ident)
            if not isinstance(container, Array) or index >= len(container):
                return MISSING
            return normalize(container[index])
        return normalize(container)
    if spec.shape == "record":
        record: Any = container
    else:
        if not isinstance(container, Map) or ident not in container:
            return MISSING
        record = container[ident]
        if spec.shape == "dict" or not isinstance(record, Map):
            return normalize(record)
    if fields is None:
        return _strip(root, normalize(record))
    unvalued = UNVALUED.get(root, frozenset())
    return {
        name: normalize(record[name]) if name in record else MISSING
        for name in fields
        if name not in unvalued
    }


def _read_fields_raw(
    container: Any, txn: Any, root: str, ident: str, fields: set[str] | None
) -> Any:
    """read_entity's fast path (some fields, or all); None: pycrdt changed, use the
    public one."""
    raw: Any = getattr(container, "integrated", None)
    tx: Any = getattr(txn, "_txn", None)
    if tx is None or not hasattr(raw, "get"):
        return None
    try:
        record = raw.get(tx, ident)
    except Exception:  # yrs: no such key
        return MISSING
    if type(record).__name__ != "Map":
        return None  # not a record: let the public path say what it is
    if fields is None:
        return _strip(root, normalize(json.loads(record.to_json(tx))))
    unvalued = UNVALUED.get(root, frozenset())
    out: dict[str, Any] = {}
    for name in fields:
        if name in unvalued:
            continue
        try:
            value = record.get(tx, name)
        except Exception:
            out[name] = MISSING
            continue
        kind = type(value).__name__
        if kind == "Text":
            out[name] = value.get_string(tx)
        elif kind in ("Array", "Map"):
            out[name] = normalize(json.loads(value.to_json(tx)))
        elif isinstance(value, str | int | float | bool) or value is None:
            out[name] = normalize(value)
        else:
            return None
    return out


BeforeLookup = Callable[[EntityKey, "set[str] | None", Any], Any]
"""(key, fields, after value) -> the value before (whole, or those fields; MISSING: absent)."""


def touched_entities(
    doc: Doc[Any],
    kind: DocKind,
    changes: Iterable[Change],
    before: BeforeLookup,
    roots: Mapping[str, Any] | None = None,
    txn: Any = None,
) -> dict[EntityKey, Touched]:
    """The entities ``changes`` touched, with their after values read from ``doc`` now
    (the fields touched, or whole) and their before values from ``before``. ``roots``:
    the document's root objects by name, if the caller keeps them (saves looking them up);
    ``txn``: the document's open transaction, if the caller has one."""
    out: dict[EntityKey, Touched] = {}
    keys = touched_keys(kind, changes)
    if not keys:
        return out
    if txn is None:
        with doc.transaction() as own:
            return touched_entities(doc, kind, changes, before, roots, own)
    roots = roots or {}
    for key, fields in keys.items():
        container = roots.get(key[0])
        after = read_entity(doc, key, fields, txn, container)
        old = MISSING if key[0] == "messages" else before(key, fields, after)
        name = LABELS.get(key[0])
        label = None
        if name is not None:
            known = after
            if fields is not None and name not in fields and after is not MISSING:
                known = read_entity(doc, key, {name}, txn, container)
            label = label_of(key[0], known)
            if label is None:  # (an empty title is the task's title, not a missing one)
                label = label_of(key[0], old)
        out[key] = Touched(old, after, fields, label)
    return out


class RepeatEvents:
    """The events of transactions that only edit unvalued fields, kept by their changes.

    Typing into a task's description is one transaction per keystroke, and each
    one's events are the same: ``task_field_changed`` of ``description`` with no
    values, labelled with the task's title. They depend only on the changes
    (which fields of which tasks) and on the task: that it exists, and its title.
    The owner (the gate) asks :meth:`get` before working events out, offers what
    it worked out with :meth:`put`, and reports the changes of every committed
    transaction, its own or anyone else's, to :meth:`forget`: a change that may
    create, delete, replace or rename an entity drops what was kept for it.
    A hit returns the very tuple that was put, so those downstream (the change
    feed's writer) can tell a repeat by identity.
    """

    LIMIT = 256  # distinct shapes kept (a room's typists, each in one or two fields)

    def __init__(self) -> None:
        # changes -> (the changes tuple first put, its events)
        self._kept: dict[
            tuple[Change, ...], tuple[tuple[Change, ...], tuple[DomainEvent, ...]]
        ] = {}
        # (root, entity id) -> the kept changes that touch it: what a rename drops
        self._by_entity: dict[tuple[str, str | int], set[tuple[Change, ...]]] = {}

    def get(
        self, changes: tuple[Change, ...]
    ) -> tuple[tuple[Change, ...], tuple[DomainEvent, ...]] | None:
        """The changes tuple that was put (equal to ``changes``) and its events, or None."""
        if not self._kept:
            return None
        return self._kept.get(changes)

    def put(self, changes: tuple[Change, ...], events: tuple[DomainEvent, ...]) -> None:
        """Keep ``events`` for ``changes`` if those are edits of unvalued fields only and the
        events are exactly one unvalued event per field edited (the entities existed)."""
        if not changes or not unvalued_only(changes):
            return
        edited = {(c.path[0], c.path[1], c.path[2]) for c in changes}
        if len(events) != len(edited) or not all(e.detail.get("unvalued") for e in events):
            return
        if len(self._kept) >= self.LIMIT:
            self.clear()
        self._kept[changes] = (changes, events)
        for c in changes:
            self._by_entity.setdefault((str(c.path[0]), c.path[1]), set()).add(changes)

    def forget(self, changes: Iterable[Change]) -> None:
        """A committed transaction made ``changes``: drop what they may have made stale."""
        if not self._kept:
            return
        stale: set[tuple[str, str | int]] = set()
        for change in changes:
            path = change.path
            root = str(path[0])
            if root not in UNVALUED:
                continue
            if len(path) < 2:
                self.clear()
                return
            if len(path) == 2 or path[2] == LABELS.get(root):
                stale.add((root, path[1]))
        for entity in stale:
            for key in self._by_entity.pop(entity, ()):
                if self._kept.pop(key, None) is not None:
                    for c in key:  # (its other entities' sets may still name it)
                        other = (str(c.path[0]), c.path[1])
                        others = self._by_entity.get(other)
                        if others is not None:
                            others.discard(key)
                            if not others:
                                del self._by_entity[other]

    def clear(self) -> None:
        self._kept.clear()
        self._by_entity.clear()


def unvalued_only(changes: Iterable[Change]) -> bool:
    """Whether every change is an edit inside a field whose events carry no values (a
    task's description: see UNVALUED)."""
    for change in changes:
        path = change.path
        if (
            change.action != "edit"
            or len(path) != 3
            or path[2] not in UNVALUED.get(str(path[0]), ())
        ):
            return False
    return True


ROOTS_BY_NAME: dict[str, Any] = {
    name: t for kind_roots in ROOTS.values() for name, t in kind_roots.items()
}


class BeforeIndex:
    """Every entity of a document's indexed roots as of the last committed transaction.

    Built on demand (:meth:`build`, a read of the whole document: about 4 ms per
    1,000 tasks here), then kept current: the owner reports the entities each
    transaction touched (:meth:`mark`, read again before the next one, or
    :meth:`put` with values it already read). Entities are kept as yrs's JSON
    strings until first asked for, which is both the cheapest read and the
    smallest copy. Task descriptions are not kept (see UNVALUED).
    """

    def __init__(self, doc: Doc[Any], kind: DocKind) -> None:
        self._doc = doc
        self._roots = {n: doc.get(n, type=t) for n, t in ROOTS[kind].items() if n in INDEXED_ROOTS}
        self._values: dict[EntityKey, Any] | None = None
        self._stale: set[EntityKey] = set()
        self._stale_roots: set[str] = set()

    @property
    def built(self) -> bool:
        return self._values is not None

    @property
    def empty(self) -> bool:
        """True when the document has no indexed roots (chat): nothing to build."""
        return not self._roots

    def build(self) -> None:
        if self._values is not None and not self._stale and not self._stale_roots:
            return
        with self._doc.transaction() as txn:
            if self._values is None:
                self._values = {}
                for root in self._roots:
                    self._read_root(txn, root)
            else:
                for root in self._stale_roots:
                    for key in [k for k in self._values if k[0] == root]:
                        del self._values[key]
                    self._read_root(txn, root)
                for key in self._stale - {k for k in self._stale if k[0] in self._stale_roots}:
                    self._values.pop(key, None)
                    value = read_entity(self._doc, key, None)
                    if value is not MISSING:
                        self._values[key] = value
        self._stale.clear()
        self._stale_roots.clear()

    def _read_root(self, txn: Any, root: str) -> None:
        assert self._values is not None
        spec = ROOT_SPECS[root]
        container = self._roots[root]
        if spec.shape in ("record", "list"):
            self._values[(root, "")] = _strip(root, normalize(container))
            return
        raw: Any = getattr(container, "integrated", None)
        tx: Any = getattr(txn, "_txn", None)
        fast = tx is not None and hasattr(raw, "keys") and hasattr(raw, "get")
        for ident in list(raw.keys(tx)) if fast else list(container.keys()):
            if fast and spec.shape == "collection":
                value = raw.get(tx, ident)
                if type(value).__name__ == "Map":
                    self._values[(root, ident)] = _Raw(value.to_json(tx))
                    continue
            self._values[(root, ident)] = read_entity(self._doc, (root, ident), None)

    def adopt(self, other: BeforeIndex) -> None:
        """Take ``other``'s entries: an index of a document with the same content (a room
        rebuilds its document from its own encoding to free deleted content)."""
        self._values = None if other._values is None else dict(other._values)
        self._stale = set(other._stale)
        self._stale_roots = set(other._stale_roots)

    def reset(self) -> None:
        self._values = None
        self._stale.clear()
        self._stale_roots.clear()

    def mark(self, changes: Iterable[Change]) -> None:
        """Entities ``changes`` (of a committed transaction) touched: read again when needed."""
        if self._values is None:
            return
        for change in changes:
            root = change.root
            if root not in self._roots:
                continue
            shape = ROOT_SPECS[root].shape
            if shape in ("record", "list"):
                self._stale.add((root, ""))
            elif len(change.path) < 2:
                self._stale_roots.add(root)
            else:
                self._stale.add((root, str(change.path[1])))

    def get(self, key: EntityKey) -> Any:
        """The entity's value (whole; MISSING if it did not exist). Builds the index if needed."""
        self.build()
        assert self._values is not None
        value = self._values.get(key, MISSING)
        if isinstance(value, _Raw):
            value = _strip(key[0], normalize(json.loads(value.json)))
            self._values[key] = value
        return value

    def before(self, key: EntityKey, fields: set[str] | None) -> Any:
        """The entity's value as indexed: whole, or the given fields (as read_entity reads)."""
        value = self.get(key)
        if fields is None or not isinstance(value, dict):
            return value
        unvalued = UNVALUED.get(key[0], frozenset())
        return {name: value.get(name, MISSING) for name in fields if name not in unvalued}

    def put(self, key: EntityKey, fields: set[str] | None, after: Any) -> None:
        """Record an entity's value after a transaction (the fields given, or whole)."""
        if self._values is None or key[0] not in self._roots:
            return
        if after is MISSING:
            self._values.pop(key, None)
            return
        if fields is None or not isinstance(after, dict):
            self._values[key] = after
            return
        current = self.get(key)
        if not isinstance(current, dict):
            self._stale.add(key)
            return
        updated = dict(current)
        for name, value in after.items():
            if value is MISSING:
                updated.pop(name, None)
            else:
                updated[name] = value
        self._values[key] = updated


@dataclass(frozen=True)
class _Raw:
    json: str
