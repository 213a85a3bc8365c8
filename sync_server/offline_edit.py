"""Edit a stored document without a server: load, change with doc_model helpers, append the diff.

Used by the CLI (demo seeding, grants). Safe while a server serves the same
file: the change is appended to the log like any other update, and a server
that has the document loaded picks it up on its next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pycrdt import Doc, merge_updates

from doc_model import ROOTS, Change, changes_from_events, parse_doc_name

from .hooks import DocumentStore, UpdateRecord
from .storage import build_document

T = TypeVar("T")


async def load_document(store: DocumentStore, doc_name: str) -> Doc:
    return build_document(await store.load(doc_name), parse_doc_name(doc_name))


async def edit_stored_document(
    store: DocumentStore, doc_name: str, actor: str, edit: Callable[[Doc], T]
) -> T:
    """Run ``edit(doc)`` in one transaction on the stored document and append what it changed."""
    name = parse_doc_name(doc_name)
    doc = build_document(await store.load(doc_name), name)
    # the transaction's own update: a diff from a state vector (doc.get_update(state))
    # would carry the document's whole delete set every time
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    # and what it changed, for the change feed row stored with it (as the gate collects it)
    changes: list[Change] = []

    def collector(root: str) -> Callable[[list], None]:
        # one argument only: pycrdt passes the transaction to a callback that takes two
        return lambda events: changes.extend(changes_from_events(events, root))

    deep = []
    for root, kind in ROOTS[name.kind].items():
        shared = doc.get(root, type=kind)
        deep.append((shared, shared.observe_deep(collector(root))))
    try:
        with doc.transaction():
            result = edit(doc)
    finally:
        doc.unobserve(subscription)
        for shared, sub in deep:
            shared.unobserve(sub)
    if updates:
        update = updates[0] if len(updates) == 1 else merge_updates(*updates)
        await store.append(doc_name, [UpdateRecord(update, actor, changes=changes)])
    return result
