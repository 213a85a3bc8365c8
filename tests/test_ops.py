"""Operations endpoints on a real server: /readyz (probes, a locked SQLite file, draining at
SIGTERM, a backend's own probe), /healthz beside it, and /metrics (who may read it, what it
counts, that it names no document or user)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from doc_model import TaskCreate, create_project_meta, create_task
from sync_server.shell.app import create_app
from sync_server.shell.monitoring import may_read
from sync_server.shell.readiness import Readiness, redact, storage_probe
from sync_server.shell.settings import Settings
from sync_server.storage.memory_store import MemoryStore
from tests.conftest import api_client, start_server, wait_until
from tests.raw_client import RawClient


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_readyz_and_healthz_on_a_serving_node(server):
    ready = httpx.get(server.http_url + "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"storage": "ok"}}
    health = httpx.get(server.http_url + "/healthz").json()
    assert health["status"] == "ok" and {"rooms", "connections"} <= set(health)


def test_readyz_reports_storage_locked_by_another_process(server):
    """In WAL mode reads go on while another process holds the write lock, so the probe asks
    for the lock: a node that cannot store an edit is not ready; it is still alive."""
    assert httpx.get(server.http_url + "/readyz").status_code == 200
    other = sqlite3.connect(server.db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        ready = httpx.get(server.http_url + "/readyz", timeout=10)
        took = time.monotonic() - started
        assert ready.status_code == 503, ready.text
        assert ready.headers["content-type"] == "application/problem+json"
        body = ready.json()
        assert body["detail"].startswith("not ready: storage: ")
        assert "write lock" in body["detail"], body
        assert body["checks"]["storage"] != "ok"
        assert took < 5, f"/readyz took {took:.1f} s"
        assert ready.headers["Retry-After"]
        assert httpx.get(server.http_url + "/healthz").status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_until(
        lambda: httpx.get(server.http_url + "/readyz").status_code == 200,
        10,
        "ready again once the lock is released",
    )


def test_a_backend_probe_names_what_failed_without_its_password(tmp_path):
    flag = tmp_path / "down"
    srv = start_server(tmp_path, TANDEM_TEST_BACKEND_DOWN=str(flag))
    srv.stop()
    srv.args = ("--extension", "tests.ready_probe:Backend")
    srv.start()
    try:
        ready = httpx.get(srv.http_url + "/readyz")
        assert ready.json()["checks"] == {"storage": "ok", "backend": "ok"}
        flag.touch()
        ready = httpx.get(srv.http_url + "/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["detail"].startswith("not ready: backend: ConnectionError: redis://tandem:***@")
        assert "hunter2" not in ready.text
        assert body["checks"]["storage"] == "ok"
        flag.unlink()
        assert httpx.get(srv.http_url + "/readyz").status_code == 200
    finally:
        srv.stop()


def test_sigterm_drains_not_ready_then_stops(tmp_path):
    srv = start_server(tmp_path, TANDEM_DRAIN_SECONDS="5")
    try:
        assert httpx.get(srv.http_url + "/readyz").status_code == 200
        srv.token("alice")  # made before the drain starts (the CLI takes a while)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        ready = wait_until(
            lambda: (r := httpx.get(srv.http_url + "/readyz")).status_code == 503 and r,
            2,
            "not ready while draining",
        )
        assert "draining" in ready.json()["detail"]
        # still serving meanwhile: liveness and the API answer
        assert httpx.get(srv.http_url + "/healthz").status_code == 200
        with api_client(srv) as api:
            assert api.get("/projects/").status_code == 200
        srv.proc.wait(timeout=15)
    finally:
        srv.stop()


def test_metrics_only_from_loopback_unproxied_or_with_the_token(tmp_path):
    srv = start_server(tmp_path, TANDEM_METRICS_TOKEN="s3cret-metrics")
    try:
        url = srv.http_url + "/metrics"
        assert httpx.get(url).status_code == 200
        proxied = httpx.get(url, headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403
        assert proxied.headers["content-type"] == "application/problem+json"
        wrong = {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer nope"}
        assert httpx.get(url, headers=wrong).status_code == 403
        right = {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer s3cret-metrics"}
        assert httpx.get(url, headers=right).status_code == 200
    finally:
        srv.stop()


@pytest.mark.anyio
async def test_metrics_count_the_hot_path_and_name_nobody(server):
    project = "metricsproj"
    url = server.http_url + "/metrics"
    server.grant("vic", project, "viewer")
    async with (
        RawClient.connect(server, f"p/{project}", "alice") as alice,
        RawClient.connect(server, f"p/{project}", "bob") as bob,
    ):
        await alice.sync()
        await bob.sync()
        during = httpx.get(url).text
        assert value(during, "tandem_websocket_connections") == 2
        assert value(during, "tandem_rooms_loaded") == 1
        before = value(during, "tandem_updates_accepted_total")

        def seed(d):
            create_project_meta(d, "Metrics")
            create_task(d, TaskCreate(title="counted"), created_by="alice")

        n = await alice.send_update(alice.edit(seed))
        assert (await alice.outcome(n))["type"] == "ack"
        await bob.drain(0.5)  # bob's socket took it: the delivery is measured
        async with RawClient.connect(server, f"p/{project}", "vic", role=None) as vic:
            await vic.sync()
            m = await vic.send_update(
                vic.edit(lambda d: create_task(d, TaskCreate(title="no"), created_by="vic"))
            )
            assert (await vic.outcome(m))["type"] == "rejected"
    with api_client(server) as api:
        assert api.get("/projects/").status_code == 200
        assert api.get("/projects/nope-nothing-here/").status_code in (403, 404)

    def scraped():
        text = httpx.get(url).text
        done = (
            value(text, "tandem_fanout_seconds_count") >= 1
            and value(text, "tandem_websocket_connections") == 0
        )
        return text if done else None

    text = await anyio.to_thread.run_sync(lambda: wait_until(scraped, 10, "metrics settle"))
    assert value(text, "tandem_updates_accepted_total") >= before + 1
    rejected = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples(text).items()
        if name == "tandem_updates_rejected_total"
    }
    assert sum(rejected.values()) >= 1 and set(rejected) <= {"create_tasks", "edit_tasks", "schema"}
    assert value(text, "tandem_storage_append_seconds_count") >= 1
    assert value(text, "tandem_http_requests_total", code="2xx") >= 1
    assert value(text, "tandem_http_requests_total", code="4xx") >= 1
    assert value(text, "tandem_outbox_depth", status="pending") == 0
    assert any(name == "tandem_feed_consumer_lag" for name, _ in samples(text))
    assert value(text, "process_resident_memory_bytes") > 0
    for secret in (project, "alice", "bob", "vic", "counted", server.token("alice")):
        assert secret not in text, f"/metrics mentions {secret!r}"


def test_two_apps_in_one_process_have_their_own_registries(tmp_path: Path):
    first = create_app(Settings(db=str(tmp_path / "a.db")))
    second = create_app(Settings(db=str(tmp_path / "b.db")))
    a = first.extensions["tandem_context"].metrics
    b = second.extensions["tandem_context"].metrics
    a.accepted(3)
    assert value(a.render().decode(), "tandem_updates_accepted_total") == 3
    assert value(b.render().decode(), "tandem_updates_accepted_total") == 0


FORWARDED = st.sampled_from(["Forwarded", "X-Forwarded-For", "x-real-ip", "X-FORWARDED-FOR"])
ADDRESSES = st.sampled_from(["127.0.0.1", "::1", "127.8.9.10", "10.0.0.2", "203.0.113.9", None])


@given(ADDRESSES, st.booleans(), st.text(max_size=20), st.one_of(st.none(), FORWARDED))
def test_may_read_metrics(addr, token_set, presented, forwarded):
    token = "the-token" if token_set else ""
    headers = {"Authorization": f"Bearer {presented}"}
    if forwarded:
        headers[forwarded] = "198.51.100.7"
    allowed = may_read(addr, headers, token)
    direct_loopback = addr in ("127.0.0.1", "::1", "127.8.9.10") and not forwarded
    token_ok = token_set and presented.strip() == token
    assert allowed == (direct_loopback or token_ok)


@given(st.text(alphabet="abcXYZ019:@%?#!$&'()*+,;=-._~", max_size=30))
def test_redact_never_shows_a_url_password(password):
    text = f"cannot reach postgresql://tandem:{password}@db.internal:5432/tandem"
    assert redact(text) == "cannot reach postgresql://tandem:***@db.internal:5432/tandem"


@pytest.mark.anyio
async def test_probes_run_together_within_the_timeout_and_name_failures():
    readiness = Readiness(timeout=0.3)
    readiness.add("storage", storage_probe(MemoryStore()))  # no ping(): a read instead

    async def hangs() -> None:
        await anyio.sleep(30)

    async def refuses() -> None:
        raise ConnectionError("redis://u:pw@10.0.0.5:6379 refused")

    readiness.add("slow", hangs)
    readiness.add("redis", refuses)
    with pytest.raises(ValueError, match="already registered"):
        readiness.add("redis", refuses)
    assert readiness.state() == "starting"
    started = time.monotonic()
    results = {r.name: r for r in await readiness.check()}
    assert time.monotonic() - started < 2  # concurrently, each cut at the timeout
    assert results["storage"].ok and results["storage"].detail == "ok"
    assert not results["slow"].ok and results["slow"].detail == "no answer within 0.3 s"
    assert results["redis"].detail == "ConnectionError: redis://u:***@10.0.0.5:6379 refused"
    readiness.started = True
    assert readiness.state() is None
    readiness.draining = True
    assert (readiness.state() or "").startswith("draining")
