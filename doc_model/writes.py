"""Typed write helpers: the one way server, API, automation, integrations and the CLI change documents.

Each helper works inside the caller's transaction when one is open
(pycrdt transactions nest), so several helpers make one atomic change.
Everything they write passes ``check_changes``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from pycrdt import Array, Doc, Map, Text

from .order import order_key_between
from .schema import PROJECT_STATUSES, ROLE_PATTERN, ROLES, SCHEMA_VERSION, TASK_STATUSES
from .snapshot import TaskCreate, TaskUpdate


class TaskNotFound(KeyError):
    def __str__(self) -> str:
        return f"no task {self.args[0]!r}"


class InvalidWrite(ValueError):
    """A write helper was asked for something the schema does not allow."""


def new_id() -> str:
    return secrets.token_urlsafe(9)  # 12 url-safe characters, 72 random bits


def new_project_id() -> str:
    """Like new_id, starting with a letter or digit as project ids must."""
    while True:
        candidate = new_id()
        if candidate[0].isalnum():
            return candidate


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _tasks(doc: Doc[Any]) -> Map[Any]:
    tasks: Map[Any] = doc.get("tasks", type=Map)
    return tasks


def _task(doc: Doc[Any], task_id: str) -> Map[Any]:
    tasks = _tasks(doc)
    if task_id not in tasks:
        raise TaskNotFound(task_id)
    task: Map[Any] = tasks[task_id]
    return task


def _columns(doc: Doc[Any]) -> list[str]:
    cols = [c for c in doc.get("columns", type=Array) if isinstance(c, str)]
    return cols or list(TASK_STATUSES)


def _check_status(doc: Doc[Any], status: str) -> None:
    if status not in _columns(doc):
        raise InvalidWrite(
            f"status {status!r} is not one of the columns {', '.join(_columns(doc))}"
        )


def last_order_key(doc: Doc[Any], status: str) -> str | None:
    keys: list[str] = []
    for task in _tasks(doc).values():
        if isinstance(task, Map) and task.get("status") == status:
            order = task.get("order")
            if isinstance(order, str):
                keys.append(order)
    return max(keys) if keys else None


def create_project_meta(
    doc: Doc[Any],
    name: str,
    *,
    description: str = "",
    status: str = "active",
    start_date: dt.date | None = None,
    end_date: dt.date | None = None,
    created_by: str | None = None,
    columns: list[str] | None = None,
) -> None:
    if not name.strip():
        raise InvalidWrite("a project needs a name")
    if status not in PROJECT_STATUSES:
        raise InvalidWrite(f"project status must be one of {', '.join(PROJECT_STATUSES)}")
    with doc.transaction():
        meta = doc.get("meta", type=Map)
        meta["name"] = name
        meta["description"] = description
        meta["status"] = status
        meta["schema_version"] = SCHEMA_VERSION
        meta["created_at"] = now_iso()
        if created_by:
            meta["created_by"] = created_by
        if start_date:
            meta["start_date"] = start_date.isoformat()
        if end_date:
            meta["end_date"] = end_date.isoformat()
        cols = doc.get("columns", type=Array)
        if len(cols) == 0:
            cols.extend(list(columns or TASK_STATUSES))


def _field(task: Any, name: str) -> Any:
    value = task.get(name) if isinstance(task, Map) else None
    return list(value) if isinstance(value, Array) else value


def _depends_on(tasks: Map[Any], start: str, target: str) -> bool:
    """Whether ``start`` depends on ``target``, directly or through other tasks."""
    seen: set[str] = set()
    frontier = [start]  # tasks reached and not yet followed
    while frontier:
        at = frontier.pop()
        if at == target:
            return True
        if at in seen or at not in tasks:
            continue
        seen.add(at)
        frontier += [d for d in _field(tasks[at], "depends_on") or () if isinstance(d, str)]
    return False


def _check_references(
    doc: Doc[Any], task_id: str, written: dict[str, Any], current: Map[Any] | None = None
) -> None:
    """The tasks and the milestone a write names exist, and a task is neither its own parent
    (nor its parent's ancestor) nor its own dependency (nor a dependency's dependency: no
    loop a schedule could not order). Only what the write changes is checked: a reference
    left dangling by someone's concurrent delete may stay as it is (a document merged from
    offline edits can hold one; readers skip it)."""
    tasks = _tasks(doc)
    parent = written.get("parent")
    if parent is not None and parent != _field(current, "parent"):
        if parent == task_id:
            raise InvalidWrite("a task cannot be its own parent")
        if parent not in tasks:
            raise InvalidWrite(f"parent: no task {parent!r} in this project")
        seen = {task_id}
        ancestor: Any = parent
        while isinstance(ancestor, str) and ancestor in tasks and ancestor not in seen:
            seen.add(ancestor)
            ancestor = _field(tasks[ancestor], "parent")
        if ancestor == task_id:
            raise InvalidWrite(f"parent: task {parent!r} is a subtask of this task")
    before = set(_field(current, "depends_on") or ())
    for other in written.get("depends_on") or ():
        if other in before:
            continue
        if other == task_id:
            raise InvalidWrite("a task cannot depend on itself")
        if other not in tasks:
            raise InvalidWrite(f"depends_on: no task {other!r} in this project")
        if _depends_on(tasks, other, task_id):
            raise InvalidWrite(f"depends_on: task {other!r} already depends on this task")
    milestone = written.get("milestone")
    changed = milestone is not None and milestone != _field(current, "milestone")
    if changed and milestone not in doc.get("milestones", type=Map):
        raise InvalidWrite(f"milestone: no milestone {milestone!r} in this project")


def create_task(
    doc: Doc[Any], data: TaskCreate, *, created_by: str, task_id: str | None = None
) -> str:
    """Add a task; returns its id. It goes to the end of its column unless ``data.order`` is set."""
    _check_status(doc, data.status)
    task_id = task_id or new_id()
    _check_references(
        doc,
        task_id,
        {"parent": data.parent, "depends_on": data.depends_on, "milestone": data.milestone},
    )
    with doc.transaction():
        fields: dict[str, Any] = {
            "title": Text(data.title),
            "description": Text(data.description),
            "status": data.status,
            "priority": data.priority,
            "assignees": Array(list(data.assignees)),
            "labels": Array(list(data.labels)),
            "depends_on": Array(list(data.depends_on)),
            "custom": Map(dict(data.custom)),
            "order": data.order or order_key_between(last_order_key(doc, data.status), None),
            "created_by": created_by,
            "created_at": now_iso(),
        }
        for name in ("start", "due"):
            if getattr(data, name) is not None:
                fields[name] = _date(getattr(data, name))
        if data.estimate is not None:
            fields["estimate"] = data.estimate
        if data.parent is not None:
            fields["parent"] = data.parent
        if data.milestone is not None:
            fields["milestone"] = data.milestone
        _tasks(doc)[task_id] = Map(fields)
    return task_id


def _replace_text(text: Text, value: str) -> None:
    if str(text) != value:
        del text[:]
        text.insert(0, value)


def _replace_array(array: Array[Any], values: list[str]) -> None:
    if list(array) != values:
        del array[:]
        array.extend(values)


def update_task(doc: Doc[Any], task_id: str, update: TaskUpdate) -> None:
    """Apply the fields set in ``update`` (an explicit None clears an optional field)."""
    task = _task(doc, task_id)
    given = update.model_fields_set
    if "status" in given and update.status is not None:
        _check_status(doc, update.status)
    names = ("parent", "depends_on", "milestone")
    _check_references(doc, task_id, {n: getattr(update, n) for n in names if n in given}, task)
    with doc.transaction():
        for name in given:
            value = getattr(update, name)
            if name in ("title", "description"):
                if value is None:
                    if name == "title":
                        raise InvalidWrite("a task needs a title")
                    value = ""
                _replace_text(task[name], value)
            elif name in ("assignees", "labels", "depends_on"):
                _replace_array(task[name], list(value or []))
            elif name == "custom":
                custom = task["custom"]
                for key in list(custom.keys()):
                    if key not in (value or {}):
                        del custom[key]
                for key, item in (value or {}).items():
                    custom[key] = item
            elif name == "status":
                if value is None:
                    raise InvalidWrite("a task needs a status")
                task["status"] = value
            elif value is None:
                if name in task:
                    del task[name]
            elif name in ("start", "due"):
                task[name] = _date(value)
            else:
                task[name] = value


def set_task_field(doc: Doc[Any], task_id: str, field: str, value: Any) -> None:
    update_task(doc, task_id, TaskUpdate.model_validate({field: value}))


def move_task(doc: Doc[Any], task_id: str, status: str, order: str | None = None) -> None:
    """Move a task to a column (to its end unless ``order`` is given)."""
    _check_status(doc, status)
    task = _task(doc, task_id)
    with doc.transaction():
        if task.get("status") != status or order is not None:
            task["status"] = status
            task["order"] = order or order_key_between(last_order_key(doc, status), None)


def delete_task(doc: Doc[Any], task_id: str) -> None:
    tasks = _tasks(doc)
    if task_id not in tasks:
        raise TaskNotFound(task_id)
    del tasks[task_id]


def add_member(doc: Doc[Any], user: str, role: str) -> None:
    if not re.fullmatch(ROLE_PATTERN, role):
        raise InvalidWrite(f"invalid role name {role!r}: built-in ({', '.join(ROLES)}) or custom")
    doc.get("members", type=Map)[user] = role


def remove_member(doc: Doc[Any], user: str) -> None:
    members = doc.get("members", type=Map)
    if user in members:
        del members[user]


def create_milestone(
    doc: Doc[Any], name: str, *, due: dt.date | None = None, description: str = ""
) -> str:
    if not name.strip():
        raise InvalidWrite("a milestone needs a name")
    milestone_id = new_id()
    fields: dict[str, Any] = {"name": name, "description": description, "done": False}
    if due:
        fields["due"] = due.isoformat()
    doc.get("milestones", type=Map)[milestone_id] = Map(fields)
    return milestone_id


def post_chat_message(
    chat: Doc[Any], author: str, text: str, *, task: str | None = None, message_id: str = ""
) -> str:
    """Append a message; ``message_id`` (default: a new id) lets a writer that may post the
    same message twice (a rule's run carried out again) recognise it: see ``has_message``."""
    if not text.strip():
        raise InvalidWrite("a message needs text")
    message_id = message_id or new_id()
    fields: dict[str, Any] = {"id": message_id, "author": author, "text": text, "at": now_iso()}
    if task:
        fields["task"] = task
    chat.get("messages", type=Array).append(Map(fields))
    return message_id


def has_message(chat: Doc[Any], message_id: str) -> bool:
    return any(
        isinstance(m, Map) and m.get("id") == message_id for m in chat.get("messages", type=Array)
    )


def set_budget(
    finance: Doc[Any], *, currency: str, total: float, categories: dict[str, float] | None = None
) -> None:
    with finance.transaction():
        budget = finance.get("budget", type=Map)
        budget["currency"] = currency
        budget["total"] = total
        budget["categories"] = Map(dict(categories or {}))


def add_cost(
    finance: Doc[Any],
    *,
    amount: float,
    currency: str,
    category: str = "",
    description: str = "",
    date: dt.date | None = None,
    task: str | None = None,
    created_by: str | None = None,
) -> str:
    cost_id = new_id()
    fields: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "category": category,
        "description": description,
    }
    if date:
        fields["date"] = date.isoformat()
    if task:
        fields["task"] = task
    if created_by:
        fields["created_by"] = created_by
    finance.get("costs", type=Map)[cost_id] = Map(fields)
    return cost_id


def add_time_entry(
    finance: Doc[Any],
    *,
    user: str,
    hours: float,
    date: dt.date,
    task: str | None = None,
    note: str = "",
) -> str:
    if hours <= 0:
        raise InvalidWrite("hours must be > 0")
    entry_id = new_id()
    fields: dict[str, Any] = {"user": user, "hours": hours, "date": date.isoformat(), "note": note}
    if task:
        fields["task"] = task
    finance.get("time_entries", type=Map)[entry_id] = Map(fields)
    return entry_id


def add_allocation(
    resources: Doc[Any],
    *,
    user: str,
    percent: float,
    start: dt.date | None = None,
    end: dt.date | None = None,
    task: str | None = None,
) -> str:
    if not 0 <= percent <= 100:
        raise InvalidWrite("percent must be from 0 to 100")
    allocation_id = new_id()
    fields: dict[str, Any] = {"user": user, "percent": percent}
    if start:
        fields["start"] = start.isoformat()
    if end:
        fields["end"] = end.isoformat()
    if task:
        fields["task"] = task
    resources.get("allocations", type=Map)[allocation_id] = Map(fields)
    return allocation_id


class RecordNotFound(KeyError):
    """No entity with that id in that root."""

    def __str__(self) -> str:
        root, record_id = self.args
        singular = {"time_entries": "time entry", "milestones": "milestone", "costs": "cost"}
        return f"no {singular.get(root, root.rstrip('s'))} {record_id!r}"


def _collection_record(doc: Doc[Any], root: str, record_id: str) -> Map[Any]:
    records = doc.get(root, type=Map)
    record = records.get(record_id)
    if not isinstance(record, Map):
        raise RecordNotFound(root, record_id)
    return record


def _store_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def update_record(doc: Doc[Any], root: str, record_id: str, values: dict[str, Any]) -> None:
    """Set the scalar fields in ``values`` on one record (None removes an optional field)."""
    record = _collection_record(doc, root, record_id)
    with doc.transaction():
        for name, value in values.items():
            if value is None:
                if name in record:
                    del record[name]
            else:
                record[name] = _store_value(value)


def delete_record(doc: Doc[Any], root: str, record_id: str) -> None:
    records = doc.get(root, type=Map)
    if record_id not in records:
        raise RecordNotFound(root, record_id)
    del records[record_id]


def update_project_meta(doc: Doc[Any], values: dict[str, Any]) -> None:
    """Set project details; ``name`` cannot be cleared."""
    if "name" in values and not (values["name"] or "").strip():
        raise InvalidWrite("a project needs a name")
    if values.get("status") is not None and values["status"] not in PROJECT_STATUSES:
        raise InvalidWrite(f"project status must be one of {', '.join(PROJECT_STATUSES)}")
    meta = doc.get("meta", type=Map)
    with doc.transaction():
        for name, value in values.items():
            if value is None:
                if name in meta and name != "name":
                    del meta[name]
            else:
                meta[name] = _store_value(value)
