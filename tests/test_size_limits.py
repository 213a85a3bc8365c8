"""Every field has a size limit on every path: the socket's schema check applies the REST limits."""

from __future__ import annotations

import pytest
from pycrdt import Map

from doc_model import TaskCreate, create_project_meta, create_task
from doc_model.schema import MAX_ITEMS

from .raw_client import RawClient


async def _project_with_a_task(client) -> str:
    ids = {}

    def seed(d):
        create_project_meta(d, "P")
        ids["t"] = create_task(d, TaskCreate(title="t", description="d"), created_by="o")

    n = await client.send_update(client.edit(seed))
    assert (await client.outcome(n))["type"] == "ack"
    return ids["t"]


def _task(doc, task_id: str) -> Map:
    return doc.get("tasks", type=Map)[task_id]


@pytest.mark.anyio
async def test_a_huge_insert_into_a_description_is_refused_naming_the_limit(server) -> None:
    async with RawClient.connect(server, "p/big", "owner") as client:
        await client.sync()
        task_id = await _project_with_a_task(client)
        n = await client.send_update(
            client.edit(lambda d: _task(d, task_id)["description"].insert(0, "x" * (6 << 20)))
        )
        refused = await client.outcome(n, timeout=30)
        assert refused["type"] == "rejected", refused
        assert "at most 100000 characters" in str(refused)
        assert f"tasks/{task_id}/description" in str(refused)
        await client.drain(0.5)
        assert str(_task(client.doc, task_id)["description"]) == "d"

        # the limit is in characters, as the REST API's: 99,999 two-byte characters fit
        n = await client.send_update(
            client.edit(lambda d: _task(d, task_id)["description"].insert(0, "é" * 99_999))
        )
        assert (await client.outcome(n, timeout=30))["type"] == "ack"
        n = await client.send_update(
            client.edit(lambda d: _task(d, task_id)["description"].insert(0, "éé"))
        )
        assert (await client.outcome(n))["type"] == "rejected"

        n = await client.send_update(
            client.edit(lambda d: _task(d, task_id)["title"].insert(0, "t" * 500))
        )
        title = await client.outcome(n)
        assert title["type"] == "rejected" and "at most 500 characters" in str(title)


@pytest.mark.anyio
async def test_lists_have_limits_on_the_socket_too(server) -> None:
    async with RawClient.connect(server, "p/lists", "owner") as client:
        await client.sync()
        task_id = await _project_with_a_task(client)
        n = await client.send_update(
            client.edit(
                lambda d: _task(d, task_id)["labels"].extend(
                    [f"l{i}" for i in range(MAX_ITEMS + 1)]
                )
            )
        )
        refused = await client.outcome(n)
        assert refused["type"] == "rejected" and f"at most {MAX_ITEMS} items" in str(refused)
