"""Inbound GitHub, GitLab and Bitbucket webhooks, acted on through ``ctx.edit``.

The route (``sync_server.api.webhooks``) checks the signature, stores the
delivery (``webhook_store.record_delivery``) and answers; this extension's
worker then processes stored deliveries one by one, off the request and off the
sync path:

    payload -> integrations.vcs.activity_of (pydantic models, keys, closing words)
            -> one ctx.edit on the project document as the endpoint's identity
               (integration:<provider>-<id>, a grant of its own): links added to or
               updated on the tasks whose keys were named; closed keys' tasks moved
               to the done column
            -> the delivery marked done / ignored / failed (with what happened)

Deliveries still pending at a crash or a stop are processed at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from pycrdt import Array, Doc, Map
from pydantic import ValidationError

from doc_model import doc_name, move_task
from integrations.vcs import Activity, LinkMention, activity_of
from sync_server.extensions import webhook_store as store
from sync_server.extensions.protocol import EditRefused, Extension, ServerContext
from sync_server.interfaces import Actor
from sync_server.storage.database import SQLiteWorker, connect

log = logging.getLogger("tandem.vcs")

DONE = "done"
LARGE_PAYLOAD = 64 * 1024


def parse_payload(body: bytes) -> Any:
    """A delivery's JSON (GitHub can also send it form-encoded, as ``payload=``)."""
    if body.startswith(b"payload="):
        values = parse_qs(body.decode("utf-8"), strict_parsing=True).get("payload") or [""]
        return json.loads(values[0])
    return json.loads(body)


def done_column(doc: Doc[Any]) -> str:
    """The project's done column: ``done`` if it has one, else its last column."""
    columns = [c for c in doc.get("columns", type=Array) if isinstance(c, str)]
    if not columns or DONE in columns:
        return DONE
    return columns[-1]


def tasks_by_key(doc: Doc[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for task_id, task in doc.get("tasks", type=Map).items():
        if isinstance(task, Map):
            key = task.get("key")
            if isinstance(key, str):
                out[key] = task_id
    return out


def put_link(task: Map[Any], link: LinkMention) -> bool:
    """Add ``link`` to the task's links, or update the one with its url; True if changed."""
    links = task.get("links")
    fields = link.fields()
    if not isinstance(links, Array):
        task["links"] = Array([Map(fields)])
        return True
    for existing in links:
        if isinstance(existing, Map) and existing.get("url") == link.url:
            changed = False
            for name, value in fields.items():
                if existing.get(name) != value:
                    existing[name] = value
                    changed = True
            return changed
    links.append(Map(fields))
    return True


def apply_activity(doc: Doc[Any], activity: Activity) -> list[str]:
    """Write ``activity`` into a project document; what was done, one line each."""
    by_key = tasks_by_key(doc)
    tasks = doc.get("tasks", type=Map)
    done: list[str] = []
    for link in activity.links:
        task_id = by_key.get(link.key)
        if task_id is None:
            continue
        if put_link(tasks[task_id], link):
            done.append(f"linked {link.kind} to {link.key}")
    target = done_column(doc)
    for key in activity.closes:
        task_id = by_key.get(key)
        if task_id is None:
            continue
        if tasks[task_id].get("status") != target:
            move_task(doc, task_id, target)
            done.append(f"moved {key} to {target}")
    return done


class VcsWebhooks(Extension):
    """Processes stored webhook deliveries (see the module's docstring)."""

    name = "vcs-webhooks"

    def __init__(self) -> None:
        self.db: SQLiteWorker | None = None
        self.intake: SQLiteWorker | None = None  # stores deliveries, fsync'd, group commit
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.processed = 0  # deliveries finished since start (tests and the bench read it)
        self._arrived: list[tuple[tuple[str, str, str, bytes], asyncio.Future[int | None]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def startup(self, ctx: ServerContext) -> None:
        self.db = SQLiteWorker(connect(ctx.settings.db, synchronous="NORMAL"))
        self.intake = SQLiteWorker(
            connect(ctx.settings.db, synchronous=ctx.settings.sqlite_synchronous)
        )
        for delivery in await self.db.run(store.pending_deliveries, self.db.conn):
            self.queue.put_nowait(delivery.id)
        self.worker = asyncio.create_task(self._work(ctx), name="vcs-webhooks")

    async def shutdown(self, ctx: ServerContext) -> None:
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        if self._committing is not None:
            await asyncio.gather(self._committing, return_exceptions=True)
        for worker in (self.db, self.intake):
            if worker is not None:
                await worker.close()

    async def record(self, endpoint: str, delivery: str, event: str, body: bytes) -> int | None:
        """Store a delivery durably and queue it; its row id, or None for a replayed id.

        Deliveries that arrive while a commit runs are stored together in the next one
        (group commit): one fsync for many, so a burst is not one fsync per request."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._arrived.append(((endpoint, delivery, event, body), future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit(), name="vcs-webhooks intake")
        row = await future
        if row is not None:
            self.queue.put_nowait(row)
        return row

    async def _commit(self) -> None:
        assert self.intake is not None
        while self._arrived:
            batch, self._arrived = self._arrived, []
            try:
                rows = await self.intake.run(
                    store.record_deliveries, self.intake.conn, [d for d, _ in batch]
                )
            except Exception as e:  # the requests answer with the storage problem
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(row)

    async def _work(self, ctx: ServerContext) -> None:
        while True:
            row_id = await self.queue.get()
            try:
                await self.process(ctx, row_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery %d failed", row_id)
            self.processed += 1

    async def process(self, ctx: ServerContext, row_id: int) -> tuple[str, str]:
        assert self.db is not None
        conn = self.db.conn
        delivery = await self.db.run(store.get_delivery, conn, row_id)
        if delivery is None:
            return "ignored", "gone"
        endpoint = await self.db.run(store.get_endpoint, conn, delivery.endpoint)
        if endpoint is None:
            return "ignored", "the endpoint was deleted"
        if endpoint.paused:
            status, detail = "ignored", "the endpoint is paused: received, not acted on"
        else:
            status, detail = await self._outcome(ctx, endpoint, delivery.event, delivery.payload)
        await self.db.run(store.finish_delivery, conn, row_id, endpoint.id, status, detail)
        log.info(
            "%s delivery %s (%s): %s %s",
            endpoint.provider,
            delivery.delivery,
            delivery.event,
            status,
            detail,
            extra={"doc": doc_name(endpoint.project), "user": endpoint.identity},
        )
        return status, detail

    async def _outcome(
        self, ctx: ServerContext, endpoint: store.Endpoint, event: str, body: bytes
    ) -> tuple[str, str]:
        def read() -> Activity:
            return activity_of(endpoint.provider, event, parse_payload(body))

        try:  # a payload of megabytes (GitHub sends up to 25) is parsed off the event loop
            activity = read() if len(body) <= LARGE_PAYLOAD else await asyncio.to_thread(read)
        except (ValueError, UnicodeDecodeError) as e:  # not JSON
            return "ignored", f"not a JSON payload: {e}"[:500]
        except ValidationError as e:
            where = ".".join(str(p) for p in e.errors()[0]["loc"]) if e.errors() else ""
            return "ignored", f"a {event} payload Tandem could not read (at {where})"
        if not activity.acted:
            return "ignored", f"{event or 'this event'} is not acted on"
        if not activity.keys:
            return "ignored", "names no task key"
        lines: list[str] = []

        def change(doc: Doc[Any]) -> None:
            lines.extend(apply_activity(doc, activity))

        try:
            await ctx.edit(
                Actor(endpoint.actor_name, kind="integration"),
                doc_name(endpoint.project),
                change,
                f"{endpoint.provider} {event}",
            )
        except EditRefused as e:
            return "failed", f"refused: {e.reason}"
        if not lines:
            return "done", "nothing to change (keys of no task here, or already so)"
        return "done", "; ".join(lines)
