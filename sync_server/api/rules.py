"""REST API for automation: a project's rules, a dry run, runs, and the outbox's deliveries.

    GET/POST                /api/v1/projects/<id>/rules/
    GET/PUT/PATCH/DELETE    /api/v1/projects/<id>/rules/<rule id>/
    POST                    /api/v1/projects/<id>/rules/<rule id>/test/    (dry run)
    GET                     /api/v1/projects/<id>/rules/<rule id>/runs/
    GET                     /api/v1/projects/<id>/deliveries/
    GET/POST                /api/v1/projects/<id>/webhook-secret/    (POST: a new one)

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
import functools
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response
from werkzeug.exceptions import HTTPException

from doc_model import DocKind, DomainEvent, new_id
from rules import Permission
from rules.automation import RuleInvalid, evaluate, rule_json, to_document_form, validate_rule
from sync_server.api.common import ApiContext, json_response
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.params import only_args, simple_int
from sync_server.api.problems import Problem
from sync_server.extensions import automation as auto
from sync_server.identity import accounts

if TYPE_CHECKING:
    from sync_server.extensions.automation import AutomationExtension
    from sync_server.extensions.context import TandemContext

P = Permission
STATUSES = ("pending", "sending", "delivered", "dead")
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


class SkippedAction(BaseModel):
    action: int = Field(description="the action's index in the rule")
    why: str


class DryRunOut(BaseModel):
    rule: str
    event: dict[str, Any]
    triggered: bool
    matched: bool
    skipped: str | None = None
    conditions: list[ConditionOut]
    intents: list[dict[str, Any]]
    actions_skipped: list[SkippedAction] = []


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


class SigningSecretOut(BaseModel):
    secret: str = Field(
        description="the key of the X-Tandem-Signature-256 HMAC-SHA256 of webhook bodies"
    )


class DeliveryOut(BaseModel):
    id: int
    project: str
    key: str
    channel: str
    target: str = Field(description="the masked URL; empty for email")
    status: str = Field(description="pending, sending, delivered or dead")
    attempts: int
    next_attempt_at: float | None = None
    last_error: str | None = None
    last_status: int | None = None
    created: float
    delivered_at: float | None = None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


# -- helpers --------------------------------------------------------------------------------


def synthetic_event(
    trigger: dict[str, Any], task: dict[str, Any] | None, rule_id: str
) -> DomainEvent:
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
            kind,
            entity=entity,
            detail={"rule": rule_id, "due": task.get("due") if task else None},
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

    def invalid(e: RuleInvalid) -> Problem:
        path = e.path or "body"
        return Problem(422, f"{path}: {e.message}", field=path)

    async def document_form(
        project: str, data: Any, current: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The rule to store: a REST rule validated and its URLs put in the secret store (on
        the runner's database thread); a PATCH without ``actions`` keeps the rule's own."""
        if not isinstance(data, dict):
            raise Problem(422, "body: a rule is a JSON object", field="body")
        if "created_by" in data:
            raise Problem(422, "created_by: set by the server", field="created_by")
        if current is not None:
            kept = {k: v for k, v in current.items() if k in RULE_FIELDS}
            if "actions" not in data:
                try:
                    return rule_json(validate_rule({**kept, **data}, "document"))
                except RuleInvalid as e:
                    raise invalid(e) from None
            data = {**{k: v for k, v in kept.items() if k != "actions"}, **data}
        secrets, db = automation.secrets, automation.outbox_db
        if secrets is None or db is None:
            raise Problem(503, "automation is not running on this server")

        def put(kind: str, url: str) -> str:
            return secrets.put_sync(project, kind, url)

        try:
            rule = await db.run(
                functools.partial(
                    to_document_form, data, put, allow_http=server.outbound.allow_private
                )
            )
        except RuleInvalid as e:
            raise invalid(e) from None
        return rule_json(rule)

    def rule_out(rule_id: str, rule: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        actions = []
        for action in rule.get("actions") or []:
            if isinstance(action, dict) and "url_ref" in action:
                hint = action.get("url_hint") or "…"
                action = {k: v for k, v in action.items() if k not in ("url_ref", "url_hint")}
                action["url"] = hint  # masked: the URL itself never leaves the server
            actions.append(action)
        return {
            "id": rule_id,
            "name": rule.get("name", ""),
            "enabled": rule.get("enabled", True) is not False,
            "trigger": rule.get("trigger") or {},
            "conditions": rule.get("conditions"),
            "actions": actions,
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

    async def write(
        user: accounts.User, project: str, rule_id: str, rule: dict[str, Any] | None
    ) -> None:
        def change(doc: Doc) -> None:
            rules = doc.get("rules", type=Map)
            if rule is None:
                del rules[rule_id]
            else:
                rules[rule_id] = Map(rule)

        await ctx.edit(user, project, DocKind.MAIN, change)

    @bp.get("/projects/<project>/rules/")
    @document_response(RuleList)
    @_problems(400, 403, 404)
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
    @_problems(400, 403, 404, 413, 415, 422, 503)
    async def create_rule(project: str):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        rule = await document_form(project, await body_json(), None)
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
    @_problems(400, 403, 404)
    async def get_rule(project: str, rule_id: str):
        only_args()
        user = ctx.user()
        project = ctx.project(user, project, P.VIEW_PROJECT)
        rule = await one(project, rule_id)
        return json_response(rule_out(rule_id, rule, states(project).get(rule_id, {})))

    async def change_rule(project: str, rule_id: str, partial: bool):
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        current = await one(project, rule_id)
        rule = await document_form(project, await body_json(), current if partial else None)
        # the rule acts for whoever changed it last (they hold edit_project)
        await write(user, project, rule_id, {**rule, "created_by": user.name})
        stored = await one(project, rule_id)
        return json_response(rule_out(rule_id, stored, states(project).get(rule_id, {})))

    @bp.put("/projects/<project>/rules/<rule_id>/")
    @document_request(RuleBody)
    @document_response(RuleOut)
    @_problems(400, 403, 404, 413, 415, 422, 503)
    async def replace_rule(project: str, rule_id: str):
        return await change_rule(project, rule_id, partial=False)

    @bp.patch("/projects/<project>/rules/<rule_id>/")
    @document_request(RulePatch)
    @document_response(RuleOut)
    @_problems(400, 403, 404, 413, 415, 422, 503)
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
        if automation.runner is None:
            raise Problem(503, "automation is not running on this server")
        _rules, read = await automation.runner.read(project)
        view = await ctx.read(project)
        snapshot = read or auto.prepare_project(auto.project_json(view.doc, project))
        task = None
        task_id = data.get("task")
        if task_id is not None:
            if not isinstance(task_id, str):
                raise Problem(422, "task: a task id (string)", field="task")
            task = auto.task_in(snapshot, task_id)
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
            event = synthetic_event(rule.get("trigger") or {}, task, rule_id)
        try:
            model = validate_rule(rule, "document")
        except RuleInvalid as e:
            raise Problem(
                422, f"rule {rule_id!r} does not validate ({e}); fix it first", field="rule"
            ) from None
        evaluation = evaluate(rule_id, model, event, snapshot, depth=0)
        return json_response(
            {
                "rule": rule_id,
                "event": event.to_json(),
                "triggered": evaluation.triggered,
                "matched": evaluation.matched,
                "skipped": evaluation.skipped,
                "conditions": [dataclasses.asdict(c) for c in evaluation.conditions],
                "intents": [intent_json(i) for i in evaluation.intents],
                "actions_skipped": [
                    {"action": index, "why": why} for index, why in evaluation.actions_skipped
                ],
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
    @_problems(400, 403, 404, 503)
    async def deliveries(project: str):
        only_args("limit", "status")
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        limit = simple_int("limit", 50, 1, 500)
        status = request.args.get("status")
        if status is not None and status not in STATUSES:
            raise Problem(
                400, f"status: one of {', '.join(STATUSES)}, not {status!r}", field="status"
            )
        outbox = automation.outbox
        if outbox is None:
            raise Problem(503, "this server has no outbox")
        items = await outbox.deliveries(project, limit, status=status)
        return json_response({"items": [d.to_json() for d in items]})

    async def signing(project: str, rotate: bool) -> Response:
        user = ctx.user()
        project = ctx.project(user, project, P.EDIT_PROJECT)
        secrets = automation.secrets
        if secrets is None:
            raise Problem(503, "this server has no secret store")
        if rotate:
            secret = await secrets.rotate_signing_secret(project)
        else:
            secret = await secrets.signing_secret(project)
        return json_response({"secret": secret}, headers={"Cache-Control": "no-store"})

    @bp.get("/projects/<project>/webhook-secret/")
    @document_response(SigningSecretOut)
    @_problems(403, 404, 503)
    async def get_signing_secret(project: str):
        """The secret a webhook receiver checks ``X-Tandem-Signature-256`` with
        (``sha256=<hex HMAC-SHA256 of the body>``); made on first use."""
        only_args()
        return await signing(project, rotate=False)

    @bp.post("/projects/<project>/webhook-secret/")
    @document_response(SigningSecretOut)
    @_problems(403, 404, 503)
    async def rotate_signing_secret(project: str):
        """A new signing secret: webhooks sent from now on are signed with it."""
        return await signing(project, rotate=True)

    return bp
