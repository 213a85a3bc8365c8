"""What reading needs: the one table of read permissions, by document root. Pure: no I/O.

A CRDT client receives the whole document it syncs, so a document opens only
for someone who may read every root in it: its need is the union of its
roots' needs (``document_needs``). A REST read, an export or a metric returns
content from named roots, so it needs those roots' permissions plus, for some
reads, a permission of its own (``export_data``, ``view_analytics``):
``READS`` names each of them. The socket, REST, export, search and analytics
all ask this module; none keeps a list of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from doc_model import DocKind

from .permissions import Permission

P = Permission

Root = tuple[DocKind, str]

ROOT_READS: dict[DocKind, dict[str, frozenset[Permission]]] = {
    DocKind.MAIN: {
        "meta": frozenset({P.VIEW_PROJECT}),
        "members": frozenset({P.VIEW_PROJECT}),
        "columns": frozenset({P.VIEW_PROJECT}),
        "milestones": frozenset({P.VIEW_PROJECT}),
        "rules": frozenset({P.VIEW_PROJECT}),
        "tasks": frozenset({P.VIEW_PROJECT, P.VIEW_TASKS}),
    },
    DocKind.CHAT: {"messages": frozenset({P.VIEW_PROJECT})},
    DocKind.FINANCE: {
        "budget": frozenset({P.VIEW_BUDGET}),
        "costs": frozenset({P.VIEW_COSTS}),
        "time_entries": frozenset({P.VIEW_COSTS}),
    },
    DocKind.RESOURCES: {"allocations": frozenset({P.VIEW_RESOURCES})},
}
"""Every root of every document, with the permissions reading its content needs (all of them)."""


def root_needs(kind: DocKind, root: str) -> frozenset[Permission]:
    return ROOT_READS[kind][root]


def document_needs(kind: DocKind) -> frozenset[Permission]:
    """What opening a whole ``kind`` document needs: every permission any of its roots needs."""
    return frozenset().union(*ROOT_READS[kind].values())


def _first_missing(needs: Iterable[Permission], perms: frozenset[Permission]) -> Permission | None:
    missing = sorted(set(needs) - perms)
    return missing[0] if missing else None


def can_read(perms: frozenset[Permission], kind: DocKind) -> Permission | None:
    """None if ``perms`` may open a ``kind`` document, else the (first) permission missing."""
    return _first_missing(document_needs(kind), perms)


def missing_for_document(perms: frozenset[Permission], kind: DocKind) -> list[Permission]:
    """Every permission ``perms`` lacks to open a ``kind`` document, sorted."""
    return sorted(document_needs(kind) - perms)


@dataclass(frozen=True)
class Read:
    """One read the server offers outside the socket: what it returns, and what that needs."""

    name: str
    roots: tuple[Root, ...]
    also: frozenset[Permission] = frozenset()  # a permission of the read itself (export_data...)

    @property
    def needs(self) -> frozenset[Permission]:
        return frozenset(self.also).union(*(root_needs(kind, root) for kind, root in self.roots))

    def missing(self, perms: frozenset[Permission]) -> Permission | None:
        """None if ``perms`` may make this read, else the (first) permission missing; the
        read's own permission is named first, then the content's."""
        return _first_missing(self.also, perms) or _first_missing(self.needs, perms)


M, F, R, C = DocKind.MAIN, DocKind.FINANCE, DocKind.RESOURCES, DocKind.CHAT

READS: dict[str, Read] = {
    read.name: read
    for read in (
        # GET /projects/ID/: name, dates, columns, members; task and milestone counts
        Read("project", ((M, "meta"), (M, "columns"), (M, "members"), (M, "milestones"))),
        # GET /projects/ID/tasks/ (with q=: search), GET /tasks/TID/
        Read("tasks", ((M, "tasks"),)),
        Read("milestones", ((M, "milestones"),)),
        Read("members", ((M, "members"),)),
        Read("comments", ((C, "messages"),)),
        Read("budget", ((F, "budget"),)),
        Read("costs", ((F, "costs"),)),
        Read("time_entries", ((F, "time_entries"),)),
        Read("allocations", ((R, "allocations"),)),
        # GET /projects/ID/export/: every task, every field
        Read("export", ((M, "meta"), (M, "columns"), (M, "tasks")), frozenset({P.EXPORT_DATA})),
        # GET /projects/ID/metrics/, GET /analytics/portfolio/: counts over the tasks
        Read("metrics", ((M, "meta"), (M, "columns"), (M, "tasks")), frozenset({P.VIEW_ANALYTICS})),
        # the metrics' budget burn: the budget against every cost
        Read("budget_burn", ((M, "meta"), (F, "budget"), (F, "costs"))),
        # what the server tells someone outside the socket and the API, each time it tells
        # them: a notification (in the app, by Web Push) or an e-mail digest naming a task,
        # its title, its assignment or a mention in its text ...
        Read("task_notice", ((M, "meta"), (M, "tasks"))),
        # ... one quoting a chat message or a task's comment (the chat document) ...
        Read("chat_notice", ((M, "meta"), (C, "messages"))),
        # ... and one naming only the project (an automation's notice about no task)
        Read("project_notice", ((M, "meta"),)),
    )
}
"""Every read of the REST API by name (a route asks for its read by name:
``READS["tasks"]``), and what each kind of notice reads (``task_notice``...): one is
sent, or stored for its reader, only to someone who may make that read at that moment."""


def may_read(perms: frozenset[Permission], name: str) -> bool:
    return READS[name].missing(perms) is None
