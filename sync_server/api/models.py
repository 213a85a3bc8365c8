"""Response and query models of REST API v1, for the OpenAPI document (quart-schema).

Requests are validated with doc_model's input models; these describe what
comes back, so /openapi.json matches every response (checked by schemathesis).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart_schema import document_response

from doc_model import PROJECT_STATUSES, Task
from doc_model.snapshot import (
    Allocation,
    Budget,
    ChatMessage,
    Cost,
    Milestone,
    Scalar,
    TaskAttachment,
    TaskLink,
    TimeEntry,
)


class ProblemDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problems_documented(*statuses: int):
    """Document the problem responses a route can give (RFC 9457 bodies), 401 always."""

    def decorator(func):
        for status in (401, *statuses):
            func = document_response(ProblemDetails, status)(func)
        return func

    return decorator


class NoContent(BaseModel):
    """Marks a 204 response in the OpenAPI document (no body)."""


class TasksExport(BaseModel):
    """The export as JSON (the CSV form has one row per task, the same columns)."""

    project: str
    tasks: list[dict[str, Any]]


class PageLinks(BaseModel):
    next: str | None = None
    previous: str | None = None


class ListQueryArgs(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=1000, description="page size (default 50)")
    offset: int | None = Field(default=None, ge=0)
    order_by: str | None = Field(
        default=None, description="comma-separated fields, '-' for descending"
    )
    fields: str | None = Field(default=None, description="comma-separated fields to return")


class TaskQueryArgs(ListQueryArgs):
    status: str | None = Field(default=None, description="comma-separated statuses")
    priority: str | None = None
    assignee: str | None = None
    label: str | None = None
    milestone: str | None = None
    due_before: dt.date | None = None
    due_after: dt.date | None = None
    q: str | None = Field(default=None, description="words in the title or description")
    key: str | None = Field(default=None, description="comma-separated task keys (TDM-42)")


class TaskOut(BaseModel):
    """A task; with ``fields=`` only the chosen fields (and id) are present."""

    model_config = ConfigDict(extra="forbid")
    id: str
    project: str | None = None
    title: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    assignees: list[str] | None = None
    start: dt.date | None = None
    due: dt.date | None = None
    estimate: float | None = None
    labels: list[str] | None = None
    parent: str | None = None
    depends_on: list[str] | None = None
    custom: dict[str, Scalar] | None = None
    order: str | None = None
    milestone: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    key: str | None = Field(default=None, description="PREFIX-N, assigned by the server")
    links: list[TaskLink] | None = None
    attachments: list[TaskAttachment] | None = None


TASK_FIELDS = tuple(Task.model_fields)


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int
    links: PageLinks


class ProjectSummary(BaseModel):
    id: str
    name: str
    role: str | None
    status: str = Field(description="planning, active, on_hold, completed or archived")
    created_by: str | None
    created_at: float
    updated_at: float


class ProjectPage(BaseModel):
    items: list[ProjectSummary]
    total: int
    limit: int
    offset: int
    links: PageLinks


class ProjectOut(BaseModel):
    id: str
    name: str
    description: str
    status: str
    start_date: dt.date | None
    end_date: dt.date | None
    columns: list[str]
    members: dict[str, str]
    task_count: int
    milestone_count: int
    schema_version: int
    key_prefix: str = Field(description="task keys' prefix (meta key_prefix, else from the name)")
    version: str


class TaskStatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(min_length=1, max_length=64)
    order: str | None = Field(default=None, max_length=200)


class BatchOperation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: str = Field(pattern="^(create|update|move|delete)$")
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    data: dict[str, Any] | None = None
    status: str | None = Field(default=None, min_length=1, max_length=64)
    order: str | None = Field(default=None, max_length=200)


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    operations: list[BatchOperation] = Field(min_length=1, max_length=500)


class BatchResult(BaseModel):
    project: str
    results: list[dict[str, Any]]


MilestoneOut = Milestone


class MilestoneList(BaseModel):
    items: list[MilestoneOut]
    total: int


class MemberOut(BaseModel):
    user: str
    role: str
    added: list[str]
    removed: list[str]


class MemberList(BaseModel):
    items: list[MemberOut]
    total: int


CommentOut = ChatMessage


class CommentPage(BaseModel):
    items: list[CommentOut]
    total: int
    limit: int
    offset: int
    links: PageLinks


class Created(BaseModel):
    id: str


class ActivityEntry(BaseModel):
    id: int
    at: float
    document: str
    actor: str
    action: str
    task: str | None
    detail: dict[str, Any]


class ActivityPage(BaseModel):
    items: list[ActivityEntry]
    next_before: int | None


class ActivityArgs(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=500)
    before: int | None = Field(default=None, ge=1)


class CommentArgs(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=1000)
    offset: int | None = Field(default=None, ge=0)
    task: str | None = None


class ProjectListArgs(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=1000)
    offset: int | None = Field(default=None, ge=0)
    status: str | None = Field(
        default=None,
        description="only projects with one of these statuses, comma-separated"
        " (planning, active, on_hold, completed, archived): ?status=archived",
        pattern="^(" + "|".join(PROJECT_STATUSES) + ")(,(" + "|".join(PROJECT_STATUSES) + "))*$",
    )


BudgetOut = Budget


CostOut = Cost


class CostList(BaseModel):
    items: list[CostOut]
    total: int
    sum: dict[str, float]


TimeEntryOut = TimeEntry


class TimeEntryList(BaseModel):
    items: list[TimeEntryOut]
    total: int
    hours: float


AllocationOut = Allocation


class AllocationList(BaseModel):
    items: list[AllocationOut]
    total: int


class MetricsArgs(BaseModel):
    days: int | None = Field(default=None, ge=1, le=365, description="burndown window (30)")


class Metrics(BaseModel):
    project: str
    as_of: dt.date
    tasks: dict[str, Any]
    budget: dict[str, Any] | None


class Portfolio(BaseModel):
    as_of: dt.date
    projects: list[dict[str, Any]]
    totals: dict[str, Any]


class ExportArgs(BaseModel):
    format: str | None = Field(default=None, pattern="^(csv|json)$")
