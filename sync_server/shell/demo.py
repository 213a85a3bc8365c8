"""``tandem demo``: a realistic project to look at, owned by user ``demo``.

Deterministic (seeded) so every fresh machine shows the same board. Writes go
through doc_model's helpers and are appended like any update, so seeding
works while a server runs on the same file.
"""

from __future__ import annotations

import datetime as dt
import random

from doc_model import (
    DocKind,
    TaskCreate,
    add_allocation,
    add_cost,
    add_member,
    add_time_entry,
    create_milestone,
    create_project_meta,
    create_task,
    doc_name,
    order_key_between,
    post_chat_message,
    set_budget,
)
from rules import Grant
from sync_server.identity import access, accounts, projects
from sync_server.storage.database import open_database
from sync_server.storage.offline_edit import edit_stored_document
from sync_server.storage.sqlite_store import SQLiteStore

DEMO_ACTOR = "system:demo"
DEMO_PASSWORD = "tandem-demo"  # every demo account's; the demo is for trying Tandem locally
TEAM = {
    "demo": "owner",
    "alice": "manager",
    "bob": "member",
    "carol": "member",
    "dave": "viewer",
    "erin": "finance",
}
VERBS = ["Design", "Implement", "Review", "Test", "Document", "Refactor", "Migrate", "Measure"]
THINGS = [
    "checkout flow",
    "landing page",
    "search index",
    "login screen",
    "pricing table",
    "image pipeline",
    "newsletter signup",
    "accessibility audit",
    "cookie banner",
    "analytics events",
    "sitemap",
    "404 page",
    "blog layout",
    "dark mode",
    "CDN config",
    "contact form",
    "mobile menu",
    "onboarding tour",
    "status page",
    "release notes",
]
LABELS = ["frontend", "backend", "design", "content", "infra", "bug", "research"]
CHAT_LINES = [
    "Morning! Standup in 10.",
    "I pushed the new checkout mockups, feedback welcome.",
    "Who owns the CDN migration this sprint?",
    "Blocked on the API keys for analytics.",
    "Great work on the accessibility fixes!",
    "Moving the pricing table to review.",
    "Can someone pair with me on the search index?",
    "Release candidate is up on staging.",
]


async def seed_demo(db_path: str, *, project_id: str = "demo", task_count: int = 300) -> str:
    """Seed the demo project unless it exists; returns a report whose last line is a demo token."""
    conn = open_database(db_path).conn
    try:
        projects.register_project(conn, project_id, "Website relaunch", "demo")
        for user, role in TEAM.items():
            if accounts.get_user(conn, user) is None:
                accounts.create_user(conn, user, DEMO_PASSWORD, user.capitalize())
            if access.get_grant(conn, user, project_id) is None:
                access.set_grant(conn, Grant(user, project_id, role), DEMO_ACTOR)
        token = accounts.create_token(conn, "demo", "tandem demo")
    finally:
        conn.close()

    store = SQLiteStore(db_path)
    main = doc_name(project_id)
    try:
        if await store.exists(main):
            return f"project {project_id!r} already exists in {db_path}; nothing seeded\n{token}"
        rng = random.Random(7)
        today = dt.date.today()

        def seed_main(doc):
            create_project_meta(
                doc,
                "Website relaunch",
                description="Rebuild the marketing site: new design, faster pages, better search.",
                start_date=today - dt.timedelta(days=30),
                end_date=today + dt.timedelta(days=60),
                created_by="demo",
            )
            for user, role in TEAM.items():
                add_member(doc, user, role)
            milestones = [
                create_milestone(doc, name, due=today + dt.timedelta(days=days))
                for name, days in (
                    ("Design freeze", -5),
                    ("Beta", 20),
                    ("Launch", 45),
                    ("Retro", 60),
                )
            ]
            ids: list[str] = []
            last_order: dict[str, str | None] = {}
            for i in range(task_count):
                status = rng.choices(["todo", "in_progress", "review", "done"], [4, 2, 1, 3])[0]
                start = today + dt.timedelta(days=rng.randint(-30, 40))
                task = TaskCreate(
                    title=f"{rng.choice(VERBS)} {rng.choice(THINGS)}",
                    description=f"Part of the relaunch. Task #{i + 1}.",
                    status=status,
                    priority=rng.choices(["low", "medium", "high", "urgent"], [3, 5, 2, 1])[0],
                    assignees=rng.sample(["alice", "bob", "carol", "demo"], rng.randint(0, 2)),
                    labels=rng.sample(LABELS, rng.randint(0, 2)),
                    start=start,
                    due=start + dt.timedelta(days=rng.randint(1, 14)),
                    estimate=float(rng.choice([1, 2, 3, 5, 8, 13])),
                    milestone=rng.choice(milestones),
                    depends_on=rng.sample(ids[-20:], 1) if ids and rng.random() < 0.15 else [],
                    order=order_key_between(last_order.get(status), None),
                )
                last_order[status] = task.order
                ids.append(create_task(doc, task, created_by=rng.choice(list(TEAM)[:4])))

        def seed_finance(doc):
            set_budget(
                doc,
                currency="EUR",
                total=120_000,
                categories={"design": 30_000, "dev": 70_000, "ops": 20_000},
            )
            for i in range(40):
                add_cost(
                    doc,
                    amount=float(rng.randint(50, 4000)),
                    currency="EUR",
                    category=rng.choice(["design", "dev", "ops"]),
                    description=f"Invoice {1000 + i}",
                    date=today - dt.timedelta(days=rng.randint(0, 30)),
                    created_by="erin",
                )
            for _ in range(120):
                add_time_entry(
                    doc,
                    user=rng.choice(["alice", "bob", "carol"]),
                    hours=float(rng.choice([0.5, 1, 2, 3, 4, 6, 8])),
                    date=today - dt.timedelta(days=rng.randint(0, 30)),
                )

        def seed_resources(doc):
            for user in ("alice", "bob", "carol"):
                add_allocation(
                    doc,
                    user=user,
                    percent=float(rng.choice([50, 80, 100])),
                    start=today - dt.timedelta(days=30),
                    end=today + dt.timedelta(days=60),
                )

        def seed_chat(doc):
            for _ in range(60):
                post_chat_message(
                    doc, rng.choice(["alice", "bob", "carol", "demo"]), rng.choice(CHAT_LINES)
                )

        seeders = {
            main: seed_main,
            doc_name(project_id, DocKind.FINANCE): seed_finance,
            doc_name(project_id, DocKind.RESOURCES): seed_resources,
            doc_name(project_id, DocKind.CHAT): seed_chat,
        }
        for name, seeder in seeders.items():
            await edit_stored_document(store, name, DEMO_ACTOR, seeder)
            await store.compact(name)  # a snapshot with its state vector opens without decoding
    finally:
        await store.close()
    return (
        f"seeded project {project_id!r} ({task_count} tasks, 4 milestones, {len(TEAM)} members,"
        f" chat, finance) in {db_path}\nlog in as demo (or alice, bob, carol, dave, erin) with"
        f" password {DEMO_PASSWORD!r}\nAPI token for user 'demo':\n{token}"
    )


async def grant_project_role(db_path: str, project_id: str, user: str, role: str) -> None:
    """Grant ``user`` a role on the project, and show it in the project's ``members`` map."""
    conn = open_database(db_path).conn
    try:
        # the grant rule as any grant change (the CLI acts with every permission): a
        # project's first grant makes an owner, and an owner is never demoted to none
        access.change_grant(conn, project_id, user, Grant(user, project_id, role), access.ADMIN)
        projects.register_project(conn, project_id, project_id, access.ADMIN)
    finally:
        conn.close()
    store = SQLiteStore(db_path)
    try:
        await edit_stored_document(
            store, doc_name(project_id), access.ADMIN, lambda doc: add_member(doc, user, role)
        )
    finally:
        await store.close()
