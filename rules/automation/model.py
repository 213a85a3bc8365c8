"""The automation rule model (pydantic v2), and its validation with the JSON path at fault.

A rule, as REST takes it::

    {"name": "Tell the hook when an important task is done", "enabled": true,
     "trigger": {"type": "task_status_changed", "to": "done"},
     "conditions": {"all": [{"field": "priority", "op": "in", "value": ["high", "urgent"]}]},
     "actions": [{"type": "webhook", "url": "https://example.com/hook"}]}

Two forms (``validate_rule(data, form=...)``):

- ``"rest"``: webhook / slack / teams actions carry ``url`` (https; http too when
  ``allow_http``, which the server passes when ``TANDEM_OUTBOUND_ALLOW_PRIVATE`` is set;
  only the syntax is checked here, where it points is ``integrations.outbound``'s job);
  ``created_by`` is not accepted (the server sets it).
- ``"document"`` (the project document's ``rules`` root, what the gate checks): those
  actions carry ``url_ref`` (``"secret:<id>"``, see ``integrations.secrets``) and an
  optional ``url_hint`` (the masked URL, for display), never ``url``; ``created_by`` is
  allowed (the server writes it).

:func:`to_document_form` turns a REST rule into the document's (storing each URL through
a function the caller passes); :func:`to_rest_form` shows a document rule over REST (URLs
masked). :func:`rule_json` is a rule as plain JSON (what the document stores).

Triggers (``trigger.type``, with their options):

==========================  ===============================================================
``task_created``
``task_status_changed``     ``from``, ``to``: column ids (optional)
``task_assigned``           ``user``: only when this user is added (optional)
``due_date_approaching``    ``within``: ``{"hours": n}`` or ``{"days": n}``; ``timezone``
``task_overdue``            ``timezone``
``comment_posted``
``mentioned``               ``user``: only mentions of this user (optional)
``milestone_completed``
``project_status_changed``  ``from``, ``to``: project statuses (optional)
``budget_exceeded``         ``percent``: spent / budget crosses it (0 < percent <= 1000)
``resource_overallocated``  ``capacity``: percent a person can carry (default 100)
``schedule``                ``cron``: five fields (``rules.automation.schedule``); ``timezone``
==========================  ===============================================================

``timezone`` is an IANA name (default ``UTC``): the project document has no time zone of
its own yet, so a rule that needs one names it.

Conditions: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a leaf
``{"field": F, "op": OP, "value": V}``. ``F`` is a task field (``priority``, ``status``,
``labels``..., ``custom.NAME`` for a custom field) or a project field (``project.status``,
``project.name``...). Operators: see :data:`OPERATORS` and ``rules.automation.conditions``.

Actions (``actions[i].type``): ``notify`` / ``email`` (``to``: ``{"assignees": true,
"users": [...], "role": "finance"}``, at least one), ``slack`` / ``teams`` / ``webhook``
(a URL, see the forms above; ``text`` for slack / teams), ``set_status`` (``status``),
``set_field`` (``field``, ``value``), ``assign`` (``users``), ``add_label`` (``label``),
``add_comment`` (``text``), ``create_subtasks`` (``titles``). Texts may name
``{task.title}``, ``{task.id}``, ``{task.status}``, ``{task.priority}``, ``{task.due}``,
``{project.name}``, ``{rule.name}``, ``{event.kind}``: they are replaced when the rule
runs (nothing else is interpreted).

Limits keep a rule from being a denial of service: at most :data:`MAX_ACTIONS` actions,
:data:`MAX_CONDITIONS` leaf conditions nested at most :data:`MAX_CONDITION_DEPTH` deep,
:data:`MAX_LIST` items in a list, names up to 200 characters, texts up to 10,000, and the
whole input at most :data:`MAX_NODES` JSON values nested at most :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from doc_model.check import Violation
from doc_model.schema import ENTITIES, ID_PATTERN, PRIORITIES, PROJECT_STATUSES, ROLE_PATTERN

from .schedule import CronError, TimeZoneError, parse_cron, time_zone

MAX_ACTIONS = 20
MAX_CONDITIONS = 50
MAX_CONDITION_DEPTH = 6
MAX_LIST = 100
MAX_JSON_DEPTH = 16
MAX_NODES = 5_000
MAX_TEXT = 10_000
MAX_URL = 2_000

Form = Literal["document", "rest"]


class RuleInvalid(Exception):
    """A rule that does not validate: ``path`` is the JSON path at fault (``actions[1].url``;
    ``""`` is the rule itself), ``message`` what is wrong there."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'rule'}: {message}")
        self.path = path
        self.message = message


# -- JSON paths --------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """``("actions", 1, "url")`` -> ``"actions[1].url"``; odd keys as ``["a.b"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def path_parts(path: str) -> list[str | int]:
    """The inverse of :func:`json_path`."""
    parts: list[str | int] = []
    index = 0
    while index < len(path):
        m = _PATH_PART.match(path, index)
        if m is None or m.end() == index:
            raise ValueError(f"not a JSON path: {path!r}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        index = m.end()
    return parts


def resolve_path(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data``; KeyError / IndexError / TypeError if absent."""
    value = data
    for part in path_parts(path):
        if isinstance(part, int):
            if not isinstance(value, list):
                raise TypeError(f"{path}: not a list")
            value = value[part]
        else:
            if not isinstance(value, dict):
                raise TypeError(f"{path}: not an object")
            value = value[part]
    return value


# -- field types --------------------------------------------------------------------------------

_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Column = Annotated[str, StringConstraints(min_length=1, max_length=64)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RoleName = Annotated[str, StringConstraints(pattern=f"^{ROLE_PATTERN}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
ProjectStatus = Literal["planning", "active", "on_hold", "completed", "archived"]
assert set(PROJECT_STATUSES) == {"planning", "active", "on_hold", "completed", "archived"}
SecretRef = Annotated[str, StringConstraints(pattern=r"^secret:[A-Za-z0-9_-]{1,64}$")]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = _config


def _check_zone(value: str) -> str:
    try:
        time_zone(value)
    except TimeZoneError as exc:
        raise ValueError(str(exc)) from None
    return value


# -- triggers ------------------------------------------------------------------------------------


class TaskCreated(_Model):
    type: Literal["task_created"]


class TaskStatusChanged(_Model):
    type: Literal["task_status_changed"]
    from_: Column | None = Field(default=None, alias="from")
    to: Column | None = None


class TaskAssigned(_Model):
    type: Literal["task_assigned"]
    user: UserId | None = None


class Within(_Model):
    hours: int | None = Field(default=None, ge=1, le=24 * 366)
    days: int | None = Field(default=None, ge=1, le=366)

    @model_validator(mode="after")
    def _one(self) -> Within:
        if (self.hours is None) == (self.days is None):
            raise ValueError('give either "hours" or "days"')
        return self

    def hours_total(self) -> int:
        return self.hours if self.hours is not None else 24 * (self.days or 0)


class DueDateApproaching(_Model):
    type: Literal["due_date_approaching"]
    within: Within
    timezone: TimeZoneName = "UTC"

    _zone = field_validator("timezone")(_check_zone)


class TaskOverdue(_Model):
    type: Literal["task_overdue"]
    timezone: TimeZoneName = "UTC"

    _zone = field_validator("timezone")(_check_zone)


class CommentPosted(_Model):
    type: Literal["comment_posted"]


class Mentioned(_Model):
    type: Literal["mentioned"]
    user: UserId | None = None


class MilestoneCompleted(_Model):
    type: Literal["milestone_completed"]


class ProjectStatusChanged(_Model):
    type: Literal["project_status_changed"]
    from_: ProjectStatus | None = Field(default=None, alias="from")
    to: ProjectStatus | None = None


class BudgetExceeded(_Model):
    type: Literal["budget_exceeded"]
    percent: float = Field(gt=0, le=1000, allow_inf_nan=False)


class ResourceOverallocated(_Model):
    type: Literal["resource_overallocated"]
    capacity: float = Field(default=100, gt=0, le=1000, allow_inf_nan=False)


class Schedule(_Model):
    type: Literal["schedule"]
    cron: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    timezone: TimeZoneName = "UTC"

    _zone = field_validator("timezone")(_check_zone)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            parse_cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value


Trigger = Annotated[
    TaskCreated
    | TaskStatusChanged
    | TaskAssigned
    | DueDateApproaching
    | TaskOverdue
    | CommentPosted
    | Mentioned
    | MilestoneCompleted
    | ProjectStatusChanged
    | BudgetExceeded
    | ResourceOverallocated
    | Schedule,
    Field(discriminator="type"),
]
TRIGGER_TYPES = (
    "task_created",
    "task_status_changed",
    "task_assigned",
    "due_date_approaching",
    "task_overdue",
    "comment_posted",
    "mentioned",
    "milestone_completed",
    "project_status_changed",
    "budget_exceeded",
    "resource_overallocated",
    "schedule",
)

# -- conditions (parsed by hand: a recursive union whose errors must name the input's path) ------

Operator = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "contains",
    "is_empty",
    "changed_from",
    "changed_to",
]
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]
TASK_FIELDS = tuple(sorted({"id", *ENTITIES["task"]} - {"custom"}))
PROJECT_FIELDS = tuple(sorted({"id", *ENTITIES["meta"]}))
_CUSTOM = re.compile(r"custom\.[^\s]{1,100}")


class Leaf(_Model):
    field: str
    op: Operator
    value: Any = None


class AllOf(_Model):
    all: tuple[Condition, ...]


class AnyOf(_Model):
    any: tuple[Condition, ...]


class Not(_Model):
    not_: Condition = Field(alias="not")


Condition = AllOf | AnyOf | Not | Leaf


def valid_field(name: Any) -> bool:
    """Whether ``name`` names a task field, a custom field or a project field."""
    if not isinstance(name, str):
        return False
    if name in TASK_FIELDS or _CUSTOM.fullmatch(name):
        return True
    return name.startswith("project.") and name[8:] in PROJECT_FIELDS


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def parse_conditions(data: Any, path: tuple[str | int, ...] = ("conditions",)) -> Condition:
    """Conditions from JSON, or RuleInvalid naming the path (see the module doc)."""
    counter = [0]
    return _condition(data, path, 1, counter)


def _condition(data: Any, path: tuple[str | int, ...], depth: int, count: list[int]) -> Condition:
    where = json_path(path)
    if not isinstance(data, dict):
        raise RuleInvalid(
            where,
            'expected an object: {"all": [...]}, {"any": [...]},'
            ' {"not": {...}} or {"field", "op", "value"}',
        )
    if depth > MAX_CONDITION_DEPTH:
        raise RuleInvalid(where, f"conditions nest at most {MAX_CONDITION_DEPTH} deep")
    groups = [k for k in ("all", "any", "not") if k in data]
    if groups:
        key = groups[0]
        for extra in data:
            if extra != key:
                raise RuleInvalid(json_path((*path, extra)), f'not allowed beside "{key}"')
        inner = data[key]
        if key == "not":
            return Not.model_construct(not_=_condition(inner, (*path, key), depth + 1, count))
        if not isinstance(inner, list):
            raise RuleInvalid(json_path((*path, key)), "expected a list of conditions")
        if len(inner) > MAX_LIST:
            raise RuleInvalid(json_path((*path, key)), f"at most {MAX_LIST} conditions")
        items = tuple(
            _condition(item, (*path, key, i), depth + 1, count) for i, item in enumerate(inner)
        )
        if key == "all":
            return AllOf.model_construct(all=items)
        return AnyOf.model_construct(any=items)
    return _leaf(data, path, count)


def _leaf(data: dict[str, Any], path: tuple[str | int, ...], count: list[int]) -> Leaf:
    for key in data:
        if key not in ("field", "op", "value"):
            raise RuleInvalid(
                json_path((*path, key)),
                'unknown key: a condition is "all", "any", "not" or "field" / "op" / "value"',
            )
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise RuleInvalid(json_path(path), f"at most {MAX_CONDITIONS} conditions in a rule")
    for key in ("field", "op"):
        if key not in data:
            raise RuleInvalid(json_path((*path, key)), "required")
    name, op = data["field"], data["op"]
    if not valid_field(name):
        raise RuleInvalid(
            json_path((*path, "field")),
            "expected a task field (" + ", ".join(TASK_FIELDS) + "), custom.NAME or project."
            "FIELD (" + ", ".join(PROJECT_FIELDS) + ")",
        )
    if op not in OPERATORS:
        raise RuleInvalid(json_path((*path, "op")), "expected one of " + ", ".join(OPERATORS))
    vpath = json_path((*path, "value"))
    has_value = "value" in data
    value = data.get("value")
    if op == "is_empty":
        if has_value and not isinstance(value, bool):
            raise RuleInvalid(vpath, "expected true (is empty) or false (is not empty)")
        value = True if not has_value else value
    elif not has_value:
        raise RuleInvalid(vpath, f'required for "{op}"')
    elif op in ("in", "not_in"):
        if not isinstance(value, list):
            raise RuleInvalid(vpath, f'expected a list for "{op}"')
        if len(value) > MAX_LIST:
            raise RuleInvalid(vpath, f"at most {MAX_LIST} values")
        for i, item in enumerate(value):
            if not _scalar(item) or (isinstance(item, str) and len(item) > 1000):
                raise RuleInvalid(f"{vpath}[{i}]", "expected a string, number, boolean or null")
        value = tuple(value)
    elif op in ("lt", "lte", "gt", "gte"):
        if isinstance(value, bool) or not (
            isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value))
        ):
            raise RuleInvalid(vpath, f'expected a number or a string (a date) for "{op}"')
    elif not _scalar(value):
        raise RuleInvalid(vpath, "expected a string, number, boolean or null")
    if isinstance(value, str) and len(value) > 1000:
        raise RuleInvalid(vpath, "at most 1000 characters")
    return Leaf.model_construct(field=name, op=op, value=value)


def conditions_json(cond: Condition) -> dict[str, Any]:
    if isinstance(cond, AllOf):
        return {"all": [conditions_json(c) for c in cond.all]}
    if isinstance(cond, AnyOf):
        return {"any": [conditions_json(c) for c in cond.any]}
    if isinstance(cond, Not):
        return {"not": conditions_json(cond.not_)}
    value = list(cond.value) if isinstance(cond.value, tuple) else cond.value
    return {"field": cond.field, "op": cond.op, "value": value}


# -- actions -------------------------------------------------------------------------------------


class Recipients(_Model):
    assignees: bool = False
    users: list[UserId] = Field(default=[], max_length=MAX_LIST)
    role: RoleName | None = None

    @model_validator(mode="after")
    def _someone(self) -> Recipients:
        if not (self.assignees or self.users or self.role):
            raise ValueError('name someone: "assignees": true, "users" or "role"')
        return self


class Notify(_Model):
    type: Literal["notify"]
    to: Recipients
    title: Annotated[str, StringConstraints(max_length=200)] = ""
    message: Text = ""


class Email(_Model):
    type: Literal["email"]
    to: Recipients
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: Text = ""


class _Outbound(_Model):
    url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL)] | None = None
    url_ref: SecretRef | None = None
    url_hint: Annotated[str, StringConstraints(max_length=300)] | None = None


class Webhook(_Outbound):
    type: Literal["webhook"]


class Slack(_Outbound):
    type: Literal["slack"]
    text: Text = ""


class Teams(_Outbound):
    type: Literal["teams"]
    text: Text = ""


class SetStatus(_Model):
    type: Literal["set_status"]
    status: Column


class SetField(_Model):
    type: Literal["set_field"]
    field: str
    value: Any = None


class Assign(_Model):
    type: Literal["assign"]
    users: list[UserId] = Field(min_length=1, max_length=MAX_LIST)


class AddLabel(_Model):
    type: Literal["add_label"]
    label: Label


class AddComment(_Model):
    type: Literal["add_comment"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


class CreateSubtasks(_Model):
    type: Literal["create_subtasks"]
    titles: list[Title] = Field(min_length=1, max_length=50)


Action = Annotated[
    Notify
    | Email
    | Slack
    | Teams
    | Webhook
    | SetStatus
    | SetField
    | Assign
    | AddLabel
    | AddComment
    | CreateSubtasks,
    Field(discriminator="type"),
]
ACTION_TYPES = (
    "notify",
    "email",
    "slack",
    "teams",
    "webhook",
    "set_status",
    "set_field",
    "assign",
    "add_label",
    "add_comment",
    "create_subtasks",
)
OutboundAction = Webhook | Slack | Teams

SETTABLE_FIELDS = ("title", "priority", "due", "start", "estimate", "milestone")
"""What ``set_field`` may set (and ``custom.NAME``); status has ``set_status``."""
_ID = re.compile(ID_PATTERN)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _set_field_problem(name: str, value: Any) -> tuple[str, str] | None:
    """(key, message) for a set_field action that cannot work, else None."""
    if not (name in SETTABLE_FIELDS or (isinstance(name, str) and _CUSTOM.fullmatch(name))):
        return "field", "expected one of " + ", ".join(SETTABLE_FIELDS) + " or custom.NAME"
    if name.startswith("custom."):
        if not _scalar(value) or (isinstance(value, str) and len(value) > MAX_TEXT):
            return "value", "expected a string, number, boolean or null"
        return None
    if name == "title":
        ok = isinstance(value, str) and 1 <= len(value) <= 500
        return None if ok else ("value", "expected a title of 1-500 characters")
    if name == "priority":
        return (
            None if value in PRIORITIES else ("value", "expected one of " + ", ".join(PRIORITIES))
        )
    if name in ("due", "start"):
        ok = value is None or (isinstance(value, str) and bool(_DATE.fullmatch(value)))
        if ok and value is not None:
            try:
                import datetime as _dt

                _dt.date.fromisoformat(value)
            except ValueError:
                ok = False
        return None if ok else ("value", "expected a date YYYY-MM-DD or null")
    if name == "estimate":
        ok = value is None or (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= 1e9
        )
        return None if ok else ("value", "expected a number >= 0 or null")
    # milestone
    ok = value is None or (isinstance(value, str) and bool(_ID.fullmatch(value)))
    return None if ok else ("value", "expected a milestone id or null")


# -- the rule ------------------------------------------------------------------------------------


class Rule(_Model):
    """A validated rule. ``conditions`` None: the trigger alone decides."""

    name: Name
    enabled: bool = True
    trigger: Trigger
    conditions: Condition | None = None
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)
    created_by: UserId | None = None  # document form: the owner the rule acts as (server-set)


def _shape_limits(data: Any) -> None:
    """Refuse inputs too deep or too big to be a rule, before reading them."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    nodes = 0
    while stack:
        value, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise RuleInvalid(json_path(path), f"a rule holds at most {MAX_NODES} JSON values")
        if len(path) > MAX_JSON_DEPTH:
            raise RuleInvalid(json_path(path), f"nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise RuleInvalid(json_path(path), "object keys must be strings")
                stack.append((item, (*path, key)))
        elif isinstance(value, list | tuple):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise RuleInvalid(json_path(path), "expected a finite number")
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            raise RuleInvalid(json_path(path), f"at most {MAX_TEXT} characters")


def _error_path(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A pydantic error location without the discriminator tags pydantic inserts: the
    trigger's (``("trigger", "schedule", "cron")``) and each action's
    (``("actions", 1, "webhook", "url")``)."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "actions" and isinstance(parts[1], int):
        del parts[2]
    elif len(parts) >= 2 and parts[0] == "trigger":
        del parts[1]
    return tuple(parts)


_TAG_ERRORS = {"union_tag_not_found", "union_tag_invalid"}


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "union_tag_not_found":
        return "required"
    if kind == "union_tag_invalid":
        where = error["loc"][0]
        options = TRIGGER_TYPES if where == "trigger" else ACTION_TYPES
        return "expected one of " + ", ".join(options)
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(error.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def validate_rule(data: Any, form: Form = "document", *, allow_http: bool = False) -> Rule:
    """A :class:`Rule` from JSON, or :class:`RuleInvalid` naming the path at fault."""
    if form not in ("document", "rest"):
        raise ValueError(f"form: 'document' or 'rest', not {form!r}")
    _shape_limits(data)
    if not isinstance(data, dict):
        raise RuleInvalid("", "expected an object with name, trigger and actions")
    if form == "rest" and "created_by" in data:
        raise RuleInvalid("created_by", "set by the server")
    if "created_by" in data and data["created_by"] is None:
        raise RuleInvalid("created_by", "expected a user id, or no created_by at all")
    conditions: Condition | None = None
    if data.get("conditions") is not None:
        conditions = parse_conditions(data["conditions"])
    rest = {k: v for k, v in data.items() if k != "conditions"}
    try:
        rule = Rule.model_validate(rest)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        path = _error_path(loc)
        if error["type"] in _TAG_ERRORS:
            path = (*path, "type")
        raise RuleInvalid(json_path(path), _message(error)) from None
    for i, action in enumerate(rule.actions):
        _check_action(action, i, form, allow_http, data["actions"][i])
    if conditions is not None:
        rule = rule.model_copy(update={"conditions": conditions})
    return rule


def _check_action(action: Any, index: int, form: Form, allow_http: bool, raw: Any) -> None:
    base: tuple[str | int, ...] = ("actions", index)
    if isinstance(action, SetField):
        problem = _set_field_problem(action.field, action.value)
        if problem is not None:
            raise RuleInvalid(json_path((*base, problem[0])), problem[1])
        return
    if not isinstance(action, Webhook | Slack | Teams):
        return
    if form == "rest":
        for key in ("url_ref", "url_hint"):
            if key in raw:
                raise RuleInvalid(json_path((*base, key)), 'not accepted over REST: give "url"')
        if action.url is None:
            raise RuleInvalid(json_path((*base, "url")), "required")
        bad_url = url_problem(action.url, allow_http=allow_http)
        if bad_url is not None:
            raise RuleInvalid(json_path((*base, "url")), bad_url)
    else:
        if action.url is not None:
            raise RuleInvalid(
                json_path((*base, "url")),
                'a URL is a secret and never enters the document: "url_ref" names it',
            )
        if action.url_ref is None:
            raise RuleInvalid(json_path((*base, "url_ref")), 'required ("secret:<id>")')


def url_problem(url: str, *, allow_http: bool = False) -> str | None:
    """What is wrong with an outbound URL's syntax, or None."""
    if any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        return "no spaces or control characters in a URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        return f"not a URL: {exc}"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return "expected an https:// URL" + (" (or http://)" if allow_http else "")
    if not parts.hostname:
        return "expected a host name"
    if parts.username is not None or parts.password is not None:
        return "no user name or password in the URL"
    return None


def mask_url(url: str) -> str:
    """A URL shown without its secret part: scheme and host, then an ellipsis."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "…"
    return f"{parts.scheme}://{host}/…" if host else "…"


def rule_json(rule: Rule) -> dict[str, Any]:
    """A rule as plain JSON, the keys as given (``from``, ``not``), defaults included."""
    out = rule.model_dump(mode="json", by_alias=True, exclude={"conditions"}, exclude_none=True)
    out["actions"] = [
        a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in rule.actions
    ]
    if rule.conditions is not None:
        out["conditions"] = conditions_json(rule.conditions)
    return out


def to_document_form(
    data: Any,
    put_secret: Callable[[str, str], str],
    *,
    allow_http: bool = False,
    mask: Callable[[str], str] = mask_url,
) -> Rule:
    """A REST rule validated and turned into its document form: each URL stored through
    ``put_secret(kind, url) -> "secret:<id>"`` and replaced by that reference and
    ``mask(url)`` (``url_hint``, which every member reads: by default scheme and host only).

    ``created_by`` is for the caller to set (``rule.model_copy(update=...)``)."""
    rule = validate_rule(data, "rest", allow_http=allow_http)
    actions: list[Any] = []
    for action in rule.actions:
        if isinstance(action, Webhook | Slack | Teams) and action.url is not None:
            ref = put_secret(action.type, action.url)
            action = action.model_copy(
                update={"url": None, "url_ref": ref, "url_hint": mask(action.url)[:300]}
            )
        actions.append(action)
    return rule.model_copy(update={"actions": actions})


def to_rest_form(rule: Rule) -> dict[str, Any]:
    """A document rule as REST shows it: each URL as its mask (``url``), no reference."""
    out = rule_json(rule)
    for action in out["actions"]:
        if "url_ref" in action:
            action.pop("url_ref")
            action["url"] = action.pop("url_hint", None) or "…"
    return out


def check_document_rule(value: Any, path: str) -> list[Violation]:
    """The gate's check of a ``rules`` entry (``doc_model.check.EntityCheck``): the rule in
    document form, its fault named as a document path (``rules/<id>/actions/1/url``)."""
    try:
        validate_rule(value, "document")
    except RuleInvalid as exc:
        parts = path_parts(exc.path) if exc.path else []
        where = "/".join([path, *(str(p) for p in parts)])
        return [Violation(where, "a valid automation rule", "an invalid one", exc.message)]
    return []


__all__ = [
    "ACTION_TYPES",
    "OPERATORS",
    "TRIGGER_TYPES",
    "Action",
    "AllOf",
    "AnyOf",
    "Condition",
    "Leaf",
    "Not",
    "Rule",
    "RuleInvalid",
    "Trigger",
    "check_document_rule",
    "json_path",
    "mask_url",
    "resolve_path",
    "rule_json",
    "to_document_form",
    "to_rest_form",
    "url_problem",
    "validate_rule",
]

for _model in (AllOf, AnyOf, Not, Rule):
    _model.model_rebuild()
