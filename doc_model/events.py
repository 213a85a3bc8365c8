"""Domain events: what one accepted transaction meant, with the values before and after it.

Pure: computed from a document's values before and after a transaction, no I/O
(``doc_model.domain_events``: the gate computes them for every accepted
transaction, and the CLI's writes for theirs). Extensions (activity,
notifications, automation, integrations) react to these instead of re-reading
the document after the fact. The change feed stores them as JSON (``to_json`` /
``from_json`` round-trip exactly). Values are plain JSON (Text -> str, Y.Array ->
list, Y.Map -> dict, whole numbers -> int); None where there was no value.

Kinds (``DomainEvent.kind``), with what ``before`` / ``after`` hold; ``entity`` is
the id of the task / milestone / cost / ... it is about:

- ``task_created`` / ``task_deleted``: the task's fields (dict, without
  ``description``) after / before; ``detail["title"]``
- ``task_field_changed``: one field (``field``: ``status`` (its column), ``title``,
  ``priority``, ``due``, ``start``, ``estimate``, ``labels``, ``custom``,
  ``milestone``, ``order``...): old / new value; ``detail["title"]`` is the task's
  title after. ``description`` carries no values (``detail["unvalued"]``): it can
  be 100,000 characters, edited a keystroke at a time
- ``task_assignees_changed``: sorted lists; ``detail`` has ``added``, ``removed``, ``title``
- ``milestone_created`` / ``milestone_deleted`` / ``milestone_changed`` (one field),
  and ``milestone_completed`` instead of ``milestone_changed`` when ``done`` becomes
  true (old / new ``done``); ``detail["name"]``
- ``rule_created`` / ``rule_deleted`` / ``rule_changed``
- ``budget_changed``: one field of the budget (``field``), old / new
- ``cost_added`` / ``cost_deleted`` / ``cost_changed`` (one field),
  ``time_entry_added`` / ``time_entry_deleted`` / ``time_entry_changed``,
  ``allocation_added`` / ``allocation_deleted`` / ``allocation_changed``
- ``member_role_changed``: ``entity`` is the user; role before / after (None: not a member)
- ``project_changed``: one field of the project's meta (``field``), old / new
- ``columns_changed``: the board's columns (list) before / after
- ``chat_message_posted``: None / the message (dict); ``entity`` is its id
- ``comment_posted``: a chat message about a task: None / the message; ``entity`` is
  the task id, ``detail["message"]`` the message id
- ``mention``: ``entity`` and ``after`` are the user named ``@user`` in a posted
  message or comment; ``detail`` has ``where`` (``chat`` / ``comment``), ``text``,
  ``message``, ``author`` (and ``task`` for a comment). Also made by the server, not
  by a transaction, for a member newly named in a task's title or description once
  the typing settles (``sync_server.extensions.mentions``: a feed row of its own, seq
  0): ``where`` is ``task``, with ``task``, ``field`` (``title`` / ``description``),
  ``title``, ``text`` (the line naming them) and ``author``

Made by the automation scheduler, not by a transaction (so never in the change feed;
see ``rules.automation.triggers``):

- ``due_date_approaching`` / ``task_overdue``: ``entity`` the task id; ``detail`` has
  ``rule`` (the rule it fires), ``due`` (the due date it was computed from), ``at``
  (the fire time, ISO 8601 UTC)
- ``schedule_fired``: ``entity`` the rule id; ``detail["at"]`` the fire time

``detail["before_unknown"]``: no before value could be known (the event's
``before`` is None): a nested type (a task, a Y.Text) replaced by a concurrent
write, or an edit deep inside a rule's free-form fields, while the room had no
index of the document yet (see doc_model.domain_events).
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
