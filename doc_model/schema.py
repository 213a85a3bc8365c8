"""Root types of each document kind, entity field specs, and the schema version.

These names are a public contract for third-party Yjs clients
(docs/document-schema.md): change them only together with a migration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pycrdt import Array, Doc, Map, Text

from .names import DocKind

SCHEMA_VERSION = 1

TASK_STATUSES = ("todo", "in_progress", "review", "done")
PRIORITIES = ("low", "medium", "high", "urgent")
PROJECT_STATUSES = ("planning", "active", "on_hold", "completed", "archived")
ROLES = ("owner", "manager", "member", "viewer", "finance")
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
ROLE_PATTERN = r"[a-z][a-z0-9_-]{0,39}"  # built-in or custom role names

ROOTS: dict[DocKind, dict[str, type[Map[Any]] | type[Array[Any]] | type[Text]]] = {
    DocKind.MAIN: {
        "meta": Map,
        "members": Map,
        "columns": Array,
        "tasks": Map,
        "milestones": Map,
        "rules": Map,
    },
    DocKind.FINANCE: {"budget": Map, "costs": Map, "time_entries": Map},
    DocKind.RESOURCES: {"allocations": Map},
    DocKind.CHAT: {"messages": Array},
}

# A field's type, as the schema check understands it:
#   text          pycrdt Text                     str           a string
# (text and str up to the field's max_length characters, MAX_STRING without one; Arrays
# up to MAX_ITEMS items and Maps of scalars up to MAX_ITEMS entries)
#   id            string id (ID_PATTERN)          date          "YYYY-MM-DD"
#   datetime      ISO 8601 date-time              number>=0     int/float, not bool, >= 0
#   number        int/float, not bool             percent       number in 0..100
#   bool          True/False                      enum:a|b|c    one of the listed strings
#   ids           Array of ids                    strings       Array of strings
#   scalars       Map of str -> str/number/bool/None
#   any           anything (kept loose on purpose)
#   key_prefix    a task key prefix (doc_model.task_keys: 2-6 of A-Z0-9, a letter first)
#   task_key      a task key, PREFIX-N
#   links         Array (up to MAX_LINKS) of Maps with str fields LINK_FIELDS, kind one of
#                 LINK_KINDS
#   attachments   Array of Maps: files at a provider (doc_model.attachments)
FieldType = str


@dataclass(frozen=True)
class Field:
    type: FieldType
    required: bool = False
    max_length: int | None = None  # characters, for text and str (str default: MAX_STRING)


MAX_STRING = 100_000  # characters in any str field without a limit of its own
MAX_ITEMS = 1_000  # items in an Array of strings or ids, entries in a Map of scalars
MAX_LINKS = 200  # links on one task
LINK_KINDS = ("commit", "pull_request", "merge_request", "issue_comment", "tag")
LINK_FIELDS = {"kind": 40, "url": 2_000, "title": 1_000, "author": 200, "state": 40}


def _enum(values: tuple[str, ...]) -> str:
    return "enum:" + "|".join(values)


ENTITIES: dict[str, dict[str, Field]] = {
    "meta": {
        "name": Field("str", required=True, max_length=200),
        "description": Field("str", max_length=10_000),
        "status": Field(_enum(PROJECT_STATUSES)),
        "start_date": Field("date"),
        "end_date": Field("date"),
        "schema_version": Field("number>=0"),
        "created_by": Field("str"),
        "created_at": Field("datetime"),
        "key_prefix": Field("key_prefix"),
    },
    "task": {
        "title": Field("text", required=True, max_length=500),
        "description": Field("text", max_length=100_000),
        "status": Field("str", required=True),
        "priority": Field(_enum(PRIORITIES)),
        "assignees": Field("strings"),
        "start": Field("date"),
        "due": Field("date"),
        "estimate": Field("number>=0"),
        "labels": Field("strings"),
        "parent": Field("id"),
        "depends_on": Field("ids"),
        "custom": Field("scalars"),
        "order": Field("str"),
        "milestone": Field("id"),
        "created_by": Field("str"),
        "created_at": Field("datetime"),
        "key": Field("task_key"),  # written by the server only (rules.permissions)
        "links": Field("links"),  # commits and pull requests naming the task's key
        "attachments": Field("attachments"),  # cloud files (doc_model.attachments)
    },
    "milestone": {
        "name": Field("str", required=True, max_length=200),
        "due": Field("date"),
        "description": Field("str", max_length=10_000),
        "done": Field("bool"),
    },
    "rule": {
        "name": Field("str", required=True),
        "enabled": Field("bool"),
        "trigger": Field("any"),
        "conditions": Field("any"),
        "actions": Field("any"),
        "created_by": Field("str"),
    },
    "budget": {
        "currency": Field("currency"),
        "total": Field("number>=0"),
        "categories": Field("scalars"),
    },
    "cost": {
        "amount": Field("number", required=True),
        "currency": Field("currency"),
        "category": Field("str", max_length=100),
        "description": Field("str", max_length=10_000),
        "date": Field("date"),
        "task": Field("id"),
        "created_by": Field("str"),
    },
    "time_entry": {
        "user": Field("str", required=True),
        "task": Field("id"),
        "hours": Field("number>0", required=True),
        "date": Field("date", required=True),
        "note": Field("str", max_length=10_000),
        # imported from or exported to a time tracker (integrations.time_tracking)
        "source": Field("enum:toggl|harvest|clockify"),
        "external_id": Field("str", max_length=200),
    },
    "allocation": {
        "user": Field("str", required=True),
        "task": Field("id"),
        "start": Field("date"),
        "end": Field("date"),
        "percent": Field("percent", required=True),
    },
    "message": {
        "id": Field("id", required=True),
        "author": Field("str", required=True),
        "text": Field("str", required=True, max_length=10_000),
        "at": Field("datetime", required=True),
        "task": Field("id"),
    },
}

RootShape = Literal["record", "collection", "dict", "list"]


@dataclass(frozen=True)
class RootSpec:
    """How a root is organized: one record, a map of id -> record, a map of scalars, or a list."""

    shape: RootShape
    entity: str | None = None  # record / collection / list of records
    value: FieldType | None = None  # dict values / list items when they are scalars


ROOT_SPECS: dict[str, RootSpec] = {
    "meta": RootSpec("record", entity="meta"),
    "members": RootSpec("dict", value="role"),
    "columns": RootSpec("list", value="str"),
    "tasks": RootSpec("collection", entity="task"),
    "milestones": RootSpec("collection", entity="milestone"),
    "rules": RootSpec("collection", entity="rule"),
    "budget": RootSpec("record", entity="budget"),
    "costs": RootSpec("collection", entity="cost"),
    "time_entries": RootSpec("collection", entity="time_entry"),
    "allocations": RootSpec("collection", entity="allocation"),
    "messages": RootSpec("list", entity="message"),
}


def declare_roots(doc: Doc[Any], kind: DocKind) -> None:
    """Declare every root of ``kind`` with its type (a Yjs root's type is fixed on first use)."""
    for name, root_type in ROOTS[kind].items():
        doc.get(name, type=root_type)


def new_document(kind: DocKind) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    declare_roots(doc, kind)
    return doc


# Migrations: MIGRATIONS[n] brings a main document from schema version n to n + 1.
MIGRATIONS: dict[int, Callable[[Doc[Any]], None]] = {}


def schema_version(doc: Doc[Any]) -> int:
    value = doc.get("meta", type=Map).get("schema_version")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def migrate(doc: Doc[Any], kind: DocKind, target: int = SCHEMA_VERSION) -> int:
    """Run the migrations a main document needs, each in its own transaction; returns the version."""
    if kind is not DocKind.MAIN:
        return target
    version = schema_version(doc)
    while version < target:
        step = MIGRATIONS.get(version)
        with doc.transaction():
            if step is not None:
                step(doc)
            doc.get("meta", type=Map)["schema_version"] = version + 1
        version += 1
    return version
