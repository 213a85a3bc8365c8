"""Which trigger a domain event fires. Pure.

Document events (``doc_model.events``) and the trigger each fires:

=============================  =================================================================
trigger                        events
=============================  =================================================================
``task_created``               ``task_created``
``task_status_changed``        ``task_field_changed`` with ``field == "status"`` (``from`` / ``to``
                               compare the old / new column)
``task_assigned``              ``task_assignees_changed`` that added someone (``detail["added"]``),
                               and ``task_created`` with assignees (``user``: only that user)
``comment_posted``             ``comment_posted`` (``entity``: the task)
``mentioned``                  ``mention`` (``entity``: the user named; ``user``: only them;
                               chat, comments, and tasks' titles and descriptions)
``milestone_completed``        ``milestone_completed``
``project_status_changed``     ``project_changed`` with ``field == "status"``
``budget_exceeded``            ``budget_changed`` (``total``), ``cost_added`` / ``cost_changed``
                               (``amount``) / ``cost_deleted``: spent / budget crosses
                               ``percent`` (below before, at or above after); needs the
                               snapshot's ``finance`` (see ``rules.automation.project``)
``resource_overallocated``     ``allocation_added`` / ``allocation_changed``: the allocation's
                               user's peak load (``doc_model.allocation``) goes from at most
                               ``capacity`` to above it; needs the snapshot's ``resources``
=============================  =================================================================

Scheduler events: the runner's scheduler makes these :class:`~doc_model.events.DomainEvent`
kinds itself (they are in no document's change feed):

- ``due_date_approaching``: ``entity`` the task id; ``detail["rule"]`` the rule it was
  scheduled for (a window belongs to one rule), ``detail["due"]`` the due date it was
  computed from (``YYYY-MM-DD``), ``detail["at"]`` the fire time (ISO 8601, UTC);
- ``task_overdue``: the same fields;
- ``schedule_fired``: ``entity`` the rule id; ``detail["at"]`` the fire time.

A scheduler event fires only its own rule (``detail["rule"]`` / ``entity``), and a
due-date event only while it is still true: the task exists, is not in the done column,
and (when ``detail["due"]`` is given) still has that due date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doc_model.allocation import peak_load
from doc_model.events import DomainEvent

from . import project as snap
from .model import (
    BudgetExceeded,
    DueDateApproaching,
    Mentioned,
    ProjectStatusChanged,
    ResourceOverallocated,
    Schedule,
    TaskAssigned,
    TaskOverdue,
    TaskStatusChanged,
    Trigger,
)

SCHEDULER_KINDS = ("due_date_approaching", "task_overdue", "schedule_fired")
"""Event kinds only the scheduler makes."""

KINDS: dict[str, frozenset[str]] = {
    "task_created": frozenset({"task_created"}),
    "task_status_changed": frozenset({"task_field_changed"}),
    "task_assigned": frozenset({"task_assignees_changed", "task_created"}),
    "due_date_approaching": frozenset({"due_date_approaching"}),
    "task_overdue": frozenset({"task_overdue"}),
    "comment_posted": frozenset({"comment_posted"}),
    "mentioned": frozenset({"mention"}),
    "milestone_completed": frozenset({"milestone_completed"}),
    "project_status_changed": frozenset({"project_changed"}),
    "budget_exceeded": frozenset({"budget_changed", "cost_added", "cost_changed", "cost_deleted"}),
    "resource_overallocated": frozenset({"allocation_added", "allocation_changed"}),
    "schedule": frozenset({"schedule_fired"}),
}
"""The event kinds that may fire each trigger type (a runner can skip the rest cheaply)."""

SNAPSHOT_NEEDS: dict[str, str] = {
    "budget_exceeded": "finance",
    "resource_overallocated": "resources",
}
"""Trigger types that read another document of the project: the key of the project
snapshot the runner must add (``project["finance"]`` / ``project["resources"]``, that
document's JSON), and the document whose change feed brings their events
(``p/<id>/finance``, ``p/<id>/resources``); without it they never fire."""


def event_task_id(event: DomainEvent, project: Mapping[str, Any] | None = None) -> str | None:
    """The task an event is about, if any: the entity of task events, a comment's task,
    the task of a mention in a comment or a task's text, of a cost or of an allocation."""
    kind = event.kind
    if kind.startswith("task_") or kind in ("comment_posted", "due_date_approaching"):
        return event.entity if isinstance(event.entity, str) else None
    if kind == "mention":
        value = event.detail.get("task")
        return value if isinstance(value, str) else None
    if kind.startswith(("cost_", "allocation_")):
        for values in (event.after, event.before):
            if isinstance(values, Mapping) and isinstance(values.get("task"), str):
                return str(values["task"])
        if project is not None and isinstance(event.entity, str):
            root = snap.finance(project) if kind.startswith("cost_") else snap.resources(project)
            if root is not None:
                name = "costs" if kind.startswith("cost_") else "allocations"
                record = snap.entities(root.get(name)).get(event.entity, {})
                value = record.get("task")
                return value if isinstance(value, str) else None
    return None


def fires(rule_id: str, trigger: Trigger, event: DomainEvent, project: Mapping[str, Any]) -> bool:
    """Whether ``event`` fires ``trigger`` of rule ``rule_id`` (given the project after it)."""
    if event.kind not in KINDS[trigger.type]:
        return False
    if isinstance(trigger, TaskStatusChanged):
        if event.field != "status" or event.before == event.after:
            return False
        if trigger.from_ is not None and event.before != trigger.from_:
            return False
        return trigger.to is None or event.after == trigger.to
    if isinstance(trigger, TaskAssigned):
        added = _added(event)
        return bool(added) and (trigger.user is None or trigger.user in added)
    if isinstance(trigger, DueDateApproaching | TaskOverdue):
        return _due_event_holds(rule_id, event, project)
    if isinstance(trigger, Mentioned):
        return trigger.user is None or event.entity == trigger.user
    if isinstance(trigger, ProjectStatusChanged):
        if event.field != "status" or event.before == event.after:
            return False
        if trigger.from_ is not None and event.before != trigger.from_:
            return False
        return trigger.to is None or event.after == trigger.to
    if isinstance(trigger, BudgetExceeded):
        crossing = budget_crossing(event, project)
        return crossing is not None and crossing[0] < trigger.percent <= crossing[1]
    if isinstance(trigger, ResourceOverallocated):
        loads = allocation_change(event, project)
        return loads is not None and loads[1] <= trigger.capacity < loads[2]
    if isinstance(trigger, Schedule):
        return event.entity == rule_id
    return True  # task_created, comment_posted, milestone_completed: the kind says it


def _added(event: DomainEvent) -> list[str]:
    if event.kind == "task_created":
        after = event.after if isinstance(event.after, Mapping) else {}
        value = after.get("assignees")
    else:
        value = event.detail.get("added")
        if value is None and isinstance(event.after, list):  # derive when detail lacks it
            before = event.before if isinstance(event.before, list) else []
            value = [u for u in event.after if u not in before]
    return [u for u in value if isinstance(u, str)] if isinstance(value, list) else []


def _due_event_holds(rule_id: str, event: DomainEvent, project: Mapping[str, Any]) -> bool:
    if event.detail.get("rule") not in (None, rule_id):
        return False
    task = snap.task(project, event.entity if isinstance(event.entity, str) else None)
    if task is None or task.get("status") == snap.done_column(project):
        return False
    due = event.detail.get("due")
    return due is None or task.get("due") == due


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def budget_crossing(event: DomainEvent, project: Mapping[str, Any]) -> tuple[float, float] | None:
    """(percent spent before the event, after it), from the snapshot's finance (after) and
    the event's values; None when there is no budget to measure against."""
    finance = snap.finance(project)
    if finance is None:
        return None
    budget = finance.get("budget")
    total_after = _number(budget.get("total")) if isinstance(budget, Mapping) else None
    costs = snap.entities(finance.get("costs"))
    spent_after = sum(_number(c.get("amount")) or 0.0 for c in costs.values())
    spent_before, total_before = spent_after, total_after
    kind = event.kind
    if kind == "budget_changed":
        if event.field != "total":
            return None
        total_before = _number(event.before)
    elif kind == "cost_added":
        after = event.after if isinstance(event.after, Mapping) else {}
        spent_before = spent_after - (_number(after.get("amount")) or 0.0)
    elif kind == "cost_deleted":
        before = event.before if isinstance(event.before, Mapping) else {}
        spent_before = spent_after + (_number(before.get("amount")) or 0.0)
    elif kind == "cost_changed":
        if event.field != "amount":
            return None
        spent_before = spent_after - (
            (_number(event.after) or 0.0) - (_number(event.before) or 0.0)
        )
    if total_after is None or total_after <= 0:
        return None
    was = spent_before / total_before * 100 if total_before and total_before > 0 else 0.0
    return was, spent_after / total_after * 100


def allocation_change(
    event: DomainEvent, project: Mapping[str, Any]
) -> tuple[str, float, float] | None:
    """(user, peak load before the event, after it) for the user of the allocation the
    event is about, from the snapshot's resources (after) and the event's values."""
    resources = snap.resources(project)
    if resources is None or not isinstance(event.entity, str):
        return None
    allocations = dict(snap.entities(resources.get("allocations")))
    current = allocations.get(event.entity)
    if current is None:
        return None
    user = current.get("user")
    if not isinstance(user, str):
        return None
    before = dict(allocations)
    if event.kind == "allocation_added":
        before.pop(event.entity, None)
    elif event.kind == "allocation_changed" and isinstance(event.field, str):
        old = dict(current)
        if event.before is None:
            old.pop(event.field, None)
        else:
            old[event.field] = event.before
        before[event.entity] = old
    else:
        return None
    return user, peak_load(before.values(), user), peak_load(allocations.values(), user)
