"""The daily email digest: composed from the activity stream, sent once per user and day."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doc_model import DomainEvent
from integrations.digest import (
    DigestRecipient,
    assigned_tasks,
    compose_digest,
    day_window,
    digest_key,
    enqueue_daily_digests,
)
from integrations.senders import SmtpConfig
from sync_server.extensions.activity import ActivityRecorder
from sync_server.interfaces import Actor, DocumentChanged

from .test_outbox import Mailbox, rig, smtp_server

DAY = date(2026, 11, 30)
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()

ANN = DigestRecipient(
    user="ann",
    email="ann@example.com",
    display_name="Ann",
    tasks={"p1": {"t1": "Ship <it>", "t2": "Write docs"}, "p2": {"t9": "Budget"}},
    project_names={"p1": "Launch", "p2": "Finance"},
)


def row(at: float, actor: str, action: str, task: str, project: str = "p1", **detail: Any) -> dict:
    return {
        "at": at,
        "project": project,
        "actor": actor,
        "action": action,
        "task": task,
        "detail": detail,
    }


def test_a_digest_tells_what_others_changed_in_the_users_tasks_that_day() -> None:
    rows = [
        row(NOON, "bob", "task.status", "t1", status="done"),
        row(NOON + 1, "bob", "task.status", "t1", status="done"),  # repeated: said once
        row(NOON + 2, "carol", "task.updated", "t1", fields=["due", "title"]),
        row(NOON + 3, "ann", "task.status", "t2", status="doing"),  # her own change: left out
        row(NOON + 4, "bob", "task.status", "t3", status="done"),  # not her task
        row(NOON - 86400, "bob", "task.deleted", "t2"),  # the day before
        row(NOON + 5, "dave", "task.assigned", "t9", project="p2", assignees=["ann", "dave"]),
        row(NOON + 6, "dave", "chat.message", "t9", project="p2"),  # not about the task itself
    ]
    digest = compose_digest(ANN, DAY, rows)
    assert digest is not None
    assert digest.key == "digest:ann:2026-11-30" == digest_key("ann", DAY)
    assert digest.subject == "Tandem: 2 of your tasks changed on 2026-11-30"
    assert digest.changes == 4
    assert [(line.project, line.task, line.changes) for line in digest.lines] == [
        ("p2", "t9", ("assigned to ann, dave (dave)",)),  # Finance sorts before Launch
        ("p1", "t1", ("moved to done (bob)", "changed due, title (carol)")),
    ]
    assert "- Ship <it>: moved to done (bob); changed due, title (carol)" in digest.text
    assert "Hello Ann," in digest.text and "Launch" in digest.text
    assert "Ship &lt;it&gt;" in digest.html and "<it>" not in digest.html
    assert digest.payload() == {
        "to": ["ann@example.com"],
        "subject": digest.subject,
        "text": digest.text,
        "html": digest.html,
    }
    # nothing by others that day: no digest
    assert compose_digest(ANN, DAY, rows[3:6]) is None
    assert compose_digest(ANN, DAY + timedelta(days=1), rows) is None


def test_the_day_is_the_recipients_day() -> None:
    tokyo = DigestRecipient("ann", "ann@example.com", {"p1": {"t1": "x"}}, timezone="Asia/Tokyo")
    start, end = day_window(DAY, "Asia/Tokyo")
    assert end - start == 86400
    assert start == datetime(2026, 11, 29, 15, tzinfo=UTC).timestamp()
    late_utc = datetime(2026, 11, 30, 16, tzinfo=UTC).timestamp()  # Dec 1st 01:00 in Tokyo
    assert compose_digest(tokyo, DAY, [row(late_utc, "bob", "task.created", "t1")]) is None
    assert compose_digest(ANN, DAY, [row(late_utc, "bob", "task.created", "t1")]) is not None
    assert day_window(DAY, "No/Such_Zone") == day_window(DAY, "UTC")


def test_assigned_tasks() -> None:
    tasks = [
        {"id": "a", "title": "A", "assignees": ["ann", "bob"]},
        {"id": "b", "title": "B", "assignees": ["bob"]},
        {"id": "c", "assignees": ["ann"]},
        {"title": "no id", "assignees": ["ann"]},
    ]
    assert assigned_tasks(tasks, "ann") == {"a": "A", "c": ""}


ACTIONS = [
    "task.created",
    "task.deleted",
    "task.status",
    "task.assigned",
    "task.updated",
    "chat.message",
]


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "at": st.floats(NOON - 2 * 86400, NOON + 2 * 86400),
                "project": st.sampled_from(["p1", "p2", "p3"]),
                "actor": st.sampled_from(["ann", "bob", "carol"]),
                "action": st.sampled_from(ACTIONS),
                "task": st.sampled_from(["t1", "t2", "t3", "t9", None]),
                "detail": st.sampled_from([{}, {"status": "done"}, {"fields": ["x"]}, "junk"]),
            }
        ),
        max_size=40,
    )
)
def test_a_digest_only_ever_lists_the_users_tasks_changed_by_others_that_day(
    rows: list[dict[str, Any]],
) -> None:
    start, end = day_window(DAY)
    relevant = [
        r
        for r in rows
        if start <= r["at"] < end
        and r["actor"] != "ann"
        and r["task"] in ANN.tasks.get(r["project"], {})
        and r["action"] != "chat.message"
    ]
    digest = compose_digest(ANN, DAY, rows)
    if not relevant:
        assert digest is None
        return
    assert digest is not None and digest.changes == len(relevant)
    assert {(line.project, line.task) for line in digest.lines} == {
        (r["project"], r["task"]) for r in relevant
    }
    assert str(len(digest.lines)) in digest.subject


def changed(project: str, actor: str, *events: DomainEvent) -> DocumentChanged:
    return DocumentChanged(doc_name=f"p/{project}", actor=Actor(actor), update=b"", events=events)


@pytest.mark.anyio
async def test_digests_go_through_the_outbox_once_per_user_and_day(tmp_path: Path) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        smtp = SmtpConfig(
            host="127.0.0.1", port=port, security="none", from_address="t@example.com"
        )
        async with rig(tmp_path, smtp=smtp, real_clock=True) as r:
            # the real activity recorder writes the stream, as the server's extension does
            recorder = ActivityRecorder(r.worker)  # type: ignore[arg-type]
            await recorder.documents_changed(
                [
                    changed(
                        "p1",
                        "bob",
                        DomainEvent(
                            "task_field_changed",
                            "t1",
                            "status",
                            "todo",
                            "done",
                            {"title": "Ship it"},
                        ),
                    ),
                    changed(
                        "p1",
                        "carol",
                        DomainEvent(
                            "task_assignees_changed",
                            "t2",
                            "assignees",
                            [],
                            ["ann"],
                            {"added": ["ann"], "removed": [], "title": "Docs"},
                        ),
                    ),
                    changed(
                        "p1",
                        "ann",
                        DomainEvent("task_field_changed", "t1", "title", "Ship", "Ship it", {}),
                    ),
                ]
            )
            today = datetime.now(UTC).date()
            if time.time() - day_window(today)[0] < 5:  # just past midnight: the rows' day
                today = datetime.fromtimestamp(time.time() - 10, UTC).date()
            recipients = [
                DigestRecipient(
                    "ann",
                    "ann@example.com",
                    {"p1": {"t1": "Ship it", "t2": "Docs"}},
                    project_names={"p1": "Launch"},
                    base_url="https://tandem.example",
                ),
                # nobody else touched bob's task that day: no mail
                DigestRecipient("bob", "bob@example.com", {"p1": {"t5": "Other"}}),
            ]
            first = await enqueue_daily_digests(r.outbox, recipients, today)
            again = await enqueue_daily_digests(r.outbox, recipients, today)
            assert first["ann"] is not None and first["bob"] is None
            assert again == {"ann": None, "bob": None}  # the scheduler ran twice: one mail
            assert await r.outbox.run_once() == 1
            (delivery,) = await r.outbox.deliveries("")
            assert delivery.status == "delivered" and delivery.key == f"digest:ann:{today}"
        ((_, rcpt, message),) = mailbox.messages
        assert rcpt == ["ann@example.com"]
        assert message["Subject"] == f"Tandem: 2 of your tasks changed on {today.isoformat()}"
        body = message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "- Ship it: moved to done (bob)" in text
        assert "- Docs: assigned to ann (carol)" in text
        assert "https://tandem.example/#/p/p1/task/t1" in text
        assert "(ann)" not in text
