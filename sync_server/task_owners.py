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

from collections.abc import Iterable

from pycrdt import Array, Map

from doc_model import Change


class TaskOwners:
    def __init__(self, tasks: Map) -> None:
        self._tasks = tasks
        self._assignees: dict[str, tuple[str, ...]] | None = None  # None: not built yet
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
        with self._tasks.doc.transaction():
            if self._assignees is None:
                self._assignees = {}
                for task_id, task in self._tasks.items():
                    self._read(task_id, task)
            else:
                for task_id in self._stale:
                    self._assignees.pop(task_id, None)
                    task = self._tasks.get(task_id)
                    if task is not None:
                        self._read(task_id, task)
        self._stale.clear()

    def _read(self, task_id: str, task: object) -> None:
        assert self._assignees is not None
        if not isinstance(task, Map):
            return
        assignees = task.get("assignees")
        names = (
            tuple(a for a in assignees if isinstance(a, str))
            if isinstance(assignees, Array)
            else ()
        )
        self._assignees[task_id] = names

    def before(self, task_id: str) -> dict[str, list[str]] | None:
        """The task's fields ownership needs, as of the last refresh; None: no such task."""
        if self._assignees is None:
            return None
        names = self._assignees.get(task_id)
        return None if names is None else {"assignees": list(names)}
