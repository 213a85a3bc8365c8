"""JSON views of documents as the REST API returns them (projects, task lists)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from doc_model import project_snapshot
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


def tasks_json(ctx: ApiContext, view: DocumentView, project: str) -> list[dict[str, Any]]:
    def build(doc: Doc) -> list[dict[str, Any]]:
        return [
            {**t.model_dump(mode="json"), "project": project}
            for t in project_snapshot(doc, project).tasks
        ]

    return ctx.live.snapshot(view, "tasks", build)
