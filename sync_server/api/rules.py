"""REST API for automation: a project's rules, a dry run, runs, and the outbox's deliveries.

    GET/POST                /api/v1/projects/<id>/rules/
    GET/PUT/PATCH/DELETE    /api/v1/projects/<id>/rules/<rule id>/
    POST                    /api/v1/projects/<id>/rules/<rule id>/test/    (dry run)
    GET                     /api/v1/projects/<id>/rules/<rule id>/runs/
    GET                     /api/v1/projects/<id>/deliveries/

Rules live in the project document's ``rules`` root, so a write is a transaction
through the gate as the requesting user (``edit_project``); the server sets
``created_by`` (the owner a rule acts as). Webhook, Slack and Teams URLs are
secrets: the body's ``url`` is stored with the secret store and the document
holds ``url_ref`` / ``url_hint`` instead; responses show the URL masked. Every
refused body is a 422 problem naming the JSON path at fault (``field``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pycrdt import Doc, Map
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response
from werkzeug.exceptions import HTTPException

from doc_model import DocKind, DomainEvent, new_id
from rules import Permission
from sync_server.api.common import ApiContext, json_response
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.params import only_args, simple_int
from sync_server.api.problems import Problem
from sync_server.extensions import automation as auto

if TYPE_CHECKING:
    from sync_server.extensions.automation import AutomationExtension
    from sync_server.extensions.context import TandemContext

P = Permission
SECRET_CHANNELS = ("webhook", "slack", "teams")
RULE_FIELDS = ("name", "enabled", "trigger", "conditions", "actions")


# -- OpenAPI models -----------------------------------------------------------------------


class RuleBody(BaseModel):
    """A rule as a client sends it (validated by the rule model, which names the path at
    fault); webhook / slack / teams actions carry ``url``."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(examples=["Tell the hook when an important task is done"])
    enabled: bool = True
    trigger: dict[str, Any] = Field(examples=[{"type": "task_status_changed", "to": "done"}])
    conditions: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = Field(
        examples=[[{"type": "webhook", "url": "https://example.com/hook"}]]
    )


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    enabled: bool | None = None
    trigger: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = None
    actions: list[dict[str, Any]] | None = None


class RuleState(BaseModel):
    paused_reason: str | None = None
    last_run_at: float | None = None
    last_outcome: str | None = None
    failures: int = 0


class RuleOut(BaseModel):
    id: str
    name: str
    enabled: bool
    trigger: dict[str, Any]
    conditions: dict[str, Any] | None = None
    actions: list[dict[str, Any]]
    created_by: str | None = None
    state: RuleState


class RuleList(BaseModel):
    items: list[RuleOut]
    total: int


class DryRunBody(BaseModel):
    task: str | None = Field(default=None, description="the task to run the rule against")
    event: dict[str, Any] | None = Field(
        default=None, description="a domain event to use instead of one made from the trigger"
    )


class ConditionOut(BaseModel):
    path: str
    field: str
    op: str
    expected: Any = None
    actual: Any = None
    matched: bool


class DryRunOut(BaseModel):
    rule: str
    event: dict[str, Any]
    triggered: bool
    matched: bool
    skipped: str | None = None
    conditions: list[ConditionOut]
    intents: list[dict[str, Any]]


class RunOut(BaseModel):
    id: int
    rule: str
    event_key: str
    event: dict[str, Any]
    outcome: str
    detail: str
    depth: int
    at: float


class RunList(BaseModel):
    items: list[RunOut]


class DeliveryList(BaseModel):
    items: list[dict[str, Any]]


# -- helpers --------------------------------------------------------------------------------


def url_hint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def synthetic_event(trigger: dict[str, Any], task: dict[str, Any] | None) -> DomainEvent:
    """The event a dry run feeds the engine: what the rule's trigger reacts to, on ``task``."""
    kind = trigger.get("type")
    entity = task.get("id") if task else None
    title = task.get("title") if task else None
    status = task.get("status") if task else None
    detail: dict[str, Any] = {"title": title} if title is not None else {}
    if kind == "task_status_changed":
        before = trigger.get("from") or ("todo" if status != "todo" else "doing")
        return DomainEvent(
            "task_field_changed",
            entity=entity,
            field="status",
            before=before,
            after=trigger.get("to") or status,
            detail=detail,
        )
    if kind == "task_created":
        return DomainEvent("task_created", entity=entity, after=task, detail=detail)
    if kind == "task_assigned":
        assignees = list(task.get("assignees") or []) if task else []
        return DomainEvent(
            "task_assignees_changed",
            entity=entity,
            field="assignees",
            before=[],
            after=assignees,
            detail={**detail, "added": assignees, "removed": []},
        )
    if kind in ("due_date_approaching", "task_overdue"):
        return DomainEvent(
            kind, entity=entity, after=task, detail={**detail, "due": task and task.get("due")}
        )
    if kind == "comment_posted":
        return DomainEvent(
            "comment_posted",
            entity=entity,
            after={"id": "dry-run", "author": "", "text": "", "task": entity},
            detail={"message": "dry-run"},
        )
    if kind == "schedule":
        return DomainEvent(
            "schedule_fired", detail={"fire_at": dt.datetime.now(dt.UTC).isoformat()}
        )
    return DomainEvent(str(kind), entity=entity, after=task, detail=detail)


def intent_json(intent: Any) -> dict[str, Any]:
    out = dataclasses.asdict(intent)
    out["type"] = type(intent).__name__.removesuffix("Intent").lower()
    return out


# -- the blueprint --------------------------------------------------------------------------


def rules_api(server: TandemContext, automation: AutomationExtension) -> Blueprint:
    bp = Blueprint("api_rules", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    async def body_json() -> Any:
        if not request.is_json:
            raise Problem(415, "send a JSON body with Content-Type: application/json")
        try:
            return await request.get_json(force=True)
        except HTTPException as e:
            if e.code == 413:
                raise Problem(
                    413, f"the body is larger than {request.max_content_length} bytes"
                ) from e
            raise Problem(400, "the body is not valid JSON") from e
        except Exception as e:
            raise Problem(400, "the body is not valid JSON") from e

    def check(data: Any, *, owner: str) -> dict[str, Any]:
        """The rule validated by the model: 422 naming the JSON path at fault."""
        if not isinstance(data, dict):
            raise Problem(422, "body: a rule is a JSON object", field="body")
        stray = sorted(set(data) - {*RULE_FIELDS, "id", "created_by"})
        if stray:
            raise Problem(
                422,
                f"{stray[0]}: unknown field; a rule has {', '.join(RULE_FIELDS)}",
                field=stray[0],
            )
        rule = {k: v for k, v in data.items() if k in RULE_FIELDS}
        try:
            auto.validate({**rule, "created_by": owner})
        except Exception as e:
            path = str(getattr(e, "path", "") or "body")
            message = str(getattr(e, "message", "") or e)
            raise Problem(422, f"{path}: {message}", field=path) from None
        return rule

    async def hide_secrets(
        project: str, rule: dict[str, Any], before: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``url`` of webhook / slack / teams actions -> ``url_ref`` + ``url_hint``; a
        ``url_ref`` given back must be one the rule already holds."""
        held = {
            a.get("url_ref")
            for a in (before or {}).get("actions", [])
            if isinstance(a, dict) and a.get("url_ref")
        }
        actions = []
        for index, action in enumerate(rule.get("actions") or []):
            action = dict(action)
            if action.get("type") in SECRET_CHANNELS:
                path = f"actions[{index}]"
                if "url" in action:
                    url = action.pop("url")
                    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                        raise Problem(
                            422, f"{path}.url: an http(s) URL is needed", field=f"{path}.url"
                        )
                    secrets = automation.secrets
                    if secrets is None:
                        raise Problem(503, "this server has no secret store for URLs")
                    action["url_ref"] = await auto.maybe_await(
                        await server.writer.run(secrets.put, project, action["type"], url)
                    )
                    action["url_hint"] = url_hint(url)
                elif action.get("url_ref") not in held:
                    raise Problem(
                        422,
                        f"{path}.url: give the URL (url_ref only names a URL this rule holds)",
                        field=f"{path}.url",
                    )
            actions.append(action)
        return {**rule, "actions": actions}

    def masked(rule: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for action in rule.get("actions") or []:
            if isinstance(action, dict) and action.get("url_ref"):
                shown = None
                secrets = automation.secrets
                if secrets is not None:
                    try:
                        shown = secrets.masked(action["url_ref"])
                    except Exception:
                        shown = None
                action = {**action, "url": shown or action.get("url_hint")}
            out.append(action)
        return out

    def rule_out(rule_id: str, rule: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rule_id,
            "name": rule.get("name", ""),
            "enabled": rule.get("enabled", True) is not False,
            "trigger": rule.get("trigger") or {},
            "conditions": rule.get("conditions"),
            "actions": masked(rule),
            "created_by": rule.get("created_by"),
            "state": {
                "paused_reason": state.get("paused_reason"),
                "last_run_at": state.get("last_run_at"),
                "last_outcome": state.get("last_outcome"),
                "failures": state.get("failures", 0),
            },
        }

    async def project_rules(project: str) -> dict[str, dict[str, Any]]:
        view = await ctx.read(project)
        return auto.rules_of(view.doc)

    async def one(project: str, rule_id: str) -> dict[str, Any]:
        rule = (await project_rules(project)).get(rule_id)
        if rule is None:
            raise Problem(404, f"no rule {rule_id!r} in project {project!r}")
        return rule

    def states(project: str) -> dict[str, dict[str, Any]]:
        return auto.rule_summary(ctx.conn, project)

    async def write(user: Any, project: str, rule_id: str, rule: dict[str, Any] | None) -> None:
        def change(doc: Doc) -> None:
            rules = doc.get("rules", type=Map)
            if rule is None:
                del rules[rule_id]
            else:
                rules[rule_id] = Map(rule)

        await ctx.edit(user, project, DocKind.MAIN, change)

    @bp.get("/projects/<project>/rules/")
    @document_response(RuleList)
    @_problems(403, 404)
    async def list_rules(project: str):
        only_args()
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        rules = await project_rules(project)
        summary = states(project)
        items = [rule_out(i, r, summary.get(i, {})) for i, r in sorted(rules.items())]
        return json_response({"items": items, "total": len(items)})

    @bp.post("/projects/<project>/rules/")
    @document_request(RuleBody)
    @document_response(RuleOut, 201)
    @_problems(400, 403, 404, 413, 415, 422)
    async def create_rule(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        rule = check(await body_json(), owner=user.name)
        rule = await hide_secrets(project, rule, None)
        rule_id = new_id()
        await write(user, project, rule_id, {**rule, "created_by": user.name})
        stored = await one(project, rule_id)
        return json_response(
            rule_out(rule_id, stored, {}),
            201,
            headers={"Location": f"/api/v1/projects/{project}/rules/{rule_id}/"},
        )

    @bp.get("/projects/<project>/rules/<rule_id>/")
    @document_response(RuleOut)
    @_problems(403, 404)
    async def get_rule(project: str, rule_id: str):
        only_args()
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        rule = await one(project, rule_id)
        return json_response(rule_out(rule_id, rule, states(project).get(rule_id, {})))

    async def change_rule(project: str, rule_id: str, partial: bool):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        before = await one(project, rule_id)
        data = await body_json()
        if partial:
            if not isinstance(data, dict):
                raise Problem(422, "body: a rule is a JSON object", field="body")
            current = {k: v for k, v in before.items() if k in RULE_FIELDS}
            # the URLs the rule holds stay as they are unless the patch gives actions
            data = {**current, **data}
        rule = check(data, owner=user.name)
        rule = await hide_secrets(project, rule, before)
        # the rule now acts for whoever changed it last (they hold edit_project)
        await write(user, project, rule_id, {**rule, "created_by": user.name})
        stored = await one(project, rule_id)
        return json_response(rule_out(rule_id, stored, states(project).get(rule_id, {})))

    @bp.put("/projects/<project>/rules/<rule_id>/")
    @document_request(RuleBody)
    @document_response(RuleOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def replace_rule(project: str, rule_id: str):
        return await change_rule(project, rule_id, partial=False)

    @bp.patch("/projects/<project>/rules/<rule_id>/")
    @document_request(RulePatch)
    @document_response(RuleOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def patch_rule(project: str, rule_id: str):
        return await change_rule(project, rule_id, partial=True)

    @bp.delete("/projects/<project>/rules/<rule_id>/")
    @document_response(NoContent, 204)
    @_problems(403, 404)
    async def delete_rule(project: str, rule_id: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        await one(project, rule_id)
        await write(user, project, rule_id, None)
        return Response(status=204)

    @bp.post("/projects/<project>/rules/<rule_id>/test/")
    @document_request(DryRunBody)
    @document_response(DryRunOut)
    @_problems(400, 403, 404, 413, 415, 422)
    async def dry_run(project: str, rule_id: str):
        user = ctx.user()
        project = ctx.project_read(user, project, "tasks")
        data = await body_json()
        if not isinstance(data, dict):
            raise Problem(422, "body: expected a JSON object", field="body")
        stray = sorted(set(data) - {"task", "event"})
        if stray:
            raise Problem(422, f"{stray[0]}: unknown field; give task and/or event", field=stray[0])
        rule = await one(project, rule_id)
        view = await ctx.read(project)
        snapshot = auto.project_json(view.doc, project)
        task = None
        task_id = data.get("task")
        if task_id is not None:
            if not isinstance(task_id, str):
                raise Problem(422, "task: a task id (string)", field="task")
            task = next((t for t in snapshot["tasks"] if t["id"] == task_id), None)
            if task is None:
                raise Problem(422, f"task: no task {task_id!r} in this project", field="task")
        if data.get("event") is not None:
            raw = data["event"]
            if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
                raise Problem(422, "event.kind: a domain event needs a kind", field="event.kind")
            try:
                event = DomainEvent.from_json(raw)
            except Exception as e:
                raise Problem(422, f"event: {e}", field="event") from None
        else:
            event = synthetic_event(rule.get("trigger") or {}, task)
        model = automation.runner.rule_model(rule_id, rule) if automation.runner else None
        if model is None:
            raise Problem(422, f"rule {rule_id!r} does not validate; fix it first", field="rule")
        evaluation = auto.evaluate(rule_id, model, event, snapshot, depth=0)
        return json_response(
            {
                "rule": rule_id,
                "event": event.to_json(),
                "triggered": evaluation.triggered,
                "matched": evaluation.matched,
                "skipped": evaluation.skipped,
                "conditions": [dataclasses.asdict(c) for c in evaluation.conditions],
                "intents": [intent_json(i) for i in evaluation.intents],
            }
        )

    @bp.get("/projects/<project>/rules/<rule_id>/runs/")
    @document_response(RunList)
    @_problems(400, 403, 404)
    async def rule_runs(project: str, rule_id: str):
        only_args("limit")
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        limit = simple_int("limit", 50, 1, auto.RUNS_LIMIT)
        await one(project, rule_id)
        return json_response({"items": auto.list_runs(ctx.conn, project, rule_id, limit)})

    @bp.get("/projects/<project>/deliveries/")
    @document_response(DeliveryList)
    @_problems(403, 404, 503)
    async def deliveries(project: str):
        only_args()
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        outbox = automation.outbox
        if outbox is None:
            raise Problem(503, "this server has no outbox")
        items = await auto.maybe_await(outbox.deliveries(project))
        return json_response({"items": [_plain(i) for i in items]})

    return bp


def _plain(item: Any) -> Any:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json")
    return item
