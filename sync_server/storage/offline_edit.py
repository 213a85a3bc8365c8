"""Edit a stored document without a server: load, change with doc_model helpers, append the diff.

Used by the CLI (demo seeding, grants). Safe while a server serves the same
file: the change is appended to the log like any other update, and a server
that has the document loaded picks it up on its next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pycrdt import Doc, merge_updates

from doc_model import Change, changes_from_events, parse_doc_name
from doc_model.domain_events import domain_events, read_entity, touched_entities
from doc_model.schema import ROOTS
from sync_server.interfaces import DocumentStore, UpdateRecord
from sync_server.storage.sqlite_store import build_document

T = TypeVar("T")


async def load_document(store: DocumentStore, doc_name: str) -> Doc:
    return build_document(await store.load(doc_name), parse_doc_name(doc_name))


async def edit_stored_document(
    store: DocumentStore, doc_name: str, actor: str, edit: Callable[[Doc], T]
) -> T:
    """Run ``edit(doc)`` in one transaction on the stored document and append what it
    changed, with its changes and domain events (doc_model.domain_events, as the gate
    computes them; the values before are read from a second copy of the stored document,
    made only if a touched entity can have had one)."""
    name = parse_doc_name(doc_name)
    stored = await store.load(doc_name)
    doc = build_document(stored, name)
    # the transaction's own update: a diff from a state vector (doc.get_update(state))
    # would carry the document's whole delete set every time
    updates: list[bytes] = []
    changes: list[Change] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    roots = {root: doc.get(root, type=t) for root, t in ROOTS[name.kind].items()}

    def collect(root: str) -> Callable[[list], None]:  # (one argument: pycrdt passes only events)
        return lambda events: changes.extend(changes_from_events(events, root))

    deep = [(root, r.observe_deep(collect(root))) for root, r in roots.items()]
    try:
        with doc.transaction():
            result = edit(doc)
    finally:
        doc.unobserve(subscription)
        for root, sub in deep:
            roots[root].unobserve(sub)
    if updates:
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        copies: list[Doc] = []

        def before(key: tuple[str, str], fields: set[str] | None, _after: object) -> object:
            if not copies:
                copies.append(build_document(stored, name))
            with copies[0].transaction():
                return read_entity(copies[0], key, fields)

        touched = touched_entities(doc, name.kind, changes, before)
        record = UpdateRecord(update, actor, changes=tuple(changes), events=domain_events(touched))
        await store.append(doc_name, [record])
    return result
