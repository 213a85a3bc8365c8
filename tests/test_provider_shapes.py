"""The providers' answer shapes (tests/data/providers) through the parsing code the server
uses; the pure import planning (hypothesis); endpoint configuration; the attachments
schema; the outbound guard in front of every provider request."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from doc_model import DocKind, changes_from_events, check_changes, new_document
from doc_model.attachments import MAX_ATTACHMENTS, add_attachment, check_attachments
from integrations import cloud_files, time_tracking
from integrations.outbound import GuardedTransport, OutboundPolicy, OutboundRefused
from integrations.providers import UnknownProvider, provider

DATA = Path(__file__).parent / "data" / "providers"


def answers(routes: dict[tuple[str, str], str]) -> httpx.Client:
    """A client whose answers are the data files, by (method, path)."""

    def handle(request: httpx.Request) -> httpx.Response:
        name = routes.get((request.method, request.url.path))
        if name is None:
            return httpx.Response(404, json={"error": f"no route {request.url.path}"})
        return httpx.Response(200, content=(DATA / name).read_bytes())

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_drive_answers_parse():
    spec = provider("google", {})
    client = answers(
        {
            ("GET", "/drive/v3/files"): "google_files_list.json",
            ("GET", "/drive/v3/files/1x8Ve6d2rXyQ0aH3pG5nFZ7wZ0mYbQkLq"): "google_file.json",
        }
    )
    found = cloud_files.search(client, spec, "budget")
    assert [(f.name, f.size) for f in found] == [
        ("Quarterly budget.xlsx", 24876),
        ("Budget notes", None),  # a Google Doc has no size
    ]
    one = cloud_files.get_file(client, spec, "1x8Ve6d2rXyQ0aH3pG5nFZ7wZ0mYbQkLq")
    assert one.link.startswith("https://docs.google.com/spreadsheets/d/1x8Ve6d2")
    token = json.loads((DATA / "google_token.json").read_text())
    assert {"access_token", "refresh_token", "expires_in", "token_type"} <= set(token)


def test_dropbox_answers_parse():
    spec = provider("dropbox", {})
    client = answers(
        {
            ("POST", "/2/files/search_v2"): "dropbox_search_v2.json",
            ("POST", "/2/files/get_metadata"): "dropbox_get_metadata.json",
        }
    )
    (found,) = cloud_files.search(client, spec, "prime")  # the folder is left out
    assert (found.file_id, found.size) == ("id:a4ayc_80_OEAAAAAAAAAXw", 7212)
    assert found.link == "https://www.dropbox.com/home/Homework/math/Prime%20numbers.txt"
    assert cloud_files.get_file(client, spec, found.file_id) == found


def test_graph_answers_parse():
    spec = provider("microsoft", {})
    client = answers(
        {
            ("GET", "/v1.0/me/drive/root/search(q='contoso')"): "graph_search.json",
            ("GET", "/v1.0/me/drive/items/0123456789abc!1234"): "graph_item.json",
        }
    )
    (found,) = cloud_files.search(client, spec, "contoso")
    assert (found.name, found.size) == ("Contoso Project Plan.docx", 38912)
    assert cloud_files.get_file(client, spec, "0123456789abc!1234") == found


def test_tracker_answers_parse():
    since, until = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
    toggl = answers(
        {
            ("GET", "/api/v9/me"): "toggl_me.json",
            ("GET", "/api/v9/me/time_entries"): "toggl_time_entries.json",
        }
    )
    spec = provider("toggl", {})
    account, config = time_tracking.whoami(toggl, spec)
    assert (account, config) == ("grace@example.com", {"user_id": 4232226, "workspace_id": 2949399})
    (entry,) = time_tracking.fetch_entries(toggl, spec, config, since, until)  # not the running
    assert (entry.id, entry.date, round(entry.hours, 4)) == (
        "3550212111",
        dt.date(2026, 11, 18),
        1.3061,
    )
    assert time_tracking.task_key_in(entry.description) == "TDM-12"

    clockify = answers(
        {
            ("GET", "/api/v1/user"): "clockify_user.json",
            (
                "GET",
                "/api/v1/workspaces/5e4117fe8c625f38930d57b7/user/5a0ab5acb07987125438b60f/time-entries",
            ): "clockify_time_entries.json",
        }
    )
    spec = provider("clockify", {})
    _, config = time_tracking.whoami(clockify, spec)
    (entry,) = time_tracking.fetch_entries(clockify, spec, config, since, until)
    assert (entry.id, entry.hours, entry.project) == (
        "64c777ddd3fcab07cfbb210c",
        1.5,
        "25b687e29ae1f428e7ebe123",
    )

    harvest = answers(
        {
            ("GET", "/api/v2/accounts"): "harvest_accounts.json",
            ("GET", "/v2/users/me"): "harvest_users_me.json",
            ("GET", "/v2/time_entries"): "harvest_time_entries.json",
        }
    )
    spec = provider("harvest", {})
    account, config = time_tracking.whoami(harvest, spec)
    assert config == {"account_id": 123456, "user_id": 1782884}
    (entry,) = time_tracking.fetch_entries(harvest, spec, config, since, until)
    assert (entry.id, entry.hours, entry.project) == ("636709355", 2.11, "14307913")


def test_a_shape_tandem_does_not_know_is_a_clear_error():
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"items": []}))
    )
    with pytest.raises(cloud_files.ProviderAnswerInvalid, match="files"):
        cloud_files.search(client, provider("google", {}), "x")
    with pytest.raises(time_tracking.TrackerAnswerInvalid):
        time_tracking.fetch_entries(
            client, provider("harvest", {}), {}, dt.date(2026, 1, 1), dt.date(2026, 1, 2)
        )


# -- endpoints ----------------------------------------------------------------------------


def test_endpoints_are_configurable():
    real = provider("google", {})
    assert real.token_url == "https://oauth2.googleapis.com/token"
    assert not real.configured
    local = provider(
        "google",
        {
            "TANDEM_PROVIDER_GOOGLE_URL": "http://127.0.0.1:9999/g",
            "TANDEM_PROVIDER_GOOGLE_CLIENT_ID": "id",
        },
    )
    assert local.token_url == "http://127.0.0.1:9999/g/token"
    assert local.authorize_url == "http://127.0.0.1:9999/g/o/oauth2/v2/auth"
    assert local.api_url == "http://127.0.0.1:9999/g"
    assert local.configured
    one = provider(
        "dropbox",
        {"TANDEM_PROVIDERS": json.dumps({"dropbox": {"token_url": "https://proxy.example/t"}})},
    )
    assert one.token_url == "https://proxy.example/t"
    assert one.api_url == "https://api.dropboxapi.com"
    with pytest.raises(ValueError, match=r"TANDEM_PROVIDERS\.dropbox\.nope"):
        provider("dropbox", {"TANDEM_PROVIDERS": '{"dropbox": {"nope": "x"}}'})
    with pytest.raises(ValueError, match="not JSON"):
        provider("dropbox", {"TANDEM_PROVIDERS": "{"})
    with pytest.raises(UnknownProvider):
        provider("myspace", {})
    client_secret_hidden = provider("google", {"TANDEM_PROVIDER_GOOGLE_CLIENT_SECRET": "s3cr3t"})
    assert "s3cr3t" not in repr(client_secret_hidden)


def test_every_provider_request_passes_the_outbound_guard():
    client = httpx.Client(transport=GuardedTransport(OutboundPolicy()))
    for url in ("http://127.0.0.1:1/x", "https://127.0.0.1/x", "https://169.254.169.254/latest"):
        with pytest.raises(OutboundRefused):
            client.get(url)


# -- planning an import (pure) ------------------------------------------------------------

entry_ids = st.integers(1, 10**12).map(str)
entries = st.lists(
    st.builds(
        time_tracking.ExternalEntry,
        provider=st.sampled_from(["toggl", "harvest", "clockify"]),
        id=entry_ids,
        date=st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)),
        hours=st.floats(0, 24, allow_nan=False),
        description=st.sampled_from(["", "TDM-1 spec", "work on ABC-22", "TDM-999", "x TDM-1x"]),
        project=st.sampled_from([None, "p1", "p2"]),
    ),
    max_size=20,
)
KEYS = {"TDM-1": "task1", "ABC-22": "task22"}


@settings(max_examples=200, deadline=None)
@given(entries, st.sampled_from([(), ("p1",), ("p1", "p2")]))
def test_importing_again_writes_nothing(batch, projects):
    existing: dict[str, dict] = {}
    plan = time_tracking.plan_import(
        batch, user="ada", task_keys=KEYS, existing=existing, projects=projects
    )
    existing.update(plan)
    again = time_tracking.plan_import(
        batch, user="ada", task_keys=KEYS, existing=existing, projects=projects
    )
    assert again == {}
    for record_id, fields in plan.items():
        assert record_id == f"{fields['source']}-{fields['external_id']}"
        assert fields["hours"] > 0
        key = time_tracking.task_key_in(fields["note"])
        assert fields.get("task") == KEYS.get(key or "")
    if projects:
        chosen = {f"{e.provider}-{e.id}" for e in batch if e.project in projects}
        assert set(plan) <= chosen


def test_an_exported_entry_is_not_imported_again_and_a_change_updates():
    exported = {"e1": {"user": "ada", "hours": 2, "source": "toggl", "external_id": "77"}}
    entry = time_tracking.ExternalEntry("toggl", "77", dt.date(2026, 1, 2), 2.0, "", None)
    assert time_tracking.plan_import([entry], user="ada", task_keys={}, existing=exported) == {}
    first = time_tracking.plan_import(
        [time_tracking.ExternalEntry("toggl", "5", dt.date(2026, 1, 2), 1.0, "TDM-1", None)],
        user="ada",
        task_keys=KEYS,
        existing={},
    )
    changed = time_tracking.plan_import(
        [time_tracking.ExternalEntry("toggl", "5", dt.date(2026, 1, 2), 1.5, "TDM-1", None)],
        user="ada",
        task_keys=KEYS,
        existing=first,
    )
    assert changed["toggl-5"]["hours"] == 1.5 and changed["toggl-5"]["task"] == "task1"


@given(st.text(max_size=60))
def test_a_task_key_is_found_only_whole(text):
    key = time_tracking.task_key_in(text)
    if key is not None:
        assert key in text
        prefix, number = key.split("-")
        assert prefix[0].isalpha() and number[0] != "0"


# -- attachments in the document (the gate's schema check) ---------------------------------


def _attach_changes(doc: Doc, edit) -> list:
    events: list = []
    tasks = doc.get("tasks", type=Map)
    sub = tasks.observe_deep(lambda evs: events.extend(evs))
    with doc.transaction():
        edit(tasks)
    tasks.unobserve(sub)
    return changes_from_events(events, "tasks")


def _task_doc() -> Doc:
    doc = new_document(DocKind.MAIN)
    from pycrdt import Text

    doc.get("tasks", type=Map)["t1"] = Map({"title": Text("x"), "status": "todo"})
    return doc


GOOD = {
    "provider": "google",
    "file_id": "1abc",
    "name": "Plan.pdf",
    "size": 10,
    "link": "https://drive.google.com/file/d/1abc/view",
}


@pytest.mark.parametrize(
    ("attachment", "ok"),
    [
        (GOOD, True),
        ({**GOOD, "provider": "myspace"}, False),
        ({**GOOD, "link": "javascript:alert(1)"}, False),
        ({**GOOD, "size": -1}, False),
        ({**GOOD, "size": True}, False),
        ({k: v for k, v in GOOD.items() if k != "name"}, False),
        ({**GOOD, "token": "x"}, False),
        ({**GOOD, "name": "n" * 1001}, False),
    ],
)
def test_the_gate_checks_attachments(attachment, ok):
    doc = _task_doc()
    changes = _attach_changes(doc, lambda tasks: add_attachment(tasks["t1"], dict(attachment)))
    violations = check_changes(DocKind.MAIN, doc, changes)
    assert (violations == []) is ok, violations
    if not ok:
        assert violations[0].path == "tasks/t1/attachments"


def test_attachments_are_bounded_and_not_repeated():
    doc = _task_doc()
    with doc.transaction():
        task = doc.get("tasks", type=Map)["t1"]
        assert add_attachment(task, dict(GOOD))
        assert not add_attachment(task, dict(GOOD))
    assert len(task["attachments"]) == 1
    too_many = Array([Map({**GOOD, "file_id": str(i)}) for i in range(MAX_ATTACHMENTS + 1)])
    holder: Doc = Doc()
    holder["a"] = too_many
    assert check_attachments(too_many) is not None
