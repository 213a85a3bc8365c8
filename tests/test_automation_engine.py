"""The automation engine (rules.automation): the rule model, conditions, triggers, the cron
schedule and evaluate(); and the gate refusing an invalid rule from a real client."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from doc_model import (
    Change,
    DocKind,
    create_project_meta,
    declare_roots,
    new_document,
    parse_doc_name,
)
from doc_model.allocation import overallocated, peak_load
from doc_model.domain_events import normalize
from doc_model.events import DomainEvent
from rules import BUILTIN_ROLES, Permission, decide
from rules.automation import (
    EditIntent,
    Evaluation,
    NotifyIntent,
    OutboundIntent,
    RuleInvalid,
    evaluate,
    prepare_project,
    rule_json,
    to_document_form,
    to_rest_form,
    validate_rule,
)
from rules.automation.conditions import apply
from rules.automation.model import (
    ACTION_TYPES,
    MAX_ACTIONS,
    OPERATORS,
    PROJECT_FIELDS,
    TASK_FIELDS,
    TRIGGER_TYPES,
    AddLabel,
    Slack,
    check_document_rule,
    mask_url,
    path_parts,
    resolve_path,
)
from rules.automation.schedule import (
    CronError,
    approaching_at,
    due_instant,
    is_approaching,
    is_overdue,
    next_fire,
    overdue_at,
    parse_cron,
    time_zone,
)
from rules.automation.triggers import KINDS, SCHEDULER_KINDS, SNAPSHOT_NEEDS
from sync_server.core.gate import Gate
from sync_server.interfaces import Actor

from .conftest import node_available, run_node, stored_doc
from .raw_client import RawClient

EXAMPLES = int(os.environ.get("TANDEM_AUTOMATION_EXAMPLES", "300"))
UTC = dt.UTC

# -- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
USERS = ["ann", "bob", "cy"]
COLUMNS = ["todo", "doing", "done"]
words = st.sampled_from(["", "x", "done", "high", "2026-12-01", "ann", "{task.title}", "é"])
maybe = st.one_of(words, scalars, st.sampled_from(USERS + COLUMNS))


def _pick(draw: st.DrawFn, good: st.SearchStrategy, bad: st.SearchStrategy) -> Any:
    """Mostly a valid value, now and then a wrong one (so about half the rules validate)."""
    return draw(bad) if draw(st.integers(0, 40)) == 0 else draw(good)


@st.composite
def triggers(draw: st.DrawFn) -> Any:
    kind = _pick(draw, st.sampled_from(TRIGGER_TYPES), st.sampled_from(["nope", "", 3]))
    t: dict[str, Any] = {"type": kind}
    options = {
        "task_status_changed": ["from", "to"],
        "task_assigned": ["user"],
        "due_date_approaching": ["within!", "timezone"],
        "task_overdue": ["timezone"],
        "mentioned": ["user"],
        "project_status_changed": ["status_from", "status_to"],
        "budget_exceeded": ["percent!"],
        "resource_overallocated": ["capacity"],
        "schedule": ["cron!", "timezone"],
    }.get(kind, [])
    for option in options:
        key = option.rstrip("!").removeprefix("status_")
        if not option.endswith("!") and draw(st.booleans()):
            continue
        if option == "within!":
            good = st.one_of(
                st.fixed_dictionaries({"days": st.integers(1, 3)}),
                st.fixed_dictionaries({"hours": st.integers(1, 30)}),
            )
            t[key] = _pick(draw, good, st.one_of(st.just({"days": 0}), json_values))
        elif key == "timezone":
            good = st.sampled_from(["UTC", "Europe/Berlin"])
            t[key] = _pick(draw, good, st.sampled_from(["Mars/Base", "../etc", 1]))
        elif key == "cron":
            good = st.sampled_from(["0 9 * * 1-5", "*/15 * * * *"])
            t[key] = _pick(draw, good, st.sampled_from(["61 * * * *", "x", ""]))
        elif key in ("percent", "capacity"):
            good = st.one_of(st.integers(1, 200), st.floats(1, 150))
            t[key] = _pick(draw, good, st.one_of(st.integers(-5, 0), words))
        elif option.startswith("status_"):
            good = st.sampled_from(["active", "on_hold", "completed"])
            t[key] = _pick(draw, good, st.sampled_from(["done", "", 3]))
        elif key in ("from", "to"):
            t[key] = _pick(draw, st.sampled_from(COLUMNS), st.sampled_from(["", 3]))
        else:
            t[key] = _pick(draw, st.sampled_from(USERS), maybe)
    if draw(st.integers(0, 40)) == 0:
        t[draw(st.text(max_size=5))] = draw(json_values)
    return t


FIELDS = [*TASK_FIELDS, "custom.size", "custom.team", "project.status", "project.name"]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> Any:
    choice = draw(st.integers(0, 9 if depth < 3 else 6))
    if choice >= 7:
        key = draw(st.sampled_from(["all", "any", "not"]))
        if key == "not":
            return {"not": draw(conditions(depth + 1))}
        return {key: draw(st.lists(conditions(depth + 1), max_size=3))}
    if draw(st.integers(0, 60)) == 0:
        return draw(json_values)
    field = _pick(draw, st.sampled_from(FIELDS), st.sampled_from(["bad", "custom.", 1]))
    op = _pick(draw, st.sampled_from(OPERATORS), st.sampled_from(["like", None]))
    leaf: dict[str, Any] = {"field": field, "op": op}
    if op in ("in", "not_in"):
        good = st.lists(st.one_of(maybe, st.sampled_from(["high", "urgent", "bug"])), max_size=3)
        leaf["value"] = _pick(draw, good, maybe)
    elif op in ("lt", "lte", "gt", "gte"):
        good = st.one_of(st.integers(-3, 10), st.sampled_from(["2026-12-01", "m"]))
        leaf["value"] = _pick(draw, good, st.sampled_from([None, True, [1]]))
    elif op == "is_empty":
        if draw(st.booleans()):
            leaf["value"] = _pick(draw, st.booleans(), maybe)
    elif draw(st.integers(0, 30)):
        good = st.one_of(maybe, st.sampled_from(["high", "done", "doing", "todo", "bug"]))
        leaf["value"] = _pick(draw, good, st.lists(maybe, min_size=1, max_size=2))
    return leaf


@st.composite
def actions(draw: st.DrawFn) -> Any:
    kind = _pick(draw, st.sampled_from(ACTION_TYPES), st.sampled_from(["explode", None]))
    a: dict[str, Any] = {"type": kind}
    to = st.fixed_dictionaries(
        {"assignees": st.booleans()},
        optional={
            "users": st.lists(st.sampled_from(USERS), min_size=1, max_size=2),
            "role": st.sampled_from(["finance", "manager"]),
        },
    ).filter(lambda t: t["assignees"] or t.get("users") or t.get("role"))
    if kind in ("notify", "email"):
        a["to"] = _pick(draw, to, st.sampled_from([{}, {"role": "Not A Role"}, []]))
        text = _pick(draw, words.filter(bool), st.just(""))
        a["subject" if kind == "email" else "message"] = text
    elif kind in ("webhook", "slack", "teams"):
        good = st.sampled_from(
            [{"url_ref": "secret:abc"}, {"url_ref": "secret:abc", "url_hint": "https://h/…"}]
        )
        bad = st.sampled_from([{"url": "https://example.com/hook"}, {"url_ref": "nope"}, {}])
        a.update(_pick(draw, good, bad))
    elif kind == "set_status":
        a["status"] = _pick(draw, st.sampled_from(COLUMNS), st.just(""))
    elif kind == "set_field":
        field, value = _pick(
            draw,
            st.sampled_from(
                [("priority", "high"), ("due", "2026-12-24"), ("estimate", 3), ("custom.size", 5)]
            ),
            st.sampled_from([("x", 1), ("due", "tomorrow"), ("priority", "meh")]),
        )
        a.update(field=field, value=value)
    elif kind == "assign":
        a["users"] = _pick(
            draw, st.lists(st.sampled_from(USERS), min_size=1, max_size=3), st.just([])
        )
    elif kind == "add_label":
        a["label"] = _pick(draw, st.sampled_from(["bug", "ui"]), st.just(""))
    elif kind == "add_comment":
        a["text"] = _pick(draw, words.filter(bool), st.just(""))
    elif kind == "create_subtasks":
        titles = st.lists(st.sampled_from(["a", "b {task.title}"]), min_size=1, max_size=3)
        a["titles"] = _pick(draw, titles, st.just([""]))
    if draw(st.integers(0, 60)) == 0:
        a[draw(st.text(max_size=5))] = draw(json_values)
    return a


@st.composite
def rule_like(draw: st.DrawFn) -> Any:
    """Mostly rule-shaped data (about half validates), sometimes anything at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(json_values)
    data: dict[str, Any] = {}
    if draw(st.integers(0, 40)):
        data["name"] = _pick(
            draw, st.sampled_from(["r", "Rule {task.title}"]), st.sampled_from(["", 5])
        )
    if draw(st.booleans()):
        data["enabled"] = _pick(draw, st.booleans(), st.just("yes"))
    if draw(st.integers(0, 40)):
        data["trigger"] = draw(triggers())
    if draw(st.booleans()):
        data["conditions"] = draw(st.one_of(st.none(), conditions()))
    if draw(st.integers(0, 40)):
        data["actions"] = _pick(draw, st.lists(actions(), min_size=1, max_size=4), st.just([]))
    if draw(st.integers(0, 30)) == 0:
        data[draw(st.sampled_from(["created_by", "extra"]))] = draw(json_values)
    return data


TASK_IDS = ["t1", "t2", "t3"]


@st.composite
def tasks(draw: st.DrawFn) -> dict[str, Any]:
    task: dict[str, Any] = {
        "title": draw(st.sampled_from(["A", "B", ""])),
        "status": draw(st.sampled_from([*COLUMNS, "review"])),
    }
    optional = {
        "priority": st.sampled_from(["low", "medium", "high", "urgent"]),
        "assignees": st.lists(st.sampled_from(USERS), max_size=2, unique=True),
        "labels": st.lists(st.sampled_from(["bug", "ui"]), max_size=2, unique=True),
        "due": st.sampled_from(["2026-12-01", "2026-12-24"]),
        "estimate": st.integers(0, 10),
        "custom": st.dictionaries(st.sampled_from(["size", "team"]), scalars, max_size=2),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            task[key] = draw(strategy)
    if draw(st.integers(0, 10)) == 0:
        task[draw(st.sampled_from(["priority", "custom", "labels"]))] = draw(json_values)
    return task


@st.composite
def projects(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from(TASK_IDS), unique=True, max_size=3))
    task_map = {i: draw(tasks()) for i in ids}
    project: dict[str, Any] = {
        "id": "p1",
        "meta": {"name": draw(words), "status": draw(st.sampled_from(["active", "on_hold"]))},
        "members": {"ann": "owner", "bob": "member"},
        "columns": draw(st.sampled_from([COLUMNS, [], ["a"]])),
        "tasks": task_map if draw(st.booleans()) else [{"id": k, **v} for k, v in task_map.items()],
    }
    if draw(st.booleans()):
        project["finance"] = {
            "budget": {"total": draw(st.one_of(st.none(), st.integers(0, 1000)))},
            "costs": {
                f"c{i}": {"amount": draw(st.integers(-50, 600))}
                for i in range(draw(st.integers(0, 3)))
            },
        }
    if draw(st.booleans()):
        project["resources"] = {
            "allocations": {
                f"a{i}": {
                    "user": draw(st.sampled_from(USERS)),
                    "percent": draw(st.integers(0, 100)),
                    **draw(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "start": st.sampled_from(["2026-01-01", "2026-06-01"]),
                                "end": st.sampled_from(["2026-03-01", "2026-12-31"]),
                            },
                        )
                    ),
                }
                for i in range(draw(st.integers(0, 3)))
            }
        }
    if draw(st.integers(0, 20)) == 0:
        project[draw(st.sampled_from(["tasks", "meta", "finance", "columns"]))] = draw(json_values)
    return project


EVENT_KINDS = sorted({k for kinds in KINDS.values() for k in kinds} | {"task_deleted", "x"})


def _realistic(draw: st.DrawFn, trigger: str | None = None) -> DomainEvent:
    task = draw(st.sampled_from(TASK_IDS))
    column = st.sampled_from(COLUMNS)
    options = [
        DomainEvent("task_created", task, None, None, draw(tasks())),
        DomainEvent("task_field_changed", task, "status", draw(column), draw(column)),
        DomainEvent("task_assignees_changed", task, None, [], ["bob"], {"added": ["bob"]}),
        DomainEvent("due_date_approaching", task, detail={"rule": "r1"}),
        DomainEvent("task_overdue", task, detail={"rule": "r1", "due": "2026-12-01"}),
        DomainEvent("comment_posted", task, None, None, {"text": "hi"}),
        DomainEvent("mention", "bob", None, None, "bob", {"task": task}),
        DomainEvent("milestone_completed", "m1", "done", False, True),
        DomainEvent("project_changed", None, "status", "active", "on_hold"),
        DomainEvent("cost_added", "c0", None, None, {"amount": 500, "task": task}),
        DomainEvent("budget_changed", None, "total", 5000, 100),
        DomainEvent("allocation_added", "a0", None, None, {"user": "bob"}),
        DomainEvent("allocation_changed", "a1", "percent", 1, 100),
        DomainEvent("schedule_fired", "r1"),
    ]
    if trigger is not None:
        options = [e for e in options if e.kind in KINDS[trigger]] or options
    return draw(st.sampled_from(options))


@st.composite
def events(draw: st.DrawFn) -> DomainEvent:
    if draw(st.integers(0, 3)):
        return _realistic(draw)
    kind = draw(st.sampled_from(EVENT_KINDS))
    return DomainEvent(
        kind=kind,
        entity=draw(st.one_of(st.none(), st.sampled_from([*TASK_IDS, "r1", "a0", "c0", "ann"]))),
        field=draw(st.one_of(st.none(), st.sampled_from(["status", "total", "amount", "percent"]))),
        before=draw(st.one_of(maybe, json_values)),
        after=draw(st.one_of(maybe, json_values, tasks())),
        detail=draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "added": st.lists(st.sampled_from(USERS), max_size=2),
                    "rule": st.sampled_from(["r1", "r2"]),
                    "due": st.sampled_from(["2026-12-01", "2026-12-24"]),
                    "task": st.sampled_from(TASK_IDS),
                    "before_unknown": st.just(True),
                },
            )
        ),
    )


# -- the property: validates and evaluates, or is refused with a path in the input -------------


def _path_in_input(data: Any, error: RuleInvalid) -> None:
    if error.path == "":
        return
    parts = path_parts(error.path)
    parent = data
    for part in parts[:-1]:
        parent = parent[part]  # every step but the last exists
    last = parts[-1]
    present = (isinstance(parent, dict) and last in parent) or (
        isinstance(parent, list) and isinstance(last, int) and last < len(parent)
    )
    assert present or error.message.startswith("required"), (error.path, error.message)
    if present:
        resolve_path(data, error.path)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule_like(),
    projects(),
    st.lists(events(), max_size=3),
    st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
    st.data(),
)
def test_any_json_validates_and_evaluates_or_is_refused_with_a_path_in_it(
    data, project, evs, depth, more
) -> None:
    try:
        rule = validate_rule(data, "document")
    except RuleInvalid as error:
        tally("refused")
        _path_in_input(data, error)
        return
    tally("valid")
    assert validate_rule(json.loads(json.dumps(rule_json(rule)))) == rule  # round trip
    assert check_document_rule(data, "rules/r1") == []
    task_ids = set(TASK_IDS)
    own = more.draw(st.composite(lambda draw: _realistic(draw, rule.trigger.type))())
    for event in [own, *evs]:
        result = evaluate("r1", rule, event, project, depth=depth)
        assert isinstance(result, Evaluation) and result.rule_id == "r1"
        assert evaluate("r1", rule, event, prepare_project(project), depth=depth) == result
        assert not result.matched or result.triggered
        if depth >= 3 and result.triggered and rule.enabled:
            assert result.skipped == "depth limit" and not result.intents
        if not result.matched:
            assert result.intents == () and result.actions_skipped == ()
        else:  # each action either does something or says why not
            done = [i.action_index for i in result.intents]
            assert sorted(done + [i for i, _ in result.actions_skipped]) == list(
                range(len(rule.actions))
            )
            if result.intents:
                tally("matched, with intents")
        if result.triggered:
            tally("triggered")
        for intent in result.intents:
            assert 0 <= intent.action_index < len(rule.actions)
            action = rule.actions[intent.action_index]
            if isinstance(intent, EditIntent):
                assert intent.action == action.type and intent.task_id in task_ids
            elif isinstance(intent, OutboundIntent):
                assert intent.channel == action.type
                assert intent.target in ("", "secret:abc")  # never a URL
                json.dumps(intent.payload)  # plain JSON
                if intent.channel == "slack":  # Block Kit's limits: 1-3000 characters
                    for block in intent.payload["blocks"]:
                        texts = [block.get("text", {}).get("text")] if "text" in block else []
                        texts += [f["text"] for f in block.get("fields", [])]
                        texts += [e["text"] for e in block.get("elements", [])]
                        assert all(isinstance(t, str) and 0 < len(t) <= 3000 for t in texts)
                if intent.channel == "email":
                    assert intent.payload["subject"] and intent.payload["text"]
            else:
                assert isinstance(intent, NotifyIntent) and action.type == "notify"
                assert intent.title and intent.body
        json.dumps([c.actual for c in result.conditions], default=str)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(json_values)
def test_arbitrary_json_never_escapes_as_another_error(data) -> None:
    for form in ("document", "rest"):
        try:
            validate_rule(data, form)  # type: ignore[arg-type]
        except RuleInvalid as error:
            _path_in_input(data, error)


# -- the model ------------------------------------------------------------------------------------

ISSUE_EXAMPLE = {
    "name": "Tell the hook when an important task is done",
    "enabled": True,
    "trigger": {"type": "task_status_changed", "to": "done"},
    "conditions": {"all": [{"field": "priority", "op": "in", "value": ["high", "urgent"]}]},
    "actions": [{"type": "webhook", "url": "https://example.com/hook"}],
}


def test_the_issue_example_in_both_forms() -> None:
    rule = validate_rule(ISSUE_EXAMPLE, "rest")
    assert rule_json(rule) == ISSUE_EXAMPLE
    with pytest.raises(RuleInvalid) as e:
        validate_rule(ISSUE_EXAMPLE, "document")
    assert e.value.path == "actions[0].url"
    stored: list[tuple[str, str]] = []

    def put_secret(kind: str, url: str) -> str:
        stored.append((kind, url))
        return "secret:s1"

    doc_rule = to_document_form(ISSUE_EXAMPLE, put_secret)
    assert stored == [("webhook", "https://example.com/hook")]
    doc_json = rule_json(doc_rule)
    assert doc_json["actions"] == [
        {"type": "webhook", "url_ref": "secret:s1", "url_hint": "https://example.com/…"}
    ]
    assert "example.com/hook" not in json.dumps(doc_json)  # the secret part is gone
    assert validate_rule(doc_json, "document") == doc_rule
    assert to_rest_form(doc_rule)["actions"] == [
        {"type": "webhook", "url": "https://example.com/…"}
    ]
    with pytest.raises(RuleInvalid) as e:
        validate_rule({**doc_json, "created_by": "ann"}, "rest")
    assert e.value.path == "created_by"
    assert validate_rule({**doc_json, "created_by": "ann"}).created_by == "ann"


def _rule(trigger: dict, actions: list | None = None, conditions: Any = None, **kw) -> dict:
    out = {
        "name": "r",
        "trigger": trigger,
        "actions": actions or [{"type": "notify", "to": {"assignees": True}}],
    }
    if conditions is not None:
        out["conditions"] = conditions
    return {**out, **kw}


BAD = [
    (_rule({"type": "nope"}), "trigger.type", "expected one of"),
    (_rule({}), "trigger.type", "required"),
    (_rule({"type": "task_created", "x": 1}), "trigger.x", "unknown key"),
    (_rule({"type": "schedule", "cron": "61 * * * *"}), "trigger.cron", "minute: 61"),
    (_rule({"type": "schedule", "cron": "* * * *"}), "trigger.cron", "expected 5 fields"),
    (
        _rule({"type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Base"}),
        "trigger.timezone",
        "unknown",
    ),
    (
        _rule({"type": "due_date_approaching", "within": {"hours": 2, "days": 1}}),
        "trigger.within",
        "either",
    ),
    (_rule({"type": "due_date_approaching"}), "trigger.within", "required"),
    (_rule({"type": "budget_exceeded", "percent": 0}), "trigger.percent", "greater than 0"),
    (_rule({"type": "budget_exceeded", "percent": "90"}), "trigger.percent", "valid number"),
    (
        _rule({"type": "task_created"}, [{"type": "webhook", "url": "http://x"}]),
        "actions[0].url",
        "secret",
    ),
    (
        _rule({"type": "task_created"}, [{"type": "notify", "to": {}}]),
        "actions[0].to",
        "name someone",
    ),
    (
        _rule({"type": "task_created"}, [{"type": "notify", "to": {"users": ["a", 3]}}]),
        "actions[0].to.users[1]",
        "string",
    ),
    (
        _rule({"type": "task_created"}, [{"type": "set_field", "field": "status", "value": "x"}]),
        "actions[0].field",
        "expected one of",
    ),
    (
        _rule(
            {"type": "task_created"}, [{"type": "set_field", "field": "due", "value": "2026-02-30"}]
        ),
        "actions[0].value",
        "date",
    ),
    (
        _rule({"type": "task_created"}, [{"type": "create_subtasks", "titles": []}]),
        "actions[0].titles",
        "at least 1",
    ),
    (_rule({"type": "task_created"}, [{"type": "explode"}]), "actions[0].type", "expected one of"),
    (
        _rule(
            {"type": "task_created"},
            [{"type": "notify", "to": {"assignees": True}}] * (MAX_ACTIONS + 1),
        ),
        "actions",
        "at most",
    ),
    (
        _rule(
            {"type": "task_created"},
            conditions={"all": [{"field": "nope", "op": "eq", "value": 1}]},
        ),
        "conditions.all[0].field",
        "task field",
    ),
    (
        _rule(
            {"type": "task_created"},
            conditions={"any": [{"field": "priority", "op": "like", "value": 1}]},
        ),
        "conditions.any[0].op",
        "expected one of",
    ),
    (
        _rule(
            {"type": "task_created"},
            conditions={"not": {"field": "priority", "op": "in", "value": "high"}},
        ),
        "conditions.not.value",
        "list",
    ),
    (
        _rule({"type": "task_created"}, conditions={"all": [], "any": []}),
        "conditions.any",
        "beside",
    ),
    (
        _rule({"type": "task_created"}, conditions={"field": "due", "op": "lt", "value": True}),
        "conditions.value",
        "number or a string",
    ),
    (
        _rule({"type": "task_created"}, conditions={"field": "due", "op": "eq"}),
        "conditions.value",
        "required",
    ),
    (_rule({"type": "task_created"}, conditions=[1]), "conditions", "expected an object"),
    ({"trigger": {"type": "task_created"}, "actions": []}, "name", "required"),
    ("rule", "", "expected an object"),
]


@pytest.mark.parametrize(("data", "path", "message"), BAD, ids=[b[1] or "root" for b in BAD])
def test_an_invalid_rule_names_the_path_at_fault(data, path, message) -> None:
    with pytest.raises(RuleInvalid) as e:
        validate_rule(data)
    assert (e.value.path, message.lower() in e.value.message.lower()) == (path, True), e.value


def test_rest_form_urls_are_https_unless_private_addresses_are_allowed() -> None:
    rule = _rule({"type": "task_created"}, [{"type": "slack", "url": "http://127.0.0.1:9/x"}])
    with pytest.raises(RuleInvalid) as e:
        validate_rule(rule, "rest")
    assert (e.value.path, e.value.message) == ("actions[0].url", "expected an https:// URL")
    action = validate_rule(rule, "rest", allow_http=True).actions[0]
    assert isinstance(action, Slack) and action.url == "http://127.0.0.1:9/x"
    for url, problem in [
        ("https://", "host"),
        ("https://u:p@example.com/", "password"),
        ("https://exa mple.com/", "spaces"),
        ("ftp://example.com/", "https"),
    ]:
        bad = _rule({"type": "task_created"}, [{"type": "teams", "url": url}])
        with pytest.raises(RuleInvalid, match=problem):
            validate_rule(bad, "rest")
    with pytest.raises(RuleInvalid) as e:
        validate_rule(
            _rule({"type": "task_created"}, [{"type": "webhook", "url_ref": "secret:a"}]), "rest"
        )
    assert e.value.path == "actions[0].url_ref"
    assert mask_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"


def test_size_limits_keep_a_rule_from_being_a_denial_of_service() -> None:
    deep: Any = {"field": "priority", "op": "eq", "value": "high"}
    for _ in range(10):
        deep = {"not": deep}
    with pytest.raises(RuleInvalid, match="deep") as e:
        validate_rule(_rule({"type": "task_created"}, conditions=deep))
    resolve_path({"conditions": deep}, e.value.path)
    many = {"any": [{"field": "priority", "op": "eq", "value": "high"}] * 60}
    with pytest.raises(RuleInvalid, match="at most"):
        validate_rule(_rule({"type": "task_created"}, conditions=many))
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    with pytest.raises(RuleInvalid, match="deep"):
        validate_rule(_rule({"type": "task_created"}, extra=nested))
    with pytest.raises(RuleInvalid, match="at most 200"):
        validate_rule({**_rule({"type": "task_created"}), "name": "x" * 201})
    with pytest.raises(RuleInvalid, match="JSON values"):
        validate_rule({**_rule({"type": "task_created"}), "junk": list(range(6000))})


# -- conditions: every operator -----------------------------------------------------------------

OPERATOR_CASES = [
    ("eq", "high", "high", True),
    ("eq", 1, True, False),  # true is not 1
    ("eq", 2.0, 2, True),
    ("ne", "low", "high", True),
    ("in", "high", ["high", "urgent"], True),
    ("in", ["bug", "ui"], ["ui"], True),  # a list field: any of its items
    ("not_in", "low", ["high", "urgent"], True),
    ("not_in", ["bug"], ["bug"], False),
    ("lt", 3, 5, True),
    ("lt", None, 5, False),
    ("lte", "2026-12-01", "2026-12-01", True),
    ("gt", "2026-12-24", "2026-12-01", True),
    ("gt", "3", 1, False),  # a string with a number: no order
    ("gte", 5, 5.0, True),
    ("contains", ["bug", "ui"], "bug", True),
    ("contains", "Fix the Login page", "login", True),
    ("contains", None, "x", False),
    ("is_empty", [], True, True),
    ("is_empty", "", False, False),
    ("is_empty", "x", False, True),
]


@pytest.mark.parametrize(("op", "actual", "value", "expected"), OPERATOR_CASES)
def test_each_operator(op, actual, value, expected) -> None:
    assert apply(op, actual, value) is expected


PROJECT: dict[str, Any] = {
    "id": "p1",
    "meta": {"name": "Apollo", "status": "active"},
    "members": {"ann": "owner", "bob": "member", "fin": "finance"},
    "columns": ["todo", "doing", "done"],
    "tasks": {
        "t1": {
            "title": "Launch",
            "status": "done",
            "priority": "high",
            "assignees": ["bob"],
            "labels": ["ui"],
            "due": "2026-12-24",
            "custom": {"size": 8, "team": "red"},
        },
        "t2": {"title": "Plan", "status": "todo", "priority": "low"},
    },
}


def _eval(rule: dict, event: DomainEvent, project: dict = PROJECT, **kw) -> Evaluation:
    return evaluate("r1", validate_rule(rule), event, project, **kw)


STATUS_DONE = DomainEvent(
    "task_field_changed", "t1", "status", "doing", "done", {"title": "Launch"}
)


@pytest.mark.parametrize(
    ("field", "op", "value", "matched"),
    [
        ("custom.size", "gte", 5, True),
        ("custom.team", "eq", "blue", False),
        ("project.status", "eq", "active", True),
        ("project.name", "contains", "apol", True),
        ("status", "changed_from", "doing", True),
        ("status", "changed_to", "done", True),
        ("status", "changed_to", "todo", False),
        ("priority", "changed_from", "low", False),  # the event did not change priority
        ("id", "eq", "t1", True),
    ],
)
def test_conditions_read_task_custom_and_project_fields_and_the_event(
    field, op, value, matched
) -> None:
    rule = _rule(
        {"type": "task_status_changed"}, conditions={"field": field, "op": op, "value": value}
    )
    result = _eval(rule, STATUS_DONE)
    assert result.triggered and result.matched is matched
    assert [(c.path, c.matched) for c in result.conditions] == [("conditions", matched)]


def test_all_any_not_combine_and_every_leaf_is_reported() -> None:
    cond: dict[str, Any] = {
        "all": [
            {"field": "priority", "op": "in", "value": ["high", "urgent"]},
            {
                "any": [
                    {"field": "labels", "op": "contains", "value": "bug"},
                    {"not": {"field": "due", "op": "is_empty"}},
                ]
            },
        ]
    }
    result = _eval(
        _rule({"type": "task_status_changed", "to": "done"}, conditions=cond), STATUS_DONE
    )
    assert result.matched
    assert [(c.path, c.matched) for c in result.conditions] == [
        ("conditions.all[0]", True),
        ("conditions.all[1].any[0]", False),
        ("conditions.all[1].any[1].not", False),
    ]
    cond["all"][0]["value"] = ["low"]
    assert not _eval(_rule({"type": "task_status_changed"}, conditions=cond), STATUS_DONE).matched


# -- triggers: every one ----------------------------------------------------------------------------

FINANCE: dict[str, Any] = {
    "budget": {"total": 1000},
    "costs": {"c1": {"amount": 850}, "c2": {"amount": 100}},
}
RESOURCES: dict[str, Any] = {
    "allocations": {
        "a1": {"user": "bob", "percent": 60, "start": "2026-01-01", "end": "2026-06-30"},
        "a2": {"user": "bob", "percent": 50, "start": "2026-06-01", "end": "2026-12-31"},
        "a3": {"user": "cy", "percent": 50},
    }
}
FULL = {**PROJECT, "finance": FINANCE, "resources": RESOURCES}

TRIGGER_CASES: list[tuple[dict, DomainEvent, bool]] = [
    (
        {"type": "task_created"},
        DomainEvent("task_created", "t2", None, None, {"title": "Plan"}),
        True,
    ),
    ({"type": "task_created"}, DomainEvent("task_deleted", "t2"), False),
    ({"type": "task_status_changed", "to": "done"}, STATUS_DONE, True),
    ({"type": "task_status_changed", "from": "todo"}, STATUS_DONE, False),
    (
        {"type": "task_status_changed"},
        DomainEvent("task_field_changed", "t1", "title", "a", "b"),
        False,
    ),
    (
        {"type": "task_assigned"},
        DomainEvent(
            "task_assignees_changed", "t1", None, [], ["bob"], {"added": ["bob"], "removed": []}
        ),
        True,
    ),
    (
        {"type": "task_assigned", "user": "cy"},
        DomainEvent(
            "task_assignees_changed", "t1", None, [], ["bob"], {"added": ["bob"], "removed": []}
        ),
        False,
    ),
    (
        {"type": "task_assigned"},
        DomainEvent(
            "task_assignees_changed", "t1", None, ["bob"], [], {"added": [], "removed": ["bob"]}
        ),
        False,
    ),
    (
        {"type": "task_assigned"},
        DomainEvent("task_created", "t1", None, None, {"assignees": ["bob"]}),
        True,
    ),
    (
        {"type": "due_date_approaching", "within": {"days": 2}},
        DomainEvent("due_date_approaching", "t2", detail={"rule": "r1"}),
        True,
    ),
    (
        {"type": "due_date_approaching", "within": {"days": 2}},
        DomainEvent("due_date_approaching", "t2", detail={"rule": "r2"}),
        False,
    ),
    (
        {"type": "due_date_approaching", "within": {"hours": 5}},
        DomainEvent("due_date_approaching", "t1", detail={"rule": "r1"}),
        False,
    ),  # t1 is done
    (
        {"type": "task_overdue"},
        DomainEvent("task_overdue", "t1", detail={"rule": "r1", "due": "2026-12-24"}),
        False,
    ),
    ({"type": "task_overdue"}, DomainEvent("task_overdue", "t2", detail={"rule": "r1"}), True),
    (
        {"type": "task_overdue"},
        DomainEvent("task_overdue", "t2", detail={"rule": "r1", "due": "2026-01-01"}),
        False,
    ),  # due date moved
    (
        {"type": "comment_posted"},
        DomainEvent("comment_posted", "t1", None, None, {"text": "hi"}, {"message": "m1"}),
        True,
    ),
    (
        {"type": "mentioned", "user": "bob"},
        DomainEvent("mention", "bob", after="bob", detail={"where": "comment", "task": "t1"}),
        True,
    ),
    (
        {"type": "mentioned", "user": "cy"},
        DomainEvent("mention", "bob", after="bob", detail={"where": "chat"}),
        False,
    ),
    (
        {"type": "milestone_completed"},
        DomainEvent("milestone_completed", "m1", "done", False, True, {"name": "M"}),
        True,
    ),
    (
        {"type": "project_status_changed", "to": "on_hold"},
        DomainEvent("project_changed", None, "status", "active", "on_hold"),
        True,
    ),
    (
        {"type": "project_status_changed"},
        DomainEvent("project_changed", None, "name", "a", "b"),
        False,
    ),
    # 950 of 1000 spent after adding 100: 85 % -> 95 % crosses 90 %
    (
        {"type": "budget_exceeded", "percent": 90},
        DomainEvent("cost_added", "c2", None, None, {"amount": 100}),
        True,
    ),
    (
        {"type": "budget_exceeded", "percent": 80},
        DomainEvent("cost_added", "c2", None, None, {"amount": 100}),
        False,
    ),
    (
        {"type": "budget_exceeded", "percent": 90},
        DomainEvent("budget_changed", None, "total", 2000, 1000),
        True,
    ),
    (
        {"type": "budget_exceeded", "percent": 90},
        DomainEvent("cost_changed", "c1", "amount", 750, 850),
        True,
    ),
    (
        {"type": "budget_exceeded", "percent": 99},
        DomainEvent("cost_deleted", "c3", None, {"amount": 100}, None),
        False,
    ),
    # bob: 60 % (Jan-Jun) + 50 % (Jun-Dec) overlap in June: 110 % once a2 is added
    (
        {"type": "resource_overallocated"},
        DomainEvent("allocation_added", "a2", None, None, {"user": "bob", "percent": 50}),
        True,
    ),
    (
        {"type": "resource_overallocated"},
        DomainEvent("allocation_changed", "a2", "percent", 30, 50),
        True,
    ),
    (
        {"type": "resource_overallocated"},
        DomainEvent("allocation_changed", "a2", "start", "2026-07-01", "2026-06-01"),
        True,
    ),
    (
        {"type": "resource_overallocated", "capacity": 120},
        DomainEvent("allocation_added", "a2"),
        False,
    ),
    ({"type": "resource_overallocated"}, DomainEvent("allocation_added", "a3"), False),
    (
        {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"},
        DomainEvent("schedule_fired", "r1", detail={"at": "2026-12-01T08:00:00+00:00"}),
        True,
    ),
    ({"type": "schedule", "cron": "0 9 * * 1-5"}, DomainEvent("schedule_fired", "r2"), False),
]


@pytest.mark.parametrize(("trigger", "event", "fired"), TRIGGER_CASES)
def test_each_trigger_fires_on_its_events(trigger, event, fired) -> None:
    result = _eval(_rule(trigger), event, FULL)
    assert result.triggered is fired


def test_every_trigger_operator_and_action_has_an_example() -> None:
    assert {t["type"] for t, _, fired in TRIGGER_CASES if fired} == set(TRIGGER_TYPES)
    assert {op for op, *_ in OPERATOR_CASES} | {"changed_from", "changed_to"} == set(OPERATORS)
    assert set(KINDS) == set(TRIGGER_TYPES)
    assert set(SCHEDULER_KINDS) <= {k for kinds in KINDS.values() for k in kinds}
    assert {a["type"] for a in ALL_ACTIONS} == set(ACTION_TYPES)
    assert {"id", "title", "status", "priority", "due"} <= set(TASK_FIELDS)
    assert {"name", "status"} <= set(PROJECT_FIELDS)


def test_budget_and_allocation_triggers_need_those_snapshots() -> None:
    assert SNAPSHOT_NEEDS == {"budget_exceeded": "finance", "resource_overallocated": "resources"}
    assert not _eval(
        _rule({"type": "budget_exceeded", "percent": 90}), TRIGGER_CASES[21][1], PROJECT
    ).triggered
    assert not _eval(
        _rule({"type": "resource_overallocated"}), TRIGGER_CASES[26][1], PROJECT
    ).triggered


# -- actions: every one --------------------------------------------------------------------------

ALL_ACTIONS: list[dict[str, Any]] = [
    {
        "type": "notify",
        "to": {"assignees": True, "role": "finance"},
        "title": "{task.title} done",
        "message": "in {project.name}",
    },
    {
        "type": "email",
        "to": {"users": ["ann"]},
        "subject": "Done: {task.title}",
        "text": "Rule {rule.name}",
    },
    {
        "type": "slack",
        "url_ref": "secret:slack1",
        "url_hint": "https://hooks.slack.com/…",
        "text": "*{task.title}* <done>",
    },
    {"type": "teams", "url_ref": "secret:teams1", "text": "{task.title} done"},
    {"type": "webhook", "url_ref": "secret:hook1"},
    {"type": "set_status", "status": "todo"},
    {"type": "set_field", "field": "custom.size", "value": 13},
    {"type": "assign", "users": ["bob", "cy", "cy"]},
    {"type": "add_label", "label": "shipped"},
    {"type": "add_comment", "text": "Closed by {rule.name}"},
    {"type": "create_subtasks", "titles": ["Announce {task.title}", "Retro"]},
]


def test_each_action_becomes_its_intent() -> None:
    rule = _rule({"type": "task_status_changed", "to": "done"}, ALL_ACTIONS, name="Ship it")
    result = _eval(rule, STATUS_DONE)
    assert result.matched and result.skipped is None
    notify, email, slack, teams, webhook, *edits = result.intents
    assert isinstance(slack, OutboundIntent) and isinstance(teams, OutboundIntent)
    assert isinstance(webhook, OutboundIntent)
    assert notify == NotifyIntent(0, "Launch done", "in Apollo", "t1", (), "finance", True)
    assert email == OutboundIntent(
        "email",
        1,
        "",
        {
            "to": {"assignees": False, "users": ["ann"]},
            "subject": "Done: Launch",
            "text": "Rule Ship it",
            "task": "t1",
        },
    )
    assert (slack.channel, slack.target) == ("slack", "secret:slack1")
    assert slack.payload["text"] == "*Launch* <done>"
    assert slack.payload["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Launch* &lt;done&gt;"},
    }
    assert all(b["type"] in ("section", "context") for b in slack.payload["blocks"])
    assert teams.channel == "teams" and teams.payload["type"] == "message"
    card = teams.payload["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert (
        card["content"]["type"] == "AdaptiveCard"
        and card["content"]["body"][1]["text"] == "Launch done"
    )
    assert webhook.target == "secret:hook1"
    assert webhook.payload["rule"] == {
        "id": "r1",
        "name": "Ship it",
        "trigger": "task_status_changed",
    }
    assert webhook.payload["event"] == STATUS_DONE.to_json()
    assert webhook.payload["task"]["id"] == "t1" and webhook.payload["task"]["priority"] == "high"
    assert edits == [
        EditIntent("set_status", 5, "t1", {"status": "todo"}),
        EditIntent("set_field", 6, "t1", {"field": "custom.size", "value": 13}),
        EditIntent("assign", 7, "t1", {"users": ["cy"]}),  # bob already is
        EditIntent("add_label", 8, "t1", {"label": "shipped"}),
        EditIntent("add_comment", 9, "t1", {"text": "Closed by Ship it"}),
        EditIntent("create_subtasks", 10, "t1", {"titles": ["Announce Launch", "Retro"]}),
    ]


def test_edits_that_change_nothing_and_edits_without_a_task_are_left_out() -> None:
    same = [
        {"type": "set_status", "status": "done"},
        {"type": "set_field", "field": "custom.size", "value": 8},
        {"type": "assign", "users": ["bob"]},
        {"type": "add_label", "label": "ui"},
    ]
    result = _eval(_rule({"type": "task_status_changed"}, same), STATUS_DONE)
    assert result.matched and result.intents == ()
    assert [why for _, why in result.actions_skipped] == [
        "nothing to change: the status is 'done' already",
        "nothing to change: custom.size is 8 already",
        "nothing to change: everyone named is assigned already",
        "nothing to change: the task has the label 'ui' already",
    ]
    nowhere = _eval(
        _rule({"type": "task_status_changed"}, [{"type": "set_status", "status": "qa"}]),
        STATUS_DONE,
    )
    assert nowhere.actions_skipped == ((0, "'qa' is not a column of this board"),)
    milestone = DomainEvent("milestone_completed", "m1", "done", False, True)
    result = _eval(_rule({"type": "milestone_completed"}, [*same, ALL_ACTIONS[4]]), milestone)
    assert [i.action_index for i in result.intents] == [4]
    assert {why for _, why in result.actions_skipped} == {
        "no task: the event is about none (or it was deleted)"
    }
    assert result.intents[0].payload["task"] is None  # type: ignore[union-attr]


def test_disabled_rules_and_the_depth_limit_skip_with_a_reason() -> None:
    rule = _rule({"type": "task_status_changed"}, [{"type": "set_status", "status": "todo"}])
    assert _eval(rule, STATUS_DONE, depth=2).intents  # depth 0, 1, 2 run
    limited = _eval(rule, STATUS_DONE, depth=3)
    assert (limited.triggered, limited.matched, limited.skipped, limited.intents) == (
        True,
        False,
        "depth limit",
        (),
    )
    assert _eval(rule, STATUS_DONE, depth=1, max_depth=1).skipped == "depth limit"
    off = _eval({**rule, "enabled": False}, STATUS_DONE)
    assert (off.triggered, off.matched, off.skipped) == (True, False, "disabled")
    untouched = _eval(rule, DomainEvent("task_created", "t1"), depth=9)
    assert (untouched.triggered, untouched.skipped) == (False, None)


def test_a_rule_that_sets_a_field_and_one_that_reacts_stop_at_the_depth_limit() -> None:
    """The runner's loop, in miniature: each write is an event one deeper."""
    ping = validate_rule(
        _rule(
            {"type": "task_status_changed", "to": "doing"},
            [{"type": "set_status", "status": "todo"}],
        )
    )
    pong = validate_rule(
        _rule(
            {"type": "task_status_changed", "to": "todo"},
            [{"type": "set_status", "status": "doing"}],
        )
    )
    project = json.loads(json.dumps(PROJECT))
    queue = [(DomainEvent("task_field_changed", "t2", "status", "todo", "doing"), 0)]
    project["tasks"]["t2"]["status"] = "doing"
    runs = 0
    skipped = []
    while queue:
        event, depth = queue.pop(0)
        for rid, rule in (("ping", ping), ("pong", pong)):
            result = evaluate(rid, rule, event, project, depth=depth)
            if result.skipped:
                skipped.append((rid, result.skipped))
            for intent in result.intents:
                assert isinstance(intent, EditIntent)
                runs += 1
                task = project["tasks"][intent.task_id]
                old, task["status"] = task["status"], intent.params["status"]
                write = DomainEvent(
                    "task_field_changed", intent.task_id, "status", old, task["status"]
                )
                queue.append((write, depth + 1))
    assert runs == 3 and skipped == [("pong", "depth limit")]  # depths 0, 1, 2 ran


# -- the schedule ------------------------------------------------------------------------------------

BERLIN = time_zone("Europe/Berlin")
cron_fields = st.tuples(
    st.sampled_from(["*", "0", "30", "*/15", "5,35", "0-10/5", "59"]),
    st.sampled_from(["*", "0", "2", "9", "2,3", "1-4", "*/6", "23"]),
    st.sampled_from(["*", "1", "15", "29", "31", "1-7"]),
    st.sampled_from(["*", "1", "3", "10", "jan-mar", "*/2", "feb"]),
    st.sampled_from(["*", "0", "1-5", "sun", "7", "sat,sun"]),
).map(" ".join)
instants = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "America/Santiago",
    ]
)


def _matches(spec: str, fire: dt.datetime, zone: str) -> bool:
    """The fire time's wall clock matches, or it is a skipped wall time moved by the gap."""
    cron = parse_cron(spec)
    tz = time_zone(zone)
    local = fire.astimezone(tz).replace(tzinfo=None)
    if cron.matches(local):
        return True
    for gap in (dt.timedelta(minutes=30), dt.timedelta(hours=1)):
        wall = local - gap
        real = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if real != wall and cron.matches(wall):  # a wall time the clocks skipped
            return True
    return False


@settings(max_examples=EXAMPLES, deadline=None)
@given(cron_fields, instants, zones)
def test_next_fire_is_strictly_after_now_matches_the_spec_and_nothing_is_skipped(
    spec, now, zone
) -> None:
    try:
        fire = next_fire(spec, now, zone)
    except ValueError:
        assume(False)  # "31 in February": no such day within the search
        return
    assert fire > now and fire.tzinfo is not None
    assert _matches(spec, fire, zone), (spec, now, fire)
    # nothing in between matches: step minute by minute (bounded) from now to the fire time
    step = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    tz = time_zone(zone)
    checked = 0
    while step < fire and checked < 3000:
        local = step.astimezone(tz).replace(tzinfo=None)
        first_pass = local.replace(tzinfo=tz).astimezone(UTC) == step
        assert not (parse_cron(spec).matches(local) and first_pass), (spec, now, step, fire)
        step += dt.timedelta(minutes=1)
        checked += 1


def test_daily_fires_across_berlin_dst_changes_once_a_day_without_skipping_one() -> None:
    for start in (dt.datetime(2026, 3, 26, tzinfo=UTC), dt.datetime(2026, 10, 22, tzinfo=UTC)):
        for spec in ("30 2 * * *", "0 9 * * *", "59 23 * * *", "0 0 * * *"):
            fire, days = start, []
            for _ in range(7):
                fire = next_fire(spec, fire, BERLIN)
                days.append(fire.astimezone(BERLIN).date())
            assert days == [days[0] + dt.timedelta(days=i) for i in range(7)], (spec, days)
    spring = next_fire("30 2 * * *", dt.datetime(2026, 3, 28, 12, tzinfo=UTC), BERLIN)
    assert spring == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST, moved by the gap
    autumn = next_fire("30 2 * * *", dt.datetime(2026, 10, 24, 12, tzinfo=UTC), BERLIN)
    assert autumn == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 only
    assert next_fire("30 2 * * *", autumn, BERLIN).date() == dt.date(2026, 10, 26)
    hourly, t = [], dt.datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    for _ in range(4):
        t = next_fire("0 * * * *", t, BERLIN)
        hourly.append(t)
    assert hourly == [dt.datetime(2026, 10, 25, h, tzinfo=UTC) for h in range(4)]  # both 02:00s


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected 5 fields"),
        ("* * * * * *", "got 6"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("a * * * *", "minute: 'a' is not a number"),
        ("* * * foo *", "month: 'foo' is not a number or a name"),
        ("1,,2 * * * *", "empty item"),
        ("0 " * 60, "at most 100"),
    ],
)
def test_cron_errors_say_which_field_and_what(spec, message) -> None:
    with pytest.raises(CronError, match=message.replace("*", r"\*")):
        parse_cron(spec)


def test_cron_semantics() -> None:
    t = dt.datetime(2026, 12, 2, 12, tzinfo=UTC)  # a Wednesday
    assert next_fire("0 9 * * mon-fri", t, "UTC") == dt.datetime(2026, 12, 3, 9, tzinfo=UTC)
    assert (
        next_fire("0 9 * * 0", t, "UTC")
        == next_fire("0 9 * * 7", t, "UTC")
        == dt.datetime(2026, 12, 6, 9, tzinfo=UTC)
    )
    # day of month and day of week both restricted: either matches (Vixie cron)
    assert next_fire("0 0 25 * fri", t, "UTC") == dt.datetime(2026, 12, 4, tzinfo=UTC)
    assert next_fire("0 0 29 feb *", t, "UTC") == dt.datetime(2028, 2, 29, tzinfo=UTC)
    assert next_fire("*/20 * * * *", t, "Asia/Kolkata") == dt.datetime(
        2026, 12, 2, 12, 10, tzinfo=UTC
    )
    with pytest.raises(CronError, match="never fires"):
        next_fire("0 0 31 2 *", t, "UTC")
    with pytest.raises(CronError, match="never fires"):
        parse_cron("0 0 30,31 feb *")
    assert parse_cron("0 0 31 2 mon").day_matches(dt.date(2026, 2, 2))  # either: Mondays
    with pytest.raises(ValueError, match="aware"):
        next_fire("* * * * *", dt.datetime(2026, 1, 1), "UTC")


def test_due_date_windows() -> None:
    assert due_instant("2026-12-24", BERLIN) == dt.datetime(2026, 12, 23, 23, tzinfo=UTC)
    assert overdue_at("2026-12-24", BERLIN) == dt.datetime(2026, 12, 24, 23, tzinfo=UTC)
    assert approaching_at("2026-12-24", dt.timedelta(days=2), "UTC") == dt.datetime(
        2026, 12, 22, tzinfo=UTC
    )
    now = dt.datetime(2026, 12, 23, 12, tzinfo=UTC)
    assert is_approaching("2026-12-24", dt.timedelta(days=2), now, "UTC")
    assert not is_approaching("2026-12-24", dt.timedelta(hours=6), now, "UTC")
    assert not is_overdue("2026-12-24", now, "UTC")
    assert is_overdue("2026-12-22", now, "UTC")
    # over the spring change a local day has 23 hours
    assert overdue_at("2026-03-29", BERLIN) - due_instant("2026-03-29", BERLIN) == dt.timedelta(
        hours=23
    )


# -- loads -----------------------------------------------------------------------------------------


def test_peak_load_sums_overlapping_allocations() -> None:
    allocs = list(RESOURCES["allocations"].values())
    assert peak_load(allocs, "bob") == 110
    assert peak_load(allocs, "cy") == 50
    assert peak_load(allocs, "zoe") == 0
    assert overallocated(allocs) == {"bob": 110}
    touching = [
        {"user": "u", "percent": 60, "start": "2026-01-01", "end": "2026-01-31"},
        {"user": "u", "percent": 60, "start": "2026-02-01"},
    ]
    assert peak_load(touching, "u") == 60  # one ends the day before the other starts


# -- the gate: a real client writing rules into the document -----------------------------------

VALID_DOC_RULE = {
    "name": "Ping the hook",
    "enabled": True,
    "trigger": {"type": "task_status_changed", "to": "done"},
    "conditions": {"all": [{"field": "priority", "op": "in", "value": ["high", "urgent"]}]},
    "actions": [{"type": "webhook", "url_ref": "secret:abc", "url_hint": "https://example.com/…"}],
}


def _put_rule(rule_id: str, rule: dict):
    def write(doc) -> None:
        doc.get("rules", type=Map)[rule_id] = Map(rule)

    return write


@pytest.mark.anyio
async def test_a_real_client_writing_an_invalid_rule_is_refused_with_the_path(server) -> None:
    project = "auto-gate"
    async with RawClient.connect(server, f"p/{project}", "olive") as owner:
        await owner.sync()
        n = await owner.send_update(owner.edit(lambda d: create_project_meta(d, "P")))
        assert (await owner.outcome(n))["type"] == "ack"
        # a URL in the document: refused, naming the action's field
        with_url = {
            **VALID_DOC_RULE,
            "actions": [{"type": "webhook", "url": "https://example.com/hook"}],
        }
        n = await owner.send_update(owner.edit(_put_rule("r1", with_url)))
        refused = await owner.outcome(n)
        assert refused["type"] == "rejected", refused
        assert refused["path"] == "rules/r1/actions/0/url", refused
        assert "secret" in refused["reason"]
        # an unknown trigger type
        n = await owner.send_update(
            owner.edit(_put_rule("r2", {**VALID_DOC_RULE, "trigger": {"type": "sometimes"}}))
        )
        refused = await owner.outcome(n)
        assert (refused["type"], refused["path"]) == ("rejected", "rules/r2/trigger/type")
        await owner.drain(0.3)
        assert "r1" not in owner.doc.get("rules", type=Map)  # reverted on the client too
        # a valid rule lands; then an edit that breaks it is refused, one that keeps it valid lands
        n = await owner.send_update(owner.edit(_put_rule("r3", VALID_DOC_RULE)))
        assert (await owner.outcome(n))["type"] == "ack"
        n = await owner.send_update(
            owner.edit(
                lambda d: d.get("rules", type=Map)["r3"].__setitem__(
                    "conditions", {"all": [{"field": "x", "op": "eq", "value": 1}]}
                )
            )
        )
        refused = await owner.outcome(n)
        assert (refused["type"], refused["path"]) == ("rejected", "rules/r3/conditions/all/0/field")
        n = await owner.send_update(
            owner.edit(lambda d: d.get("rules", type=Map)["r3"].__setitem__("enabled", False))
        )
        assert (await owner.outcome(n))["type"] == "ack"
        n = await owner.send_update(
            owner.edit(lambda d: d.get("rules", type=Map)["r3"].__setitem__("name", 7))
        )
        refused = await owner.outcome(n)
        assert (refused["type"], refused["path"]) == ("rejected", "rules/r3/name")
        # the rule acts as its created_by: written as oneself, fine
        n = await owner.send_update(
            owner.edit(_put_rule("r5", {**VALID_DOC_RULE, "created_by": "olive"}))
        )
        assert (await owner.outcome(n))["type"] == "ack"
    # a manager (edit_project) writes rules, but not ones acting as someone else
    async with RawClient.connect(server, f"p/{project}", "max", role="manager") as manager:
        await manager.sync()
        n = await manager.send_update(
            manager.edit(_put_rule("r6", {**VALID_DOC_RULE, "created_by": "olive"}))
        )
        refused = await manager.outcome(n)
        assert (refused["type"], refused["path"]) == ("rejected", "rules/r6/created_by"), refused
        n = await manager.send_update(
            manager.edit(lambda d: d.get("rules", type=Map)["r5"].__setitem__("created_by", "max"))
        )
        assert (await manager.outcome(n))["type"] == "ack"  # taking it over: it acts as max now
        n = await manager.send_update(manager.edit(_put_rule("r6", VALID_DOC_RULE)))
        assert (await manager.outcome(n))["type"] == "ack"
    # a member (no edit_project) may not write even a valid rule
    async with RawClient.connect(server, f"p/{project}", "mel", role="member") as member:
        await member.sync()
        n = await member.send_update(member.edit(_put_rule("r4", VALID_DOC_RULE)))
        refused = await member.outcome(n)
        assert refused["type"] == "rejected" and refused["permission"] == "edit_project", refused
        await member.drain(0.3)
        rules = member.doc.get("rules", type=Map).to_py()
    assert set(rules) == {"r3", "r5", "r6"} and rules["r3"]["enabled"] is False
    assert rules["r5"]["created_by"] == "max" and "created_by" not in rules["r6"]
    await anyio.sleep(0)


def test_a_rule_acts_as_someone_else_only_if_they_wrote_it() -> None:
    manager = BUILTIN_ROLES["manager"].permissions
    create = [Change(("rules", "r1"), "add")]
    forged = decide(manager, "max", DocKind.MAIN, create, rule_owner=lambda _r: "olive")
    assert (forged.allowed, forged.path, forged.permission) == (False, "rules/r1/created_by", None)
    assert decide(manager, "max", DocKind.MAIN, create, rule_owner=lambda _r: "max").allowed
    assert decide(manager, "max", DocKind.MAIN, create).allowed  # not set: the server sets it
    toggle = [Change(("rules", "r1", "enabled"), "update")]
    assert decide(manager, "max", DocKind.MAIN, toggle, rule_owner=lambda _r: "olive").allowed
    takeover = [Change(("rules", "r1", "created_by"), "update")]
    assert not decide(manager, "max", DocKind.MAIN, takeover, rule_owner=lambda _r: "olive").allowed
    member = BUILTIN_ROLES["member"].permissions
    denied = decide(member, "mel", DocKind.MAIN, create, rule_owner=lambda _r: "mel")
    assert (denied.allowed, denied.permission) == (False, Permission.EDIT_PROJECT)


def _gate() -> tuple[Doc, Gate]:
    server = new_document(DocKind.MAIN)
    create_project_meta(server, "P")
    return server, Gate(server, parse_doc_name("p/gated"))  # the schema alone (no permissions)


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_like())
def test_the_gate_takes_a_rule_exactly_when_it_validates_and_names_the_path_when_not(data) -> None:
    server, gate = _gate()
    client: Doc = Doc()
    declare_roots(client, DocKind.MAIN)
    client.apply_update(server.get_update())
    before = client.get_state()
    with client.transaction():
        rules_root = client.get("rules", type=Map)
        rules_root["r1"] = Map(data) if isinstance(data, dict) else data
    result = gate.apply(client.get_update(before), Actor("ann"))
    try:
        validate_rule(json.loads(json.dumps(data)), "document")
        valid = True
    except RuleInvalid:
        valid = False
    assert result.accepted is valid, (data, result.denial)
    if not valid:
        assert result.denial is not None
        path = result.denial.path.split("/")
        assert path[:2] == ["rules", "r1"], result.denial
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in path[2:]]
        parent: Any = data
        for part in parts[:-1]:
            parent = parent[part]
        assert (
            not parts
            or parts[-1] in (parent if isinstance(parent, dict) else range(len(parent)))
            or "required" in result.denial.reason
        ), result.denial
        assert "r1" not in server.get("rules", type=Map)  # reverted
    else:
        assert server.get("rules", type=Map)["r1"]["name"] == data["name"]


def test_an_edit_deep_inside_a_nested_y_map_is_checked_against_the_whole_rule() -> None:
    server, gate = _gate()
    client: Doc = Doc()
    declare_roots(client, DocKind.MAIN)
    client.apply_update(server.get_update())

    def send(fn) -> Any:
        before = client.get_state()
        with client.transaction():
            fn(client.get("rules", type=Map))
        result = gate.apply(client.get_update(before), Actor("ann"))
        client.apply_update(server.get_update(client.get_state()))  # the server's verdict
        return result

    nested = {
        **VALID_DOC_RULE,
        "trigger": Map({"type": "task_status_changed", "to": "done"}),
        "actions": Array([Map({"type": "add_label", "label": "done"})]),
    }
    assert send(lambda rules: rules.__setitem__("r7", Map(nested))).accepted
    result = send(lambda rules: rules["r7"]["trigger"].__setitem__("type", "whenever"))
    assert not result.accepted and result.denial.path == "rules/r7/trigger/type"
    result = send(lambda rules: rules["r7"]["actions"][0].__setitem__("label", ""))
    assert not result.accepted and result.denial.path == "rules/r7/actions/0/label"
    assert send(lambda rules: rules["r7"]["actions"][0].__setitem__("label", "shipped")).accepted
    result = send(
        lambda rules: rules["r7"]["actions"].append(
            Map({"type": "webhook", "url": "https://x.example/h"})
        )
    )
    assert not result.accepted and result.denial.path == "rules/r7/actions/1/url"
    stored = server.get("rules", type=Map).to_py()["r7"]
    assert stored["trigger"]["type"] == "task_status_changed"
    assert stored["actions"] == [{"type": "add_label", "label": "shipped"}]
    label = validate_rule(normalize(server.get("rules", type=Map)["r7"])).actions[0]
    assert isinstance(label, AddLabel) and label.label == "shipped"


@pytest.mark.skipif(not node_available(), reason="tests/node has no node_modules")
def test_a_stock_yjs_client_cannot_store_an_invalid_rule(server) -> None:
    project = "auto-yjs"
    server.grant("olive", project, "owner")
    bad = {**VALID_DOC_RULE, "trigger": {"type": "schedule", "cron": "61 * * * *"}}
    out = run_node(
        "rules_write.mjs",
        server.ws_url,
        f"p/{project}",
        server.token("olive"),
        json.dumps(bad),
        json.dumps(VALID_DOC_RULE),
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rules": ["good"]}
    stored = stored_doc(server.db, f"p/{project}").get("rules", type=Map).to_py()
    assert set(stored) == {"good"}
    assert validate_rule(stored["good"]) == validate_rule(VALID_DOC_RULE)


def _dst_days(zone: str, year: int) -> list[dt.date]:
    tz = time_zone(zone)
    day, out = dt.date(year, 1, 1), []
    while day.year == year:
        a = dt.datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
        nxt = day + dt.timedelta(days=1)
        b = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).utcoffset()
        if a != b:
            out.append(day)
        day = nxt
    return out


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(
    st.integers(0, 59),
    st.integers(0, 23),
    st.sampled_from(
        [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "America/Santiago",
            "America/Havana",
        ]
    ),
    st.integers(2024, 2030),
    st.booleans(),
    st.integers(-2, 1),
)
def test_a_daily_spec_fires_once_every_day_across_each_dst_change(
    minute, hour, zone, year, autumn, offset
) -> None:
    changes = _dst_days(zone, year)
    assume(changes)
    change = changes[-1] if autumn else changes[0]
    start = dt.datetime(change.year, change.month, change.day, tzinfo=UTC) + dt.timedelta(
        days=offset
    )
    tz = time_zone(zone)
    fire, days = start, []
    for _ in range(5):
        fire = next_fire(f"{minute} {hour} * * *", fire, zone)
        days.append(fire.astimezone(tz).date())
    assert days == [days[0] + dt.timedelta(days=i) for i in range(5)], (start, days)


# -- a batch judged against one read: each event sees the state it made ----------------

_document_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "delete", "change", "budget"]),
        st.sampled_from(["cost", "allocation"]),
        st.integers(0, 4),
        st.integers(0, 500),
    ),
    max_size=25,
)


@given(_document_ops)
def test_document_states_rewind_events_to_the_state_after_each_one(ops) -> None:
    """Applying random cost, allocation and budget events forward gives, after each one,
    exactly what ``document_states`` rebuilds from the end state and the events' before
    values (the runner's read may be past the batch: it rewinds through what followed)."""
    from rules.automation.project import document_states

    budget: dict = {"total": 100}
    items: dict[str, dict] = {"costs": {}, "allocations": {}}
    events: list[DomainEvent] = []
    forward: list[dict] = []
    for op, prefix, n, amount in ops:
        key = "costs" if prefix == "cost" else "allocations"
        field = "amount" if prefix == "cost" else "hours_per_week"
        found, eid = items[key], f"{prefix[0]}{n}"
        if op == "add" and eid not in found:
            found[eid] = {"id": eid, field: amount}
            events.append(DomainEvent(f"{prefix}_added", eid, after=dict(found[eid])))
        elif op == "delete" and eid in found:
            events.append(DomainEvent(f"{prefix}_deleted", eid, before=found.pop(eid)))
        elif op == "change" and eid in found:
            before = found[eid][field]
            found[eid] = {**found[eid], field: amount}
            events.append(DomainEvent(f"{prefix}_changed", eid, field, before, amount))
        elif op == "budget":
            before = budget.get("total")
            budget = {**budget, "total": amount}
            events.append(DomainEvent("budget_changed", None, "total", before, amount))
        else:
            continue
        forward.append(
            {"budget": dict(budget)}
            | {k: {i: dict(v) for i, v in kept.items()} for k, kept in items.items()}
        )
    now = {"budget": budget} | {k: list(v.values()) for k, v in items.items()}
    rebuilt = document_states(now, events)
    assert [{k: s[k] for k in ("budget", "costs", "allocations")} for s in rebuilt] == forward
