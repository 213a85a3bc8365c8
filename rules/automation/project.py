"""Reading the project snapshot the engine is given. Pure, and forgiving of odd shapes.

``project`` is the project document as JSON, in either of the shapes the code base makes:

- ``doc_model.domain_events.snapshot(doc, DocKind.MAIN)``: roots by name, ``tasks`` and
  ``milestones`` as ``{id: fields}``;
- ``doc_model.Project.model_dump(mode="json")`` (what REST exports): ``tasks`` and
  ``milestones`` as lists of ``{"id": ..., **fields}``, ``meta`` a record.

Plus ``id`` (the project id) and, when the rule needs them, the project's other
documents as the runner may read them: ``finance`` (``{"budget": {...}, "costs": ...}``,
for ``budget_exceeded``) and ``resources`` (``{"allocations": ...}``, for
``resource_overallocated``), each in either shape. A task's ``status`` is a column id; the
last column is "done" (as in the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from doc_model.events import DomainEvent
from doc_model.schema import TASK_STATUSES


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def entities(container: Any) -> dict[str, Mapping[str, Any]]:
    """A collection as ``{id: fields}``, from a dict of records or a list of ``{"id"...}``."""
    out: dict[str, Mapping[str, Any]] = {}
    if isinstance(container, Mapping):
        for key, value in container.items():
            if isinstance(key, str) and isinstance(value, Mapping):
                out[key] = value
    elif isinstance(container, list | tuple):
        for value in container:
            if isinstance(value, Mapping) and isinstance(value.get("id"), str):
                out.setdefault(value["id"], value)  # the first, as task() finds it
    return out


def tasks(project: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return entities(project.get("tasks"))


def task(project: Mapping[str, Any], task_id: str | None) -> Mapping[str, Any] | None:
    """One task's fields (None: no such task), without copying the collection."""
    if task_id is None:
        return None
    container = project.get("tasks")
    if isinstance(container, Mapping):
        value = container.get(task_id)
        return value if isinstance(value, Mapping) else None
    if isinstance(container, list | tuple):
        for value in container:
            if isinstance(value, Mapping) and value.get("id") == task_id:
                return value
    return None


def columns(project: Mapping[str, Any]) -> list[str]:
    value = project.get("columns")
    if isinstance(value, list | tuple):
        found = [c for c in value if isinstance(c, str)]
        if found:
            return found
    return list(TASK_STATUSES)


def done_column(project: Mapping[str, Any]) -> str:
    return columns(project)[-1]


def meta(project: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(project.get("meta"))


def members(project: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(project.get("members"))


def finance(project: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = project.get("finance")
    return value if isinstance(value, Mapping) else None


COLLECTION_EVENTS: dict[str, str] = {"cost": "costs", "allocation": "allocations"}
"""Event kind prefix -> the collection of the finance / resources document it is about."""


def document_states(now: Mapping[str, Any], events: Sequence[DomainEvent]) -> list[dict[str, Any]]:
    """The finance or resources document as it was just after each of ``events`` (in order,
    all of them already applied in ``now``), by undoing the later ones with their before
    values: ``budget_changed`` on the ``budget`` record, ``cost_*`` on ``costs`` and
    ``allocation_*`` on ``allocations``. Other events change nothing here.

    A runner that reads the document once judges each event against the state it made,
    not the state of the read: three costs read together must not all see the third
    one's total (a budget crossing would fire for each of them), and a read that is
    ahead of the batch is rewound with the events after it too (the runner passes them
    after the batch's own)."""
    budget = dict(_map(now.get("budget")))
    collections = {
        key: {k: dict(v) for k, v in entities(now.get(key)).items()}
        for key in COLLECTION_EVENTS.values()
        if key in now
    }
    out: list[dict[str, Any]] = [{}] * len(events)
    for i in range(len(events) - 1, -1, -1):
        state: dict[str, Any] = dict(now)
        if "budget" in now or budget:
            state["budget"] = dict(budget)
        for key, items in collections.items():
            state[key] = {k: dict(v) for k, v in items.items()}
        out[i] = state
        event = events[i]
        entity = event.entity
        if event.kind == "budget_changed" and isinstance(event.field, str):
            if event.before is None:
                budget.pop(event.field, None)
            else:
                budget[event.field] = event.before
            continue
        prefix, _, action = event.kind.rpartition("_")
        collection = COLLECTION_EVENTS.get(prefix)
        if collection is None or not isinstance(entity, str):
            continue
        items = collections.setdefault(collection, {})
        if action == "added":
            items.pop(entity, None)
        elif action == "deleted":
            if isinstance(event.before, Mapping):
                items[entity] = dict(event.before)
        elif action == "changed" and isinstance(event.field, str) and entity in items:
            if event.before is None:
                items[entity].pop(event.field, None)
            else:
                items[entity][event.field] = event.before
    return out


def resources(project: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = project.get("resources")
    return value if isinstance(value, Mapping) else None


def project_id(project: Mapping[str, Any]) -> str | None:
    value = project.get("id")
    return value if isinstance(value, str) else None


def prepare(project: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot with its collections keyed by id (tasks, milestones; finance's costs,
    resources' allocations): a shallow copy. Evaluating many rules against one event,
    prepare the snapshot once; the engine then finds a task by its id at once instead of
    scanning a list (``Project.model_dump`` gives lists)."""
    out = dict(project)
    for name in ("tasks", "milestones"):
        if isinstance(out.get(name), list | tuple):
            out[name] = entities(out[name])
    for name, collection in (("finance", "costs"), ("resources", "allocations")):
        part = out.get(name)
        if isinstance(part, Mapping) and isinstance(part.get(collection), list | tuple):
            out[name] = {**part, collection: entities(part[collection])}
    return out
