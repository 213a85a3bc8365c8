"""JSON views of documents as the REST API returns them (projects, task lists)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from doc_model import Task, project_snapshot, task_snapshot
from doc_model.task_keys import default_prefix
from sync_server.api.common import ApiContext
from sync_server.api.live_documents import DocumentView


def project_json(view: DocumentView, project: str) -> dict[str, Any]:
    snap = project_snapshot(view.doc, project)
    return {
        "id": project,
        "name": snap.meta.name,
        "description": snap.meta.description,
        "status": snap.meta.status,
        "start_date": snap.meta.start_date.isoformat() if snap.meta.start_date else None,
        "end_date": snap.meta.end_date.isoformat() if snap.meta.end_date else None,
        "columns": snap.columns,
        "members": snap.members,
        "task_count": len(snap.tasks),
        "milestone_count": len(snap.milestones),
        "schema_version": snap.meta.schema_version,
        "key_prefix": snap.meta.key_prefix or default_prefix(snap.meta.name),
        "version": view.version,
    }


def _task_json(task: Task, project: str) -> dict[str, Any]:
    return {**task.model_dump(mode="json"), "project": project}


def tasks_json(ctx: ApiContext, view: DocumentView, project: str) -> list[dict[str, Any]]:
    def build(doc: Doc) -> list[dict[str, Any]]:
        return [_task_json(t, project) for t in project_snapshot(doc, project).tasks]

    return ctx.live.snapshot(view, "tasks", build)


def task_json(view: DocumentView, project: str, task_id: str) -> dict[str, Any] | None:
    """One task as :func:`tasks_json` lists it (None: no such task), read from that task
    alone: the answer to a write of one task, which changed the document, so the list's
    cached JSON is stale and rebuilding it would read every task (26 ms for 300)."""
    if task_id not in view.doc.get("tasks", type=Map):
        return None
    return _task_json(task_snapshot(view.doc, task_id), project)
