"""Property: stock pycrdt clients editing with random disconnects converge, and so does storage."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Provider
from pycrdt.websocket.websocket import HttpxWebsocket

from doc_model import TaskCreate, create_task, declare_roots, delete_task, move_task, parse_doc_name

from .conftest import ServerProcess, start_server, without_keys

STATUSES = ["todo", "in_progress", "review", "done"]


class StockClient:
    """pycrdt's own provider over httpx-ws: the client third-party Python code would use.

    Each connection lives in a task of its own (anyio cancel scopes must nest per task).
    """

    def __init__(
        self,
        server: ServerProcess,
        doc_name: str,
        user: str,
        tg: TaskGroup,
        client_id: int | None = None,
    ) -> None:
        self.server = server
        self.doc_name = doc_name
        self.user = user
        self.tg = tg
        self.doc: Doc = Doc() if client_id is None else Doc(client_id=client_id)
        declare_roots(self.doc, parse_doc_name(doc_name).kind)
        self._stop: anyio.Event | None = None
        self._stopped: anyio.Event | None = None

    @property
    def online(self) -> bool:
        return self._stop is not None

    async def _run(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        stop, stopped = anyio.Event(), anyio.Event()
        self._stop, self._stopped = stop, stopped
        url = f"{self.server.ws_url}/{self.doc_name}"
        self.server.grant(self.user, self.doc_name.split("/")[1], "owner")
        ws: AsyncWebSocketSession
        try:
            async with (
                httpx.AsyncClient() as http,
                aconnect_ws(url, http, params={"token": self.server.token(self.user)}) as ws,
                Provider(self.doc, HttpxWebsocket(ws, url)) as provider,
            ):
                with anyio.fail_after(10):
                    await provider.synced.wait()
                task_status.started()
                await stop.wait()
        finally:
            stopped.set()

    async def connect(self) -> None:
        await self.tg.start(self._run)

    async def disconnect(self) -> None:
        if self._stop is not None and self._stopped is not None:
            stop, stopped = self._stop, self._stopped
            self._stop = self._stopped = None
            stop.set()
            await stopped.wait()

    def tasks(self) -> dict:
        return self.doc.get("tasks", type=Map).to_py()


def task_ids(doc: Doc) -> list[str]:
    return sorted(doc.get("tasks", type=Map).keys())


ops = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["create", "title", "move", "delete", "toggle"]),
        st.integers(0, 1000),
        st.text(alphabet="abcxyz ", min_size=1, max_size=6),
    ),
    min_size=1,
    max_size=20,
)


async def fresh_view(server: ServerProcess, doc_name: str) -> dict:
    async with anyio.create_task_group() as tg:
        client = StockClient(server, doc_name, "observer", tg)
        await client.connect()
        view = client.tasks()
        await client.disconnect()
    return view


async def run_scenario(server: ServerProcess, doc_name: str, steps) -> dict:
    async with anyio.create_task_group() as tg:
        clients = [StockClient(server, doc_name, user, tg) for user in ("ann", "ben", "cat")]
        for c in clients:
            await c.connect()
        converged = await _edit_and_converge(server, doc_name, clients, steps)
        for c in clients:
            await c.disconnect()
    return converged


async def _edit_and_converge(server, doc_name, clients, steps) -> dict:
    for who, action, n, text in steps:
        client = clients[who]
        ids = task_ids(client.doc)
        if action == "toggle":
            await (client.disconnect() if client.online else client.connect())
        elif action == "create" or not ids:
            create_task(client.doc, TaskCreate(title=f"t{text}"), created_by=client.user)
        elif action == "title":
            title = client.doc.get("tasks", type=Map)[ids[n % len(ids)]]["title"]
            title.insert(n % (len(title) + 1), text)
        elif action == "move":
            move_task(client.doc, ids[n % len(ids)], STATUSES[n % len(STATUSES)])
        elif action == "delete":
            delete_task(client.doc, ids[n % len(ids)])
        await anyio.sleep(0.005)
    for c in clients:
        if not c.online:
            await c.connect()
    with anyio.fail_after(15):
        while True:
            views = [c.tasks() for c in clients]
            if views[0] == views[1] == views[2]:
                server_view = await fresh_view(server, doc_name)
                if server_view == views[0]:
                    return server_view
            await anyio.sleep(0.05)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_server(request, tmp_path_factory):
    storage = None
    if request.param == "postgresql":
        storage = request.getfixturevalue("postgres_server").create_database()
    server = start_server(Path(tmp_path_factory.mktemp("convergence")), storage)
    yield server
    server.stop()


_example = iter(range(10**6))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
def test_stock_pycrdt_clients_converge_with_each_other_and_with_storage(shared_server, steps):
    doc_name = f"p/prop-{next(_example)}"
    converged = anyio.run(run_scenario, shared_server, doc_name, steps)
    shared_server.restart()  # what was in memory must be what was stored
    # (a task's key is the server's own later transaction: it may land after the clients
    # agreed, more often on the slower PostgreSQL appends; conftest.without_keys)
    stored = anyio.run(fresh_view, shared_server, doc_name)
    assert without_keys(stored) == without_keys(converged)
