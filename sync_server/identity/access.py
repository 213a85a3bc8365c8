"""Who may do what: roles, grants and the audit log in SQLite, and the gate's permission check.

The decision itself is ``rules.decide`` (pure); this module feeds it the
user's effective permissions (cached for ``ttl`` seconds, so a grant changed
by the CLI or another server takes effect within that time) and the task
fields it needs to judge ownership.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from pycrdt import Array, Doc, Map

from doc_model import Change, DocKind, DocName
from rules import (
    ALL,
    BUILTIN_ROLES,
    Grant,
    GrantRefusal,
    Permission,
    Role,
    check_grant_change,
    decide,
    effective_permissions,
    may_read,
    parse_permissions,
    resolve_role,
)
from sync_server.core.gate import Denial, TaskBefore
from sync_server.interfaces import Actor


class AccessError(ValueError):
    """A refused change to roles or grants, with a user-facing reason."""


class GrantChangeRefused(AccessError):
    """A grant change ``rules.check_grant_change`` refused (see ``refusal`` for why)."""

    def __init__(self, refusal: GrantRefusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


ADMIN = "system:cli"
"""The actor name of server-side administration (the CLI): it may touch any grant."""

TASK_KEYS_ACTOR = Actor("task-keys", kind="system")
"""The server assigning task keys: it may write tasks' ``key`` field and nothing else, and
nobody else may write it (rules.permissions.SERVER_TASK_FIELDS)."""


def given_key(conn: sqlite3.Connection, project: str, task: str) -> str | None:
    """The key the server gave ``task`` of ``project`` (``task_keys``, migration 15), if
    any: a task re-created with exactly that key (an undo of its deletion) may carry it."""
    row = conn.execute(
        "SELECT key FROM task_keys WHERE project = ? AND task = ?", (project, task)
    ).fetchone()
    return str(row[0]) if row else None


IDENTITY_KINDS = ("integration", "automation")
"""Actor kinds that act with grants of their own, held under ``kind:name`` (for example
``integration:github``, granted like a user: ``set_grant(conn, Grant("integration:github",
project, "member"), ...)`` or ``PUT /api/v1/projects/ID/grants/integration:github``). An
automation rule that acts for a person is that person (an Actor of kind "user")."""


def principal(actor: Actor) -> str:
    """The name ``actor``'s grants are held under: a user's name, or ``kind:name``."""
    return actor.user_id if actor.kind == "user" else f"{actor.kind}:{actor.user_id}"


def _perms_json(perms: frozenset[Permission]) -> str:
    return json.dumps(sorted(p.value for p in perms))


def get_grant(conn: sqlite3.Connection, user: str, project: str) -> Grant | None:
    row = conn.execute(
        "SELECT role, added, removed FROM grants WHERE user = ? AND project = ?", (user, project)
    ).fetchone()
    if row is None:
        return None
    return Grant(
        user,
        project,
        row[0],
        parse_permissions(json.loads(row[1])),
        parse_permissions(json.loads(row[2])),
    )


def list_grants(conn: sqlite3.Connection, project: str) -> list[Grant]:
    rows = conn.execute(
        "SELECT user, role, added, removed FROM grants WHERE project = ? ORDER BY user", (project,)
    ).fetchall()
    return [
        Grant(u, project, r, parse_permissions(json.loads(a)), parse_permissions(json.loads(d)))
        for u, r, a, d in rows
    ]


def custom_roles(conn: sqlite3.Connection, project: str | None = None) -> list[Role]:
    """Global custom roles, plus the project's own when ``project`` is given."""
    rows = conn.execute(
        "SELECT name, permissions, description, project, created_by FROM roles"
        " WHERE project IS NULL OR project = ? ORDER BY name",
        (project,),
    ).fetchall()
    return [Role(n, parse_permissions(json.loads(p)), d, pr, c) for n, p, d, pr, c in rows]


def set_grant(conn: sqlite3.Connection, grant: Grant, actor: str) -> None:
    """Write a grant unchecked (seeding a project, tests); every path a person can take
    (REST, CLI) goes through :func:`change_grant`, which applies the grant rule."""
    known = {r.name for r in custom_roles(conn, grant.project)} | set(BUILTIN_ROLES)
    if grant.role not in known:
        raise AccessError(f"no role named {grant.role!r} for project {grant.project!r}")
    with conn:
        _write_grant(conn, grant, actor)


def _write_grant(conn: sqlite3.Connection, grant: Grant, actor: str) -> None:
    """Upsert a grant and audit it (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO grants (user, project, role, added, removed, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user, project) DO UPDATE SET"
        " role = excluded.role, added = excluded.added, removed = excluded.removed,"
        " updated_at = excluded.updated_at",
        (
            grant.user,
            grant.project,
            grant.role,
            _perms_json(grant.added),
            _perms_json(grant.removed),
            time.time(),
        ),
    )
    _audit(
        conn,
        actor,
        grant.project,
        None,
        "grant.set",
        None,
        None,
        {
            "user": grant.user,
            "role": grant.role,
            "added": sorted(grant.added),
            "removed": sorted(grant.removed),
        },
    )


def change_grant(
    conn: sqlite3.Connection,
    project: str,
    user: str,
    grant: Grant | None,
    actor: str,
    *,
    dry_run: bool = False,
) -> bool:
    """Set (``grant``) or remove (None) ``user``'s grant on ``project`` as ``actor``, if
    ``rules.check_grant_change`` allows it; False when there was nothing to remove.

    The check reads every grant of the project and writes in one ``BEGIN IMMEDIATE``
    transaction, so two changes cannot each pass against a state the other one changes
    (two owners demoting each other at once leave one owner). ``actor`` ADMIN (the
    CLI) acts with every permission; anyone else with their own effective permissions.
    Raises GrantChangeRefused, or AccessError for a role the project does not know.
    ``dry_run``: check only, write nothing.
    """
    if grant is not None and (grant.user != user or grant.project != project):
        raise ValueError("the grant must be the user's grant on the project")
    conn.execute("BEGIN IMMEDIATE")
    try:
        roles = custom_roles(conn, project)
        if grant is not None and resolve_role(grant.role, project, roles) is None:
            raise AccessError(f"no role named {grant.role!r} for project {project!r}")
        grants = {g.user: g for g in list_grants(conn, project)}
        if grant is None and user not in grants:
            conn.execute("ROLLBACK")
            return False
        before = {u: effective_permissions(g, roles) for u, g in grants.items()}
        after = dict(before)
        if grant is None:
            del after[user]
        else:
            after[user] = effective_permissions(grant, roles)
        caller_perms = ALL if actor == ADMIN else before.get(actor, frozenset())
        refusal = check_grant_change(actor, caller_perms, before, after)
        if refusal is not None:
            raise GrantChangeRefused(refusal)
        if dry_run:
            conn.execute("ROLLBACK")
            return True
        if grant is None:
            conn.execute("DELETE FROM grants WHERE user = ? AND project = ?", (user, project))
            _audit(conn, actor, project, None, "grant.delete", None, None, {"user": user})
        else:
            _write_grant(conn, grant, actor)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
            conn.execute("ROLLBACK")
        raise
    return True


def delete_grant(conn: sqlite3.Connection, user: str, project: str, actor: str) -> bool:
    with conn:
        cur = conn.execute("DELETE FROM grants WHERE user = ? AND project = ?", (user, project))
        if cur.rowcount:
            _audit(conn, actor, project, None, "grant.delete", None, None, {"user": user})
    return cur.rowcount > 0


def create_role(conn: sqlite3.Connection, role: Role, actor: str) -> None:
    if role.name in BUILTIN_ROLES:
        raise AccessError(f"{role.name!r} is a built-in role")
    try:
        with conn:
            conn.execute(
                "INSERT INTO roles (name, description, permissions, project, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    role.name,
                    role.description,
                    _perms_json(role.permissions),
                    role.project,
                    actor,
                    time.time(),
                ),
            )
            _audit(
                conn,
                actor,
                role.project or "*",
                None,
                "role.create",
                None,
                None,
                {"role": role.name, "permissions": sorted(role.permissions)},
            )
    except sqlite3.IntegrityError as e:
        raise AccessError(f"role {role.name!r} already exists there") from e


def update_role(
    conn: sqlite3.Connection,
    project: str,
    name: str,
    permissions: frozenset[Permission] | None,
    description: str | None,
    actor: str,
) -> Role:
    """Change a project's custom role; the grants that use it change with it, so the grant
    rule (``rules.check_grant_change``) judges the change as it does a grant change."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT id, permissions, description FROM roles WHERE project = ? AND name = ?",
            (project, name),
        ).fetchone()
        if row is None:
            raise AccessError(f"no custom role {name!r} in project {project!r}")
        perms = permissions if permissions is not None else parse_permissions(json.loads(row[1]))
        desc = description if description is not None else row[2]
        roles = custom_roles(conn, project)
        changed = [
            r if not (r.name == name and r.project == project) else Role(name, perms, desc, project)
            for r in roles
        ]
        grants = list_grants(conn, project)
        before = {g.user: effective_permissions(g, roles) for g in grants}
        after = {g.user: effective_permissions(g, changed) for g in grants}
        caller_perms = ALL if actor == ADMIN else before.get(actor, frozenset())
        refusal = check_grant_change(actor, caller_perms, before, after)
        if refusal is not None:
            raise GrantChangeRefused(refusal)
        conn.execute(
            "UPDATE roles SET permissions = ?, description = ? WHERE id = ?",
            (_perms_json(perms), desc, row[0]),
        )
        _audit(
            conn,
            actor,
            project,
            None,
            "role.update",
            None,
            None,
            {"role": name, "permissions": sorted(perms)},
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolled back itself (SQLITE_FULL): keep its error
            conn.execute("ROLLBACK")
        raise
    return Role(name, perms, desc, project)


def delete_role(conn: sqlite3.Connection, project: str | None, name: str, actor: str) -> None:
    """Delete a project's custom role, or a global one (``project`` None) no grant relies on."""
    if project is not None:
        in_use = conn.execute(
            "SELECT count(*) FROM grants WHERE project = ? AND role = ?", (project, name)
        ).fetchone()[0]
    else:  # grants on projects that do not define a role of that name themselves
        in_use = conn.execute(
            "SELECT count(*) FROM grants WHERE role = ? AND project NOT IN"
            " (SELECT project FROM roles WHERE name = ? AND project IS NOT NULL)",
            (name, name),
        ).fetchone()[0]
    if in_use:
        raise AccessError(f"role {name!r} is in use by {in_use} grant(s); change them first")
    with conn:
        cur = conn.execute("DELETE FROM roles WHERE project IS ? AND name = ?", (project, name))
        if cur.rowcount:
            _audit(conn, actor, project or "*", None, "role.delete", None, None, {"role": name})
    if not cur.rowcount:
        where = f"in project {project!r}" if project else "among the global roles"
        raise AccessError(f"no custom role {name!r} {where}")


def record_rejection(
    conn: sqlite3.Connection, actor: Actor, doc_name: DocName, denial: Denial
) -> None:
    with conn:
        rejection_row(conn, actor, doc_name, denial)


def rejection_row(
    conn: sqlite3.Connection, actor: Actor, doc_name: DocName, denial: Denial
) -> None:
    """The audit row of a rejected transaction, inside the caller's transaction (the server
    writes these through database.DeferredWrites)."""
    _audit(
        conn,
        str(actor),
        doc_name.project_id,
        doc_name.name,
        "update.rejected",
        denial.path,
        denial.reason,
        {"permission": denial.permission} if denial.permission else None,
    )


def record_project_deleted(conn: sqlite3.Connection, actor: str, project: str) -> None:
    _audit(conn, actor, project, None, "project.delete", None, None, None)


def _audit(conn, actor, project, document, action, path, reason, detail) -> None:
    conn.execute(
        "INSERT INTO audit (at, actor, project, document, action, path, reason, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            time.time(),
            actor,
            project,
            document,
            action,
            path,
            reason,
            json.dumps(detail) if detail is not None else None,
        ),
    )


def list_audit(conn: sqlite3.Connection, project: str, limit: int = 100) -> list[dict]:
    rows = conn.execute(
        "SELECT id, at, actor, document, action, path, reason, detail FROM audit"
        " WHERE project = ? ORDER BY id DESC LIMIT ?",
        (project, limit),
    ).fetchall()
    keys = ("id", "at", "actor", "document", "action", "path", "reason", "detail")
    out = [dict(zip(keys, row, strict=True)) for row in rows]
    for entry in out:
        entry["detail"] = json.loads(entry["detail"]) if entry["detail"] else None
    return out


def permissions_of(conn: sqlite3.Connection, user: str, project: str) -> frozenset[Permission]:
    """``user``'s effective permissions on ``project`` as the file holds them now."""
    return effective_permissions(get_grant(conn, user, project), custom_roles(conn, project))


def readers(conn: sqlite3.Connection, project: str, users: Sequence[str], read: str) -> list[str]:
    """Those of ``users`` who may make the read named ``read`` (``rules.READS``) on
    ``project``, as the file holds the grants now: whom the server may tell what that read
    returns (a notification, an e-mail), in the order given."""
    return [u for u in users if may_read(permissions_of(conn, u, project), read)]


def access_generation(conn: sqlite3.Connection) -> int:
    """A number every change to grants, roles, tokens, sessions or projects moves (triggers,
    migration 9), whichever process makes it."""
    return conn.execute("SELECT n FROM access_generation WHERE id = 1").fetchone()[0]


_ROOTS_ATTR = "_tandem_permission_roots"


def _messages(doc: Doc, doc_name: DocName) -> Array | None:
    """The chat document's ``messages`` wrapper, looked up once per document.

    pycrdt's ``Doc.get`` makes a new wrapper on every call (9 us), so it is kept,
    but on the document itself: a wrapper holds its document, so any cache outside it
    (this module once had a ``WeakKeyDictionary`` keyed by the document) keeps every
    document ever checked alive after its room unloads. On the document, they form a
    cycle that dies with it. (Task ownership comes from the gate: ``task_owners``.)
    """
    if doc_name.kind.value != "chat":
        return None
    messages = doc.__dict__.get(_ROOTS_ATTR)
    if messages is None:
        messages = doc.__dict__[_ROOTS_ATTR] = doc.get("messages", type=Array)
    return messages


PRUNE_CACHE_AT = 10_000  # PermissionResolver: cached answers before expired ones are dropped


class PermissionResolver:
    """Effective permissions per (user, project), cached briefly.

    Answers the access watch keeps current (``prime``, for users with open sockets) do not
    expire: the watch replaces them whenever access changes anywhere on the file.
    """

    def __init__(
        self, conn: sqlite3.Connection, ttl: float = 1.0, prune_at: int = PRUNE_CACHE_AT
    ) -> None:
        self.conn = conn
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, frozenset[Permission]]] = {}
        self._kept: dict[tuple[str, str], frozenset[Permission]] = {}
        # answers past their ttl are dropped once the cache holds this many (a server that
        # runs for months is asked about every user and project pair there is)
        self._min_prune_at = self._prune_at = prune_at

    def prime(self, answers: dict[tuple[str, str], frozenset[Permission]]) -> None:
        """Replace every kept answer with ``answers`` (read off the event loop) and forget the
        briefly cached ones: access has just changed."""
        self._kept = dict(answers)
        self._cache.clear()

    def keep(self, user: str, project: str, perms: frozenset[Permission]) -> None:
        """Keep this answer (read off the event loop) until the next ``prime`` or ``unkeep``."""
        self._kept[(user, project)] = perms

    def unkeep(self, user: str, project: str) -> None:
        self._kept.pop((user, project), None)

    def permissions(self, user: str, project: str) -> frozenset[Permission]:
        kept = self._kept.get((user, project))
        if kept is not None:
            return kept
        now = time.monotonic()
        hit = self._cache.get((user, project))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        perms = effective_permissions(
            get_grant(self.conn, user, project), custom_roles(self.conn, project)
        )
        self._cache[(user, project)] = (now, perms)
        if len(self._cache) > self._prune_at:
            ttl = self.ttl
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < ttl}
            self._prune_at = max(self._min_prune_at, 2 * len(self._cache))
        return perms

    def cached(self) -> int:
        """How many answers are cached (kept ones included)."""
        return len(self._cache) + len(self._kept)

    def forget(self, user: str, project: str) -> None:
        """Drop a cached answer (after a change this process made itself)."""
        self._cache.pop((user, project), None)
        self._kept.pop((user, project), None)

    def forget_project(self, project: str) -> None:
        for key in [k for k in self._cache if k[1] == project]:
            del self._cache[key]
        for key in [k for k in self._kept if k[1] == project]:
            del self._kept[key]

    def check(
        self,
        actor: Actor,
        doc_name: DocName,
        changes: Sequence[Change],
        doc: Doc,
        task: TaskBefore,
    ) -> Denial | None:
        """The gate's permission check (see gate.PermissionCheck): task ownership comes from
        ``task``, the state before the transaction."""
        if actor == TASK_KEYS_ACTOR:
            # the server's key assignment (extensions.task_keys): keys of tasks, nothing else
            for change in changes:
                if not (
                    doc_name.kind is DocKind.MAIN
                    and change.root == "tasks"
                    and len(change.path) == 3
                    and change.field == "key"
                ):
                    return Denial(f"{actor} writes task keys only", "/".join(map(str, change.path)))
            return None
        if actor.kind != "user" and actor.kind not in IDENTITY_KINDS:
            # nothing skips the check: the server's own features act as a user or as an
            # integration identity; only storage itself (migrations, other processes'
            # updates) writes past the gate, and never through it
            return Denial(
                f"{actor} may not edit documents: act as a user or an integration identity",
                "",
                None,
            )
        user = principal(actor)
        perms = self.permissions(user, doc_name.project_id)
        messages = _messages(doc, doc_name)

        def message(index: int) -> dict | None:
            if messages is None or index >= len(messages):
                return None
            value = messages[index]
            return {"author": value.get("author")} if isinstance(value, Map) else None

        def mirrors_grant(member: str) -> bool:
            """Whether the members map's entry for ``member`` (after the transaction) is
            what the grants table says (a grant change just committed by this server)."""
            entry = doc.get("members", type=Map).get(member)
            grant = get_grant(self.conn, member, doc_name.project_id)
            return entry == (grant.role if grant is not None else None)

        def rule_owner(rule_id: str) -> object:
            """A rule's created_by after the transaction (rules.permissions.RuleOwner)."""
            entry = doc.get("rules", type=Map).get(rule_id)
            return entry.get("created_by") if isinstance(entry, Map) else None

        def new_task_fields(task_id: str) -> list[str]:
            value = doc.get("tasks", type=Map).get(task_id)
            return list(value.keys()) if isinstance(value, Map) else []

        def key_restored(task_id: str) -> bool:
            """Whether the task carries the key the server gave this id (task_keys, by its
            primary key: one indexed read, only for a task created carrying a key)."""
            value = doc.get("tasks", type=Map).get(task_id)
            key = value.get("key") if isinstance(value, Map) else None
            return isinstance(key, str) and key == given_key(
                self.conn, doc_name.project_id, task_id
            )

        decision = decide(
            perms,
            user,
            doc_name.kind,
            changes,
            task=task,
            message=message,
            member_mirrors=mirrors_grant,
            rule_owner=rule_owner,
            new_task_fields=new_task_fields,
            key_restored=key_restored,
        )
        if decision.allowed:
            return None
        return Denial(
            decision.reason,
            decision.path,
            decision.permission.value if decision.permission else None,
        )
