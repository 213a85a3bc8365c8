"""The update gate: every incoming transaction is applied, checked and kept or reverted.

A transaction is judged as one unit; one that is refused but touched entities
some of which are allowed alone is applied again in parts by the room's
request (:meth:`Gate.apply_in_parts`, ``sync_server.core.split``), and only the
refused entities are reverted.

    apply(update, actor)
      -> doc.apply_update inside a transaction whose origin is the gate's
      -> the deep events of that transaction become doc_model Changes
      -> schema check (doc_model) and permission check (rules, passed in)
      -> accepted: the transaction's own update is what gets stored and broadcast
         rejected: UndoManager.undo() reverts it exactly; the net effect (the
                   transaction plus its undo) is what gets stored and broadcast,
                   so no other client ever sees the forbidden state

Three kinds of update are not reverted by undo: content in a root type the
schema does not know (the undo manager never sees it), list content in a map
(``sync_server.core.map_content``: its tombstone would stay in the document for
later items to take their parent from), and items or deletions whose
dependencies the server does not have (Yjs keeps them pending and would
integrate them later, inside somebody else's transaction and so under
somebody else's permissions). The gate raises :class:`UnrevertableUpdate` for
the first two and :class:`MissingDependencies` for the third; the room reloads
the document from storage, which never held the update, and then closes the
sender's connection (unknown roots, list content in a map) or asks the sender
to resync (missing dependencies: an honest client that sent an edit before
its sync step 2 simply sends everything again). Missing dependencies are read
from the update's structs before it is applied (``sync_server.core.dependencies``:
each client's start clock, every origin, parent and deletion against the
document's state vector), so such an update never touches the document and
nothing needs reloading; the check after applying stays as a safety net.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrdt import (
    Doc,
    IdSet,
    Map,
    StackItem,
    TransactionEvent,
    UndoManager,
    get_update,
    merge_updates,
)

from doc_model import (
    Change,
    DocName,
    DomainEvent,
    changes_from_events,
    check_changes,
    unknown_roots,
)
from doc_model.check import EntityCheck
from doc_model.domain_events import (
    BeforeIndex,
    RepeatEvents,
    Touch,
    before_from_touches,
    domain_events,
    touched_entities,
    touches_from_events,
)
from doc_model.schema import ROOTS
from rules.automation.model import check_document_rule
from sync_server.core import split, state_vectors
from sync_server.core.dependencies import CrossedOrigins, UpdateNeeds, advance, read_needs
from sync_server.core.map_content import keyless_map_content
from sync_server.core.protocol import ProtocolError, Reader
from sync_server.core.task_owners import TaskOwners
from sync_server.interfaces import Actor

log = logging.getLogger("tandem.gate")

ENTITY_CHECKS: dict[str, EntityCheck] = {"rule": check_document_rule}
"""Checks of whole entities past their fields' types: an automation rule must validate
(document form, ``rules.automation.model``), refused with the path at fault."""


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
    # refused whole, but some of the entities it touched would be allowed alone: the room
    # reloads the document and calls Gate.apply_in_parts (sync_server.core.split)
    splittable: bool = False
    # refused in part (Gate.apply_in_parts): the changes that were kept
    kept: tuple[Change, ...] = ()
    # what the accepted transaction (or the kept part) meant, with values before and after
    events: tuple[DomainEvent, ...] = ()


class UnrevertableUpdate(ValueError):
    """An update the gate cannot take back with undo; the document must be reloaded."""


class MissingDependencies(UnrevertableUpdate):
    """An update that builds on structs or deletes items the server does not have (yet).

    ``applied``: found after applying it (the document must be reloaded); False when
    its structs told before anything was applied (``sync_server.core.dependencies``)."""

    def __init__(self, reason: str, *, applied: bool = True) -> None:
        super().__init__(reason)
        self.applied = applied


class NotAnUpdate(ValueError):
    """Bytes that do not decode as a Yjs update, or an update Yjs cannot integrate.

    ``applied``: pycrdt raised while integrating it (an item whose parent, named by id,
    is not a shared type: a forged update), after integrating the structs it reached
    first and perhaps keeping others pending. The gate reverts what it integrated and
    the room reloads the document from storage, which never held any of it."""

    def __init__(self, reason: str, *, applied: bool = False) -> None:
        super().__init__(reason)
        self.applied = applied


class Gate:
    """Owns the undo manager and the event capture of one room's document."""

    def __init__(
        self,
        doc: Doc,
        doc_name: DocName,
        permission_check: PermissionCheck | None = None,
        same_content_as: Gate | None = None,
    ) -> None:
        """``same_content_as``: the gate of a document this one holds the same content as
        (a rebuild): its index of before values is taken over instead of read again."""
        self.doc = doc
        self.doc_name = doc_name
        self.permission_check = permission_check
        self._origin = f"gate:{doc_name.name}"
        self._events: list[Change] = []
        self._maps: list[tuple[str | int, ...]] = []  # paths of the maps with an event
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
        # before values for domain events: an index of the document's entities, built for
        # the first transaction that deletes anything; until then each transaction's own
        # raw events say what its values were (doc_model.domain_events)
        self._index = BeforeIndex(doc, doc_name.kind)
        if same_content_as is not None:
            self._index.adopt(same_content_as._index)
        self._touches: list[Touch] = []
        self._derive = False  # record self._touches for the transaction being applied
        # the events of typing into a description, kept by shape (doc_model.RepeatEvents):
        # a burst of keystrokes works its events out once, not once per keystroke
        self._repeats = RepeatEvents()
        self._repeated = False  # this transaction's events were a repeat's
        # Subscribed on the integrated (Rust) types: the raw events are read lazily, and
        # the gate reads only their paths and keys (see doc_model.changes_from_events).
        self._subscriptions = [
            root.integrated.observe_deep(self._collector(name))
            for name, root in self._roots.items()
        ]
        # the document's state vector, for the dependency check (None: read it again)
        self._state: dict[int, int] | None = None
        self._state_cached = False  # the last _state_vector() came from the cache
        # the client update being applied and what its structs said: a transaction that
        # integrates exactly those bytes moves the state vector without reading them again
        self._applying: tuple[bytes, UpdateNeeds] | None = None
        # the document held no root the schema lacks at the last look, and only the gate's
        # own transactions ran since (then an update naming no root cannot add one)
        self._no_strays = False
        self._doc_subscription = doc.observe(self._on_transaction)

    def _collector(self, root_name: str):
        def collect(events) -> None:
            if self._capturing:
                try:
                    self._events.extend(changes_from_events(events, root_name, self._maps))
                    if self._derive:
                        self._touches.extend(touches_from_events(events, root_name))
                except Exception as e:  # never let an exception into pycrdt's Rust callback
                    self._capture_error = e
            elif (root_name == "tasks" and self._owners is not None) or self._index.built:
                try:  # not the gate's own transaction
                    changes = changes_from_events(events, root=root_name)
                    if root_name == "tasks" and self._owners is not None:
                        self._owners.mark(changes)
                    self._index.mark(changes)
                    self._repeats.forget(changes)
                except Exception:
                    if self._owners is not None:
                        self._owners.reset()
                    self._index.reset()
                    self._repeats.clear()

        return collect

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._capturing:
            update = event.update
            self._updates.append(update)
            if self._state is not None:
                applying = self._applying
                if applying is not None and update == applying[0]:
                    moved = applying[1].advance(self._state)
                else:
                    moved = advance(self._state, update)
                if not moved:
                    self._state = None
        else:  # not the gate's: read the state vector again when needed
            self._state = None
            self._no_strays = False

    def apply(self, update: bytes, actor: Actor) -> GateResult:
        """Apply one client transaction under ``actor``'s identity; keep it or revert it."""
        if update == b"\x00\x00":
            return GateResult(accepted=True, update=None)
        # Judged from its structs first: an update building on what the document lacks is
        # refused whole, the document untouched. (One the reader cannot decode goes on to
        # pycrdt, which says whether it is an update; the check after applying still runs.)
        missing = None
        try:
            needs: UpdateNeeds | None = read_needs(update)
        except ProtocolError:
            needs = None
        except CrossedOrigins as e:  # refused whole, the document untouched
            raise NotAnUpdate(f"not a valid Yjs update: {e}") from e
        if needs is not None and not needs.empty:
            missing = needs.unmet(self._state_vector())
            if missing is not None and self._state_cached:  # refused on the document's own
                self._state = None
                missing = needs.unmet(self._state_vector())
        if missing is not None:
            raise MissingDependencies(missing, applied=False)

        def apply_update(doc: Doc) -> None:
            try:
                doc.apply_update(update)
            except ValueError as e:
                raise NotAnUpdate(f"not a Yjs update: {e}") from e
            except RuntimeError as e:  # yrs refused a struct mid-way (see NotAnUpdate)
                raise NotAnUpdate(f"not a valid Yjs update: {e}", applied=True) from e

        self._applying = (update, needs) if needs is not None else None
        try:
            return self._run(apply_update, actor, update)
        finally:
            self._applying = None

    def _state_vector(self) -> dict[int, int]:
        """The document's state vector, kept up to date from the gate's own transactions
        (decoding it costs ~1 us per client that ever wrote; reading a keystroke's
        transaction, a few)."""
        if self._state is None:
            self._state = state_vectors.decode(self.doc.get_state())
            self._state_cached = False
        else:
            self._state_cached = True
        return self._state

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
        self._maps.clear()
        self._updates.clear()
        self._capture_error = None
        if self._owners is not None:
            self._owners.refresh()  # task ownership before this transaction
        # An update that deletes nothing (its delete set, last in the encoding, is empty:
        # a final 0) has before values its own events tell; anything else needs the index.
        self._prepare_index(update is None or update[-1:] != b"\x00")
        self._capturing = True
        accepted = False
        try:
            error: Exception | None = None
            try:
                with self.doc.transaction(origin=self._origin):
                    mutate(self.doc)
            except NotAnUpdate as e:
                if e.applied and self._updates:  # take back what integrated before it
                    self._undo.undo()
                self._undo.clear()
                raise
            except Exception as e:  # a server-side edit that failed half-way: revert it all
                if update is not None:
                    raise
                error = e
            events: tuple[DomainEvent, ...] = ()
            if error is None:
                denial, changes, violations, events = self._judge(update, actor)
            else:
                denial, changes, violations = Denial(reason=str(error)), tuple(self._events), []
            if denial is None:
                self._undo.clear()
                own = self._updates[0] if len(self._updates) == 1 else None
                if len(self._updates) > 1:
                    own = merge_updates(*self._updates)
                accepted = True
                return GateResult(accepted=True, update=own, changes=changes, events=events)
            splittable = (
                update is not None
                and error is None
                and self._capture_error is None
                and self._mixed_verdicts(actor, changes)
            )
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
                splittable=splittable,
            )
        finally:
            self._capturing = False
            self._derive = False
            if self._owners is not None:  # the transaction and its undo, if any
                if self._capture_error is not None:
                    self._owners.reset()
                else:
                    self._owners.mark(self._events)
            if self._capture_error is not None:
                self._index.reset()
                self._repeats.clear()
            else:
                if not (accepted and self._repeated):  # (a repeat changes no title)
                    self._repeats.forget(self._events)
                if not accepted:  # (an accepted one's values were put in the index)
                    self._index.mark(self._events)
            self._repeated = False
            self._events.clear()
            self._maps.clear()
            self._updates.clear()
            self._touches.clear()

    def _prepare_index(self, deletes: bool) -> None:
        """Bring the index of before values up to date, building it if this transaction
        may delete something; otherwise record the transaction's raw events instead."""
        self._touches.clear()
        if self._index.empty:
            return
        if deletes or self._index.built:
            self._index.build()
        self._derive = not self._index.built

    def _domain_events(
        self, changes: Sequence[Change], *, index_current: bool, txn: Any = None
    ) -> tuple[DomainEvent, ...]:
        """The accepted transaction's domain events: after values read now, before values
        from the index (or the transaction's own events). ``index_current``: put the after
        values into the index (else the caller marks the touched entities stale). Never
        raises: a failure is logged, and the transaction has no events."""
        key = tuple(changes)
        try:
            indexed = self._index.built

            def before(key: tuple[str, str], fields: set[str] | None, after: object) -> object:
                if indexed:
                    return self._index.before(key, fields)
                return before_from_touches(key, fields, after, self._touches)

            kind = self.doc_name.kind
            touched = touched_entities(self.doc, kind, changes, before, self._roots, txn)
            if indexed and index_current:
                for entity, t in touched.items():
                    self._index.put(entity, t.fields, t.after)
            events = tuple(domain_events(touched))
            self._repeats.put(key, events)
            return events
        except Exception:
            log.exception("computing domain events failed", extra={"doc": self.doc_name.name})
            self._index.reset()
            self._repeats.clear()
            return ()

    def _judge(
        self, update: bytes | None, actor: Actor
    ) -> tuple[Denial | None, tuple[Change, ...], list, tuple[DomainEvent, ...]]:
        """Everything the gate reads after applying, in one read transaction (the domain
        events of an accepted transaction included).

        pycrdt opens and commits a transaction for every access made outside
        one; reading inside one transaction halves the gate's cost.
        """
        with self.doc.transaction() as txn:
            # (a root is added only by an item whose parent is named as a root)
            applying = self._applying
            if self._no_strays and applying is not None and not applying[1].names_root:
                strays = []
            else:
                strays = self._stray_roots(txn)
                self._no_strays = not strays
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
            self._refuse_list_content_in_maps()
            changes = tuple(self._events)
            violations = check_changes(
                self.doc_name.kind, self.doc, changes, self._roots, ENTITY_CHECKS
            )
            if self._capture_error is not None:  # changes unknown: nothing can allow them
                denial: Denial | None = Denial(
                    reason=f"unreadable transaction: {self._capture_error}"
                )
            else:
                denial = self._verdict(actor, changes, violations)
            events: tuple[DomainEvent, ...] = ()
            if denial is None:
                repeat = self._repeats.get(changes)
                if repeat is not None:  # the same keystroke again (unvalued: no index to put)
                    # the very tuples of the first: the feed's writer knows them by identity
                    changes, events = repeat
                    self._repeated = True
                else:
                    events = self._domain_events(changes, index_current=True, txn=txn)
        return denial, changes, violations, events

    def _verdict(
        self, actor: Actor, changes: Sequence[Change], violations: Sequence
    ) -> Denial | None:
        """Schema first, then permissions (on task ownership before the transaction)."""
        if violations:
            return Denial(reason=f"schema: {violations[0]}", path=violations[0].path)
        if self.permission_check is not None and changes:
            before = self._owners.before if self._owners is not None else _no_tasks
            return self.permission_check(actor, self.doc_name, changes, self.doc, before)
        return None

    def _judge_alone(self, actor: Actor, changes: Sequence[Change]) -> Denial | None:
        """The verdict on ``changes`` alone, in the document as it is now."""
        violations = check_changes(
            self.doc_name.kind, self.doc, changes, self._roots, ENTITY_CHECKS
        )
        return self._verdict(actor, changes, violations)

    def _refuse_list_content_in_maps(self) -> None:
        """List content in a map touches a map, so only transactions with a map event are
        read for it (typing into a text has none); it cannot be undone (see map_content)."""
        if not self._maps:
            return
        for own in self._updates:
            keyless = keyless_map_content(own, self.doc, ROOTS[self.doc_name.kind])
            if keyless is not None:
                raise UnrevertableUpdate(f"{keyless}: a map holds only keyed entries")

    def _mixed_verdicts(self, actor: Actor, changes: Sequence[Change]) -> bool:
        """Whether a refused transaction touched several entities, some allowed alone."""
        groups = split.group_changes(changes)
        if len(groups) < 2:
            return False
        with self.doc.transaction():
            verdicts = [self._judge_alone(actor, group) is None for group in groups.values()]
        return any(verdicts) and not all(verdicts)

    def apply_in_parts(self, update: bytes, actor: Actor) -> GateResult:
        """Apply a refused update again, in parts, and keep the entities allowed alone.

        The document must not hold ``update`` (the room reloads it from storage
        first). Each part (one struct, or one deletion range) is its own
        transaction, and so its own undo stack item; parts are grouped by the
        entities their events touched, each group is judged alone, and a new
        undo manager given only the refused groups' stack items reverts just
        those. The kept changes are judged once more together; if they are
        refused together after all, everything is reverted (the whole refusal).
        """
        try:
            parts = split.parts_of(update)
        except ProtocolError:
            return self.apply(update, actor)  # refused whole, as before (too many parts)
        self._events.clear()
        self._maps.clear()
        self._updates.clear()
        self._capture_error = None
        if self._owners is not None:
            self._owners.refresh()  # every part is judged on ownership before the update
        self._prepare_index(True)  # parts judged one by one: before values from the index
        self._capturing = True
        # An undo manager of its own, so that each part is one stack item: yrs merges a
        # transaction into the previous stack item when both fall in the same millisecond
        # (even with capture_timeout_millis=0), so its clock steps a second per call.
        origin = f"{self._origin}:parts"
        ticks = itertools.count(step=1000)
        undo = UndoManager(
            scopes=list(self._roots.values()),
            capture_timeout_millis=0,
            timestamp=lambda: next(ticks),
        )
        undo.include_origin(origin)
        try:
            part_changes: list[list[Change]] = []
            part_items: list[list] = []
            for part in parts:
                first_event, first_item = len(self._events), len(undo.undo_stack)
                try:
                    with self.doc.transaction(origin=origin):
                        self.doc.apply_update(part.update)
                except (ValueError, RuntimeError) as e:  # the whole decoded; a part should too
                    done = range(len(part_items))
                    self._undo_only(parts, part_items, done)
                    return GateResult(
                        accepted=False, update=self._net(), denial=Denial(f"split: {e}")
                    )
                part_changes.append(self._events[first_event:])
                part_items.append(undo.undo_stack[first_item:])
            all_changes = tuple(self._events)
            self._check_integrity(update)
            if self._capture_error is not None:
                self._undo_only(parts, part_items, range(len(parts)))
                denial = Denial(f"unreadable transaction: {self._capture_error}")
                return GateResult(
                    accepted=False, update=self._net(), changes=all_changes, denial=denial
                )
            kept: list[Change] = []
            kept_parts: list[int] = []
            refused_parts: list[int] = []
            first_denial: Denial | None = None
            with self.doc.transaction():
                for indexes, changes in split.join_groups(parts, part_changes):
                    denial = self._judge_alone(actor, changes)
                    if denial is None:
                        kept.extend(changes)
                        kept_parts.extend(indexes)
                    else:
                        first_denial = first_denial or denial
                        refused_parts.extend(indexes)
            if first_denial is None:  # allowed part by part after all: keep it all
                events = self._domain_events(all_changes, index_current=False)
                return GateResult(
                    accepted=True, update=self._net(), changes=all_changes, events=events
                )
            self._undo_only(parts, part_items, refused_parts)
            with self.doc.transaction():
                again = self._judge_alone(actor, kept)
            if again is not None:  # allowed alone, refused together: refuse it all
                self._undo_only(parts, part_items, kept_parts)
                return GateResult(
                    accepted=False, update=self._net(), changes=all_changes, denial=first_denial
                )
            return GateResult(
                accepted=False,
                update=self._net(),
                changes=all_changes,
                denial=first_denial,
                kept=tuple(kept),
                events=self._domain_events(kept, index_current=False),
            )
        finally:
            undo.clear()
            self._capturing = False
            self._derive = False
            if self._capture_error is not None:
                self._index.reset()
                self._repeats.clear()
            else:  # the parts and the undo of the refused ones: read again when needed
                self._index.mark(self._events)
                self._repeats.forget(self._events)
            self._touches.clear()
            if self._owners is not None:  # the parts and the undo of the refused ones
                if self._capture_error is not None:
                    self._owners.reset()
                else:
                    self._owners.mark(self._events)
            self._events.clear()
            self._maps.clear()
            self._updates.clear()

    def _check_integrity(self, update: bytes) -> None:
        """What _judge checks before the schema: unknown roots, pending structs, list
        content in a map (each raises; the room reloads the document)."""
        with self.doc.transaction() as txn:
            strays = self._stray_roots(txn)
        if strays:
            raise UnrevertableUpdate(f"unknown root type {strays[0]!r}")
        missing = missing_dependencies(update, self.doc.get_state())
        if missing is not None:
            raise MissingDependencies(missing)
        self._refuse_list_content_in_maps()

    def _undo_only(
        self, parts: Sequence[split.Part], part_items: Sequence[list], indexes: Iterable[int]
    ) -> None:
        """Revert exactly these parts, as one undo step (as the whole transaction's would
        be): undone one by one, a key written three times would not get its first value
        back, because Yjs restores a map entry only if every later value of its key goes
        in the same undo step. The step's insertions are every struct of these parts, not
        only those the parts' stack items hold: a struct integrated already deleted (a
        value the sender overwrote offline) is in no stack item, yet stands right of the
        value to restore."""
        chosen = list(indexes)
        items = [item for i in chosen for item in part_items[i]]
        deletions = functools.reduce(StackItem.merge, items).deletions if items else IdSet()
        insertions = IdSet.decode(split.id_set(parts[i] for i in chosen))
        step: StackItem = StackItem(self.doc._doc, deletions, insertions)
        targeted = UndoManager(
            scopes=list(self._roots.values()), capture_timeout_millis=0, undo_stack=[step]
        )
        targeted.undo()

    def _net(self) -> bytes | None:
        if not self._updates:
            return None
        return self._updates[0] if len(self._updates) == 1 else merge_updates(*self._updates)

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
