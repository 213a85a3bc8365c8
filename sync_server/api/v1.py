"""REST API v1: projects, tasks, milestones, members, comments, activity.

Reads are snapshots of the live documents (see live_documents); writes are
transactions through the same gate as WebSocket edits, so connected clients
see them at once and the permission rules are the same everywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from pycrdt import Array, Doc, Map
from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response

from doc_model import (
    CommentCreate,
    DocKind,
    MilestoneCreate,
    MilestoneUpdate,
    ProjectCreate,
    ProjectUpdate,
    TaskCreate,
    TaskNotFound,
    TaskUpdate,
    add_member,
    chat_snapshot,
    create_milestone,
    create_project_meta,
    create_task,
    delete_record,
    delete_task,
    move_task,
    new_project_id,
    post_chat_message,
    project_snapshot,
    update_project_meta,
    update_record,
    update_task,
)
from doc_model.schema import ID_PATTERN, PROJECT_STATUSES
from rules import Grant, Permission, can_read, may_read
from sync_server.api.common import (
    ApiContext,
    chosen_id_allowed,
    doc_name_of,
    json_response,
    read_body,
)
from sync_server.api.common import cached_response as cached
from sync_server.api.live_documents import DocumentView
from sync_server.api.models import (
    TASK_FIELDS,
    ActivityArgs,
    ActivityPage,
    BatchBody,
    BatchResult,
    CommentArgs,
    CommentPage,
    Created,
    MemberList,
    MilestoneList,
    MilestoneOut,
    NoContent,
    ProjectListArgs,
    ProjectOut,
    ProjectPage,
    TaskOut,
    TaskPage,
    TaskQueryArgs,
    TaskStatusBody,
)
from sync_server.api.models import (
    problems_documented as _problems,
)
from sync_server.api.params import choice_list, list_args, only_args, page_links, simple_int
from sync_server.api.problems import Problem
from sync_server.api.query import (
    PRIORITY_RANK,
    Filter,
    ListSpec,
    any_of,
    date_bound,
    run_query,
    text_search,
)
from sync_server.api.views import project_json, tasks_json
from sync_server.api.views import task_json as one_task_json
from sync_server.core.connection import CloseCode
from sync_server.extensions import activity
from sync_server.identity import access, accounts, projects
from sync_server.interfaces import Actor

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

P = Permission
ENTITY_ID = re.compile(ID_PATTERN, re.ASCII)
TASK_PROJECTS_KEPT = 50_000  # task ids whose project the API remembers (about 8 MB)

TASKS = ListSpec(
    fields=TASK_FIELDS,
    sortable=(
        "title",
        "status",
        "priority",
        "due",
        "start",
        "created_at",
        "order",
        "estimate",
        "milestone",
    ),
    filters=(
        Filter("status", any_of("status"), "comma-separated statuses"),
        Filter("priority", any_of("priority"), "comma-separated priorities"),
        Filter("assignee", any_of("assignees", many=True), "assigned to any of these users"),
        Filter("label", any_of("labels", many=True), "carrying any of these labels"),
        Filter("milestone", any_of("milestone"), "in any of these milestones"),
        Filter("due_before", date_bound("due", before=True), "due before this date"),
        Filter("due_after", date_bound("due", before=False), "due after this date"),
        Filter("q", text_search("title", "description"), "words in title or description"),
        Filter("key", any_of("key"), "with any of these task keys (TDM-42)"),
    ),
    default_order=("status", "order"),
    sort_keys={"priority": lambda p: PRIORITY_RANK.get(p, len(PRIORITY_RANK))},
)


def _task_update_values(data: TaskCreate) -> TaskUpdate:
    """PUT semantics: every field set, absent ones back to their defaults."""
    values = data.model_dump()
    values.pop("order", None)
    return TaskUpdate.model_validate(values)


class RecentProjects:
    """Task id -> its project, for the ``kept`` tasks seen last (a server that runs for months
    sees every task ever made; a task it forgot is looked for in the caller's projects)."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._projects: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._projects)

    def get(self, task_id: str) -> str | None:
        return self._projects.get(task_id)

    def learn(self, task_id: str, project: str) -> None:
        self._projects[task_id] = project
        self._projects.move_to_end(task_id)
        if len(self._projects) > self.kept:
            self._projects.popitem(last=False)

    def pop(self, task_id: str) -> None:
        self._projects.pop(task_id, None)


def v1_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)
    task_projects = RecentProjects(TASK_PROJECTS_KEPT)
    learn = task_projects.learn

    # -- projects --------------------------------------------------------------

    async def known_status(entry: projects.ProjectEntry) -> projects.ProjectEntry:
        """``entry`` with its status, read from the document once if the registry has none
        yet (a project from before migration 20, or seeded by the CLI) and stored."""
        if entry.status is not None:
            return entry
        view = await ctx.read(entry.id)
        meta = view.doc.get("meta", type=Map)
        status = meta.get("status") if view.exists else None
        status = status if isinstance(status, str) and status in PROJECT_STATUSES else "active"
        await ctx.write(projects.set_project_status, entry.id, status)
        return dataclasses.replace(entry, status=status)

    @bp.get("/projects/")
    @document_querystring(ProjectListArgs)
    @document_response(ProjectPage)
    @_problems(400)
    async def list_projects():
        only_args("limit", "offset", "status")
        user = ctx.user()
        limit = simple_int("limit", 50, 1, 1000)
        offset = simple_int("offset", 0, 0, 10**9)
        wanted = choice_list("status", PROJECT_STATUSES)
        entries = [await known_status(e) for e in projects.projects_of(ctx.conn, user.name)]
        if wanted is not None:
            entries = [e for e in entries if e.status in wanted]
        window = entries[offset : offset + limit]
        items = []
        for entry in window:
            grant = access.get_grant(ctx.conn, user.name, entry.id)
            items.append(
                {
                    "id": entry.id,
                    "name": entry.name,
                    "role": grant.role if grant else None,
                    "status": entry.status,
                    "created_by": entry.created_by,
                    "created_at": entry.created_at,
                    "updated_at": entry.updated_at,
                }
            )
        return json_response(
            {
                "items": items,
                "total": len(entries),
                "limit": limit,
                "offset": offset,
                "links": page_links(len(entries), limit, offset),
            }
        )

    @bp.post("/projects/")
    @document_request(ProjectCreate)
    @document_response(ProjectOut, 201)
    @_problems(400, 409, 413, 415, 422)
    async def create_project():
        user = ctx.user()
        data = await read_body(ProjectCreate)
        if data.id is not None and not chosen_id_allowed(data.id):
            raise Problem(
                422,
                "id: a project id you choose must be a UUID in lowercase (as"
                " crypto.randomUUID() makes), or leave it out and the server chooses",
                field="id",
            )
        project = data.id or new_project_id()
        # A taken id is 409 whoever holds it (a deleted project's too). That says only that
        # an id the caller already had was used: a UUID carries no meaning, and guessing one
        # somebody else made is hopeless, so other teams' ids cannot be probed for.
        if await server.store.exists(doc_name_of(project, DocKind.MAIN).name):
            raise Problem(409, f"project id {project!r} is not available", field="id")
        if not await ctx.write(
            projects.register_project, project, data.name, user.name, data.status
        ):
            raise Problem(409, f"project id {project!r} is not available", field="id")
        await ctx.write(access.set_grant, Grant(user.name, project, "owner"), user.name)
        ctx.resolver.forget(user.name, project)

        def seed(doc: Doc) -> None:
            create_project_meta(
                doc,
                data.name,
                description=data.description,
                status=data.status,
                start_date=data.start_date,
                end_date=data.end_date,
                created_by=user.name,
                columns=data.columns,
            )

        await ctx.edit(user, project, DocKind.MAIN, seed)
        # the members map mirrors the grants: written as the owner, whose grant it shows
        shown = await ctx.live.edit(
            doc_name_of(project, DocKind.MAIN),
            Actor(user.name),
            lambda doc: add_member(doc, user.name, "owner"),
        )
        if not shown.accepted:
            raise Problem(500, "the project was made but its members map was not written")
        view = await ctx.read(project)
        return json_response(
            project_json(view, project),
            201,
            headers={"Location": f"/api/v1/projects/{project}/"},
        )

    @bp.get("/projects/<project>/")
    @document_response(ProjectOut)
    @_problems(403, 404)
    async def get_project(project: str):
        only_args()
        user = ctx.user()
        project = ctx.project_read(user, project, "project")
        view = await ctx.read(project)
        return cached(lambda: project_json(view, project), [view.version])

    async def change_project(project: str, partial: bool):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        if partial:
            data = await read_body(ProjectUpdate)
            values = data.model_dump(include=data.model_fields_set)
        else:
            full = await read_body(ProjectCreate)
            if full.id not in (None, project):
                raise Problem(422, "id: a project's id cannot change", field="id")
            if full.columns is not None:
                raise Problem(422, "columns: change columns from the board", field="columns")
            values = full.model_dump(exclude={"id", "columns"})
        await ctx.edit(user, project, DocKind.MAIN, lambda doc: update_project_meta(doc, values))
        view = await ctx.read(project)
        body = project_json(view, project)
        # the registry follows the document (activity does it for every writer); the one
        # who changed it here sees it in the list at once
        await ctx.write(projects.set_project_status, project, body["status"])
        return json_response(body)

    @bp.put("/projects/<project>/")
    @document_request(ProjectCreate)
    @document_response(ProjectOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def replace_project(project: str):
        return await change_project(project, partial=False)

    @bp.patch("/projects/<project>/")
    @document_request(ProjectUpdate)
    @document_response(ProjectOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def patch_project(project: str):
        return await change_project(project, partial=True)

    @bp.delete("/projects/<project>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_project(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.DELETE_PROJECT)
        await ctx.write(access.record_project_deleted, user.name, project)
        await ctx.write(projects.mark_deleted, project)
        ctx.resolver.forget_project(project)
        for kind in DocKind:
            name = doc_name_of(project, kind)
            await server.rooms.close_room(
                name.name, CloseCode.UNKNOWN_DOCUMENT, f"project {project!r} was deleted"
            )
            ctx.live.forget(name)
            await server.store.delete_document(name.name)
        return Response(status=204)

    # -- tasks -----------------------------------------------------------------

    @bp.get("/projects/<project>/tasks/")
    @document_querystring(TaskQueryArgs)
    @document_response(TaskPage)
    @_problems(400, 403, 404)
    async def list_tasks(project: str):
        user = ctx.user()
        project = ctx.project_read(user, project, "tasks")
        query = list_args(TASKS)
        view = await ctx.read(project)

        def payload() -> dict[str, Any]:
            page = run_query(tasks_json(ctx, view, project), query, TASKS)
            return {
                "items": page.items,
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
                "links": page_links(page.total, page.limit, page.offset),
            }

        return cached(payload, [view.version], cache=ctx.live)

    @bp.post("/projects/<project>/tasks/")
    @document_request(TaskCreate)
    @document_response(TaskOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_task_route(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.CREATE_TASKS)
        data = await read_body(TaskCreate)
        task_id = await ctx.edit(
            user, project, DocKind.MAIN, lambda doc: create_task(doc, data, created_by=user.name)
        )
        learn(task_id, project)
        return json_response(
            await task_json(project, task_id),
            201,
            headers={"Location": f"/api/v1/tasks/{task_id}/"},
        )

    async def task_json(project: str, task_id: str) -> dict[str, Any]:
        task = one_task_json(await ctx.read(project), project, task_id)
        if task is None:
            raise Problem(404, f"no task {task_id!r}")
        return task

    async def locate(user: accounts.User, task_id: str, needs: Permission) -> str:
        """The project holding ``task_id`` among those ``user`` may see, checked for ``needs``."""
        if not ENTITY_ID.fullmatch(task_id):
            raise Problem(404, f"no task {task_id!r}")
        candidates = []
        known = task_projects.get(task_id)
        if known is not None:
            candidates.append(known)
        candidates += [
            e.id for e in projects.projects_of(ctx.conn, user.name) if e.id not in candidates
        ]
        for project in candidates:
            perms = ctx.permissions(user, project)
            if not may_read(perms, "tasks"):
                continue
            view = await ctx.read(project)
            tasks = view.doc.get("tasks", type=Map)
            if task_id in tasks:
                learn(task_id, project)
                return ctx.project(user, project, needs)
        raise Problem(404, f"no task {task_id!r}")

    @bp.get("/tasks/<task_id>/")
    @document_response(TaskOut)
    @_problems(403, 404)
    async def get_task(task_id: str):
        only_args()
        user = ctx.user()
        project = await locate(user, task_id, P.VIEW_TASKS)
        view = await ctx.read(project)
        task = await task_json(project, task_id)
        return cached(lambda: task, [view.version])

    async def change_task(task_id: str, partial: bool):
        user = ctx.user()
        project = await locate(user, task_id, P.VIEW_TASKS)
        if partial:
            update = await read_body(TaskUpdate)
        else:
            update = _task_update_values(await read_body(TaskCreate))
        await ctx.edit(user, project, DocKind.MAIN, lambda doc: update_task(doc, task_id, update))
        return json_response(await task_json(project, task_id))

    @bp.put("/tasks/<task_id>/")
    @document_request(TaskCreate)
    @document_response(TaskOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def replace_task(task_id: str):
        return await change_task(task_id, partial=False)

    @bp.patch("/tasks/<task_id>/")
    @document_request(TaskUpdate)
    @document_response(TaskOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def patch_task(task_id: str):
        return await change_task(task_id, partial=True)

    @bp.patch("/tasks/<task_id>/status/")
    @document_request(TaskStatusBody)
    @document_response(TaskOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def set_status(task_id: str):
        user = ctx.user()
        project = await locate(user, task_id, P.VIEW_TASKS)
        data = await read_body(TaskStatusBody)
        await ctx.edit(
            user,
            project,
            DocKind.MAIN,
            lambda doc: move_task(doc, task_id, data.status, data.order),
        )
        return json_response(await task_json(project, task_id))

    @bp.delete("/tasks/<task_id>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_task_route(task_id: str):
        user = ctx.user()
        project = await locate(user, task_id, P.DELETE_TASKS)
        await ctx.edit(user, project, DocKind.MAIN, lambda doc: delete_task(doc, task_id))
        task_projects.pop(task_id)
        return Response(status=204)

    @bp.post("/tasks/batch/")
    @document_request(BatchBody)
    @document_response(BatchResult)
    @_problems(400, 403, 404, 413, 415, 422)
    async def batch():
        user = ctx.user()
        data = await read_body(BatchBody)
        project = ctx.project_read(user, data.project, "tasks")
        plans: list[tuple[str, Any]] = []
        for index, op in enumerate(data.operations):
            where = f"operations.{index}"
            try:
                if op.op == "create":
                    plans.append(("create", TaskCreate.model_validate(op.data or {})))
                elif op.id is None:
                    raise Problem(422, f"{where}.id: {op.op} needs a task id", field=f"{where}.id")
                elif op.op == "update":
                    plans.append(("update", (op.id, TaskUpdate.model_validate(op.data or {}))))
                elif op.op == "move":
                    if op.status is None:
                        raise Problem(422, f"{where}.status: move needs a status")
                    plans.append(("move", (op.id, op.status, op.order)))
                else:
                    plans.append(("delete", op.id))
            except ValidationError as e:
                first = e.errors()[0]
                field = ".".join([where, "data", *(str(p) for p in first["loc"])])
                raise Problem(422, f"{field}: {first['msg']}", field=field) from None

        def apply_all(doc: Doc) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            for kind, plan in plans:
                if kind == "create":
                    results.append({"op": kind, "id": create_task(doc, plan, created_by=user.name)})
                elif kind == "update":
                    update_task(doc, plan[0], plan[1])
                    results.append({"op": kind, "id": plan[0]})
                elif kind == "move":
                    move_task(doc, *plan)
                    results.append({"op": kind, "id": plan[0]})
                else:
                    if plan not in doc.get("tasks", type=Map):
                        raise TaskNotFound(plan)
                    delete_task(doc, plan)
                    results.append({"op": kind, "id": plan})
            return results

        results = await ctx.edit(user, project, DocKind.MAIN, apply_all)
        for result in results:
            learn(result["id"], project)
        return json_response({"project": project, "results": results})

    # -- milestones --------------------------------------------------------------

    async def milestones_of(project: str) -> tuple[DocumentView, list[dict[str, Any]]]:
        view = await ctx.read(project)

        def build(doc: Doc) -> list[dict[str, Any]]:
            return [m.model_dump(mode="json") for m in project_snapshot(doc, project).milestones]

        return view, ctx.live.snapshot(view, "milestones", build)

    @bp.get("/projects/<project>/milestones/")
    @document_response(MilestoneList)
    @_problems(403, 404)
    async def list_milestones(project: str):
        only_args()
        user = ctx.user()
        project = ctx.project_read(user, project, "milestones")
        view, items = await milestones_of(project)
        ordered = sorted(items, key=lambda m: (m["due"] is None, m["due"] or "", m["name"]))
        return cached(lambda: {"items": ordered, "total": len(items)}, [view.version])

    @bp.post("/projects/<project>/milestones/")
    @document_request(MilestoneCreate)
    @document_response(MilestoneOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_milestone_route(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        data = await read_body(MilestoneCreate)

        def create(doc: Doc) -> str:
            milestone = create_milestone(doc, data.name, due=data.due, description=data.description)
            if data.done:
                update_record(doc, "milestones", milestone, {"done": True})
            return milestone

        milestone = await ctx.edit(user, project, DocKind.MAIN, create)
        return json_response(
            await milestone_json(project, milestone),
            201,
            headers={"Location": f"/api/v1/projects/{project}/milestones/{milestone}/"},
        )

    async def milestone_json(project: str, milestone: str) -> dict[str, Any]:
        _, items = await milestones_of(project)
        for item in items:
            if item["id"] == milestone:
                return item
        raise Problem(404, f"no milestone {milestone!r}")

    @bp.get("/projects/<project>/milestones/<milestone>/")
    @document_response(MilestoneOut)
    @_problems(403, 404)
    async def get_milestone(project: str, milestone: str):
        only_args()
        user = ctx.user()
        project = ctx.project_read(user, project, "milestones")
        view = await ctx.read(project)
        item = await milestone_json(project, milestone)
        return cached(lambda: item, [view.version])

    @bp.patch("/projects/<project>/milestones/<milestone>/")
    @document_request(MilestoneUpdate)
    @document_response(MilestoneOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def patch_milestone(project: str, milestone: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        data = await read_body(MilestoneUpdate)
        values = data.model_dump(include=data.model_fields_set)
        if "name" in values and values["name"] is None:
            raise Problem(422, "name: a milestone needs a name", field="name")
        if values.get("description", "") is None:
            values["description"] = ""
        if values.get("done", False) is None:
            values["done"] = False
        await ctx.edit(
            user,
            project,
            DocKind.MAIN,
            lambda doc: update_record(doc, "milestones", milestone, values),
        )
        return json_response(await milestone_json(project, milestone))

    @bp.delete("/projects/<project>/milestones/<milestone>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_milestone(project: str, milestone: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        await ctx.edit(
            user, project, DocKind.MAIN, lambda doc: delete_record(doc, "milestones", milestone)
        )
        return Response(status=204)

    # -- members -----------------------------------------------------------------

    @bp.get("/projects/<project>/members/")
    @document_response(MemberList)
    @_problems(403, 404)
    async def list_members(project: str):
        """Who is on the project; change membership with PUT/DELETE .../grants/<user>."""
        only_args()
        user = ctx.user()
        project = ctx.project_read(user, project, "members")
        grants = access.list_grants(ctx.conn, project)
        items = [
            {
                "user": g.user,
                "role": g.role,
                "added": sorted(p.value for p in g.added),
                "removed": sorted(p.value for p in g.removed),
            }
            for g in sorted(grants, key=lambda g: g.user)
        ]
        return json_response({"items": items, "total": len(items)})

    # -- comments (the project chat) ----------------------------------------------

    @bp.get("/projects/<project>/comments/")
    @document_querystring(CommentArgs)
    @document_response(CommentPage)
    @_problems(400, 403, 404)
    async def list_comments(project: str):
        only_args("limit", "offset", "task")
        user = ctx.user()
        project = ctx.project_read(user, project, "comments")
        limit = simple_int("limit", 50, 1, 1000)
        offset = simple_int("offset", 0, 0, 10**9)
        task = request.args.get("task")
        view = await ctx.read(project, DocKind.CHAT)

        def payload() -> dict[str, Any]:
            messages = ctx.live.snapshot(
                view,
                "messages",
                lambda doc: [m.model_dump(mode="json") for m in chat_snapshot(doc).messages],
            )
            chosen = [m for m in messages if task is None or m.get("task") == task]
            newest_first = chosen[::-1][offset : offset + limit]
            return {
                "items": newest_first,
                "total": len(chosen),
                "limit": limit,
                "offset": offset,
                "links": page_links(len(chosen), limit, offset),
            }

        return cached(payload, [view.version], cache=ctx.live)

    @bp.post("/projects/<project>/comments/")
    @document_request(CommentCreate)
    @document_response(Created, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def post_comment(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        data = await read_body(CommentCreate)
        if data.task is not None:  # (the comment's thread is that task's)
            tasks = (await ctx.read(project)).doc.get("tasks", type=Map)
            if data.task not in tasks:
                raise Problem(422, f"task: no task {data.task!r} in this project", field="task")
        message = await ctx.edit(
            user,
            project,
            DocKind.CHAT,
            lambda doc: post_chat_message(doc, user.name, data.text, task=data.task),
        )
        return json_response({"id": message}, 201)

    @bp.delete("/projects/<project>/comments/<message>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_comment(project: str, message: str):
        user = ctx.user()
        project = ctx.project(user, project, P.MANAGE_TEAM)

        def remove(doc: Doc) -> None:
            messages = doc.get("messages", type=Array)
            for index, item in enumerate(messages):
                if isinstance(item, Map) and item.get("id") == message:
                    del messages[index]
                    return
            raise KeyError(f"no comment {message!r}")

        await ctx.edit(user, project, DocKind.CHAT, remove)
        return Response(status=204)

    # -- activity ------------------------------------------------------------------

    @bp.get("/projects/<project>/activity/")
    @document_querystring(ActivityArgs)
    @document_response(ActivityPage)
    @_problems(400, 403, 404)
    async def list_activity(project: str):
        only_args("limit", "before")
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        limit = simple_int("limit", 50, 1, 500)
        before = simple_int("before", 0, 1, 2**62) if "before" in request.args else None
        perms = ctx.permissions(user, project)
        readable = [doc_name_of(project, kind).name for kind in DocKind if _can_read(perms, kind)]
        rows = activity.list_activity(
            ctx.conn, project, limit=limit, before=before, documents=readable
        )
        return json_response(
            {"items": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}
        )

    return bp


def _can_read(perms: frozenset[Permission], kind: DocKind) -> bool:
    return can_read(perms, kind) is None
