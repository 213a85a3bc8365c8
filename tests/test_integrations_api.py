"""The integrations management REST API (issue 21, item 7) against a real `tandem serve`:
list, test, pause / resume and delete a project's webhook endpoints, for manage_team only;
a paused endpoint answers a signed delivery 2xx, records it as ignored and acts on nothing."""

from __future__ import annotations

import json
import time
import uuid

from .conftest import grant_role
from .test_api_v1 import call, new_project
from .test_connections import connect, dropbox, google, microsoft, srv
from .test_webhooks import api, github_push, needs_node, post_github, project, wait_for

__all__ = ["dropbox", "google", "microsoft", "project", "srv"]  # fixtures, used by name


def integrations(p) -> list[dict]:
    response = p.client.get(f"/projects/{p.id}/integrations/")
    assert response.status_code == 200, response.text
    return response.json()["items"]


@needs_node
def test_list_test_pause_resume_delete(server, project) -> None:
    assert integrations(project) == []
    path, secret = project.endpoint("github")
    endpoint = path.rstrip("/").rsplit("/", 1)[1]
    [item] = integrations(project)
    assert item["id"] == endpoint and item["kind"] == "webhook" and item["provider"] == "github"
    assert item["status"] == "active" and item["last_event"] is None and item["last_error"] is None
    assert item["path"] == path and item["url"] == server.http_url + path
    assert item["signature_header"] == "X-Hub-Signature-256"
    assert secret not in json.dumps(item)

    base = f"/projects/{project.id}/integrations/{endpoint}"
    tested = project.client.post(base + "/test/")
    assert tested.status_code == 200, tested.text
    report = tested.json()
    assert report["ok"] is True, report
    assert {c["name"] for c in report["checks"]} == {"secret", "signature", "grant", "deliveries"}
    assert report["last_delivery"] is None

    # a delivery naming a key: linked; the list shows it as the last event
    delivery = str(uuid.uuid4())
    sent = post_github(server, path, secret, "push", github_push("see TDM-1"), delivery)
    assert sent.status_code == 202 and sent.json()["status"] == "accepted"
    wait_for(lambda: project.by_key("TDM-1").get("links"), what="TDM-1's link")
    last = wait_for(  # (the link is written before the delivery is marked done)
        lambda: (e := integrations(project)[0]["last_event"]) and e["status"] == "done" and e,
        what="a last event, done",
    )
    assert last["status"] == "done" and last["summary"].startswith("push: done")
    report = project.client.post(base + "/test/").json()
    assert report["ok"] and report["last_delivery"]["delivery"] == delivery

    # paused: a signed delivery is answered 2xx, recorded as ignored, and changes nothing
    paused = project.client.post(base + "/pause/")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["paused_at"]
    assert integrations(project)[0]["status"] == "paused"
    ignored_id = str(uuid.uuid4())
    sent = post_github(server, path, secret, "push", github_push("fixes TDM-2"), ignored_id)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "ignored"
    recorded = wait_for(
        lambda: [
            d
            for d in project.deliveries(path)
            if d["delivery"] == ignored_id and d["status"] != "pending"
        ],
        what="the paused delivery recorded",
    )
    assert recorded[0]["status"] == "ignored" and "paused" in recorded[0]["detail"]
    time.sleep(0.5)
    task = project.by_key("TDM-2")
    assert task["status"] == "todo" and not task.get("links")
    # a forged signature is still refused while paused
    forged = post_github(server, path, "not-the-secret", "push", github_push("fixes TDM-2"))
    assert forged.status_code == 401

    resumed = project.client.post(base + "/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    sent = post_github(server, path, secret, "push", github_push("fixes TDM-2"))
    assert sent.status_code == 202 and sent.json()["status"] == "accepted"
    wait_for(lambda: project.by_key("TDM-2")["status"] == "done", what="TDM-2 done")

    deleted = project.client.delete(base + "/")
    assert deleted.status_code == 204, deleted.text
    assert integrations(project) == []
    assert post_github(server, path, secret, "push", github_push("x")).status_code == 404
    again = project.client.delete(base + "/")
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


def test_members_get_403_and_unknown_ids_404_with_problem_details(server, project) -> None:
    path, _ = project.endpoint("gitlab")
    endpoint = path.rstrip("/").rsplit("/", 1)[1]
    base = f"/projects/{project.id}/integrations/"
    grant_role(server.db, "bob", project.id, "member")
    with api(server, "bob") as bob:
        for method, url in [
            ("GET", base),
            ("POST", f"{base}{endpoint}/test/"),
            ("POST", f"{base}{endpoint}/pause/"),
            ("POST", f"{base}{endpoint}/resume/"),
            ("DELETE", f"{base}{endpoint}/"),
        ]:
            refused = bob.request(method, url)
            assert refused.status_code == 403, (method, url, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["permission"] == "manage_team"
    assert integrations(project)[0]["status"] == "active"  # bob's pause did nothing
    for method, url in [
        ("POST", f"{base}nope/test/"),
        ("POST", f"{base}nope/pause/"),
        ("POST", f"{base}nope/resume/"),
        ("DELETE", f"{base}nope/"),
    ]:
        missing = project.client.request(method, url)
        assert missing.status_code == 404, (method, url, missing.text)
        assert "nope" in missing.json()["detail"]
    # an endpoint of another project is not found through this one
    other = project.client.post("/projects/", json={"name": "Other"}).json()["id"]
    moved = project.client.post(f"/projects/{other}/integrations/{endpoint}/pause/")
    assert moved.status_code == 404
    assert project.client.get("/projects/nope/integrations/").status_code in (403, 404)


def test_a_connection_is_listed_tested_paused_resumed_and_deleted(srv, google) -> None:
    """A Google Drive connection (the local stand-in built from Drive's reference) among the
    project's integrations: listed with its status, tested with one authorized call (the
    stand-in sees its bearer token), paused (then nothing reaches the provider: no search,
    no attachment, no token refresh, and the test says so), resumed (the expired token is
    refreshed and the search goes through), deleted (revoked)."""
    project = new_project(srv)
    made = connect(srv, project, "google")
    listed = call(srv, "GET", f"/projects/{project}/integrations/").json()["items"]
    [item] = [i for i in listed if i["kind"] == "connection"]
    assert item["id"] == made["id"] and item["provider"] == "google"
    assert item["status"] == "active" and item["category"] == "files"
    assert item["paused_at"] is None
    base = f"/projects/{project}/integrations/{made['id']}"
    tested = call(srv, "POST", base + "/test/")
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True, tested.json()
    assert "Google Drive answered" in tested.json()["checks"][0]["detail"]
    listed = call(srv, "GET", f"/projects/{project}/integrations/").json()["items"]
    assert listed[0]["last_event"] and listed[0]["last_event"]["status"] == "done"
    last_used = listed[0]["last_event"]["at"]

    paused = call(srv, "POST", base + "/pause/")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["paused_at"]
    again = call(srv, "POST", base + "/pause/")  # pausing twice keeps the first time
    assert again.json()["paused_at"] == paused.json()["paused_at"]
    for t in google.oauth.tokens:  # the token expired meanwhile: a call would refresh it
        t.issued_at -= 7200
    seen = len(google.requests)
    files = f"/projects/{project}/connections/{made['id']}/files/?q=budget"
    refused = call(srv, "GET", files)
    assert refused.status_code == 409, refused.text
    assert "paused" in refused.json()["detail"]
    assert refused.headers["content-type"].startswith("application/problem+json")
    task = call(srv, "POST", f"/projects/{project}/tasks/", json={"title": "Spec"}).json()["id"]
    attach = call(
        srv,
        "POST",
        f"/projects/{project}/tasks/{task}/attachments/",
        json={"connection": made["id"], "file_id": "1AbCdEfGhIjKlMnOp"},
    )
    assert attach.status_code == 409, attach.text
    tested = call(srv, "POST", base + "/test/").json()
    assert tested["ok"] is False and "paused" in tested["checks"][0]["detail"]
    assert google.requests[seen:] == []  # nothing went out: no call, no refresh
    listed = call(srv, "GET", f"/projects/{project}/connections/").json()["connections"]
    assert listed[0]["status"] == "paused" and listed[0]["last_used"] == last_used
    assert listed[0]["last_error"] is None  # a refusal while paused is not a failure

    resumed = call(srv, "POST", base + "/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert resumed.json()["paused_at"] is None
    found = call(srv, "GET", files)
    assert found.status_code == 200, found.text
    # the provider refused the expired token (401): refreshed once, then the search again
    assert google.requests[seen:] == [
        ("GET", "/drive/v3/files"),
        ("POST", "/token"),
        ("GET", "/drive/v3/files"),
    ]

    assert call(srv, "DELETE", base + "/").status_code == 204
    assert call(srv, "GET", f"/projects/{project}/integrations/").json()["items"] == []
    assert call(srv, "POST", base + "/test/").status_code == 404
    assert call(srv, "POST", base + "/pause/").status_code == 404
