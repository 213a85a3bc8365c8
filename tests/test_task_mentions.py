"""@mentions in tasks' titles and descriptions (extensions.mentions), end to end: a real
`tandem serve`, a real WebSocket client typing a keystroke per transaction, REST writes,
the in-app notification list and an automation rule's ``mentioned`` trigger."""

from __future__ import annotations

import time

import anyio
import pytest
from pycrdt import Map

from .raw_client import RawClient
from .test_api_v1 import add_task, call, new_project
from .test_automation import make_rule, runs
from .test_automation import srv as srv  # the fixture
from .test_notifications import inbox, wait_for

SETTLE = 3.0  # mention_settle_seconds: the default


def team(server) -> str:
    """A project of olive (owner) with alice and al (members), vic (a member without
    view_tasks) and zed, who has an account but no grant."""
    project = new_project(server, "olive")
    for user in ("alice", "al", "vic", "zed"):
        server.token(user)
    server.grant("alice", project, "member")
    server.grant("al", project, "member")
    server.grant("vic", project, "member", removed=("view_tasks",))
    time.sleep(1.05)  # permission cache
    return project


def mentions(server, user: str, project: str) -> list[dict]:
    return [n for n in inbox(server, user) if n["kind"] == "mention" and n["project"] == project]


async def type_text(client: RawClient, task: str, text: str) -> None:
    """Type ``text`` at the end of the task's description one character per transaction,
    each acknowledged by the server before the next."""
    for ch in text:

        def put(doc, ch=ch) -> None:
            desc = doc.get("tasks", type=Map)[task]["description"]
            desc.insert(len(desc), ch)

        n = await client.send_update(client.edit(put))
        assert (await client.outcome(n))["type"] == "ack"


async def backspace(client: RawClient, task: str, count: int) -> None:
    for _ in range(count):

        def rub(doc) -> None:
            desc = doc.get("tasks", type=Map)[task]["description"]
            del desc[len(desc) - 1]

        n = await client.send_update(client.edit(rub))
        assert (await client.outcome(n))["type"] == "ack"


@pytest.mark.anyio
async def test_typing_a_mention_into_a_description_tells_the_member_exactly_once(srv) -> None:
    project = team(srv)
    rule = make_rule(
        srv,
        project,
        {
            "name": "alice was named",
            "trigger": {"type": "mentioned", "user": "alice"},
            "actions": [{"type": "set_field", "field": "priority", "value": "high"}],
        },
        user="olive",
    )
    task = add_task(srv, project, "olive", title="Release")["id"]
    async with RawClient.connect(srv, f"p/{project}", "olive", role=None) as client:
        await client.sync()
        # "@a" and "@al" pass on the way to "@alice": al is a member, and is not told
        await type_text(client, task, "Hi @alice, cc @zed @vic")
        # removed and typed again within the same burst: still one mention
        await backspace(client, task, len(", cc @zed @vic"))
        await backspace(client, task, len("@alice"))
        await type_text(client, task, "@alice, cc @zed @vic")
        got = await anyio.to_thread.run_sync(
            lambda: wait_for(lambda: mentions(srv, "alice", project), 10)
        )
    assert [(n["title"], n["body"], n["url"]) for n in got] == [
        ("olive mentioned you in Release", "Hi @alice, cc @zed @vic", f"/#/p/{project}/task/{task}")
    ]
    # the rule fired once: its write is visible, and its run recorded once
    assert wait_for(
        lambda: call(srv, "GET", f"/tasks/{task}/", "olive").json()["priority"] == "high"
    )
    time.sleep(SETTLE + 0.8)
    assert len(mentions(srv, "alice", project)) == 1
    assert [r["outcome"] for r in runs(srv, project, rule["id"], "olive")] == ["ran"]
    # al was on the way to alice, vic may not read tasks, zed is not on the project
    for nobody in ("al", "vic", "zed", "olive"):
        assert mentions(srv, nobody, project) == [], nobody

    # saving the same text again (REST, as a form does) tells nobody again
    same = "Hi @alice, cc @zed @vic"
    r = call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"description": same})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == same
    time.sleep(SETTLE + 1.0)
    assert len(mentions(srv, "alice", project)) == 1
    assert [r["outcome"] for r in runs(srv, project, rule["id"], "olive")] == ["ran"]

    # a new mention in a later edit tells the newly named member only
    r = call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"description": same + " and @al"})
    assert r.status_code == 200, r.text
    got = wait_for(lambda: mentions(srv, "al", project), 10)
    assert [n["body"] for n in got] == ["Hi @alice, cc @zed @vic and @al"]
    assert len(mentions(srv, "alice", project)) == 1


def test_rest_created_tasks_tell_members_named_in_title_and_description(srv) -> None:
    project = team(srv)
    task = add_task(
        srv,
        project,
        "olive",
        title="Ask @alice",
        description="Numbers from @al and @zed; mail@al.example is no mention; @olive me",
    )["id"]
    alice = wait_for(lambda: mentions(srv, "alice", project), 10)
    al = wait_for(lambda: mentions(srv, "al", project), 10)
    assert [(n["title"], n["body"]) for n in alice] == [
        ("olive mentioned you in Ask @alice", "Ask @alice")
    ]
    assert [(n["title"], n["url"]) for n in al] == [
        ("olive mentioned you in Ask @alice", f"/#/p/{project}/task/{task}")
    ]
    assert al[0]["body"].startswith("Numbers from @al")
    time.sleep(SETTLE + 0.5)
    for nobody in ("zed", "olive", "vic"):
        assert mentions(srv, nobody, project) == [], nobody
    assert len(mentions(srv, "alice", project)) == len(mentions(srv, "al", project)) == 1

    # the mention taken out of the title and, once settled, put back: told again
    assert call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"title": "Ask"}).status_code == 200
    time.sleep(SETTLE + 1.0)
    r = call(srv, "PATCH", f"/tasks/{task}/", "olive", json={"title": "Ask @alice again"})
    assert r.status_code == 200
    assert wait_for(lambda: len(mentions(srv, "alice", project)) == 2, 10)

    # whoever writes the text is the one who mentioned
    task2 = add_task(srv, project, "alice", title="Mine", description="for @olive")["id"]
    olive = wait_for(lambda: mentions(srv, "olive", project), 10)
    assert [(n["title"], n["url"]) for n in olive] == [
        ("alice mentioned you in Mine", f"/#/p/{project}/task/{task2}")
    ]
