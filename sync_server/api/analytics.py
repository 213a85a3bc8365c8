"""REST API v1: project metrics, the portfolio across projects, and task export (CSV, JSON)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response

from doc_model import DocKind
from rules import Permission, may_read
from sync_server.api.common import ApiContext, etag_for, json_response
from sync_server.api.common import cached_response as cached
from sync_server.api.metrics import budget_burn, done_column, task_metrics
from sync_server.api.models import ExportArgs, Metrics, MetricsArgs, Portfolio, TasksExport
from sync_server.api.models import problems_documented as _problems
from sync_server.api.params import only_args, simple_int
from sync_server.api.problems import Problem
from sync_server.extensions import activity
from sync_server.identity import projects

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

P = Permission
EXPORT_COLUMNS = (
    "id",
    "title",
    "status",
    "priority",
    "assignees",
    "labels",
    "start",
    "due",
    "estimate",
    "milestone",
    "parent",
    "depends_on",
    "created_by",
    "created_at",
    "description",
)


def csv_cell(value: Any) -> str:
    """A spreadsheet-safe cell: lists joined with ';', formula-looking text neutralized."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = str(value)
    if text and text[0] in "=+-@\t\r":
        text = "'" + text  # OWASP: keep spreadsheet programs from running it as a formula
    return text


def analytics_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_analytics", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    async def metrics_for(project: str, perms: frozenset[Permission], days: int) -> dict:
        today = dt.datetime.now(dt.UTC).date()
        view = await ctx.read(project)
        snap = ctx.project_snapshot(view, project)
        completed = activity.completion_times(ctx.conn, project, done_column(snap))
        result: dict[str, Any] = {
            "project": project,
            "as_of": today.isoformat(),
            "tasks": task_metrics(snap, completed, today, days),
            "budget": None,
        }
        if may_read(perms, "budget_burn"):
            fin_view = await ctx.read(project, DocKind.FINANCE)
            finance = ctx.finance_snapshot(fin_view)
            result["budget"] = budget_burn(snap, finance, today)
        return result

    @bp.get("/projects/<project>/metrics/")
    @document_querystring(MetricsArgs)
    @document_response(Metrics)
    @_problems(400, 403, 404)
    async def metrics(project: str):
        only_args("days")
        user = ctx.user()
        project = ctx.project_read(user, project, "metrics")
        days = simple_int("days", 30, 1, 365)
        perms = ctx.permissions(user, project)
        return json_response(await metrics_for(project, perms, days))

    @bp.get("/analytics/portfolio/")
    @document_response(Portfolio)
    @_problems(400)
    async def portfolio():
        only_args()
        user = ctx.user()
        rows = []
        for entry in projects.projects_of(ctx.conn, user.name):
            perms = ctx.permissions(user, entry.id)
            if not may_read(perms, "metrics"):
                continue
            m = await metrics_for(entry.id, perms, 1)
            t = m["tasks"]
            rows.append(
                {
                    "id": entry.id,
                    "name": entry.name,
                    "total": t["total"],
                    "done": t["done"],
                    "completion": t["completion"],
                    "overdue": t["overdue"],
                    "by_status": t["by_status"],
                    "budget": m["budget"]
                    and {
                        k: m["budget"][k]
                        for k in ("currency", "total", "spent", "remaining", "planned_to_date")
                    },
                }
            )
        total = sum(r["total"] for r in rows)
        done = sum(r["done"] for r in rows)
        return json_response(
            {
                "as_of": dt.datetime.now(dt.UTC).date().isoformat(),
                "projects": rows,
                "totals": {
                    "projects": len(rows),
                    "tasks": total,
                    "done": done,
                    "completion": round(done / total, 4) if total else 0.0,
                    "overdue": sum(r["overdue"] for r in rows),
                },
            }
        )

    @bp.get("/projects/<project>/export/")
    @document_querystring(ExportArgs)
    @document_response(TasksExport)
    @_problems(400, 403, 404)
    async def export(project: str):
        """All tasks as CSV (default) or JSON, as an attachment."""
        only_args("format")
        user = ctx.user()
        project = ctx.project_read(user, project, "export")
        kind = request.args.get("format", "csv")
        if kind not in ("csv", "json"):
            raise Problem(400, f"format: csv or json, got {kind!r}", field="format")
        view = await ctx.read(project)
        snap = ctx.project_snapshot(view, project)
        tasks = sorted(
            (t.model_dump(mode="json") for t in snap.tasks),
            key=lambda t: (t["status"], t["order"], t["id"]),
        )
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        headers = {
            "Content-Disposition": f'attachment; filename="{project}-tasks-{stamp}.{kind}"',
            "ETag": etag_for([view.version, request.full_path]),
        }
        if kind == "json":
            response = json_response({"project": project, "tasks": tasks}, headers=headers)
            return response
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for task in tasks:
            writer.writerow([csv_cell(task.get(c)) for c in EXPORT_COLUMNS])
        return Response(out.getvalue(), content_type="text/csv; charset=utf-8", headers=headers)

    return bp


__all__ = ["analytics_api", "cached"]
