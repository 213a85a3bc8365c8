"""REST API v1: budget, costs, time entries (finance document) and allocations (resources)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pycrdt import Doc
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response

from doc_model import (
    AllocationCreate,
    BudgetSet,
    CostCreate,
    DocKind,
    TimeEntryCreate,
    add_allocation,
    add_cost,
    add_time_entry,
    delete_record,
    set_budget,
)
from rules import Permission
from sync_server.api.common import ApiContext, json_response, read_body
from sync_server.api.common import cached_response as cached
from sync_server.api.models import (
    AllocationList,
    AllocationOut,
    BudgetOut,
    CostList,
    CostOut,
    NoContent,
    TimeEntryList,
    TimeEntryOut,
)
from sync_server.api.models import problems_documented as _problems
from sync_server.api.params import only_args
from sync_server.api.problems import Problem

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

P = Permission


def finance_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_finance", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    def by_task(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        task = request.args.get("task")
        return [i for i in items if task is None or i.get("task") == task]

    async def created(project: str, kind: DocKind, mutate, what: str):
        """201 with the new entry of collection ``what`` (its URL spells it with '-')."""
        user = ctx.user()
        new_id = await ctx.edit(user, project, kind, mutate)
        view = await ctx.read(project, kind)
        snap = (
            ctx.finance_snapshot(view) if kind is DocKind.FINANCE else ctx.resources_snapshot(view)
        )
        for item in getattr(snap, what):
            if item.id == new_id:
                return json_response(
                    item.model_dump(mode="json"),
                    201,
                    headers={
                        "Location": f"/api/v1/projects/{project}/{what.replace('_', '-')}/{new_id}/"
                    },
                )
        raise Problem(404, f"the new entry {new_id!r} is gone")  # deleted concurrently

    async def remove(project: str, kind: DocKind, root: str, entry: str):
        user = ctx.user()
        await ctx.edit(user, project, kind, lambda doc: delete_record(doc, root, entry))
        return Response(status=204)

    # -- budget ------------------------------------------------------------------

    @bp.get("/projects/<project>/budget/")
    @document_response(BudgetOut)
    @_problems(403, 404)
    async def get_budget(project: str):
        only_args()
        user = ctx.user()
        project = ctx.project_read(user, project, "budget")
        view = await ctx.read(project, DocKind.FINANCE)
        return cached(
            lambda: ctx.finance_snapshot(view).budget.model_dump(mode="json"), [view.version]
        )

    @bp.put("/projects/<project>/budget/")
    @document_request(BudgetSet)
    @document_response(BudgetOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def put_budget(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_BUDGET)
        data = await read_body(BudgetSet)
        await ctx.edit(
            user,
            project,
            DocKind.FINANCE,
            lambda doc: set_budget(
                doc, currency=data.currency, total=data.total, categories=data.categories
            ),
        )
        view = await ctx.read(project, DocKind.FINANCE)
        return json_response(ctx.finance_snapshot(view).budget.model_dump(mode="json"))

    # -- costs -------------------------------------------------------------------

    @bp.get("/projects/<project>/costs/")
    @document_response(CostList)
    @_problems(400, 403, 404)
    async def list_costs(project: str):
        only_args("task")
        user = ctx.user()
        project = ctx.project_read(user, project, "costs")
        view = await ctx.read(project, DocKind.FINANCE)

        def payload() -> dict[str, Any]:
            items = by_task([c.model_dump(mode="json") for c in ctx.finance_snapshot(view).costs])
            items.sort(key=lambda c: (c["date"] or "", c["id"]), reverse=True)
            sums: dict[str, float] = defaultdict(float)
            for c in items:
                sums[c["currency"] or ""] += c["amount"]
            return {
                "items": items,
                "total": len(items),
                "sum": {k: round(v, 2) for k, v in sums.items()},
            }

        return cached(payload, [view.version], cache=ctx.live)

    @bp.post("/projects/<project>/costs/")
    @document_request(CostCreate)
    @document_response(CostOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_cost(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_COSTS)
        data = await read_body(CostCreate)

        def mutate(doc: Doc) -> str:
            return add_cost(doc, **data.model_dump(), created_by=user.name)

        return await created(project, DocKind.FINANCE, mutate, "costs")

    @bp.delete("/projects/<project>/costs/<entry>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_cost(project: str, entry: str):
        project = ctx.project(ctx.user(), project, P.EDIT_COSTS)
        return await remove(project, DocKind.FINANCE, "costs", entry)

    # -- time entries ----------------------------------------------------------------

    @bp.get("/projects/<project>/time-entries/")
    @document_response(TimeEntryList)
    @_problems(400, 403, 404)
    async def list_time(project: str):
        only_args("task", "user")
        user = ctx.user()
        project = ctx.project_read(user, project, "time_entries")
        view = await ctx.read(project, DocKind.FINANCE)
        who = request.args.get("user")

        def payload() -> dict[str, Any]:
            items = by_task(
                [t.model_dump(mode="json") for t in ctx.finance_snapshot(view).time_entries]
            )
            items = [t for t in items if who is None or t["user"] == who]
            items.sort(key=lambda t: (t["date"], t["id"]), reverse=True)
            return {
                "items": items,
                "total": len(items),
                "hours": round(sum(t["hours"] for t in items), 2),
            }

        return cached(payload, [view.version], cache=ctx.live)

    @bp.post("/projects/<project>/time-entries/")
    @document_request(TimeEntryCreate)
    @document_response(TimeEntryOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_time(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_COSTS)
        data = await read_body(TimeEntryCreate)

        def mutate(doc: Doc) -> str:
            return add_time_entry(
                doc,
                user=data.user or user.name,
                hours=data.hours,
                date=data.date,
                task=data.task,
                note=data.note,
            )

        return await created(project, DocKind.FINANCE, mutate, "time_entries")

    @bp.delete("/projects/<project>/time-entries/<entry>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_time(project: str, entry: str):
        project = ctx.project(ctx.user(), project, P.EDIT_COSTS)
        return await remove(project, DocKind.FINANCE, "time_entries", entry)

    # -- allocations -------------------------------------------------------------------

    @bp.get("/projects/<project>/allocations/")
    @document_response(AllocationList)
    @_problems(400, 403, 404)
    async def list_allocations(project: str):
        only_args("task", "user")
        user = ctx.user()
        project = ctx.project_read(user, project, "allocations")
        view = await ctx.read(project, DocKind.RESOURCES)
        who = request.args.get("user")

        def payload() -> dict[str, Any]:
            items = by_task(
                [a.model_dump(mode="json") for a in ctx.resources_snapshot(view).allocations]
            )
            items = [a for a in items if who is None or a["user"] == who]
            items.sort(key=lambda a: (a["user"], a["start"] or "", a["id"]))
            return {"items": items, "total": len(items)}

        return cached(payload, [view.version], cache=ctx.live)

    @bp.post("/projects/<project>/allocations/")
    @document_request(AllocationCreate)
    @document_response(AllocationOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_allocation(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.MANAGE_RESOURCES)
        data = await read_body(AllocationCreate)
        if data.start and data.end and data.end < data.start:
            raise Problem(422, "end: must not be before start", field="end")
        return await created(
            project,
            DocKind.RESOURCES,
            lambda doc: add_allocation(doc, **data.model_dump()),
            "allocations",
        )

    @bp.delete("/projects/<project>/allocations/<entry>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_allocation(project: str, entry: str):
        project = ctx.project(ctx.user(), project, P.MANAGE_RESOURCES)
        return await remove(project, DocKind.RESOURCES, "allocations", entry)

    return bp
