"""The automation runner: rules read from the change feed, the engine's intents carried out.

For every accepted transaction of a project's main document (``change_accepted``,
durable: at least once, from the runner's own cursor) and every domain event in
it, each enabled rule of the project whose trigger may fire on that kind of
event is evaluated by the pure engine (``rules.automation.evaluate``) against a
JSON snapshot of the project; what it wants done is carried out here:

- :class:`~rules.automation.intents.EditIntent`: through ``ctx.edit`` as the
  rule's owner (its ``created_by``), ``Actor(owner, via="automation:<rule>:<depth>")``:
  the gate judges it with the owner's permissions. An owner who lost the
  permission (demoted, removed) pauses the rule, with the reason in
  ``rule_state``; nothing is written. A person changing the rule unpauses it.
- :class:`~rules.automation.intents.NotifyIntent`: the notification centre
  (in-app list and Web Push), to named users, a role's members or the assignees
  (members of the project only).
- :class:`~rules.automation.intents.OutboundIntent`: the durable outbox
  (``integrations.outbox``), idempotency key ``rule:<rule>:<event key>:<action index>``.

Loop protection: a rule's own writes carry their chain depth in the actor's
``via`` (so the feed row of that write says it), the events of a write at depth
``d`` are evaluated at depth ``d``, and nothing runs at ``MAX_DEPTH`` or deeper
(recorded as skipped). A rule runs at most once per (rule, event key):
``rule_runs`` is UNIQUE on it and a run claims its row before it acts, so the
feed's at-least-once delivery never acts twice. Event keys: ``feed:<feed id>:<index
of the event in its transaction>`` for document events, ``<kind>:<task>:<due date>``
and ``schedule:<fire time>`` for the scheduler's.

Every run is recorded in ``rule_runs`` (migration 14): ``ran``, ``failed``,
``paused`` or ``skipped`` (the trigger fired but the conditions did not hold, the
rule is paused, or the depth limit was reached), with a detail for people.

The scheduler (:class:`Scheduler`) keeps the next fire time of every
``schedule``, ``due_date_approaching`` and ``task_overdue`` rule (per task for
the latter two) in ``rule_schedule``, recomputed when rules or tasks' due
dates change (from the feed). It looks for fire times that have passed every
``automation_tick_seconds`` against an injectable clock (``automation_clock_offset_seconds``
or the extension's ``clock``), so a fire time that passed while the server was
down fires once at start. It emits domain events of kinds ``schedule_fired``,
``due_date_approaching`` and ``task_overdue`` (see ``rules.automation.triggers``).
Each tick also gives the daily e-mail digest its chance (``daily_digest``: at
``digest_hour`` UTC, to accounts with an e-mail address).

E-mail actions go to the recipients' account addresses (``users.email``); a
recipient without one is left out and named in the run's detail.

SQLite work runs on a connection and worker thread of the runner's own, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from doc_model import (
    DocKind,
    DocName,
    DomainEvent,
    TaskCreate,
    TaskUpdate,
    create_task,
    doc_name,
    finance_snapshot,
    has_message,
    move_task,
    parse_doc_name,
    post_chat_message,
    project_snapshot,
    resources_snapshot,
    update_task,
)
from doc_model.domain_events import normalize
from integrations.db import transaction
from integrations.outbox import Outbox
from integrations.secrets import SecretStore
from rules import Permission
from rules.automation import (
    KINDS,
    MAX_DEPTH,
    PLAIN,
    SNAPSHOT_NEEDS,
    EditIntent,
    NotifyIntent,
    OutboundIntent,
    Rule,
    TextFormat,
    evaluate,
    prepare_project,
    validate_rule,
)
from rules.automation.project import document_states
from rules.automation.schedule import approaching_at, next_fire, overdue_at
from sync_server.extensions.daily_digest import DEFAULT_HOUR, DailyDigest
from sync_server.extensions.feed import current_fence, document_events_after
from sync_server.extensions.notifications import Notice, NotificationCenter
from sync_server.extensions.protocol import EditRefused, Extension, ServerContext
from sync_server.identity.access import readers
from sync_server.identity.accounts import email_addresses, locales_of
from sync_server.identity.locales import text_format
from sync_server.interfaces import Actor, DocumentChanged
from sync_server.scale.fences import Fence
from sync_server.storage.database import SQLiteWorker, connect

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext

log = logging.getLogger("tandem.automation")

VIA = "automation"
SCHEDULED_KINDS = ("schedule", "due_date_approaching", "task_overdue")
DUE_FIELDS = frozenset({"due", "status"})
RUNS_LIMIT = 200

Clock = Callable[[], float]


def via(rule_id: str, depth: int) -> str:
    return f"{VIA}:{rule_id}:{depth}"


def chain_depth(actor: Actor) -> int:
    """The depth of the chain a change belongs to: 0 for a person's, d for rule writes at d."""
    kind, _, rest = actor.via.partition(":")
    if kind != VIA:
        return 0
    _, _, depth = rest.rpartition(":")
    try:
        return max(int(depth), 0)
    except ValueError:
        return 0


def add_subtasks(
    doc: Doc, parent: str, titles: list[str], status: str, owner: str, run_key: str
) -> list[str]:
    """A rule's ``create_subtasks``: one task per title under ``parent``, each with an id
    made from ``run_key`` (its run and action) and its place in the list, so a run carried
    out again (its first holder killed mid-run, sync_server.scale) adds none twice; returns
    the ids it added."""
    tasks = doc.get("tasks", type=Map)
    added = []
    for i, title in enumerate(titles):
        task_id = f"{run_key}-{i}"
        if task_id in tasks:
            continue
        create_task(
            doc,
            TaskCreate(title=title, parent=parent, status=status),
            created_by=owner,
            task_id=task_id,
        )
        added.append(task_id)
    return added


def rule_actor(owner: str, rule_id: str, depth: int) -> Actor:
    return Actor(owner, via=via(rule_id, depth))


# -- what is in the document ---------------------------------------------------------------


def rules_of(doc: Doc) -> dict[str, dict[str, Any]]:
    """The rules root as plain JSON: rule id -> rule (whatever the gate let in)."""
    out: dict[str, dict[str, Any]] = {}
    for rule_id, value in doc.get("rules", type=Map).items():
        data = normalize(value)
        if isinstance(data, dict):
            out[rule_id] = data
    return out


def project_json(doc: Doc, project: str) -> dict[str, Any]:
    """The project snapshot the engine evaluates against (``rules.automation.project``):
    ``Project.model_dump`` with ``tasks`` as ``{id: fields}`` (the engine looks a task up
    once per evaluation), and ``id``."""
    snap = project_snapshot(doc, project).model_dump(mode="json")
    snap["tasks"] = {t["id"]: t for t in snap["tasks"]}
    snap["id"] = project
    return snap


def finance_json(doc: Doc) -> dict[str, Any]:
    return finance_snapshot(doc).model_dump(mode="json")


def resources_json(doc: Doc) -> dict[str, Any]:
    return resources_snapshot(doc).model_dump(mode="json")


def tasks_of(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    found = snapshot.get("tasks") or {}
    return list(found.values()) if isinstance(found, dict) else list(found)


def events_of(
    name: DocName, changes: Sequence[DocumentChanged]
) -> list[tuple[int, int, DomainEvent]]:
    """(position in the batch, event index, event) of every event of document ``name``."""
    found: list[tuple[int, int, DomainEvent]] = []
    for position, change in enumerate(changes):
        if change.doc_name == name.name:
            found.extend((position, i, e) for i, e in enumerate(change.events))
    return found


def task_in(snapshot: dict[str, Any], task_id: Any) -> dict[str, Any] | None:
    found = snapshot.get("tasks") or {}
    if isinstance(found, dict):
        value = found.get(task_id)
        return value if isinstance(value, dict) else None
    return next((t for t in found if t.get("id") == task_id), None)


def trigger_type(rule: dict[str, Any]) -> str | None:
    trigger = rule.get("trigger")
    kind = trigger.get("type") if isinstance(trigger, dict) else None
    return kind if isinstance(kind, str) else None


def zone_name(rule: dict[str, Any]) -> str:
    trigger = rule.get("trigger")
    zone = trigger.get("timezone") if isinstance(trigger, dict) else None
    return zone if isinstance(zone, str) and zone else "UTC"


def within(trigger: dict[str, Any]) -> dt.timedelta | None:
    """``due_date_approaching``'s window (``{"hours": n}`` or ``{"days": n}``)."""
    value = trigger.get("within")
    if not isinstance(value, dict):
        return None
    hours, days = value.get("hours"), value.get("days")
    if isinstance(hours, int) and hours > 0:
        return dt.timedelta(hours=hours)
    if isinstance(days, int) and days > 0:
        return dt.timedelta(days=days)
    return None


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def next_schedule_fire(rule: dict[str, Any], after: float) -> float | None:
    """The next fire time of a ``schedule`` rule strictly after ``after`` (epoch seconds)."""
    trigger = rule.get("trigger") or {}
    try:
        nxt = next_fire(
            str(trigger.get("cron")), dt.datetime.fromtimestamp(after, dt.UTC), zone_name(rule)
        )
    except ValueError:
        return None
    return nxt.timestamp()


WATCHED = frozenset({DocKind.MAIN, DocKind.FINANCE, DocKind.RESOURCES})
READS_OF: dict[str, frozenset[Permission]] = {
    "budget_exceeded": frozenset({Permission.VIEW_BUDGET, Permission.VIEW_COSTS}),
    "resource_overallocated": frozenset({Permission.VIEW_RESOURCES}),
}
"""Permissions the owner of a rule with this trigger needs besides edit rights: its
messages carry the finance / resources event (amounts, allocations)."""
STATUS_TRIGGERS = frozenset({"task_status_changed", "project_status_changed"})


def may_fire(rule: dict[str, Any], event: DomainEvent) -> bool:
    """Whether the rule's trigger could fire on this event (a cheap necessary condition,
    before the engine decides): the event's kind is one its trigger type reacts to, and a
    status trigger's event is about the status (typing in a title is not)."""
    kind = trigger_type(rule)
    if kind is None or event.kind not in KINDS.get(kind, ()):
        return False
    return kind not in STATUS_TRIGGERS or event.field == "status"


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- storage (on the runner's worker thread) ------------------------------------------------


def record_runs(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[Any, ...]],
    claims: Sequence[int],
    fence: Fence | None = None,
) -> dict[int, int]:
    """One transaction: every row (rule, project, key, event, outcome, detail, depth, at)
    inserted unless its (rule, key) is there; returns {index in rows: run id} of the rows
    in ``claims`` that were inserted (runs to carry out: the others ran before).

    Several servers (``fence``: the automation consumer's lease): the claim fails
    (FenceLost) once a newer holder took the lease over, and a run an older holder
    claimed but left ``running`` (killed mid-run) is claimed again, to be carried out
    now (its actions are idempotent: see ``_edit`` and the outbox's keys)."""
    claimed: dict[int, int] = {}
    wanted = set(claims)
    token = fence.token if fence is not None else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        if fence is not None:
            fence(conn)
        for index, (rule, project, key, event, outcome, detail, depth, at) in enumerate(rows):
            cur = conn.execute(
                "INSERT OR IGNORE INTO rule_runs (rule, project, event_key, event, outcome,"
                " detail, depth, at, fence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rule, project, key, json.dumps(event), outcome, detail, depth, at, token),
            )
            if index not in wanted:
                continue
            if cur.rowcount and cur.lastrowid is not None:
                claimed[index] = cur.lastrowid
            elif fence is not None:
                again = conn.execute(
                    "UPDATE rule_runs SET fence = ? WHERE rule = ? AND event_key = ?"
                    " AND outcome = 'running' AND fence < ? RETURNING id",
                    (token, rule, key, token),
                ).fetchone()
                if again is not None:
                    claimed[index] = int(again[0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return claimed


def finish_runs(conn: sqlite3.Connection, results: Sequence[tuple[int, str, str]]) -> None:
    with conn:
        conn.executemany(
            "UPDATE rule_runs SET outcome = ?, detail = ? WHERE id = ?",
            [(outcome, detail, run_id) for run_id, outcome, detail in results],
        )


def pause_rule(
    conn: sqlite3.Connection,
    project: str,
    rule: str,
    reason: str,
    now: float,
    run_id: int | None = None,
) -> None:
    """Pause a rule; with ``run_id``, the run that found it must pause says so in the same
    transaction, so that no reader sees a paused rule whose last run is still running."""
    with conn:
        if run_id is not None:
            conn.execute(
                "UPDATE rule_runs SET outcome = 'paused', detail = ? WHERE id = ?",
                (f"paused: {reason}", run_id),
            )
        conn.execute(
            "INSERT INTO rule_state (project, rule, paused_reason, paused_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(project, rule) DO UPDATE SET paused_reason = excluded.paused_reason,"
            " paused_at = excluded.paused_at",
            (project, rule, reason, now),
        )


def resume_rules(conn: sqlite3.Connection, project: str, rules: Sequence[str]) -> None:
    with conn:
        conn.executemany(
            "DELETE FROM rule_state WHERE project = ? AND rule = ?", [(project, r) for r in rules]
        )


def paused_rules(conn: sqlite3.Connection, project: str) -> dict[str, str]:
    return {
        rule: reason or ""
        for rule, reason in conn.execute(
            "SELECT rule, paused_reason FROM rule_state WHERE project = ?"
            " AND paused_reason IS NOT NULL",
            (project,),
        )
    }


def list_runs(
    conn: sqlite3.Connection, project: str, rule: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, rule, event_key, event, outcome, detail, depth, at FROM rule_runs"
        " WHERE project = ?" + (" AND rule = ?" if rule is not None else "") + " ORDER BY id DESC"
        " LIMIT ?"
    )
    args: tuple[Any, ...] = (project, rule, limit) if rule is not None else (project, limit)
    keys = ("id", "rule", "event_key", "event", "outcome", "detail", "depth", "at")
    out = []
    for row in conn.execute(sql, args):
        item = dict(zip(keys, row, strict=True))
        item["event"] = json.loads(item["event"] or "{}")
        out.append(item)
    return out


def rule_summary(conn: sqlite3.Connection, project: str) -> dict[str, dict[str, Any]]:
    """Per rule: its last run, failures counted, and why it is paused (if it is)."""
    out: dict[str, dict[str, Any]] = {}
    for rule, at, outcome, failures in conn.execute(
        "SELECT rule, max(at), (SELECT outcome FROM rule_runs r2 WHERE r2.rule = r.rule"
        " ORDER BY id DESC LIMIT 1), sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END)"
        " FROM rule_runs r"
        " WHERE project = ? GROUP BY rule",
        (project,),
    ):
        out[rule] = {"last_run_at": at, "last_outcome": outcome, "failures": failures or 0}
    for rule, reason in paused_rules(conn, project).items():
        out.setdefault(rule, {})["paused_reason"] = reason
    return out


@dataclass(frozen=True)
class Fire:
    """A scheduled fire time of one rule (and task)."""

    rule: str
    project: str
    kind: str
    entity: str
    at: float
    key: str


def replace_schedule(
    conn: sqlite3.Connection, project: str, fires: Sequence[Fire], only_task: str | None, now: float
) -> None:
    """The project's fire times become ``fires`` (only the rows of ``only_task`` when given).
    A ``schedule`` row whose time has passed (a fire not yet run: the server was down) is
    kept for the scheduler to run; fires already run (their key in rule_runs) are left out."""
    with conn:
        if only_task is None:
            conn.execute(
                "DELETE FROM rule_schedule WHERE project = ? AND NOT (kind = 'schedule'"
                " AND next_fire_at <= ?)",
                (project, now),
            )
        else:
            conn.execute(
                "DELETE FROM rule_schedule WHERE project = ? AND entity = ?", (project, only_task)
            )
        for fire in fires:
            ran = conn.execute(
                "SELECT 1 FROM rule_runs WHERE rule = ? AND event_key = ?", (fire.rule, fire.key)
            ).fetchone()
            if ran is None:
                conn.execute(
                    "INSERT OR IGNORE INTO rule_schedule (rule, project, kind, entity,"
                    " next_fire_at, event_key) VALUES (?, ?, ?, ?, ?, ?)",
                    (fire.rule, fire.project, fire.kind, fire.entity, fire.at, fire.key),
                )


def due_fires(conn: sqlite3.Connection, now: float, limit: int = 500) -> list[Fire]:
    return [
        Fire(*row)
        for row in conn.execute(
            "SELECT rule, project, kind, entity, next_fire_at, event_key FROM rule_schedule"
            " WHERE next_fire_at <= ? ORDER BY next_fire_at LIMIT ?",
            (now, limit),
        )
    ]


def fired(conn: sqlite3.Connection, fire: Fire, following: Fire | None) -> None:
    """``fire`` ran: its row goes, or moves to the ``following`` fire time."""
    with conn:
        conn.execute(
            "DELETE FROM rule_schedule WHERE project = ? AND rule = ? AND entity = ?",
            (fire.project, fire.rule, fire.entity),
        )
        if following is not None:
            conn.execute(
                "INSERT OR REPLACE INTO rule_schedule (rule, project, kind, entity, next_fire_at,"
                " event_key) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    following.rule,
                    following.project,
                    following.kind,
                    following.entity,
                    following.at,
                    following.key,
                ),
            )


def schedule_rows(conn: sqlite3.Connection, project: str) -> list[dict[str, Any]]:
    keys = ("rule", "kind", "entity", "next_fire_at", "event_key")
    return [
        dict(zip(keys, row, strict=True))
        for row in conn.execute(
            "SELECT rule, kind, entity, next_fire_at, event_key FROM rule_schedule"
            " WHERE project = ? ORDER BY next_fire_at",
            (project,),
        )
    ]


# -- fire times ------------------------------------------------------------------------------


def fires_for(
    project: str,
    rules: dict[str, dict[str, Any]],
    snapshot: dict[str, Any],
    now: float,
    only_task: str | None = None,
) -> list[Fire]:
    """The fire times of the project's scheduled rules (pure): a schedule's next one, and
    per task with a due date the window's start / the moment it is overdue (a time already
    passed is kept: the scheduler fires it at once, and only once per due date)."""
    out: list[Fire] = []
    for rule_id, rule in rules.items():
        kind = trigger_type(rule)
        if kind not in SCHEDULED_KINDS or rule.get("enabled") is False:
            continue
        trigger = rule.get("trigger") or {}
        if kind == "schedule":
            if only_task is not None:
                continue
            at = next_schedule_fire(rule, now)
            if at is not None:
                out.append(Fire(rule_id, project, kind, "", at, f"schedule:{iso(at)}"))
            continue
        window = within(trigger) if kind == "due_date_approaching" else dt.timedelta(0)
        if window is None:
            continue
        for task in tasks_of(snapshot):
            if only_task is not None and task.get("id") != only_task:
                continue
            due = task.get("due")
            if not isinstance(due, str):
                continue
            try:
                end = overdue_at(due, zone_name(rule)).timestamp()
                if kind == "due_date_approaching":
                    if end <= now:
                        continue  # already overdue: no longer approaching
                    at = approaching_at(due, window, zone_name(rule)).timestamp()
                else:
                    at = end
            except ValueError:
                continue
            out.append(Fire(rule_id, project, kind, task["id"], at, f"{kind}:{task['id']}:{due}"))
    return out


# -- the runner ------------------------------------------------------------------------------


@dataclass
class Judged:
    """One rule's verdict on one event: to carry out (``act``) or to record as skipped."""

    project: str
    rule_id: str
    rule: dict[str, Any]
    key: str
    depth: int
    event: DomainEvent
    snapshot: dict[str, Any]
    act: bool
    detail: str = ""
    intents: tuple[Any, ...] = ()


@dataclass
class RunResult:
    outcome: str  # ran | failed | paused | skipped
    detail: str
    run_id: int | None = None


@dataclass
class Queued:
    """An outbound message a run wants sent: enqueued with the others of its batch in one
    transaction; ``parts[index]`` of its run's detail says what became of it."""

    project: str
    key: str
    channel: str
    target: str
    payload: dict[str, Any]
    parts: list[str]
    index: int
    note: str = ""  # added to what became of it (e.g. the recipients left out)


def enqueue_all(outbox: Outbox, rows: Sequence[Queued]) -> list[int | None]:
    """Every message in one transaction on the outbox's connection (its worker thread)."""
    conn = outbox.worker.conn
    with transaction(conn):
        return [
            outbox.enqueue_sync(conn, q.project, q.key, q.channel, q.target, q.payload)
            for q in rows
        ]


class AutomationRunner:
    """Evaluates rules and carries out their intents (see the module docstring)."""

    def __init__(
        self,
        ctx: ServerContext,
        db: SQLiteWorker,
        center: NotificationCenter,
        outbox: Outbox | None,
        clock: Clock,
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.center = center
        self.outbox = outbox
        self.clock = clock
        self._validated: dict[str, tuple[dict[str, Any], Rule | None]] = {}
        self._paused: dict[str, dict[str, str]] = {}  # project -> rule -> reason

    @property
    def tandem(self) -> TandemContext:
        from sync_server.extensions.context import TandemContext

        assert isinstance(self.ctx, TandemContext)
        return self.ctx

    def rule_model(self, rule_id: str, data: dict[str, Any]) -> Rule | None:
        """The validated rule (cached while the rule is the same); None if it does not
        validate (the gate should have refused it; it is logged and never runs)."""
        known = self._validated.get(rule_id)
        if known is not None and (known[0] is data or known[0] == data):
            return known[1]
        model: Rule | None
        try:
            model = validate_rule(data, "document")
        except Exception as e:
            log.warning("rule %s does not validate: %s", rule_id, e)
            model = None
        if len(self._validated) > 10_000:
            self._validated.clear()
        self._validated[rule_id] = (data, model)
        return model

    async def paused(self, project: str) -> dict[str, str]:
        known = self._paused.get(project)
        if known is None:
            known = await self.db.run(paused_rules, self.db.conn, project)
            self._paused[project] = known
        return known

    async def read(self, project: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
        """The project's rules and (only if it has any enabled one) its JSON snapshot."""
        live = self.tandem.live
        view = await live.read(parse_doc_name(doc_name(project)))
        rules = live.snapshot(view, "automation-rules", rules_of)
        if not any(r.get("enabled", True) is not False for r in rules.values()):
            return rules, None
        snapshot = dict(
            live.snapshot(view, "automation-project", lambda d: project_json(d, project))
        )
        # budget and allocation rules read the finance / resources document too
        needs = {SNAPSHOT_NEEDS.get(trigger_type(r) or "") for r in rules.values()}
        for key, kind, build in (
            ("finance", DocKind.FINANCE, finance_json),
            ("resources", DocKind.RESOURCES, resources_json),
        ):
            if key in needs:
                other = await live.read(parse_doc_name(doc_name(project, kind)))
                snapshot[key] = live.snapshot(other, f"automation-{key}", build)
        return rules, prepare_project(snapshot)

    # -- the feed ------------------------------------------------------------------------

    async def changes(self, changes: Sequence[DocumentChanged]) -> set[tuple[str, str | None]]:
        """Run the rules for a batch of accepted changes; returns what the schedule must
        recompute: (project, task) pairs (task None: the whole project)."""
        recompute: set[tuple[str, str | None]] = set()
        judged: list[Judged] = []
        seen: dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any] | None]] = {}
        # the finance / resources document just after each of the batch's events there
        # ("position, event index" -> (snapshot key, that state): see states_after)
        state_at: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}
        for position, change in enumerate(changes):
            if not change.events:
                continue
            try:
                name = parse_doc_name(change.doc_name)
            except Exception:
                continue
            if name.kind not in WATCHED:
                continue
            project = name.project_id
            changed_rules = [
                e.entity for e in change.events if e.kind.startswith("rule_") and e.entity
            ]
            if project not in seen:  # once per project and batch: the live document now
                seen[project] = await self.read(project)
                now = seen[project][1]
                if now is not None:
                    state_at.update(await self.states_after(project, changes, now))
            rules, snapshot = seen[project]
            if changed_rules:
                recompute.add((project, None))
                if change.actor.kind == "user" and not change.actor.via:
                    await self._rules_changed(project, change.actor.user_id, changed_rules, rules)
            for event in change.events:
                if event.entity and (
                    event.kind in ("task_created", "task_deleted")
                    or (event.kind == "task_field_changed" and event.field in DUE_FIELDS)
                ):
                    recompute.add((project, event.entity))
            if snapshot is None:
                continue
            depth = chain_depth(change.actor)
            paused = await self.paused(project)
            for index, event in enumerate(change.events):
                key = f"feed:{change.feed_id}:{index}"
                state = state_at.get((position, index))
                seen_by = snapshot if state is None else {**snapshot, state[0]: state[1]}
                for rule_id, rule in rules.items():
                    if rule.get("enabled", True) is False or not may_fire(rule, event):
                        continue
                    item = self.judge(project, rule_id, rule, event, key, depth, seen_by, paused)
                    if item is not None:
                        judged.append(item)
        await self.settle(judged)
        return recompute

    async def states_after(
        self, project: str, changes: Sequence[DocumentChanged], now: Mapping[str, Any]
    ) -> dict[tuple[int, int], tuple[str, dict[str, Any]]]:
        """(position, event index) -> (snapshot key, the document just after that event),
        for each event of the batch in the project's finance and resources documents that
        the rules read (``now`` has the key).

        Budget and allocation rules fire on a crossing (90 % spent, over capacity), which
        only the state each event made can tell: judged against a later state, two
        batches would both see the same crossing. The document is read from storage at
        a known seq and rewound (rules.automation.project.document_states) through the
        batch's later events and the stored ones past the batch up to that seq (the live
        room may already hold the next batch's changes: a read of it is not tied to the
        feed). Changes that are not from the feed (no feed id) are judged against
        ``now``, rewound through the batch."""
        out: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}
        for key, kind, build in (
            ("finance", DocKind.FINANCE, finance_json),
            ("resources", DocKind.RESOURCES, resources_json),
        ):
            if not isinstance(now.get(key), Mapping):
                continue
            name = parse_doc_name(doc_name(project, kind))
            found = events_of(name, changes)
            if not found:
                continue
            batch = [e for _, _, e in found]
            ids = {changes[p].feed_id for p, _, _ in found}
            if None not in ids:
                seq, doc = await self.tandem.live.stored(name)
                state = build(doc)
                last = max(i for i in ids if i is not None)  # (for mypy: none is None)
                later = await self.db.run(document_events_after, self.db.conn, name.name, last, seq)
                states = document_states(state, batch + later)[: len(batch)]
            else:
                states = document_states(now[key], batch)
            out.update(((p, i), (key, s)) for (p, i, _), s in zip(found, states, strict=True))
        return out

    async def _rules_changed(
        self, project: str, writer: str, changed: Sequence[str], rules: dict[str, dict[str, Any]]
    ) -> None:
        """A person wrote these rules: each acts as its ``created_by``, which must be that
        person (REST sets it so; a socket client writing a rule that claims somebody
        else's name would otherwise borrow their permissions): a rule claiming another
        owner is paused, the others are given another go if they were paused."""
        resume: list[str] = []
        for rule_id in changed:
            rule = rules.get(rule_id)
            if rule is None:
                continue
            owner = rule.get("created_by")
            if owner == writer:
                resume.append(rule_id)
                continue
            reason = (
                f"{writer} changed it but it names {owner!r} as its owner: a rule acts as "
                f"the person who last changed it (created_by must be {writer!r})"
            )
            await self.db.run(pause_rule, self.db.conn, project, rule_id, reason, self.clock())
            log.warning("rule %s paused: %s", rule_id, reason, extra={"doc": doc_name(project)})
        if resume:
            await self.db.run(resume_rules, self.db.conn, project, resume)
        self._paused.pop(project, None)

    def judge(
        self,
        project: str,
        rule_id: str,
        rule: dict[str, Any],
        event: DomainEvent,
        key: str,
        depth: int,
        snapshot: dict[str, Any],
        paused: dict[str, str],
    ) -> Judged | None:
        """What one rule makes of one event (no I/O); None when its trigger does not fire
        on it (nothing is recorded)."""
        model = self.rule_model(rule_id, rule)
        if model is None:
            return None
        evaluation = evaluate(rule_id, model, event, snapshot, depth=depth)
        if not evaluation.triggered:
            return None
        item = Judged(project, rule_id, rule, key, depth, event, snapshot, act=False)
        reason = paused.get(rule_id)
        if reason is not None:
            item.detail = f"paused: {reason}"
        elif depth >= MAX_DEPTH:
            item.detail = f"chain depth limit ({MAX_DEPTH}) reached: not run"
        elif evaluation.skipped is not None:
            item.detail = evaluation.skipped
        elif not evaluation.matched:
            return None  # its conditions do not hold: not a run (the dry run shows why)
        else:
            item.act = True
            item.intents = evaluation.intents
            item.detail = "; ".join(
                f"action {index}: {why}" for index, why in evaluation.actions_skipped
            )
        return item

    async def settle(self, items: Sequence[Judged]) -> list[RunResult]:
        """Record every verdict and claim the runs to carry out (one transaction), carry
        them out, record how each went (one transaction)."""
        if not items:
            return []
        now = self.clock()
        rows = [
            (
                i.rule_id,
                i.project,
                i.key,
                i.event.to_json(),
                "running" if i.act else "skipped",
                i.detail,
                i.depth,
                now,
            )
            for i in items
        ]
        claims = [n for n, i in enumerate(items) if i.act]
        claimed = await self.db.run(record_runs, self.db.conn, rows, claims, current_fence.get())
        results: list[RunResult] = []
        acted: list[tuple[RunResult, list[str], str]] = []
        queued: list[Queued] = []
        for n, item in enumerate(items):
            if not item.act:
                results.append(RunResult("skipped", item.detail))
                continue
            run_id = claimed.get(n)
            if run_id is None:
                continue  # ran before (the feed delivers at least once)
            parts: list[str] = []
            result = await self.act(item, run_id, parts, queued)
            results.append(result)
            acted.append((result, parts, item.detail))
        if queued:
            assert self.outbox is not None
            outbox = self.outbox
            try:
                ids = await outbox.worker.run(enqueue_all, outbox, queued)
            except Exception as e:  # nothing was queued: those runs failed
                log.warning("could not queue %d message(s): %s", len(queued), e)
                for q in queued:
                    q.parts[q.index] = f"{q.channel}: not queued ({e})"
                failed = {id(q.parts) for q in queued}
                for result, parts, _ in acted:
                    if id(parts) in failed:
                        result.outcome = "failed"
            else:
                outbox.wake()
                for q, delivery in zip(queued, ids, strict=True):
                    q.parts[q.index] = (
                        f"{q.channel}: already queued"
                        if delivery is None
                        else f"{q.channel}: queued (delivery {delivery})"
                    ) + (f" ({q.note})" if q.note else "")
        finished: list[tuple[int, str, str]] = []
        for result, parts, skipped in acted:
            said = [text for text in (*parts, result.detail, skipped) if text]
            result.detail = "; ".join(said) or "nothing to do"
            assert result.run_id is not None
            finished.append((result.run_id, result.outcome, result.detail))
        if finished:
            await self.db.run(finish_runs, self.db.conn, finished)
        return results

    async def run(
        self,
        project: str,
        rule_id: str,
        rule: dict[str, Any],
        event: DomainEvent,
        key: str,
        depth: int,
        snapshot: dict[str, Any],
    ) -> RunResult | None:
        """Judge and settle one rule on one event (the scheduler's fires)."""
        paused = await self.paused(project)
        item = self.judge(project, rule_id, rule, event, key, depth, snapshot, paused)
        if item is None:
            return None
        results = await self.settle([item])
        return results[0] if results else None

    async def act(
        self, item: Judged, run_id: int, done: list[str], queued: list[Queued]
    ) -> RunResult:
        """Carry out a claimed run's intents as the rule's owner: edits and notifications
        now, outbound messages into ``queued`` (each with its place in ``done``, what the
        run's detail says of each intent). The result's detail is what went wrong, if so."""
        project, rule_id, key = item.project, item.rule_id, item.key
        owner = item.rule.get("created_by")
        if not isinstance(owner, str) or not owner:
            return await self._pause(project, rule_id, run_id, "the rule has no owner (created_by)")
        perms = self.tandem.access.permissions(owner, project)
        if not perms:
            return await self._pause(
                project, rule_id, run_id, f"its owner {owner} is no longer a member of the project"
            )
        # what the rule sends out shows what its trigger reads: its owner must be able to
        needs = READS_OF.get(trigger_type(item.rule) or "", frozenset())
        missing = sorted(p.value for p in needs - perms)
        if missing:
            reason = f"its owner {owner} may no longer read what it sends ({missing[0]} needed)"
            return await self._pause(project, rule_id, run_id, reason)
        try:
            # texts as the owner writes dates and numbers (what goes to Slack, Teams, e-mail
            # and comments); each notification as its recipient does (_notify)
            formats = await self.db.run(locales_of, self.db.conn, [owner])
            owned = self.rendered(item, text_format(*formats.get(owner, (None, None))))
            for plain, intent in zip(item.intents, owned, strict=True):
                if isinstance(intent, EditIntent):
                    done.append(
                        await self._edit(project, rule_id, owner, intent, item.depth, run_id)
                    )
                elif isinstance(plain, NotifyIntent):
                    done.append(await self._notify(project, rule_id, plain, item.snapshot, item))
                elif isinstance(intent, OutboundIntent):
                    done.append(await self._outbound(project, rule_id, key, intent, done, queued))
        except EditRefused as e:
            if e.permission:
                reason = (
                    f"its owner {owner} may no longer do this ({e.permission} needed): {e.reason}"
                )
                return await self._pause(project, rule_id, run_id, reason)
            return RunResult("failed", f"refused: {e.reason}", run_id)
        except Exception as e:
            log.warning("rule %s failed: %s", rule_id, e, extra={"doc": doc_name(project)})
            return RunResult("failed", f"failed: {e}", run_id)
        return RunResult("ran", "", run_id)

    async def _pause(self, project: str, rule_id: str, run_id: int, reason: str) -> RunResult:
        log.warning("rule %s paused: %s", rule_id, reason, extra={"doc": doc_name(project)})
        await self.db.run(pause_rule, self.db.conn, project, rule_id, reason, self.clock(), run_id)
        self._paused.setdefault(project, {})[rule_id] = reason
        return RunResult("paused", f"paused: {reason}", run_id)

    async def _edit(
        self, project: str, rule_id: str, owner: str, intent: EditIntent, depth: int, run_id: int
    ) -> str:
        """Carry out one edit. Each is idempotent: a run carried out again (its first holder
        killed mid-run, sync_server.scale) sets the same values, and posts its comment only
        if the comment of this run and action is not there yet."""
        actor = rule_actor(owner, rule_id, depth + 1)
        params = intent.params
        task = intent.task_id
        reason = f"rule {rule_id}: {intent.action}"
        # (ctx.edit runs on what storage holds: a run carried out again after a takeover
        # sees what its first holder stored, relayed to this node or not)
        if intent.action == "add_comment":
            text = str(params.get("text") or "")
            message_id = f"run-{run_id}-{intent.action_index}"
            posted: list[bool] = []

            def comment(chat: Doc) -> None:
                if not has_message(chat, message_id):
                    post_chat_message(chat, owner, text, task=task, message_id=message_id)
                    posted.append(True)

            await self.ctx.edit(actor, doc_name(project, DocKind.CHAT), comment, reason)
            return "add_comment: posted" if posted else "add_comment: posted before"

        def change(doc: Doc) -> None:
            tasks = doc.get("tasks", type=Map)
            if task not in tasks:
                raise KeyError(f"no task {task!r}")
            current = normalize(tasks[task])
            if intent.action == "set_status":
                move_task(doc, task, str(params["status"]))
            elif intent.action == "set_field":
                name = str(params["field"])
                if name.startswith("custom."):
                    custom = dict(current.get("custom") or {})
                    custom[name[len("custom.") :]] = params.get("value")
                    update_task(doc, task, TaskUpdate(custom=custom))
                else:
                    update_task(doc, task, TaskUpdate.model_validate({name: params.get("value")}))
            elif intent.action == "assign":
                users = sorted({*current.get("assignees", []), *params.get("users", [])})
                update_task(doc, task, TaskUpdate(assignees=users))
            elif intent.action == "add_label":
                labels = list(current.get("labels", []))
                if params["label"] not in labels:
                    labels.append(params["label"])
                    update_task(doc, task, TaskUpdate(labels=labels))
            elif intent.action == "create_subtasks":
                titles = [str(t) for t in params.get("titles", [])]
                status = str(current.get("status", "todo"))
                add_subtasks(
                    doc, task, titles, status, owner, f"run-{run_id}-{intent.action_index}"
                )

        await self.ctx.edit(actor, doc_name(project), change, reason)
        return f"{intent.action}: done"

    def rendered(self, item: Judged, fmt: TextFormat) -> tuple[Any, ...]:
        """The item's intents with their texts written in ``fmt`` (the engine is pure and
        cheap: evaluated again with it; the same intents when ``fmt`` is the default)."""
        if fmt is PLAIN:
            return item.intents
        model = self.rule_model(item.rule_id, item.rule)
        if model is None:
            return item.intents
        again = evaluate(item.rule_id, model, item.event, item.snapshot, depth=item.depth, fmt=fmt)
        return again.intents if len(again.intents) == len(item.intents) else item.intents

    async def _notify(
        self,
        project: str,
        rule_id: str,
        intent: NotifyIntent,
        snapshot: dict[str, Any],
        item: Judged | None = None,
    ) -> str:
        users = set(intent.users)
        if intent.role:
            users |= {u for u, role in snapshot.get("members", {}).items() if role == intent.role}
        task = task_in(snapshot, intent.task_id) if intent.assignees else None
        if task is not None:
            users |= set(task.get("assignees") or ())
        members = set(snapshot.get("members", {}))
        users &= members  # nobody outside the project hears of it
        url = f"/#/p/{project}/task/{intent.task_id}" if intent.task_id else f"/#/p/{project}"
        # each recipient reads dates and numbers as their account's locale writes them
        chosen = await self.db.run(locales_of, self.db.conn, sorted(users)) if item else {}
        texts: dict[tuple[str | None, str | None], NotifyIntent] = {}
        notices = []
        for user in sorted(users):
            setting = chosen.get(user, (None, None))
            own = texts.get(setting)
            if own is None:
                own = intent
                if item is not None and setting != (None, None):
                    same_action = [
                        i
                        for i in self.rendered(item, text_format(*setting))
                        if isinstance(i, NotifyIntent) and i.action_index == intent.action_index
                    ]
                    own = same_action[0] if same_action else intent
                texts[setting] = own
            read = "task_notice" if intent.task_id else "project_notice"
            notices.append(Notice(user, project, "automation", own.title, own.body, url, read))
        told = await self.center.deliver(notices)
        return f"notify: {told} user(s)"

    async def _outbound(
        self,
        project: str,
        rule_id: str,
        key: str,
        intent: OutboundIntent,
        done: list[str],
        queued: list[Queued],
    ) -> str:
        if self.outbox is None:
            raise RuntimeError(f"{intent.channel}: no outbox on this server")
        payload = dict(intent.payload)
        skipped: list[str] = []
        if intent.channel == "email":
            to, skipped = await self._addresses(project, payload.get("to"), payload.get("task"))
            if not to:
                without = (
                    f": {', '.join(skipped)} ha{'s' if len(skipped) == 1 else 've'}"
                    if skipped
                    else ""
                )
                return f"email: nobody to send it to (no recipient with an e-mail address{without})"
            payload["to"] = to
        idempotency = f"rule:{rule_id}:{key}:{intent.action_index}"
        note = f"no e-mail address: {', '.join(skipped)}" if skipped else ""
        queued.append(
            Queued(
                project, idempotency, intent.channel, intent.target, payload, done, len(done), note
            )
        )
        return f"{intent.channel}: to be queued" + (f" ({note})" if note else "")

    async def _addresses(self, project: str, to: Any, task_id: Any) -> tuple[list[str], list[str]]:
        """An email action's recipients (``{"users", "role", "assignees"}``, members of the
        project who may read what it quotes) as their accounts' e-mail addresses; and the
        users left out because their account has none."""
        if not isinstance(to, dict):
            return [], []
        _rules, snapshot = await self.read(project)
        snapshot = snapshot or {}
        members: dict[str, Any] = snapshot.get("members", {})
        users = {u for u in to.get("users") or () if isinstance(u, str)}
        if to.get("role"):
            users |= {u for u, role in members.items() if role == to["role"]}
        task = task_in(snapshot, task_id) if to.get("assignees") else None
        if task is not None:
            users |= set(task.get("assignees") or ())
        # and of those, only who may read what the e-mail quotes (as a notice: rules.reads)
        read = "task_notice" if task_id else "project_notice"
        on_project = sorted(u for u in users if u in members)
        wanted = await self.db.run(readers, self.db.conn, project, on_project, read)
        found = await self.db.run(email_addresses, self.db.conn, wanted)
        return sorted(set(found.values())), [u for u in wanted if u not in found]


class Scheduler:
    """Fire times in ``rule_schedule``; a task that runs the ones that passed."""

    def __init__(self, runner: AutomationRunner, tick_seconds: float) -> None:
        self.runner = runner
        self.tick_seconds = tick_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.daily: DailyDigest | None = None  # the daily e-mail digest, checked every tick

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="automation scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    async def recompute(self, items: set[tuple[str, str | None]]) -> None:
        runner = self.runner
        whole = {project for project, task in items if task is None}
        for project in sorted({p for p, _ in items}):
            rules, snapshot = await runner.read(project)
            if snapshot is None:
                snapshot = {"tasks": {}}
            now = runner.clock()
            if project in whole:
                await runner.db.run(
                    replace_schedule,
                    runner.db.conn,
                    project,
                    fires_for(project, rules, snapshot, now),
                    None,
                    now,
                )
                continue
            for task in sorted(t for p, t in items if p == project and t is not None):
                await runner.db.run(
                    replace_schedule,
                    runner.db.conn,
                    project,
                    fires_for(project, rules, snapshot, now, only_task=task),
                    task,
                    now,
                )
        self.wake()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the automation scheduler failed; trying again")
            if self.daily is not None:
                try:
                    await self.daily.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("the daily digest failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)

    async def tick(self) -> int:
        """Run every fire time that has passed; returns how many ran."""
        runner = self.runner
        fires = await runner.db.run(due_fires, runner.db.conn, runner.clock())
        for fire in fires:
            await self._fire(fire)
        return len(fires)

    async def _fire(self, fire: Fire) -> None:
        runner = self.runner
        rules, snapshot = await runner.read(fire.project)
        rule = rules.get(fire.rule)
        following: Fire | None = None
        if rule is not None and snapshot is not None and rule.get("enabled", True) is not False:
            event: DomainEvent
            if fire.kind == "schedule":
                event = DomainEvent("schedule_fired", entity=fire.rule, detail={"at": iso(fire.at)})
                nxt = next_schedule_fire(rule, max(runner.clock(), fire.at))
                if nxt is not None:
                    following = Fire(
                        fire.rule, fire.project, fire.kind, "", nxt, f"schedule:{iso(nxt)}"
                    )
            else:
                due = fire.key.rpartition(":")[2]
                event = DomainEvent(
                    fire.kind,
                    entity=fire.entity,
                    detail={"rule": fire.rule, "due": due, "at": iso(fire.at)},
                )
            # the engine fires a due-date event only while it is still true (the task is
            # there, not done, and has that due date)
            await runner.run(fire.project, fire.rule, rule, event, fire.key, 0, snapshot)
        await runner.db.run(fired, runner.db.conn, fire, following)


class AutomationExtension(Extension):
    """Rules run from the change feed, the scheduler, runs recorded (see the module docstring).

    ``clock``: the time the scheduler and run records use (default: the settings'
    ``automation_clock_offset_seconds`` added to ``time.time()``, a test hook).
    ``outbox``: the durable outbox to enqueue outbound intents in (default: the
    ``integrations.outbox.Outbox`` on the server's database, started here).
    """

    name = "automation"
    durable = True

    def __init__(self, *, clock: Clock | None = None, outbox: Outbox | None = None) -> None:
        self._clock = clock
        self.outbox = outbox
        self.secrets: SecretStore | None = outbox.secrets if outbox is not None else None
        self._own_outbox = False
        self.db: SQLiteWorker | None = None
        self.outbox_db: SQLiteWorker | None = None  # the outbox's and secret store's own
        self.runner: AutomationRunner | None = None
        self.scheduler: Scheduler | None = None

    def clock(self) -> float:
        if self._clock is not None:
            return self._clock()
        settings = self.runner.ctx.settings if self.runner is not None else None
        offset = float(getattr(settings, "automation_clock_offset_seconds", 0.0) or 0.0)
        return time.time() + offset

    async def startup(self, ctx: ServerContext) -> None:
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        center = NotificationCenter(self.db, ctx.outbound)
        if self.outbox is None:
            self.outbox, self.secrets = await self._open_outbox(ctx)
            self._own_outbox = True
        self.runner = AutomationRunner(ctx, self.db, center, self.outbox, self.clock)
        tick = float(getattr(ctx.settings, "automation_tick_seconds", 1.0) or 1.0)
        self.scheduler = Scheduler(self.runner, tick)
        if self.outbox is not None:
            self.scheduler.daily = DailyDigest(
                self.db,
                self.outbox,
                self._project_snapshot,
                self.clock,
                int(getattr(ctx.settings, "digest_hour", DEFAULT_HOUR)),
            )
        self.scheduler.start()  # its first tick runs the fires missed while the server was down

    async def _project_snapshot(self, project: str) -> dict[str, Any]:
        assert self.runner is not None
        live = self.runner.tandem.live
        view = await live.read(parse_doc_name(doc_name(project)))
        return dict(live.snapshot(view, "automation-project", lambda d: project_json(d, project)))

    async def _open_outbox(self, ctx: ServerContext) -> tuple[Outbox, SecretStore]:
        """The outbox (and its secret store) on the server's database, on a connection of
        their own, configured from the settings; its delivery worker started."""
        self.outbox_db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        outbox = Outbox.from_settings(self.outbox_db, ctx.settings, ctx.outbound)
        leases = getattr(ctx, "leases", None)
        if leases is None:
            await outbox.start()
            return outbox, outbox.secrets

        # several servers: the holder of the "outbox" lease delivers; a node taking over
        # makes the rows its predecessor left sending due again (start), and its claims
        # are fenced off once it loses the lease
        async def deliver(fence: Fence) -> None:
            outbox.fence = fence
            await outbox.start()

        leases.run_exclusively("outbox", deliver, outbox.stop)
        return outbox, outbox.secrets

    async def change_accepted(self, ctx: ServerContext, changes: Sequence[DocumentChanged]) -> None:
        assert self.runner is not None and self.scheduler is not None
        recompute = await self.runner.changes(changes)
        if recompute:
            await self.scheduler.recompute(recompute)

    async def shutdown(self, ctx: ServerContext) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        if self._own_outbox and self.outbox is not None:
            await self.outbox.stop()
        if self.outbox_db is not None:
            await self.outbox_db.close()
        if self.db is not None:
            await self.db.close()
