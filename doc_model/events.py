"""Domain events: what one accepted transaction meant, with the values before and after it.

Pure: computed from a document's values before and after a transaction, no I/O.
Extensions (activity, notifications, automation, integrations) react to these
instead of re-reading the document after the fact. The computation
(``domain_events``) is filled in by issue 19's domain-events work; the shape
below is the contract every producer and consumer shares, and the change feed
stores it as JSON (``to_json`` / ``from_json`` round-trip exactly).

Kinds (``DomainEvent.kind``), with what ``before`` / ``after`` hold:

- ``task_created`` / ``task_deleted``: the task's fields (dict) after / before
- ``task_field_changed``: one scalar field; ``field`` names it; old / new value
  (``status``, ``title``, ``priority``, ``due``, ``column``... each its own event)
- ``task_assignees_changed``: sorted lists; ``detail`` has ``added`` and ``removed``
- ``comment_posted``: None / the comment (dict); ``entity`` is the task id
- ``chat_message_posted``: None / the message (dict)
- ``mention``: None / the mentioned user; ``detail`` has where (task/comment/chat) and text
- ``milestone_completed``: old / new status of a milestone
- ``budget_changed``, ``cost_added``, ``cost_changed``, ``cost_deleted``,
  ``time_entry_added``: finance values before / after
- ``member_role_changed``: a member's role before / after (None: not a member)
- ``project_changed``: one field of the project's meta
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DomainEvent:
    """One thing that happened in a document, with its values before and after."""

    kind: str
    entity: str | None = None  # task / milestone / cost / member id the event is about
    field: str | None = None  # for *_field_changed: which field
    before: Any = None  # JSON-compatible values only
    after: Any = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("entity", "field", "before", "after"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DomainEvent:
        return cls(
            kind=data["kind"],
            entity=data.get("entity"),
            field=data.get("field"),
            before=data.get("before"),
            after=data.get("after"),
            detail=dict(data.get("detail") or {}),
        )
