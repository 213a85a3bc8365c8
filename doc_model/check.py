"""The schema check of one transaction: validate what it touched, after it, and nothing else."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pycrdt import Array, Doc, Map, Text

from .attachments import check_attachments
from .changes import Change
from .domain_events import normalize
from .names import DocKind
from .schema import (
    ENTITIES,
    ID_PATTERN,
    LINK_FIELDS,
    LINK_KINDS,
    MAX_ITEMS,
    MAX_LINKS,
    MAX_STRING,
    ROLE_PATTERN,
    ROOT_SPECS,
    ROOTS,
    TASK_STATUSES,
    RootSpec,
)
from .task_keys import valid_key, valid_prefix

_ID = re.compile(ID_PATTERN, re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_ROLE = re.compile(ROLE_PATTERN, re.ASCII)


@dataclass(frozen=True)
class Violation:
    path: str
    expected: str
    got: str
    message: str | None = None  # what is wrong, when "expected X, got Y" does not say it

    def __str__(self) -> str:
        if self.message is not None:
            return f"{self.path}: {self.message}"
        return f"{self.path}: expected {self.expected}, got {self.got}"


def describe(value: Any) -> str:
    if isinstance(value, Text):
        return f"Text of {len(str(value))} characters"
    if isinstance(value, Map | Array):
        return f"{type(value).__name__} of {len(value)}"
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN


def text_too_long(text: Text, max_length: int) -> bool:
    """Whether ``text`` holds more than ``max_length`` characters.

    pycrdt's ``len`` of a Text is its UTF-8 length, known without reading the text: at
    most ``max_length`` bytes is at most that many characters; only a longer text is read
    to count its characters (the limits are in characters, as the REST API's are).
    """
    return len(text) > max_length and len(str(text)) > max_length


def _text_bytes(items: Map[Any], key: str, name: str) -> int | None:
    """The UTF-8 length of ``items[key][name]`` when it is a Text, read through pycrdt's raw
    types inside the current transaction; None when that is not possible or not a Text.

    Every keystroke in a title or description is checked against its limit, and pycrdt's
    wrappers (a new object and a nested transaction per access) cost five times this.
    """
    txn = getattr(items.doc, "_txn", None) if items.doc is not None else None
    tx = getattr(txn, "_txn", None)
    raw = getattr(items, "integrated", None)
    if tx is None or raw is None:
        return None
    try:
        entity: Any = raw.get(tx, key)
        if type(entity).__name__ != "Map":
            return None
        text: Any = entity.get(tx, name)
    except (ValueError, TypeError):  # yrs: no such key
        return None
    if type(text).__name__ != "Text":
        return None
    size = text.len(tx)
    return size if isinstance(size, int) else None


def _check_links(value: Any) -> str | None:
    expected = (
        f"Array of at most {MAX_LINKS} Maps of {', '.join(LINK_FIELDS)} (strings), kind one of"
        f" {', '.join(LINK_KINDS)}"
    )
    if not isinstance(value, Array) or len(value) > MAX_LINKS:
        return expected
    for item in value:
        if not isinstance(item, Map) or "url" not in item:
            return expected
        for key, field_value in item.items():
            limit = LINK_FIELDS.get(key)
            if limit is None or not isinstance(field_value, str) or len(field_value) > limit:
                return expected
        if item.get("kind") not in LINK_KINDS:
            return expected
    return None


def check_value(field_type: str, value: Any, max_length: int | None = None) -> str | None:
    """None if ``value`` fits ``field_type`` (and ``max_length``), else what was expected."""
    if field_type == "any":
        return None
    if field_type == "text":
        if not isinstance(value, Text):
            return "Text"
        if max_length is not None and text_too_long(value, max_length):
            return f"Text of at most {max_length} characters"
        return None
    if field_type == "str":
        limit = max_length if max_length is not None else MAX_STRING
        if isinstance(value, str) and len(value) <= limit:
            return None
        return f"string of at most {limit} characters"
    if field_type == "id":
        return None if isinstance(value, str) and _ID.fullmatch(value) else "id"
    if field_type == "role":
        return None if isinstance(value, str) and _ROLE.fullmatch(value) else "role name"
    if field_type == "currency":
        return None if isinstance(value, str) and _CURRENCY.fullmatch(value) else "ISO 4217 code"
    if field_type.startswith("enum:"):
        options = field_type[5:].split("|")
        return None if value in options else "one of " + ", ".join(options)
    if field_type == "bool":
        return None if isinstance(value, bool) else "boolean"
    if field_type == "number":
        return None if _is_number(value) else "number"
    if field_type == "number>=0":
        return None if _is_number(value) and value >= 0 else "number >= 0"
    if field_type == "number>0":
        return None if _is_number(value) and value > 0 else "number > 0"
    if field_type == "percent":
        return None if _is_number(value) and 0 <= value <= 100 else "number from 0 to 100"
    if field_type == "date":
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                date.fromisoformat(value)
                return None
            except ValueError:
                pass
        return "date YYYY-MM-DD"
    if field_type == "datetime":
        if isinstance(value, str) and len(value) <= 40:
            try:
                datetime.fromisoformat(value)
                return None
            except ValueError:
                pass
        return "ISO 8601 date-time"
    if field_type in ("strings", "ids"):
        if not isinstance(value, Array):
            return "Array of strings" if field_type == "strings" else "Array of ids"
        if len(value) > MAX_ITEMS:
            return f"Array of at most {MAX_ITEMS} items"
        for item in value:
            if field_type == "ids" and not (isinstance(item, str) and _ID.fullmatch(item)):
                return "Array of ids"
            if not (isinstance(item, str) and len(item) <= 1000):
                return "Array of strings"
        return None
    if field_type == "key_prefix":
        return None if valid_prefix(value) else "key prefix of 2-6 letters A-Z or digits"
    if field_type == "task_key":
        return None if valid_key(value) else "task key PREFIX-N"
    if field_type == "links":
        return _check_links(value)
    if field_type == "attachments":
        return check_attachments(value)
    if field_type == "scalars":
        if not isinstance(value, Map):
            return "Map of scalars"
        if len(value) > MAX_ITEMS:
            return f"Map of at most {MAX_ITEMS} entries"
        for key, item in value.items():
            if len(key) > 1000:
                return "Map keys of at most 1000 characters"
            if isinstance(item, str) and len(item) > MAX_STRING:
                return f"Map of strings of at most {MAX_STRING} characters"
            if not (item is None or isinstance(item, str | bool) or _is_number(item)):
                return "Map of strings, numbers, booleans or null"
        return None
    raise ValueError(f"unknown field type {field_type!r}")


def check_entity(entity: str, value: Any, path: str) -> list[Violation]:
    if not isinstance(value, Map):
        return [Violation(path, f"Map ({entity})", describe(value))]
    spec = ENTITIES[entity]
    out: list[Violation] = []
    present = dict(value.items())
    for name, field in spec.items():
        if name not in present:
            if field.required:
                out.append(Violation(f"{path}/{name}", f"required field {name!r}", "nothing"))
            continue
        expected = check_value(field.type, present[name], field.max_length)
        if expected is not None:
            out.append(Violation(f"{path}/{name}", expected, describe(present[name])))
    for name in present:
        if name not in spec:
            out.append(
                Violation(f"{path}/{name}", f"one of the fields of a {entity}", "unknown field")
            )
    if entity == "task" and isinstance(present.get("status"), str):
        out.extend(_check_task_status(value, present["status"], path))
    return out


def check_field(entity: str, value: Map[Any], name: str, path: str) -> list[Violation]:
    """Validate one field of an existing entity (it was set, deleted or edited inside)."""
    spec = ENTITIES[entity].get(name)
    if spec is None:
        return [Violation(f"{path}/{name}", f"one of the fields of a {entity}", "unknown field")]
    if name not in value:
        if spec.required:
            return [Violation(f"{path}/{name}", f"required field {name!r}", "nothing")]
        return []
    field_value = value[name]
    expected = check_value(spec.type, field_value, spec.max_length)
    if expected is not None:
        return [Violation(f"{path}/{name}", expected, describe(field_value))]
    if entity == "task" and name == "status":
        return _check_task_status(value, field_value, path)
    return []


def _check_task_status(task: Map[Any], status: str, path: str) -> list[Violation]:
    doc = task.doc
    columns = [c for c in doc.get("columns", type=Array) if isinstance(c, str)] if doc else []
    allowed = columns or list(TASK_STATUSES)
    if status in allowed:
        return []
    return [Violation(f"{path}/status", "one of the columns " + ", ".join(allowed), repr(status))]


EntityCheck = Callable[[Any, str], list[Violation]]
"""A check of a whole entity beyond its fields' types: (the entity as plain JSON, its path
``root/id``) -> violations. The schema cannot say everything (an automation rule's
trigger, conditions and actions are nested JSON with rules of their own), and
``doc_model`` imports no other package, so whoever knows passes it in (the gate passes
``rules.automation.model.check_document_rule`` for ``rule``)."""


def unknown_roots(doc: Doc[Any], kind: DocKind) -> list[str]:
    """Roots present in ``doc`` that a ``kind`` document does not have (an update can add roots)."""
    known = ROOTS[kind]
    return [name for name in doc.keys() if name not in known]  # noqa: SIM118 (a Doc, not a dict)


def _is_text_field(spec: RootSpec, change: Change) -> bool:
    field = ENTITIES[spec.entity or ""].get(str(change.path[2]))
    return field is not None and field.type == "text"


def _text_edit(spec: RootSpec, change: Change) -> tuple[str, str, str] | None:
    """(root, id, field) when ``change`` is an edit inside a Text field of one of a
    collection's entities (typing); None for anything else."""
    path = change.path
    if (
        spec.shape != "collection"
        or len(path) != 3
        or change.action != "edit"
        or not _is_text_field(spec, change)
    ):
        return None
    return str(path[0]), str(path[1]), str(path[2])


def _short_by_bytes(items: Map[Any], root: str, key: str, name: str) -> bool:
    """Whether text field ``name`` of entity ``key`` is within its limit by its UTF-8
    length alone (at most that many bytes: at most that many characters). False: not
    known, the characters must be counted."""
    limit = ENTITIES[ROOT_SPECS[root].entity or ""][name].max_length
    if limit is None:
        return True
    size = _text_bytes(items, key, name)
    return size is not None and size <= limit


def _one_short_text_edit(
    kind: DocKind,
    change: Change,
    roots: Mapping[str, Map[Any] | Array[Any] | Text],
    entity_checks: Mapping[str, EntityCheck] | None,
) -> bool:
    """Whether ``change`` is all :func:`check_changes` needs to look at and nothing is
    wrong: typing in a Text field (of an entity nobody checks whole) that the caller's root
    object shows within its limit. False means "not known": the full check decides."""
    root = change.root
    if root not in ROOTS[kind]:
        return False
    spec = ROOT_SPECS[root]
    edit = _text_edit(spec, change)
    if edit is None or (entity_checks and (spec.entity or "") in entity_checks):
        return False
    items = roots.get(root)
    return isinstance(items, Map) and _short_by_bytes(items, *edit)


def check_changes(
    kind: DocKind,
    doc: Doc[Any],
    changes: Sequence[Change],
    roots: Mapping[str, Map[Any] | Array[Any] | Text] | None = None,
    entity_checks: Mapping[str, EntityCheck] | None = None,
) -> list[Violation]:
    """Violations in the post-transaction state of everything ``changes`` touched.

    ``roots`` (name -> root object) saves the lookups when the caller holds them:
    pycrdt's ``Doc.get`` builds and integrates a new wrapper on every call.
    ``entity_checks`` (entity name -> :data:`EntityCheck`): run on every entity of a
    collection the transaction added or changed anything in, once its fields are valid.
    """
    known = roots or {}
    if len(changes) == 1 and _one_short_text_edit(kind, changes[0], known, entity_checks):
        return []  # a keystroke within its field's limit (the commonest transaction)

    def root_of(name: str, kind_: type) -> Any:
        found = known.get(name)
        return found if found is not None else doc.get(name, type=kind_)

    out: list[Violation] = []
    records: set[str] = set()
    entities: set[tuple[str, str]] = set()  # added or replaced: validate whole
    fields: set[tuple[str, str, str]] = set()  # one field changed: validate just that
    dict_keys: set[tuple[str, str]] = set()
    list_items: set[tuple[str, int]] = set()
    whole_lists: set[str] = set()
    # Edits inside a Text field: the field was a Text when it was set (every accepted state
    # is schema-valid), so only its length is read back (``text_edits``), unless the same
    # transaction also set, replaced or deleted that field (then it is in ``fields``).
    text_edits: set[tuple[str, str, str]] = set()
    for change in changes:
        root = change.root
        if root not in ROOTS[kind]:
            out.append(Violation(root, "a root of a " + kind.value + " document", "unknown root"))
            continue
        spec = ROOT_SPECS[root]
        depth = len(change.path)
        if spec.shape == "list":
            if depth == 1:
                whole_lists.add(root)
            elif isinstance(change.path[1], int):
                list_items.add((root, change.path[1]))
            continue
        if change.action == "edit" and depth <= (2 if spec.shape == "collection" else 1):
            where = "/".join(str(p) for p in change.path)
            out.append(Violation(where, "Map entries", "list content in a map"))
            continue
        if spec.shape == "record":
            records.add(root)
        elif depth >= 2:
            key = str(change.path[1])
            if spec.shape == "collection":
                if depth == 2:
                    entities.add((root, key))
                elif (edit := _text_edit(spec, change)) is not None:
                    text_edits.add(edit)
                else:
                    fields.add((root, key, str(change.path[2])))
            else:
                dict_keys.add((root, key))
    for root in records:
        out.extend(check_entity(ROOT_SPECS[root].entity or "", root_of(root, Map), root))
    for root, key in entities:
        items = root_of(root, Map)
        if key not in items:
            continue  # deleted: always schema-valid
        if not _ID.fullmatch(key):
            out.append(
                Violation(f"{root}/{key}", "an id of 1-64 letters, digits, '_' or '-'", repr(key))
            )
            continue
        out.extend(check_entity(ROOT_SPECS[root].entity or "", items[key], f"{root}/{key}"))
    for root, key, name in fields:
        if (root, key) in entities:
            continue  # validated whole above
        items = root_of(root, Map)
        entity = items.get(key)
        if not isinstance(entity, Map):
            continue  # deleted (or not a map: reported when it was written)
        out.extend(check_field(ROOT_SPECS[root].entity or "", entity, name, f"{root}/{key}"))
    for root, key, name in text_edits - fields:
        if (root, key) in entities:
            continue  # validated whole above
        items = root_of(root, Map)
        if _short_by_bytes(items, root, key, name):
            continue
        limit = ENTITIES[ROOT_SPECS[root].entity or ""][name].max_length
        assert limit is not None  # (no limit: short by bytes)
        entity = items.get(key)
        text = entity.get(name) if isinstance(entity, Map) else None
        if isinstance(text, Text) and text_too_long(text, limit):
            out.append(
                Violation(
                    f"{root}/{key}/{name}", f"Text of at most {limit} characters", describe(text)
                )
            )
    for root, key in dict_keys:
        mapping = root_of(root, Map)
        if key in mapping:
            expected = check_value(ROOT_SPECS[root].value or "any", mapping[key])
            if expected is not None:
                out.append(Violation(f"{root}/{key}", expected, describe(mapping[key])))
    for root in whole_lists:
        array = root_of(root, Array)
        spec = ROOT_SPECS[root]
        if spec.value is not None:  # short lists of scalars (columns): check them all
            for i, item in enumerate(array):
                expected = check_value(spec.value, item)
                if expected is not None:
                    out.append(Violation(f"{root}/{i}", expected, describe(item)))
    for root, index in list_items:
        array = root_of(root, Array)
        if index >= len(array):
            continue
        spec = ROOT_SPECS[root]
        item = array[index]
        if spec.entity is not None:
            out.extend(check_entity(spec.entity, item, f"{root}/{index}"))
        elif spec.value is not None:
            expected = check_value(spec.value, item)
            if expected is not None:
                out.append(Violation(f"{root}/{index}", expected, describe(item)))
    if entity_checks:
        out.extend(_entity_checks(entity_checks, root_of, entities, fields, text_edits, out))
    out.sort(key=lambda v: v.path)
    return out


@functools.lru_cache(maxsize=8)
def _roots_of(entities: tuple[str, ...]) -> frozenset[str]:
    """The roots whose entries are these entities."""
    return frozenset(root for root, spec in ROOT_SPECS.items() if spec.entity in entities)


def _entity_checks(
    checks: Mapping[str, EntityCheck],
    root_of: Callable[[str, type], Any],
    entities: set[tuple[str, str]],
    fields: set[tuple[str, str, str]],
    text_edits: set[tuple[str, str, str]],
    found: Sequence[Violation],
) -> list[Violation]:
    checked = _roots_of(tuple(checks))
    touched = {e for e in entities if e[0] in checked}
    touched.update((r, k) for r, k, _ in fields if r in checked)
    touched.update((r, k) for r, k, _ in text_edits if r in checked)
    out: list[Violation] = []
    for root, key in sorted(touched):
        check = checks[ROOT_SPECS[root].entity or ""]
        path = f"{root}/{key}"
        if any(v.path == path or v.path.startswith(path + "/") for v in found):
            continue  # its fields are wrong already: that is what it is refused for
        value = root_of(root, Map).get(key)
        if isinstance(value, Map):
            out.extend(check(normalize(value), path))
    return out
