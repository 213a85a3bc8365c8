"""The update gate: every incoming transaction is applied, checked and kept or reverted as one unit.

    apply(update, actor)
      -> doc.apply_update inside a transaction whose origin is the gate's
      -> the deep events of that transaction become doc_model Changes
      -> schema check (doc_model) and permission check (rules, passed in)
      -> accepted: the transaction's own update is what gets stored and broadcast
         rejected: UndoManager.undo() reverts it exactly; the net effect (the
                   transaction plus its undo) is what gets stored and broadcast,
                   so no other client ever sees the forbidden state

Two kinds of update cannot be reverted by undo, because the undo manager
never sees them: content in a root type the schema does not know, and items
or deletions whose dependencies the server does not have (Yjs keeps them
pending and would integrate them later, inside somebody else's transaction
and so under somebody else's permissions). The gate raises
:class:`UnrevertableUpdate` for the first and :class:`MissingDependencies`
for the second; the room reloads the document from storage, which never held
the update, and then closes the sender's connection (unknown roots) or asks
the sender to resync (missing dependencies: an honest client that sent an
edit before its sync step 2 simply sends everything again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, TransactionEvent, UndoManager, get_update, merge_updates

from doc_model import Change, DocName, changes_from_events, check_changes, unknown_roots
from doc_model.schema import ROOTS

from . import state_vectors
from .hooks import Actor
from .protocol import ProtocolError, Reader
from .task_owners import TaskOwners


@dataclass(frozen=True)
class Denial:
    """Why a transaction was refused."""

    reason: str
    path: str = ""
    permission: str | None = None  # the permission the actor lacks, if that is why


TaskBefore = Callable[[str], dict[str, Any] | None]
"""A task's fields ownership is judged on (its assignees) before the transaction; None: it
did not exist. See task_owners."""

PermissionCheck = Callable[[Actor, DocName, Sequence[Change], Doc, TaskBefore], Denial | None]
"""Decides whether ``actor`` may make ``changes`` (already applied to ``doc``; task
ownership as it was before them, from the lookup); None: allowed."""


def _no_tasks(_task_id: str) -> dict[str, Any] | None:
    return None


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    update: bytes | None  # what to store and broadcast; None when nothing changed
    changes: tuple[Change, ...] = ()
    denial: Denial | None = None
    violations: tuple[str, ...] = field(default=())
    error: Exception | None = None  # a server-side edit that raised (see Gate.edit)


class UnrevertableUpdate(ValueError):
    """An update the gate cannot take back with undo; the document must be reloaded."""


class MissingDependencies(UnrevertableUpdate):
    """An update that builds on structs or deletes items the server does not have (yet)."""


class NotAnUpdate(ValueError):
    """Bytes that do not decode as a Yjs update."""


class Gate:
    """Owns the undo manager and the event capture of one room's document."""

    def __init__(
        self,
        doc: Doc,
        doc_name: DocName,
        permission_check: PermissionCheck | None = None,
    ) -> None:
        self.doc = doc
        self.doc_name = doc_name
        self.permission_check = permission_check
        self._origin = f"gate:{doc_name.name}"
        self._events: list[Change] = []
        self._updates: list[bytes] = []
        self._capturing = False
        self._capture_error: Exception | None = None
        # pycrdt drops a subscription together with the wrapper object it was made on,
        # so the gate keeps its root wrappers for as long as it observes them.
        self._roots = {name: doc.get(name, type=t) for name, t in ROOTS[doc_name.kind].items()}
        self._undo = UndoManager(scopes=list(self._roots.values()), capture_timeout_millis=0)
        self._undo.include_origin(self._origin)
        tasks = self._roots.get("tasks")
        self._owners = TaskOwners(tasks) if isinstance(tasks, Map) else None
        # Subscribed on the integrated (Rust) types: the raw events are read lazily, and
        # the gate reads only their paths and keys (see doc_model.changes_from_events).
        self._subscriptions = [
            root.integrated.observe_deep(self._collector(name))
            for name, root in self._roots.items()
        ]
        self._doc_subscription = doc.observe(self._on_transaction)

    def _collector(self, root_name: str):
        def collect(events) -> None:
            if self._capturing:
                try:
                    self._events.extend(changes_from_events(events, root=root_name))
                except Exception as e:  # never let an exception into pycrdt's Rust callback
                    self._capture_error = e
            elif root_name == "tasks" and self._owners is not None:  # not the gate's own
                try:
                    self._owners.mark(changes_from_events(events, root=root_name))
                except Exception:
                    self._owners.reset()

        return collect

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._capturing:
            self._updates.append(event.update)

    def apply(self, update: bytes, actor: Actor) -> GateResult:
        """Apply one client transaction under ``actor``'s identity; keep it or revert it."""
        if update == b"\x00\x00":
            return GateResult(accepted=True, update=None)

        def apply_update(doc: Doc) -> None:
            try:
                doc.apply_update(update)
            except ValueError as e:
                raise NotAnUpdate(f"not a Yjs update: {e}") from e

        return self._run(apply_update, actor, update)

    def edit(self, mutate: Callable[[Doc], None], actor: Actor) -> GateResult:
        """Run a server-side edit (REST API, automation) under ``actor``'s identity, gated.

        ``mutate`` uses doc_model's write helpers on the document. If it raises
        (a task that does not exist, a value the helper refuses, a bug),
        whatever it had written is reverted and the exception is returned in
        ``GateResult.error``; the net update is still stored and broadcast,
        like a rejected transaction's.
        """
        return self._run(mutate, actor, None)

    def _run(self, mutate: Callable[[Doc], None], actor: Actor, update: bytes | None) -> GateResult:
        self._events.clear()
        self._updates.clear()
        self._capture_error = None
        if self._owners is not None:
            self._owners.refresh()  # task ownership before this transaction
        self._capturing = True
        try:
            error: Exception | None = None
            try:
                with self.doc.transaction(origin=self._origin):
                    mutate(self.doc)
            except NotAnUpdate:
                raise
            except Exception as e:  # a server-side edit that failed half-way: revert it all
                if update is not None:
                    raise
                error = e
            if error is None:
                denial, changes, violations = self._judge(update, actor)
            else:
                denial, changes, violations = Denial(reason=str(error)), tuple(self._events), []
            if denial is None:
                self._undo.clear()
                own = self._updates[0] if len(self._updates) == 1 else None
                if len(self._updates) > 1:
                    own = merge_updates(*self._updates)
                return GateResult(accepted=True, update=own, changes=changes)
            self._undo.undo()
            self._undo.clear()
            net = merge_updates(*self._updates) if self._updates else None
            return GateResult(
                accepted=False,
                update=net,
                changes=changes,
                denial=denial,
                violations=tuple(str(v) for v in violations),
                error=error,
            )
        finally:
            self._capturing = False
            if self._owners is not None:  # the transaction and its undo, if any
                if self._capture_error is not None:
                    self._owners.reset()
                else:
                    self._owners.mark(self._events)
            self._events.clear()
            self._updates.clear()

    def _judge(
        self, update: bytes | None, actor: Actor
    ) -> tuple[Denial | None, tuple[Change, ...], list]:
        """Everything the gate reads after applying, in one read transaction.

        pycrdt opens and commits a transaction for every access made outside
        one; reading inside one transaction halves the gate's cost.
        """
        with self.doc.transaction() as txn:
            strays = self._stray_roots(txn)
            if strays:
                raise UnrevertableUpdate(
                    f"unknown root type {strays[0]!r}: a {self.doc_name.kind.value} document"
                    f" has only {', '.join(ROOTS[self.doc_name.kind])}"
                )
            # Fast path: a transaction that integrated exactly the client's update (the
            # same bytes: yrs re-encodes what it integrated) left nothing pending.
            if update is not None and self._updates != [update]:
                missing = missing_dependencies(update, self.doc.get_state())
                if missing is not None:
                    raise MissingDependencies(missing)
            changes = tuple(self._events)
            violations = check_changes(self.doc_name.kind, self.doc, changes, self._roots)
            denial: Denial | None = None
            if self._capture_error is not None:  # changes unknown: nothing can allow them
                denial = Denial(reason=f"unreadable transaction: {self._capture_error}")
            elif violations:
                first = violations[0]
                denial = Denial(reason=f"schema: {first}", path=first.path)
            elif self.permission_check is not None and changes:
                before = self._owners.before if self._owners is not None else _no_tasks
                denial = self.permission_check(actor, self.doc_name, changes, self.doc, before)
        return denial, changes, violations

    def _stray_roots(self, txn) -> list[str]:
        """Root names the schema does not know. pycrdt's public ``Doc.keys()`` wraps every
        root in a new Python object on each call; the names alone are all the gate needs."""
        raw = getattr(self.doc, "_doc", None)
        if raw is None or getattr(txn, "_txn", None) is None:  # pycrdt changed: public path
            return unknown_roots(self.doc, self.doc_name.kind)
        known = ROOTS[self.doc_name.kind]
        return [name for name in raw.roots(txn._txn) if name not in known]

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.drop()
        self._subscriptions.clear()
        self.doc.unobserve(self._doc_subscription)


def missing_dependencies(update: bytes, state: bytes) -> str | None:
    """What of ``update`` a document with state vector ``state`` (taken after applying
    it) could not integrate, or None when it integrated in full.

    Whatever the update holds beyond ``state`` is structs Yjs left pending: their
    origin, parent or an earlier clock of their client is missing (pycrdt's
    ``get_state(update)`` cannot tell: it names only clients whose run starts at
    clock 0). The delete set is carried through whole; a range reaching past
    ``state`` deletes items the document does not have, which Yjs would apply
    whenever they arrive.
    """
    rest = get_update(update, state)
    if rest == b"\x00\x00":
        return None
    reader = Reader(rest)
    try:
        if reader.varuint():
            return "update depends on changes the server does not have"
        known = state_vectors.decode(state)
        for _ in range(reader.varuint()):
            client = reader.varuint()
            for _ in range(reader.varuint()):
                clock, length = reader.varuint(), reader.varuint()
                if clock + length > known.get(client, 0):
                    return (
                        f"update deletes changes the server does not have"
                        f" (client {client} clocks {clock}-{clock + length - 1})"
                    )
    except ProtocolError as e:
        return f"update's delete set does not decode: {e}"
    return None
