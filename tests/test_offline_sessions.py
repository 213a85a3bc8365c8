"""Property: valid concurrent work is never refused.

Stock Yjs clients (yjs + y-websocket in Node, tests/node/session_driver.mjs) and
stock pycrdt clients (pycrdt's Provider) share one project on a real server.
Each session: every client connects, then all of them run one random list of
steps at the same pace, each its own: going offline and back, and every kind
of edit the schema allows (create, overwrite and delete tasks, text inserts
and deletes, fields, moves, arrays, custom fields, milestones, the project's
name, chat messages), often of the same task and field at the same time. Then
every client reconnects. The server must refuse nothing (no rejection in its log, no
permission-denied at any Yjs client), and every client, and a fresh client
syncing from the server, must end with the same project.

Each session runs on a fresh project, or on one with a long history (hundreds
of tasks, thousands of edits and deletions). ``TANDEM_LONG_PROPERTY=1`` runs
many more sessions (``TANDEM_PROPERTY_EXAMPLES`` sets how many) and prints
sessions per minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from doc_model.schema import TASK_STATUSES

from .conftest import (
    NODE_DIR,
    ServerProcess,
    node_available,
    project_with_tasks,
    start_server,
    utf8_offset,
)
from .raw_client import RawClient
from .test_convergence import StockClient

pytestmark = pytest.mark.skipif(
    not node_available(), reason="run `make setup` for the Node clients"
)

LONG = os.environ.get("TANDEM_LONG_PROPERTY") == "1"
EXAMPLES = int(os.environ.get("TANDEM_PROPERTY_EXAMPLES", "400" if LONG else "24"))
STEP_SECONDS = 0.008  # the Node driver's STEP_MS: both sides step at the same pace
NODE_CLIENTS = 2
PY_CLIENTS = 2
PRIORITIES = ["low", "medium", "high", "urgent"]
EDITS = [
    "create",
    "title",
    "untitle",
    "describe",
    "priority",
    "move",
    "estimate",
    "due",
    "assign",
    "unassign",
    "label",
    "custom",
    "delete",
    "milestone",
    "done",
    "meta",
    "chat",
]

steps_strategy = st.lists(
    st.tuples(
        st.integers(0, NODE_CLIENTS + PY_CLIENTS - 1),
        st.sampled_from(["toggle"] * 4 + EDITS),
        st.integers(0, 1000),
        st.text(alphabet="abcxyz é", min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=30,
)


# -- the edits, for pycrdt clients (tests/node/session_ops.mjs has the same for Yjs) -----


def new_task(title: str, user: str, order: str) -> Map:
    return Map(
        {
            "title": Text(title),
            "description": Text(),
            "status": "todo",
            "priority": "medium",
            "assignees": Array(),
            "labels": Array(),
            "depends_on": Array(),
            "custom": Map(),
            "order": order,
            "created_by": user,
            "created_at": datetime.now(UTC).isoformat(),
        }
    )


_messages = iter(range(10**9))


def apply_step(doc: Doc, chat: Doc, op: str, n: int, text: str, user: str) -> None:
    if op == "chat":
        message = {"id": f"{user}-{chat.client_id}-{next(_messages)}", "author": user}
        message |= {"text": text, "at": datetime.now(UTC).isoformat()}
        chat.get("messages", type=Array).append(Map(message))
        return
    tasks = doc.get("tasks", type=Map)
    milestones = doc.get("milestones", type=Map)
    ids = sorted(tasks.keys())
    with doc.transaction():
        if op == "create" or (not ids and op not in ("milestone", "done", "meta")):
            tasks[f"t{n % 4}"] = new_task(text, user, f"a{n}")
            return
        # the first few tasks only, so that clients often edit the same task at the same time
        task = tasks[ids[n % min(len(ids), 3)]] if ids else None
        # positions are characters, given to pycrdt as UTF-8 offsets (see utf8_offset)
        if op == "title" and task is not None:
            title = str(task["title"])
            task["title"].insert(utf8_offset(title, n % (len(title) + 1)), text)
        elif op == "untitle" and task is not None:
            title = str(task["title"])
            if title:
                at = n % len(title)
                end = at + min(3, len(title) - at)
                del task["title"][utf8_offset(title, at) : utf8_offset(title, end)]
        elif op == "describe" and task is not None:
            description = str(task["description"])
            task["description"].insert(utf8_offset(description, n % (len(description) + 1)), text)
        elif op == "priority" and task is not None:
            task["priority"] = PRIORITIES[n % 4]
        elif op == "move" and task is not None:
            task["status"] = TASK_STATUSES[n % len(TASK_STATUSES)]
            task["order"] = f"b{n}"
        elif op == "estimate" and task is not None:
            task["estimate"] = n % 40
        elif op == "due" and task is not None:
            task["due"] = f"2027-0{1 + n % 9}-1{n % 10}"
        elif op == "assign" and task is not None:
            task["assignees"].append(f"{text.strip() or 'x'}{n % 3}")
        elif op == "unassign" and task is not None:
            assignees = task["assignees"]
            if len(assignees):
                del assignees[n % len(assignees)]
        elif op == "label" and task is not None:
            task["labels"].insert(0, text)
        elif op == "custom" and task is not None:
            task["custom"][f"c{n % 3}"] = text if n % 2 else n
        elif op == "delete":
            del tasks[ids[n % min(len(ids), 3)]]
        elif op == "milestone":
            milestones[f"m{n % 3}"] = Map({"name": text, "done": False})
        elif op == "done":
            milestone = milestones.get(f"m{n % 3}")
            if milestone is not None:
                milestone["done"] = n % 2 == 0
            elif task is not None:
                task["milestone"] = f"m{n % 3}"
        elif op == "meta":
            doc.get("meta", type=Map)["name"] = f"P {text}"


def view(doc: Doc, chat: Doc) -> dict:
    out = {name: doc.get(name, type=Map).to_py() for name in ("tasks", "milestones", "meta")}
    out["messages"] = chat.get("messages", type=Array).to_py()
    return out


class PyClient:
    """A stock pycrdt client of the project and of its chat (two documents, two sockets)."""

    def __init__(self, server, doc_name: str, user: str, tg, client_id: int | None) -> None:
        self.user = user
        self.main = StockClient(server, doc_name, user, tg, client_id)
        self.chat = StockClient(server, f"{doc_name}/chat", user, tg, client_id)

    @property
    def online(self) -> bool:
        return self.main.online

    async def connect(self) -> None:
        await self.main.connect()
        await self.chat.connect()

    async def disconnect(self) -> None:
        await self.main.disconnect()
        await self.chat.disconnect()

    def view(self) -> dict:
        return view(self.main.doc, self.chat.doc)


# -- the Node side -------------------------------------------------------------------


class NodeClients:
    """One long-lived Node process driving the stock Yjs clients of every session."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "session_driver.mjs")],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the Node driver exited ({self.proc.poll()})")
        return json.loads(line)

    async def areceive(self) -> dict:
        with anyio.fail_after(30):
            return await anyio.to_thread.run_sync(self.receive, abandon_on_cancel=True)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- one session ---------------------------------------------------------------------


async def seed(server: ServerProcess, doc_name: str, doc: Doc) -> None:
    """Send ``doc``'s whole state as one owner transaction and wait for its ack."""
    async with RawClient.connect(server, doc_name, "seeder") as seeder:
        await seeder.sync()
        n = await seeder.send_update(doc.get_update())
        outcome = await seeder.outcome(n, timeout=30)
        assert outcome["type"] == "ack", outcome


def long_history() -> Doc:
    """A project of 300 tasks, 3,000 edits since (each its own transaction) and 100 deleted."""
    doc = project_with_tasks(300)
    tasks = doc.get("tasks", type=Map)
    for i in range(3000):
        task = tasks[f"t{(i * 7) % 300}"]
        with doc.transaction():
            if i % 3 == 0:
                task["title"].insert(0, "x")
            elif i % 3 == 1:
                task["priority"] = PRIORITIES[i % 4]
            else:
                task["description"].insert(len(task["description"]), "y")
    for i in range(100, 200):
        del tasks[f"t{i}"]
    return doc


def refusals(server: ServerProcess) -> list[str]:
    return [
        line for line in server.log().splitlines() if "rejected update" in line or "closing" in line
    ]


async def run_session(
    server: ServerProcess, node: NodeClients, doc_name: str, steps: list, client_ids: list[int]
) -> dict:
    """``client_ids``: the Yjs client ids, Node's clients first. Which of two concurrent
    writes of one key wins depends on their order, so hypothesis draws it."""
    project = doc_name.split("/")[1]
    users = [f"node{i}" for i in range(NODE_CLIENTS)]
    for user in users:
        server.grant(user, project, "owner")
    node.send(
        {
            "session": {
                "wsBase": server.ws_url,
                "docName": doc_name,
                "tokens": [server.token(u) for u in users],
                "clientIDs": client_ids[:NODE_CLIENTS],
                "steps": steps,
            }
        }
    )
    async with anyio.create_task_group() as tg:
        clients = [
            PyClient(server, doc_name, f"py{i}", tg, client_ids[NODE_CLIENTS + i])
            for i in range(PY_CLIENTS)
        ]
        for client in clients:
            await client.connect()
        assert (await node.areceive()) == {"ready": True}
        node.send({"go": True})
        for who, op, n, text in steps:
            if who >= NODE_CLIENTS:
                client = clients[who - NODE_CLIENTS]
                if op == "toggle":
                    await (client.disconnect() if client.online else client.connect())
                else:
                    apply_step(client.main.doc, client.chat.doc, op, n, text, client.user)
            await anyio.sleep(STEP_SECONDS)
        for client in clients:
            if not client.online:
                await client.connect()
        assert (await node.areceive()) == {"stepped": True}
        try:
            converged = await converge(server, node, doc_name, clients)
        finally:
            node.send({"end": True})
        for client in clients:
            await client.disconnect()
    return converged


async def converge(server, node, doc_name, clients) -> dict:
    """Every client's project, once they all and a fresh client of the server agree."""
    deadline = time.monotonic() + 20
    while True:
        fresh = await fresh_project(server, doc_name)
        node.send({"report": True})
        report = await node.areceive()
        assert report["denials"] == [], f"a Yjs client was refused: {report['denials']}"
        views = [c.view() for c in clients] + report["states"]
        if all(v == fresh for v in views):
            return fresh
        if time.monotonic() > deadline:
            raise AssertionError(
                "clients did not converge:\n"
                + "\n".join(json.dumps(v, sort_keys=True) for v in [fresh, *views])
            )
        await anyio.sleep(0.1)


async def fresh_project(server: ServerProcess, doc_name: str) -> dict:
    async with anyio.create_task_group() as tg:
        client = PyClient(server, doc_name, "observer", tg, None)
        await client.connect()
        project = client.view()
        await client.disconnect()
    return project


# -- the property --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[ServerProcess]:
    server = start_server(Path(tmp_path_factory.mktemp("sessions")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node_clients() -> Iterator[NodeClients]:
    node = NodeClients()
    yield node
    node.close()


@pytest.fixture(scope="module")
def history_doc(shared_server) -> str:
    anyio.run(seed, shared_server, "p/history", long_history())
    return "p/history"


_session = iter(range(10**6))
_timing = {"sessions": 0, "seconds": 0.0}


# a failure's shrinking may take hypothesis's own five minutes: let it end and report the
# example instead of pytest-timeout's 300 s cutting it off unexplained
@pytest.mark.timeout(900)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # the offline client's write of a priority loses to the online one's (issue #16)
    steps=[(1, "toggle", 0, "a"), (0, "priority", 0, "a"), (1, "priority", 3, "a")],
    order=[1, 0, 2, 3],
    long_history=False,
)
@given(
    steps=steps_strategy,
    order=st.permutations(range(NODE_CLIENTS + PY_CLIENTS)),
    long_history=st.booleans(),
)
def test_concurrent_offline_work_is_never_refused_and_every_client_converges(
    shared_server, node_clients, history_doc, steps, order, long_history
) -> None:
    started = time.monotonic()
    before = len(refusals(shared_server))
    session = next(_session)
    # a client id is never used twice: each session's clients start with empty documents
    client_ids = [1000 + 16 * session + rank for rank in order]
    if long_history:
        doc_name = history_doc
    else:
        doc_name = f"p/fresh-{session}"
        seeded = project_with_tasks(2)
        anyio.run(seed, shared_server, doc_name, seeded)
    project = anyio.run(run_session, shared_server, node_clients, doc_name, steps, client_ids)
    assert project["meta"]["name"]  # the project is still a project
    assert refusals(shared_server)[before:] == [], "the server refused valid concurrent work"
    _timing["sessions"] += 1
    _timing["seconds"] += time.monotonic() - started


def test_zz_report_sessions_per_minute() -> None:
    """Not a check: prints the rate of the property's sessions (-s to see it)."""
    if _timing["sessions"]:
        rate = _timing["sessions"] / _timing["seconds"] * 60
        print(f"\n{_timing['sessions']} sessions, {rate:.1f} sessions/minute")
