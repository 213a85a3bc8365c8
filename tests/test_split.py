"""Property: a refused offline batch keeps exactly the entities that are allowed alone.

Gate-level (no socket), to reach many batches: ann, a member, edits offline in
several transactions (creating tasks, editing her own and other people's
tasks, deleting) and sends them as one update, as a stock client's sync
step 2 does. Whatever the mix, every task she touched ends as her batch left
it if she may make all her changes to it, and as it was if she may not, on
the server and on her own copy once it applies the server's answer. The real
socket cases are in test_offline_merge.py.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

from doc_model import DocKind, TaskCreate, create_task, delete_task, new_document, parse_doc_name
from sync_server.core.gate import Gate
from sync_server.interfaces import Actor

from .test_permissions import _gate_with_project

OPS = ["create", "title", "untitle", "priority", "delete", "edit_new"]


@settings(max_examples=int(os.environ.get("TANDEM_SPLIT_EXAMPLES", "60")), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 3), st.text("abc", min_size=1, max_size=4)),
        min_size=1,
        max_size=12,
    )
)
def test_a_mixed_batch_keeps_the_allowed_entities_and_reverts_the_refused_ones(steps) -> None:
    server, ids, gate = _gate_with_project()
    own = {ids[1], ids[3]}  # assigned to ann
    pre = server.get_update()
    before = server.get("tasks", type=Map).to_py()
    client = new_document(DocKind.MAIN)
    client.apply_update(pre)
    state = client.get_state()
    tasks = client.get("tasks", type=Map)
    created: list[str] = []
    forbidden: set[str] = set()
    touched: set[str] = set()
    for op, n, text in steps:
        with client.transaction():
            if op == "create":
                created.append(create_task(client, TaskCreate(title=text), created_by="ann"))
                touched.add(created[-1])
                continue
            if op == "edit_new":
                if not created or created[n % len(created)] not in tasks:
                    continue
                task_id = created[n % len(created)]
                tasks[task_id]["title"].insert(0, text)
                continue
            task_id = ids[n]
            if task_id not in tasks:
                continue
            touched.add(task_id)
            if op == "delete":
                delete_task(client, task_id)
                forbidden.add(task_id)  # a member may not delete tasks
                continue
            if task_id not in own:
                forbidden.add(task_id)
            if op == "title":
                tasks[task_id]["title"].insert(n % (len(tasks[task_id]["title"]) + 1), text)
            elif op == "untitle":
                if len(tasks[task_id]["title"]):
                    del tasks[task_id]["title"][0:1]
            else:
                tasks[task_id]["priority"] = ["low", "high", "urgent", "medium"][n]
    batch = client.get_update(state)
    wanted = client.get("tasks", type=Map).to_py()

    result = gate.apply(batch, Actor("ann"))
    if result.splittable:  # the room reloads from storage, which never held the batch
        reloaded: Doc = Doc()
        reloaded.apply_update(pre)
        server = reloaded
        gate = Gate(reloaded, parse_doc_name("p/x"), gate.permission_check)
        result = gate.apply_in_parts(batch, Actor("ann"))
    after = server.get("tasks", type=Map).to_py()
    for task_id in touched | set(before):
        expected = (before if task_id in forbidden else wanted).get(task_id)
        assert after.get(task_id) == expected, (task_id, task_id in forbidden)
    assert result.accepted == (not forbidden)
    if forbidden and touched - forbidden:
        assert result.kept, "the allowed entities were kept"
    if result.update is not None:
        client.apply_update(result.update)
    assert client.get("tasks", type=Map).to_py() == after
