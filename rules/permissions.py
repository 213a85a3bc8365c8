"""Permissions: codes, roles as data, grants, and the one decision function. Pure: no I/O.

Effective permissions of a user on a project come from
    the role of their grant (a project role of that name wins over a global one)
    + the permissions the grant adds - the permissions it removes.
``decide`` maps one transaction's Changes to the permissions they need and
allows it, or denies it naming the path and the missing permission.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from doc_model import Change, DocKind


class Permission(StrEnum):
    VIEW_PROJECT = "view_project"
    EDIT_PROJECT = "edit_project"
    DELETE_PROJECT = "delete_project"
    MANAGE_TEAM = "manage_team"
    VIEW_TASKS = "view_tasks"
    CREATE_TASKS = "create_tasks"
    EDIT_OWN_TASKS = "edit_own_tasks"
    EDIT_ALL_TASKS = "edit_all_tasks"
    DELETE_TASKS = "delete_tasks"
    ASSIGN_TASKS = "assign_tasks"
    VIEW_RESOURCES = "view_resources"
    MANAGE_RESOURCES = "manage_resources"
    VIEW_BUDGET = "view_budget"
    EDIT_BUDGET = "edit_budget"
    VIEW_COSTS = "view_costs"
    EDIT_COSTS = "edit_costs"
    VIEW_ANALYTICS = "view_analytics"
    EXPORT_DATA = "export_data"


P = Permission
ALL = frozenset(Permission)


class UnknownPermission(ValueError):
    pass


def parse_permissions(codes: Iterable[str]) -> frozenset[Permission]:
    out = set()
    for code in codes:
        try:
            out.add(Permission(code))
        except ValueError as e:
            raise UnknownPermission(
                f"unknown permission {code!r}; known: {', '.join(p.value for p in Permission)}"
            ) from e
    return frozenset(out)


@dataclass(frozen=True)
class Role:
    name: str
    permissions: frozenset[Permission]
    description: str = ""
    project: str | None = None  # None: global
    created_by: str | None = None
    builtin: bool = False


BUILTIN_ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("owner", ALL, "Everything, including deleting the project", builtin=True),
        Role(
            "manager",
            ALL - {P.DELETE_PROJECT},
            "Runs the project: team, tasks, resources, budget",
            builtin=True,
        ),
        Role(
            "member",
            frozenset(
                {
                    P.VIEW_PROJECT,
                    P.VIEW_TASKS,
                    P.CREATE_TASKS,
                    P.EDIT_OWN_TASKS,
                    P.ASSIGN_TASKS,
                    P.VIEW_RESOURCES,
                    P.VIEW_ANALYTICS,
                }
            ),
            "Works on tasks: creates them and edits the ones assigned to them",
            builtin=True,
        ),
        Role(
            "viewer", frozenset({P.VIEW_PROJECT, P.VIEW_TASKS}), "Reads the project", builtin=True
        ),
        Role(
            "finance",
            frozenset(
                {
                    P.VIEW_PROJECT,
                    P.VIEW_TASKS,
                    P.VIEW_BUDGET,
                    P.EDIT_BUDGET,
                    P.VIEW_COSTS,
                    P.EDIT_COSTS,
                    P.VIEW_ANALYTICS,
                    P.EXPORT_DATA,
                }
            ),
            "Budget, costs and time entries",
            builtin=True,
        ),
    )
}


@dataclass(frozen=True)
class Grant:
    user: str
    project: str
    role: str
    added: frozenset[Permission] = frozenset()
    removed: frozenset[Permission] = frozenset()


def resolve_role(name: str, project: str, custom_roles: Iterable[Role]) -> Role | None:
    """A project role of that name, else a global custom role, else a built-in one."""
    global_match = None
    for role in custom_roles:
        if role.name != name:
            continue
        if role.project == project:
            return role
        if role.project is None:
            global_match = role
    return global_match or BUILTIN_ROLES.get(name)


def effective_permissions(
    grant: Grant | None, custom_roles: Iterable[Role]
) -> frozenset[Permission]:
    if grant is None:
        return frozenset()
    role = resolve_role(grant.role, grant.project, custom_roles)
    base = role.permissions if role else frozenset()
    return (base | grant.added) - grant.removed


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    path: str = ""
    permission: Permission | None = None


ALLOW = Decision(True)

TaskLookup = Callable[[str], dict[str, Any] | None]
"""Returns a task's fields as they were *before* the transaction, by id, or None if it did not
exist then. Ownership is judged on that state: a transaction that reassigns a task and edits
it needs assign_tasks for the one and, for the other, to have owned the task before (or
edit_all_tasks); taking a task over does not make the same transaction's edits your own."""


MemberMirror = Callable[[str], bool]
"""Whether the members map's entry for a user, as the transaction leaves it, is what that
user's grant says (role, or no entry without a grant). Grants live outside the document,
so the caller looks them up; the members map may only ever be made to match them."""


RuleOwner = Callable[[str], Any]
"""A rule's ``created_by`` as the transaction leaves it, by rule id (None: not set). The
rule acts as that user (automation), so nobody may write it as someone else."""


Need = tuple[tuple[Permission, ...], str, str]
"""What one change needs: any one of these permissions, what it does (for the reason), and
a suffix of the change's path naming the part that needs it. No permissions: nobody may."""

_CREATE_TASKS: Need = ((P.CREATE_TASKS,), "create tasks", "")
_DELETE_TASKS: Need = ((P.DELETE_TASKS,), "delete tasks", "")
_EDIT_TASKS: Need = ((P.EDIT_ALL_TASKS,), "edit tasks", "")
_ASSIGN_TASKS: Need = ((P.ASSIGN_TASKS,), "assign tasks", "")
_EDIT_OWN_TASK: Need = ((P.EDIT_OWN_TASKS, P.EDIT_ALL_TASKS), "edit tasks assigned to them", "")
_EDIT_OTHERS_TASK: Need = ((P.EDIT_ALL_TASKS,), "edit tasks not assigned to them", "")
_MEMBERS: Need = (
    (),
    "write the members map: it mirrors the grants; change them with"
    " PUT or DELETE /api/v1/projects/<id>/members/<user>",
    "",
)
_EDIT_PROJECT: Need = ((P.EDIT_PROJECT,), "edit the project", "")
_EDIT_BUDGET: Need = ((P.EDIT_BUDGET,), "edit the budget", "")
_EDIT_COSTS: Need = ((P.EDIT_COSTS,), "edit costs", "")
_MANAGE_RESOURCES: Need = ((P.MANAGE_RESOURCES,), "manage resources", "")
_POST_AS_OTHER: Need = ((), "post as someone else", "/author")
_RULE_AS_OTHER: Need = ((), "make a rule act as someone else", "/created_by")
_TASK_KEY: Need = ((), "write a task's key: the server assigns it", "")
_CHAT: Need = ((P.VIEW_PROJECT,), "chat", "")
_EDIT_CHAT: Need = ((P.MANAGE_TEAM,), "edit or delete chat messages", "")


def _path(change: Change) -> str:
    return "/".join(str(p) for p in change.path)


SERVER_TASK_FIELDS = frozenset({"key"})
"""Task fields only the server writes (a task's key: ``sync_server.extensions.task_keys``)."""

NewTaskFields = Callable[[str], Iterable[str]]
"""The fields of a task as the transaction leaves it, by id (for tasks it creates)."""

KeyRestored = Callable[[str], bool]
"""Whether a task this transaction creates carries exactly the key the server gave that
same task id before (an undo of its deletion brings the task back with its key)."""


def _task_need(
    change: Change,
    user: str,
    task: TaskLookup,
    created: set[str],
    perms: frozenset[Permission],
    new_fields: NewTaskFields,
    key_restored: KeyRestored,
) -> Need | None:
    if len(change.path) == 2:
        if change.action == "add":
            task_id = str(change.path[1])
            if not SERVER_TASK_FIELDS.isdisjoint(new_fields(task_id)) and not key_restored(task_id):
                return _TASK_KEY[0], _TASK_KEY[1], "/key"
            return _CREATE_TASKS
        if change.action == "delete":
            return _DELETE_TASKS
        return _EDIT_TASKS
    if len(change.path) < 2:
        return _EDIT_TASKS
    task_id = str(change.path[1])
    if change.field in SERVER_TASK_FIELDS:
        # only as part of re-creating the task with the key it was given (then covered by
        # create_tasks, like the task's other fields)
        return None if task_id in created and key_restored(task_id) else _TASK_KEY
    if task_id in created:
        return None  # fields of a task created in this same transaction: covered by create_tasks
    if change.field == "assignees":
        return _ASSIGN_TASKS
    if P.EDIT_ALL_TASKS in perms:  # ownership cannot matter: skip reading the task
        return _EDIT_TASKS
    fields = task(task_id) or {}
    assignees = fields.get("assignees") or []
    return _EDIT_OWN_TASK if user in assignees else _EDIT_OTHERS_TASK


def _rule_need(change: Change, user: str, rule_owner: RuleOwner) -> Need:
    """Rules need edit_project; a rule's ``created_by`` (whom it acts as) may be written
    only as the writer themselves (the server sets it; a client must not forge it)."""
    path = change.path
    sets_owner = len(path) == 2 or (len(path) >= 3 and path[2] == "created_by")
    if change.action != "delete" and sets_owner and len(path) >= 2:
        owner = rule_owner(str(path[1]))
        if owner is not None and owner != user:
            return _RULE_AS_OTHER
    return _EDIT_PROJECT


def _chat_need(change: Change, user: str, message: Callable[[int], dict[str, Any] | None]) -> Need:
    if len(change.path) == 2 and change.action == "add" and isinstance(change.path[1], int):
        msg = message(change.path[1]) or {}
        return _CHAT if msg.get("author") == user else _POST_AS_OTHER
    return _EDIT_CHAT


def _members_need(
    change: Change, user: str, perms: frozenset[Permission], mirrors: MemberMirror
) -> Need | None:
    """The members map mirrors the grants: an entry may be written only to what the grants
    say, by someone who may change grants (or by the member, whose own grant changed)."""
    if len(change.path) != 2:
        return _MEMBERS
    member = str(change.path[1])
    if (P.MANAGE_TEAM in perms or member == user) and mirrors(member):
        return None
    return _MEMBERS


def _need(
    kind: DocKind,
    change: Change,
    user: str,
    task: TaskLookup,
    message: Callable[[int], dict[str, Any] | None],
    created: set[str],
    perms: frozenset[Permission],
    mirrors: MemberMirror = lambda _member: False,
    rule_owner: RuleOwner = lambda _rule: None,
    new_fields: NewTaskFields = lambda _id: (),
    key_restored: KeyRestored = lambda _id: False,
) -> Need | None:
    root = change.root
    if kind is DocKind.MAIN:
        if root == "tasks":
            return _task_need(change, user, task, created, perms, new_fields, key_restored)
        if root == "members":  # only as the grants say (see _members_need)
            return _members_need(change, user, perms, mirrors)
        if root == "rules":
            return _rule_need(change, user, rule_owner)
        return _EDIT_PROJECT  # meta, columns, milestones
    if kind is DocKind.FINANCE:
        return _EDIT_BUDGET if root == "budget" else _EDIT_COSTS  # else: costs, time_entries
    if kind is DocKind.RESOURCES:
        return _MANAGE_RESOURCES
    return _chat_need(change, user, message)


def decide(
    perms: frozenset[Permission],
    user: str,
    kind: DocKind,
    changes: Sequence[Change],
    *,
    task: TaskLookup = lambda _id: None,
    message: Callable[[int], dict[str, Any] | None] = lambda _i: None,
    member_mirrors: MemberMirror = lambda _member: False,
    rule_owner: RuleOwner = lambda _rule: None,
    new_task_fields: NewTaskFields = lambda _id: (),
    key_restored: KeyRestored = lambda _id: False,
) -> Decision:
    """Allow ``changes`` by ``user`` holding ``perms`` on a ``kind`` document, or say why not.

    ``task`` gives a task's fields before the transaction (see :data:`TaskLookup`);
    ``member_mirrors`` whether a members entry now matches the grants (see
    :data:`MemberMirror`; by default nothing does, so nobody writes the members map);
    ``rule_owner`` a rule's ``created_by`` after the transaction (see :data:`RuleOwner`).
    ``new_task_fields`` the fields of a task this transaction creates (nobody creates one
    carrying a field of :data:`SERVER_TASK_FIELDS`, except a task re-created with the key
    the server gave that same id, ``key_restored``: an undo of the task's deletion).
    """
    # tasks this transaction creates: their fields are covered by create_tasks, in any event order
    created = {
        str(c.path[1])
        for c in changes
        if kind is DocKind.MAIN and c.root == "tasks" and len(c.path) == 2 and c.action == "add"
    }
    # The first change (in order) whose need is not met decides; most transactions meet
    # every need, so nothing is built for the ones that are.
    for change in changes:
        need = _need(
            kind,
            change,
            user,
            task,
            message,
            created,
            perms,
            member_mirrors,
            rule_owner,
            new_task_fields,
            key_restored,
        )
        if need is None:
            continue
        any_of, what, suffix = need
        if not any_of:
            return Decision(False, f"{user} may not {what}", _path(change) + suffix, None)
        for p in any_of:
            if p in perms:
                break
        else:
            missing = any_of[0]  # the least that would have allowed it
            return Decision(
                False,
                f"{user} may not {what}: needs {missing.value}",
                _path(change) + suffix,
                missing,
            )
    return ALLOW
