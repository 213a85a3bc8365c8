"""Pydantic models of documents as JSON (doc -> model), and validated inputs for writes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pycrdt import Array, Doc, Map, Text
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .names import PROJECT_ID_PATTERN
from .schema import ID_PATTERN, MAX_ITEMS, PRIORITIES, PROJECT_STATUSES
from .task_keys import PREFIX_PATTERN

EntityId = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN}$")]
Scalar = str | int | float | bool | None


def plain_value(value: Any) -> Any:
    """A document value as plain Python: Text -> str, Map/Array -> dict/list, 3.0 -> 3."""
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map | Array):
        return value.to_py()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _record(value: Any) -> dict[str, Any]:
    if not isinstance(value, Map):
        return {}
    return {k: plain_value(v) for k, v in value.items()}


class TaskLink(BaseModel):
    """A commit, pull/merge request, comment or tag that names the task's key."""

    kind: str
    url: str
    title: str = ""
    author: str = ""
    state: str = ""


class TaskAttachment(BaseModel):
    """A file at a provider attached to the task (doc_model.attachments)."""

    provider: str
    file_id: str
    name: str
    link: str
    size: float | None = None
    mime: str = ""
    added_by: str = ""
    added_at: str = ""


class Task(BaseModel):
    id: str
    title: str = ""
    description: str = ""
    status: str = "todo"
    priority: str = "medium"
    assignees: list[str] = []
    start: dt.date | None = None
    due: dt.date | None = None
    estimate: float | None = None
    labels: list[str] = []
    parent: str | None = None
    depends_on: list[str] = []
    custom: dict[str, Scalar] = {}
    order: str = ""
    milestone: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    key: str | None = None  # PREFIX-N, assigned by the server (doc_model.task_keys)
    links: list[TaskLink] = []
    attachments: list[TaskAttachment] = []


class Milestone(BaseModel):
    id: str
    name: str
    due: dt.date | None = None
    description: str = ""
    done: bool = False


class ProjectMeta(BaseModel):
    name: str = ""
    description: str = ""
    status: str = "active"
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    schema_version: int = 0
    key_prefix: str | None = None  # None: made from the name (doc_model.task_keys)


class Project(BaseModel):
    id: str
    meta: ProjectMeta
    members: dict[str, str]
    columns: list[str]
    tasks: list[Task]
    milestones: list[Milestone]


class Cost(BaseModel):
    id: str
    amount: float
    currency: str | None = None
    category: str = ""
    description: str = ""
    date: dt.date | None = None
    task: str | None = None
    created_by: str | None = None


class TimeEntry(BaseModel):
    id: str
    user: str
    task: str | None = None
    hours: float
    date: dt.date
    note: str = ""
    source: str | None = None  # a time tracker it came from or went to
    external_id: str | None = None  # the entry's id there


class Budget(BaseModel):
    currency: str | None = None
    total: float | None = None
    categories: dict[str, Scalar] = {}


class Finance(BaseModel):
    budget: Budget
    costs: list[Cost]
    time_entries: list[TimeEntry]


class Allocation(BaseModel):
    id: str
    user: str
    task: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    percent: float


class Resources(BaseModel):
    allocations: list[Allocation]


class ChatMessage(BaseModel):
    id: str
    author: str
    text: str
    at: dt.datetime
    task: str | None = None


class Chat(BaseModel):
    messages: list[ChatMessage]


def _collection(doc: Doc[Any], root: str) -> list[dict[str, Any]]:
    return [{"id": key, **_record(value)} for key, value in doc.get(root, type=Map).items()]


def task_snapshot(doc: Doc[Any], task_id: str) -> Task:
    return Task(id=task_id, **_record(doc.get("tasks", type=Map)[task_id]))


def project_snapshot(doc: Doc[Any], project_id: str) -> Project:
    meta = _record(doc.get("meta", type=Map))
    return Project(
        id=project_id,
        meta=ProjectMeta(**{k: v for k, v in meta.items() if k in ProjectMeta.model_fields}),
        members={k: v for k, v in doc.get("members", type=Map).items() if isinstance(v, str)},
        columns=[c for c in doc.get("columns", type=Array) if isinstance(c, str)],
        tasks=[Task(**t) for t in _collection(doc, "tasks")],
        milestones=[Milestone(**m) for m in _collection(doc, "milestones")],
    )


def finance_snapshot(doc: Doc[Any]) -> Finance:
    return Finance(
        budget=Budget(**_record(doc.get("budget", type=Map))),
        costs=[Cost(**c) for c in _collection(doc, "costs")],
        time_entries=[TimeEntry(**t) for t in _collection(doc, "time_entries")],
    )


def resources_snapshot(doc: Doc[Any]) -> Resources:
    return Resources(allocations=[Allocation(**a) for a in _collection(doc, "allocations")])


def chat_snapshot(doc: Doc[Any]) -> Chat:
    return Chat(messages=[ChatMessage(**_record(m)) for m in doc.get("messages", type=Array)])


# -- inputs -------------------------------------------------------------------

_strict = ConfigDict(extra="forbid", str_strip_whitespace=True)
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TaskCreate(BaseModel):
    model_config = _strict
    title: Title
    description: str = Field(default="", max_length=100_000)
    status: str = Field(default="todo", max_length=64)
    priority: str = Field(default="medium", pattern="^(" + "|".join(PRIORITIES) + ")$")
    assignees: list[UserId] = Field(default=[], max_length=MAX_ITEMS)
    start: dt.date | None = None
    due: dt.date | None = None
    estimate: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    labels: list[Label] = Field(default=[], max_length=MAX_ITEMS)
    parent: EntityId | None = None
    depends_on: list[EntityId] = Field(default=[], max_length=MAX_ITEMS)
    custom: dict[str, Scalar] = Field(default={}, max_length=MAX_ITEMS)
    milestone: EntityId | None = None
    order: str | None = None


class TaskUpdate(BaseModel):
    model_config = _strict
    title: Title | None = None
    description: str | None = Field(default=None, max_length=100_000)
    status: str | None = Field(default=None, max_length=64)
    priority: str | None = Field(default=None, pattern="^(" + "|".join(PRIORITIES) + ")$")
    assignees: list[UserId] | None = Field(default=None, max_length=MAX_ITEMS)
    start: dt.date | None = None
    due: dt.date | None = None
    estimate: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    labels: list[Label] | None = Field(default=None, max_length=MAX_ITEMS)
    parent: EntityId | None = None
    depends_on: list[EntityId] | None = Field(default=None, max_length=MAX_ITEMS)
    custom: dict[str, Scalar] | None = Field(default=None, max_length=MAX_ITEMS)
    milestone: EntityId | None = None
    order: str | None = None


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=10_000)]
ProjectStatus = Annotated[str, StringConstraints(pattern="^(" + "|".join(PROJECT_STATUSES) + ")$")]
Column = Annotated[str, StringConstraints(min_length=1, max_length=64)]


ProjectId = Annotated[str, StringConstraints(pattern=f"^{PROJECT_ID_PATTERN}$")]


KeyPrefix = Annotated[
    str,
    StringConstraints(pattern=f"^{PREFIX_PATTERN}$"),
    Field(description="task keys' prefix: 2-6 of A-Z and 0-9, a letter first (TDM-42)"),
]


class ProjectCreate(BaseModel):
    model_config = _strict
    id: ProjectId | None = Field(
        default=None,
        description="leave out and the server chooses; one you choose must be a UUID in"
        " lowercase (crypto.randomUUID()), so a 409 for a taken id reveals nothing",
    )
    name: Name
    description: ShortText = ""
    status: ProjectStatus = "active"
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    columns: list[Column] | None = Field(default=None, min_length=1, max_length=20)


class ProjectUpdate(BaseModel):
    model_config = _strict
    name: Name | None = None
    description: ShortText | None = None
    status: ProjectStatus | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    key_prefix: KeyPrefix | None = None


class MilestoneCreate(BaseModel):
    model_config = _strict
    name: Name
    due: dt.date | None = None
    description: ShortText = ""
    done: bool = False


class MilestoneUpdate(BaseModel):
    model_config = _strict
    name: Name | None = None
    due: dt.date | None = None
    description: ShortText | None = None
    done: bool | None = None


class CommentCreate(BaseModel):
    model_config = _strict
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    task: EntityId | None = None


class CostCreate(BaseModel):
    model_config = _strict
    amount: float = Field(allow_inf_nan=False, ge=-1e12, le=1e12)
    currency: Currency
    category: Annotated[str, StringConstraints(max_length=100)] = ""
    description: ShortText = ""
    date: dt.date | None = None
    task: EntityId | None = None


class TimeEntryCreate(BaseModel):
    model_config = _strict
    user: UserId | None = None  # default: the caller
    hours: float = Field(gt=0, le=24, allow_inf_nan=False)
    date: dt.date
    task: EntityId | None = None
    note: ShortText = ""


class AllocationCreate(BaseModel):
    model_config = _strict
    user: UserId
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)
    start: dt.date | None = None
    end: dt.date | None = None
    task: EntityId | None = None


class BudgetSet(BaseModel):
    model_config = _strict
    currency: Currency
    total: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    categories: dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], float] = {}
