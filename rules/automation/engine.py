"""The automation engine: (rule, trigger event, project snapshot) -> :class:`Evaluation`. Pure.

:func:`evaluate` never writes, sends or reads a clock; the runner extension carries out the
intents it returns (see ``rules.automation.intents``). ``project`` is the project
document's JSON snapshot (shapes in ``rules.automation.project``).

Steps: the trigger (``rules.automation.triggers``), then loop protection and the enabled
switch, then the conditions (``rules.automation.conditions``) over the event's task (if
it is about one) and the project, then one intent per action:

- ``set_status`` / ``set_field`` / ``assign`` / ``add_label`` / ``add_comment`` /
  ``create_subtasks``: an :class:`EditIntent` on the event's task. With no task (a
  schedule, a milestone, the budget...) these actions do nothing; nor does an edit that
  would change nothing (the status already set, the label already there, everyone
  already assigned), which also ends chains of rules feeding each other early, nor a
  ``set_status`` to a column the board does not have. Each action that does nothing is
  in ``Evaluation.actions_skipped`` with the reason (for the dry run and the run log);
- ``notify``: a :class:`NotifyIntent`;
- ``email`` / ``slack`` / ``teams`` / ``webhook``: an :class:`OutboundIntent` whose payload
  is the message, ready to send: webhook ``{"rule", "event", "task", "project"}``, Slack
  Block Kit ``{"text", "blocks"}``, Teams a ``message`` with an Adaptive Card attachment,
  email ``{"to", "subject", "text", "task"}``. ``target`` is the action's ``url_ref``
  (document form), never a URL.

Loop protection: an action's own writes carry the chain ``depth`` (the runner's business);
at ``depth >= max_depth`` a rule the event triggers is skipped with ``"depth limit"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from doc_model.events import DomainEvent

from . import project as snap
from .conditions import evaluate_conditions, same
from .formatting import DATE_FIELDS, PLAIN, TextFormat
from .intents import EditIntent, Evaluation, Intent, NotifyIntent, OutboundIntent
from .model import (
    AddComment,
    AddLabel,
    Assign,
    CreateSubtasks,
    Email,
    Notify,
    Rule,
    SetField,
    SetStatus,
    Slack,
    Teams,
    Webhook,
)
from .triggers import event_task_id, fires

MAX_DEPTH = 3
"""How long a chain of rules triggering rules may grow (an action's write is depth + 1)."""

DEPTH_LIMIT = "depth limit"
DISABLED = "disabled"

_PLACEHOLDER = re.compile(r"\{(task|project|rule|event)\.([a-z_]{1,32})\}")


def evaluate(
    rule_id: str,
    rule: Rule,
    event: DomainEvent,
    project: Mapping[str, Any],
    *,
    depth: int = 0,
    max_depth: int = MAX_DEPTH,
    fmt: TextFormat = PLAIN,
) -> Evaluation:
    """What ``rule`` makes of ``event`` in ``project`` (the snapshot after the event);
    dates and numbers in its texts as ``fmt`` writes them (see rules.automation.formatting)."""
    if not fires(rule_id, rule.trigger, event, project):
        return Evaluation(rule_id, triggered=False, matched=False)
    if not rule.enabled:
        return Evaluation(rule_id, triggered=True, matched=False, skipped=DISABLED)
    if depth >= max_depth:
        return Evaluation(rule_id, triggered=True, matched=False, skipped=DEPTH_LIMIT)
    task_id = event_task_id(event, project)
    task = snap.task(project, task_id)
    if task is None:
        task_id = None  # deleted since, or about no task
    matched, results = evaluate_conditions(rule.conditions, task_id, task, project, event)
    if not matched:
        return Evaluation(rule_id, triggered=True, matched=False, conditions=results)
    context = _Context(rule_id, rule, event, project, task_id, task, fmt)
    intents: list[Intent] = []
    passed: list[tuple[int, str]] = []
    for index, action in enumerate(rule.actions):
        intent = _intent(index, action, context)
        if isinstance(intent, str):
            passed.append((index, intent))
        else:
            intents.append(intent)
    return Evaluation(
        rule_id,
        triggered=True,
        matched=True,
        conditions=results,
        intents=tuple(intents),
        actions_skipped=tuple(passed),
    )


class _Context:
    def __init__(
        self,
        rule_id: str,
        rule: Rule,
        event: DomainEvent,
        project: Mapping[str, Any],
        task_id: str | None,
        task: Mapping[str, Any] | None,
        fmt: TextFormat = PLAIN,
    ) -> None:
        self.fmt = fmt
        self.rule_id = rule_id
        self.rule = rule
        self.event = event
        self.project = project
        self.task_id = task_id
        self.task = task

    def task_json(self) -> dict[str, Any] | None:
        if self.task is None or self.task_id is None:
            return None
        return {**{k: v for k, v in self.task.items() if k != "description"}, "id": self.task_id}

    def fill(self, text: str) -> str:
        """``text`` with its placeholders replaced (see rules.automation.model). A text
        that comes out empty (``{task.title}`` with no task) is replaced by a default."""

        def value(m: re.Match[str]) -> str:
            scope, name = m.group(1), m.group(2)
            if scope == "task":
                if self.task is None:
                    return ""
                found = self.task_id if name == "id" else self.task.get(name)
            elif scope == "project":
                found = (
                    snap.project_id(self.project)
                    if name == "id"
                    else snap.meta(self.project).get(name)
                )
            elif scope == "rule":
                found = self.rule_id if name == "id" else getattr(self.rule, name, None)
                if not isinstance(found, str):
                    found = None
            else:
                found = (
                    getattr(self.event, name, None) if name in ("kind", "entity", "field") else None
                )
            if found is None:
                return ""
            return self.show(name, found)

        return _PLACEHOLDER.sub(value, text)

    def show(self, name: str, value: Any) -> str:
        """A value in a text: dates and numbers as the reader writes them."""
        if isinstance(value, list | tuple):
            return ", ".join(self.show(name, x) for x in value)
        if isinstance(value, str):
            return self.fmt.date(value) if name in DATE_FIELDS else value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.fmt.number(value)
        return str(value)

    def headline(self) -> str:
        title = self.task.get("title") if self.task is not None else None
        name = snap.meta(self.project).get("name")
        what = (
            f"“{title}”" if isinstance(title, str) and title else self.event.kind.replace("_", " ")
        )
        where = f" in {name}" if isinstance(name, str) and name else ""
        return f"{self.rule.name}: {what}{where}"


def _intent(index: int, action: Any, c: _Context) -> Intent | str:
    """The action's intent, or why it does nothing this time."""
    if isinstance(action, Notify):
        return NotifyIntent(
            action_index=index,
            title=c.fill(action.title).strip() or c.rule.name,
            body=c.fill(action.message).strip() or c.headline(),
            task_id=c.task_id,
            users=tuple(action.to.users),
            role=action.to.role,
            assignees=action.to.assignees,
        )
    if isinstance(action, Email):
        return OutboundIntent(
            "email",
            index,
            "",
            {
                "to": action.to.model_dump(mode="json", exclude_none=True),
                "subject": c.fill(action.subject).strip() or c.rule.name,
                "text": c.fill(action.text).strip() or c.headline(),
                "task": c.task_id,
            },
        )
    if isinstance(action, Webhook | Slack | Teams):
        target = action.url_ref or ""
        if isinstance(action, Webhook):
            payload = webhook_payload(c)
        else:
            text = c.fill(action.text).strip() or c.headline()
            payload = (
                slack_payload(text, c) if isinstance(action, Slack) else teams_payload(text, c)
            )
        return OutboundIntent(action.type, index, target, payload)
    return _edit(index, action, c)


def _edit(index: int, action: Any, c: _Context) -> EditIntent | str:
    if c.task is None or c.task_id is None:
        return "no task: the event is about none (or it was deleted)"
    task = c.task
    if isinstance(action, SetStatus):
        if task.get("status") == action.status:
            return f"nothing to change: the status is {action.status!r} already"
        if action.status not in snap.columns(c.project):
            return f"{action.status!r} is not a column of this board"
        return EditIntent("set_status", index, c.task_id, {"status": action.status})
    if isinstance(action, SetField):
        if action.field.startswith("custom."):
            custom = task.get("custom")
            current = custom.get(action.field[7:]) if isinstance(custom, Mapping) else None
            present = isinstance(custom, Mapping) and action.field[7:] in custom
        else:
            current, present = task.get(action.field), action.field in task
        if present and same(current, action.value):
            return f"nothing to change: {action.field} is {action.value!r} already"
        return EditIntent(
            "set_field", index, c.task_id, {"field": action.field, "value": action.value}
        )
    if isinstance(action, Assign):
        current = task.get("assignees")
        have = set(current) if isinstance(current, list) else set()
        new = [u for u in dict.fromkeys(action.users) if u not in have]
        if not new:
            return "nothing to change: everyone named is assigned already"
        return EditIntent("assign", index, c.task_id, {"users": new})
    if isinstance(action, AddLabel):
        labels = task.get("labels")
        if isinstance(labels, list) and action.label in labels:
            return f"nothing to change: the task has the label {action.label!r} already"
        return EditIntent("add_label", index, c.task_id, {"label": action.label})
    if isinstance(action, AddComment):
        return EditIntent("add_comment", index, c.task_id, {"text": c.fill(action.text)})
    if isinstance(action, CreateSubtasks):
        return EditIntent(
            "create_subtasks",
            index,
            c.task_id,
            {"titles": [c.fill(t)[:500] or t for t in action.titles]},
        )
    return f"unknown action {getattr(action, 'type', action)!r}"


# -- payloads ----------------------------------------------------------------------------------


def webhook_payload(c: _Context) -> dict[str, Any]:
    """The JSON a webhook receives: the rule, the event, the task (or null), the project."""
    return {
        "rule": {"id": c.rule_id, "name": c.rule.name, "trigger": c.rule.trigger.type},
        "event": c.event.to_json(),
        "task": c.task_json(),
        "project": {"id": snap.project_id(c.project), "name": snap.meta(c.project).get("name")},
    }


def _facts(c: _Context) -> list[tuple[str, str]]:
    facts = [("Rule", c.rule.name), ("Event", c.event.kind.replace("_", " "))]
    if c.task is not None:
        for name in ("status", "priority", "due"):
            value = c.task.get(name)
            if isinstance(value, str) and value:
                facts.append((name.capitalize(), c.show(name, value)))
        assignees = c.task.get("assignees")
        if isinstance(assignees, list) and assignees:
            facts.append(("Assignees", ", ".join(str(a) for a in assignees)))
    return facts


def _mrkdwn(text: str) -> str:
    """Text safe inside Slack mrkdwn (its three control characters escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(text: str, c: _Context) -> dict[str, Any]:
    """A Slack incoming-webhook message: Block Kit, with ``text`` as the notification."""
    fields = [
        {"type": "mrkdwn", "text": f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}"[:2000]}
        for k, v in _facts(c)[:10]
    ]
    return {
        "text": text[:3000],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(text)[:3000]}},
            {"type": "section", "fields": fields},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _mrkdwn(f"Tandem · {c.headline()}")[:3000]}
                ],
            },
        ],
    }


def teams_payload(text: str, c: _Context) -> dict[str, Any]:
    """A Teams incoming-webhook message: one Adaptive Card attachment."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": c.rule.name,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": text, "wrap": True},
                        {
                            "type": "FactSet",
                            "facts": [{"title": k, "value": v} for k, v in _facts(c)],
                        },
                    ],
                },
            }
        ],
    }
