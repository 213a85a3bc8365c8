"""kill -9 during a stream of edits loses nothing that any client had received or been acked."""

from __future__ import annotations

import anyio
import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_task

from .raw_client import RawClient

pytestmark = pytest.mark.anyio

DOC = "p/crash"


def titles(doc) -> set[str]:
    return {t["title"] for t in doc.get("tasks", type=Map).to_py().values()}


async def test_kill_9_under_load_keeps_every_update_a_client_received(
    server_on_each_storage,
) -> None:
    server = server_on_each_storage
    seen_by_reader: set[str] = set()
    acked: set[str] = set()
    sent: dict[int, str] = {}

    async with (
        RawClient.connect(server, DOC, "writer") as writer,
        RawClient.connect(server, DOC, "reader") as reader,
    ):
        await writer.sync()
        await reader.sync()

        async def write() -> None:
            for i in range(2000):
                title = f"task {i}"
                update = writer.edit(
                    lambda d, t=title: create_task(d, TaskCreate(title=t), created_by="writer")
                )
                try:
                    n = await writer.send_update(update)
                except Exception:
                    return  # the server is gone
                sent[n] = title
                await anyio.sleep(0.001)

        async def read_writer() -> None:
            while await writer.recv(timeout=30) is not None:
                while writer.tandem:
                    payload = writer.tandem.pop(0)
                    if payload.get("type") == "ack" and payload["n"] in sent:
                        acked.add(sent[payload["n"]])

        async def read_reader() -> None:
            while await reader.recv(timeout=30) is not None:
                seen_by_reader.update(titles(reader.doc))

        async def kill_midway() -> None:
            with anyio.fail_after(30):
                while len(seen_by_reader) < 150:
                    await anyio.sleep(0.01)
            server.kill()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            tg.start_soon(read_writer)
            tg.start_soon(read_reader)
            tg.start_soon(kill_midway)

    assert len(seen_by_reader) >= 150
    assert acked, "the writer was acked before the crash"
    assert len(sent) > len(acked), "the crash happened mid-stream"

    server.start()
    async with RawClient.connect(server, DOC, "auditor") as auditor:
        await auditor.sync()
        after_restart = titles(auditor.doc)
    missing_seen = seen_by_reader - after_restart
    missing_acked = acked - after_restart
    assert not missing_seen, f"{len(missing_seen)} updates a client had received were lost"
    assert not missing_acked, f"{len(missing_acked)} acknowledged updates were lost"
