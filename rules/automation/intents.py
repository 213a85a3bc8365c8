"""What an automation rule wants done: the engine's output, the runner's input.

The engine (``rules.automation.engine``) is pure: (rule, trigger event, project
snapshot) -> :class:`Evaluation`, whose ``intents`` say what each action would
do. The runner extension (``sync_server.extensions.automation``) carries them
out: :class:`EditIntent` through ``ctx.edit`` as the rule's owner,
:class:`NotifyIntent` through the notification centre, :class:`OutboundIntent`
through the durable outbox (``integrations.outbox``). A dry run
(``POST .../rules/<id>/test/``) shows the same objects without running them.

Every intent carries ``action_index`` (the action's position in the rule), so
(rule id, event key, action index) is the idempotency key of what it causes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EditAction = Literal[
    "set_status", "set_field", "assign", "add_label", "add_comment", "create_subtasks"
]
OutboundChannel = Literal["webhook", "slack", "teams", "email"]


@dataclass(frozen=True)
class EditIntent:
    """A write to the project document, done through ``ctx.edit`` as the rule's owner."""

    action: EditAction
    action_index: int
    task_id: str
    params: dict[str, Any] = field(default_factory=dict)
    # set_status: {"status": column id}; set_field: {"field": name ("custom.X" for a
    # custom field), "value": v}; assign: {"users": [...]}; add_label: {"label": s};
    # add_comment: {"text": s}; create_subtasks: {"titles": [...]}


@dataclass(frozen=True)
class NotifyIntent:
    """An in-app notification (and Web Push) to users, resolved by the runner."""

    action_index: int
    title: str
    body: str
    task_id: str | None = None
    users: tuple[str, ...] = ()  # named users
    role: str | None = None  # every member holding this role
    assignees: bool = False  # the task's assignees


@dataclass(frozen=True)
class OutboundIntent:
    """A message for the outbox. ``target`` never holds a secret.

    webhook / slack / teams: ``target`` is the secret reference the rule stores
    (``"secret:<id>"``), resolved by the outbox at send time; email: ``target``
    is empty and ``payload["to"]`` names users / a role / assignees, resolved to
    addresses by the runner before it enqueues.
    """

    channel: OutboundChannel
    action_index: int
    target: str
    payload: dict[str, Any]


Intent = EditIntent | NotifyIntent | OutboundIntent


@dataclass(frozen=True)
class ConditionResult:
    """One leaf condition as the dry run shows it: path in the rule, and the outcome."""

    path: str  # JSON path inside the rule, e.g. "conditions.all[0]"
    field: str
    op: str
    expected: Any
    actual: Any
    matched: bool


@dataclass(frozen=True)
class Evaluation:
    """What one rule makes of one trigger event."""

    rule_id: str
    triggered: bool  # the trigger matched the event
    matched: bool  # the trigger matched and the conditions hold
    conditions: tuple[ConditionResult, ...] = ()
    intents: tuple[Intent, ...] = ()
    skipped: str | None = None  # why nothing will run (disabled, depth limit...), if so
    # (action index, why) for each action of a matched rule that does nothing this time
    # (no task to edit, nothing to change...); added by the engine, default empty
    actions_skipped: tuple[tuple[int, str], ...] = ()
