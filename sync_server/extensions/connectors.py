"""Connectors: a project's connections to cloud files and time trackers (issue 21, items 3-6).

The server side of ``integrations.connections``, ``integrations.cloud_files`` and
``integrations.time_tracking``: it owns the SQLite worker and the secret store
the connections use, writes documents only through ``ctx.edit`` (as the user
who acts: the one who attached a file or asked for an import; a scheduled
import acts as the user who made the connection, with that user's grants, so
``edit_costs`` guards it), and runs the scheduled import of time entries
(``TANDEM_TIME_IMPORT_INTERVAL_SECONDS``, 0: off; a paused connection is skipped). REST:
``sync_server.api.connectors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from typing import TYPE_CHECKING, Any

import httpx
from pycrdt import Map

from doc_model import DocKind, doc_name
from doc_model.attachments import add_attachment
from integrations import cloud_files, time_tracking
from integrations.connections import Connection, ConnectionPaused, Connections, describe_error
from integrations.providers import PROVIDERS, provider
from integrations.secrets import SecretStore, load_keys
from sync_server.extensions.protocol import Extension, ServerContext
from sync_server.interfaces import Actor
from sync_server.storage.database import SQLiteWorker, connect

if TYPE_CHECKING:
    from quart import Blueprint

    from sync_server.extensions.context import TandemContext

log = logging.getLogger("tandem.connectors")


class ConnectorsExtension(Extension):
    name = "connectors"
    durable = False

    def __init__(self) -> None:
        self.connections: Connections | None = None
        self._worker: SQLiteWorker | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self.ctx: TandemContext | None = None

    def routes(self, ctx: ServerContext) -> Blueprint | None:
        from sync_server.api.connectors import connectors_api

        return connectors_api(ctx, self)  # type: ignore[arg-type]

    async def startup(self, ctx: ServerContext) -> None:
        self.ctx = ctx  # type: ignore[assignment]
        settings = ctx.settings
        self._worker = SQLiteWorker(connect(settings.db, synchronous="NORMAL"))
        env = dict(os.environ)
        for name in PROVIDERS:  # a malformed TANDEM_PROVIDERS stops the start, saying why
            provider(name, env)
        keys = load_keys(settings.db, settings.secret_key)
        self.connections = Connections(SecretStore(self._worker, keys), ctx.outbound, env=env)
        if settings.time_import_interval_seconds > 0:
            self._scheduler = asyncio.create_task(
                self._schedule(settings.time_import_interval_seconds), name="time-import"
            )

    async def shutdown(self, ctx: ServerContext) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        if self._worker is not None:
            await self._worker.close()

    @property
    def service(self) -> Connections:
        if self.connections is None:
            raise RuntimeError("the connectors extension has not started")
        return self.connections

    # -- cloud files ---------------------------------------------------------------------

    async def search_files(self, connection: Connection, text: str) -> list[cloud_files.CloudFile]:
        spec = self.service.provider(connection.provider)
        return await self.service.call(connection, lambda c: cloud_files.search(c, spec, text))

    async def attach(
        self, connection: Connection, task_id: str, file_id: str, user: str
    ) -> tuple[dict[str, Any], bool]:
        """Read the file's metadata from the provider (never what a client says it is) and
        add it to the task's attachments as ``user``; returns it and whether it was new."""
        spec = self.service.provider(connection.provider)
        found = await self.service.call(
            connection, lambda c: cloud_files.get_file(c, spec, file_id)
        )
        attachment = found.as_attachment()
        attachment["added_by"] = user
        attachment["added_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        added: list[bool] = []

        def change(doc: Any) -> None:
            task = doc.get("tasks", type=Map).get(task_id)
            if not isinstance(task, Map):
                raise KeyError(f"no task {task_id!r}")
            added.append(add_attachment(task, attachment))

        assert self.ctx is not None
        await self.ctx.edit(
            Actor(user), doc_name(connection.project, DocKind.MAIN), change, "attach a file"
        )
        return attachment, bool(added and added[0])

    # -- time trackers ---------------------------------------------------------------------

    async def import_time(
        self, connection: Connection, user: str, since: dt.date, until: dt.date
    ) -> dict[str, int]:
        """Import the connection's entries into the project's finance document as ``user``
        (who needs edit_costs); idempotent. Returns how many were fetched and written."""
        spec = self.service.provider(connection.provider)
        config = dict(connection.config)
        entries = await self.service.call(
            connection, lambda c: time_tracking.fetch_entries(c, spec, config, since, until)
        )
        assert self.ctx is not None
        main = await self.ctx.live.read(_doc(connection.project, DocKind.MAIN))
        task_keys: dict[str, str] = {}
        for task_id, task in main.doc.get("tasks", type=Map).items():
            key = task.get("key") if isinstance(task, Map) else None
            if isinstance(key, str):
                task_keys[key] = task_id
        written: list[int] = []

        def change(doc: Any) -> None:
            entries_map = doc.get("time_entries", type=Map)
            existing: dict[str, dict[str, Any]] = {
                k: (v.to_py() or {}) if isinstance(v, Map) else {} for k, v in entries_map.items()
            }
            plan = time_tracking.plan_import(
                entries,
                user=connection.created_by,
                task_keys=task_keys,
                existing=existing,
                projects=config.get("projects") or (),
            )
            for record_id, fields in plan.items():
                entries_map[record_id] = Map(fields)
            written.append(len(plan))

        if entries:
            await self.ctx.edit(
                Actor(user),
                doc_name(connection.project, DocKind.FINANCE),
                change,
                f"import {spec.name} time entries",
            )
        return {"fetched": len(entries), "written": written[0] if written else 0}

    async def export_time(self, connection: Connection, user: str) -> dict[str, int]:
        """Send the project's entries of the connection's user that came from no tracker
        to the provider, then mark them (source, external_id) as ``user``: exporting again
        sends only new ones."""
        spec = self.service.provider(connection.provider)
        config = dict(connection.config)
        assert self.ctx is not None
        finance = await self.ctx.live.read(_doc(connection.project, DocKind.FINANCE))
        pending: list[tuple[str, dict[str, Any]]] = []
        for entry_id, entry in finance.doc.get("time_entries", type=Map).items():
            if not isinstance(entry, Map):
                continue
            if entry.get("user") != connection.created_by or entry.get("external_id"):
                continue
            pending.append((entry_id, entry.to_py() or {}))
        exported: dict[str, str] = {}
        for entry_id, entry in sorted(pending, key=lambda p: (str(p[1].get("date")), p[0])):
            day = dt.date.fromisoformat(str(entry["date"]))
            hours = float(entry["hours"])
            note = str(entry.get("note") or "")

            def create(client: httpx.Client, day=day, hours=hours, note=note) -> str:
                return time_tracking.create_entry(
                    client, spec, config, date=day, hours=hours, note=note
                )

            external = await self.service.call(connection, create)
            exported[entry_id] = external

        def mark(doc: Any) -> None:
            entries_map = doc.get("time_entries", type=Map)
            for entry_id, external in exported.items():
                entry = entries_map.get(entry_id)
                if isinstance(entry, Map):
                    entry["source"] = spec.name
                    entry["external_id"] = external

        if exported:
            await self.ctx.edit(
                Actor(user),
                doc_name(connection.project, DocKind.FINANCE),
                mark,
                f"export time entries to {spec.name}",
            )
        return {"exported": len(exported)}

    async def _schedule(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.import_all()
            except Exception:
                log.exception("scheduled time import failed")

    async def import_all(self) -> None:
        """Every time tracker connection's recent entries, each as its connection's user."""
        assert self.ctx is not None
        days = max(1, self.ctx.settings.time_import_days)
        until = dt.date.today()
        since = until - dt.timedelta(days=days)
        for connection in await self.service.all():
            spec = self.service.provider(connection.provider)
            if spec.category != "time" or connection.config.get("auto_import") is False:
                continue
            if connection.paused:  # nothing fetched while paused; resumed, the next run does
                continue
            try:
                await self.import_time(connection, connection.created_by, since, until)
            except ConnectionPaused:  # paused meanwhile
                continue
            except Exception as e:
                log.warning(
                    "scheduled import from %s failed: %s",
                    spec.name,
                    type(e).__name__,
                    extra={"project": connection.project},
                )
                await self.service.update(connection, error=describe_error(e), used=True)


def _doc(project: str, kind: DocKind):
    from doc_model import parse_doc_name

    return parse_doc_name(doc_name(project, kind))
