"""Each task's assignees as they were before the transaction being judged.

Ownership (``edit_own_tasks``) is judged on the document before a transaction:
a transaction that clears a task's assignees, adds its author and edits the
title must not be judged as the new assignee's edit. The gate cannot know
before applying which tasks a transaction touches, so this index keeps every
task's assignees as of the last committed transaction: built from the
document on first use, and afterwards only the tasks whose assignees (or
existence) a transaction changed are read again, before the next transaction
is applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pycrdt import Array, Map

from doc_model import Change


class TaskOwners:
    def __init__(self, tasks: Map) -> None:
        self._tasks = tasks
        # task id -> its assignees (a JSON string until first asked); None: not built yet
        self._assignees: dict[str, str | tuple[str, ...]] | None = None
        self._stale: set[str] = set()

    def mark(self, changes: Iterable[Change]) -> None:
        """Note the tasks whose assignees ``changes`` (of a committed transaction) changed."""
        if self._assignees is None:
            return
        for change in changes:
            if change.root != "tasks":
                continue
            if len(change.path) == 1:  # the tasks map itself: read everything again
                self.reset()
                return
            if len(change.path) == 2 or change.field == "assignees":
                self._stale.add(str(change.path[1]))

    def reset(self) -> None:
        """Forget everything (changes that could not be read): rebuilt before the next use."""
        self._assignees = None
        self._stale.clear()

    def refresh(self) -> None:
        """Bring the index up to the document's current state (call before applying)."""
        if self._assignees is not None and not self._stale:
            return
        with self._tasks.doc.transaction() as txn:
            if self._assignees is None:
                self._assignees = {}
                ids: Iterable[str] = self._keys(txn)
            else:
                ids = self._stale
            for task_id in ids:
                names = self._read(txn, task_id)
                if names is None:
                    self._assignees.pop(task_id, None)
                else:
                    self._assignees[task_id] = names
        self._stale.clear()

    def _keys(self, txn: Any) -> list[str]:
        raw, tx = self._tasks.integrated, getattr(txn, "_txn", None)
        if tx is not None and hasattr(raw, "keys"):
            return list(raw.keys(tx))
        return list(self._tasks.keys())  # pycrdt changed: the public (slower) path

    def _read(self, txn: Any, task_id: str) -> str | tuple[str, ...] | None:
        """A task's assignees: the Array's JSON as yrs gives it (parsed only when asked;
        reading through pycrdt's raw types costs a fifth of its wrappers, which matters
        when a 10,000-task document is indexed), or None if there is no such task."""
        raw, tx = self._tasks.integrated, getattr(txn, "_txn", None)
        if tx is not None and hasattr(raw, "get"):
            try:
                task = raw.get(tx, task_id)
            except ValueError:  # yrs: no such key
                return None
            if type(task).__name__ != "Map":
                return None  # not a task
            try:
                assignees = task.get(tx, "assignees")
            except ValueError:
                return ()
            return assignees.to_json(tx) if type(assignees).__name__ == "Array" else ()
        task = self._tasks.get(task_id)
        if not isinstance(task, Map):
            return None
        assignees = task.get("assignees")
        return (
            tuple(a for a in assignees if isinstance(a, str))
            if isinstance(assignees, Array)
            else ()
        )

    def before(self, task_id: str) -> dict[str, list[str]] | None:
        """The task's fields ownership needs, as of the last refresh; None: no such task."""
        if self._assignees is None:
            return None
        names = self._assignees.get(task_id)
        if names is None:
            return None
        if isinstance(names, str):
            try:
                parsed = json.loads(names)
            except ValueError:
                parsed = []
            names = (
                tuple(a for a in parsed if isinstance(a, str)) if isinstance(parsed, list) else ()
            )
            self._assignees[task_id] = names
        return {"assignees": list(names)}
