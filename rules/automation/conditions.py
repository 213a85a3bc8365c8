"""Condition evaluation over a task's and its project's fields. Pure; nothing is ``eval``'d.

A leaf ``{"field": F, "op": OP, "value": V}`` reads ``F``:

- a task field (``priority``, ``status`` (a column id), ``labels``, ``due``...; ``id``);
  ``custom.NAME`` is the task's custom field NAME; with no task (an event about no task)
  every task field reads as null;
- ``project.X`` a field of the project's meta (``project.status``, ``project.name``...),
  ``project.id`` the project's id.

Operators (``actual`` is the field's value, ``V`` the rule's):

- ``eq`` / ``ne``: equal / not (numbers by value, but ``true`` is not ``1``);
- ``in`` / ``not_in``: ``actual`` is one of the list ``V`` / is not; for a list field
  (``labels``, ``assignees``), whether *any* of its items is;
- ``lt`` / ``lte`` / ``gt`` / ``gte``: numbers with numbers, strings with strings (dates
  ``YYYY-MM-DD`` compare as dates); any other pair (null included) does not match;
- ``contains``: a list field holds ``V``; a text contains ``V`` (ignoring case);
- ``is_empty``: ``V`` true: the field is null, ``""``, ``[]`` or ``{}``; false: it is not;
- ``changed_from`` / ``changed_to``: the triggering event changed this field, and its
  value before / after was ``V`` (a created task changed each field from null).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doc_model.events import DomainEvent

from .intents import ConditionResult
from .model import AllOf, AnyOf, Condition, Leaf, Not, json_path

MISSING: Any = object()


def same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans only with booleans, lists item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def field_value(
    name: str, task_id: str | None, task: Mapping[str, Any] | None, project: Mapping[str, Any]
) -> Any:
    """The value a condition's ``field`` reads (None when there is none)."""
    if name.startswith("project."):
        key = name[8:]
        if key == "id":
            return project.get("id")
        meta = project.get("meta")
        return meta.get(key) if isinstance(meta, Mapping) else None
    if task is None:
        return None
    if name == "id":
        return task_id
    if name.startswith("custom."):
        custom = task.get("custom")
        return custom.get(name[7:]) if isinstance(custom, Mapping) else None
    return task.get(name)


def event_change(
    name: str, task_id: str | None, event: DomainEvent | None
) -> tuple[Any, Any] | None:
    """(before, after) of ``name`` if ``event`` changed it (for this task), else None."""
    if event is None:
        return None
    kind = event.kind
    if name.startswith("project."):
        if kind == "project_changed" and event.field == name[8:]:
            return _changed(event.before, event.after)
        return None
    if event.entity != task_id or task_id is None:
        return None
    if kind == "task_created":
        after = event.after if isinstance(event.after, Mapping) else {}
        return _changed(None, _read(after, name))
    if kind == "task_assignees_changed" and name == "assignees":
        return _changed(event.before, event.after)
    if kind == "task_field_changed":
        if name.startswith("custom.") and event.field == "custom":
            before = event.before if isinstance(event.before, Mapping) else {}
            after = event.after if isinstance(event.after, Mapping) else {}
            return _changed(before.get(name[7:]), after.get(name[7:]))
        if event.field == name:
            if event.detail.get("before_unknown"):
                return None  # nobody knows what it was: not "changed from" anything
            return _changed(event.before, event.after)
    return None


def _read(fields: Mapping[str, Any], name: str) -> Any:
    if name.startswith("custom."):
        custom = fields.get("custom")
        return custom.get(name[7:]) if isinstance(custom, Mapping) else None
    return fields.get(name)


def _changed(before: Any, after: Any) -> tuple[Any, Any] | None:
    return None if same(before, after) else (before, after)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _order(actual: Any, expected: Any, op: str) -> bool:
    if _number(actual) and _number(expected):
        a, b = float(actual), float(expected)
    elif isinstance(actual, str) and isinstance(expected, str):
        a, b = actual, expected  # type: ignore[assignment]
    else:
        return False
    if op == "lt":
        return a < b
    if op == "lte":
        return a <= b
    if op == "gt":
        return a > b
    return a >= b


def apply(op: str, actual: Any, expected: Any, change: tuple[Any, Any] | None = None) -> bool:
    """Whether ``actual`` (and the event's ``change`` of it) satisfies ``op`` ``expected``."""
    if op == "eq":
        return same(actual, expected)
    if op == "ne":
        return not same(actual, expected)
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list | tuple) else (expected,)
        items = actual if isinstance(actual, list | tuple) else (actual,)
        hit = any(same(item, option) for item in items for option in options)
        return hit if op == "in" else not hit
    if op in ("lt", "lte", "gt", "gte"):
        return _order(actual, expected, op)
    if op == "contains":
        if isinstance(actual, list | tuple):
            return any(same(item, expected) for item in actual)
        if isinstance(actual, str) and isinstance(expected, str):
            return expected.casefold() in actual.casefold()
        return False
    if op == "is_empty":
        return _empty(actual) == (expected is not False)
    if op == "changed_from":
        return change is not None and same(change[0], expected)
    if op == "changed_to":
        return change is not None and same(change[1], expected)
    return False


def evaluate_conditions(
    cond: Condition | None,
    task_id: str | None,
    task: Mapping[str, Any] | None,
    project: Mapping[str, Any],
    event: DomainEvent | None = None,
    path: tuple[str | int, ...] = ("conditions",),
) -> tuple[bool, tuple[ConditionResult, ...]]:
    """Whether the conditions hold, and each leaf's outcome (every leaf is evaluated, so a
    dry run shows them all)."""
    if cond is None:
        return True, ()
    results: list[ConditionResult] = []
    matched = _eval(cond, task_id, task, project, event, path, results)
    return matched, tuple(results)


def _eval(
    cond: Condition,
    task_id: str | None,
    task: Mapping[str, Any] | None,
    project: Mapping[str, Any],
    event: DomainEvent | None,
    path: tuple[str | int, ...],
    out: list[ConditionResult],
) -> bool:
    if isinstance(cond, AllOf):
        return all(
            [
                _eval(c, task_id, task, project, event, (*path, "all", i), out)
                for i, c in enumerate(cond.all)
            ]
        )
    if isinstance(cond, AnyOf):
        return any(
            [
                _eval(c, task_id, task, project, event, (*path, "any", i), out)
                for i, c in enumerate(cond.any)
            ]
        )
    if isinstance(cond, Not):
        return not _eval(cond.not_, task_id, task, project, event, (*path, "not"), out)
    assert isinstance(cond, Leaf)
    actual = field_value(cond.field, task_id, task, project)
    change = None
    if cond.op in ("changed_from", "changed_to"):
        change = event_change(cond.field, task_id, event)
    matched = apply(cond.op, actual, cond.value, change)
    expected = list(cond.value) if isinstance(cond.value, tuple) else cond.value
    shown = actual
    if change is not None:
        shown = {"before": change[0], "after": change[1]}
    out.append(ConditionResult(json_path(path), cond.field, cond.op, expected, shown, matched))
    return matched
