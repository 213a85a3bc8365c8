"""The extension host: the ordered list of extensions, and every call of their hooks.

    startup         awaited, in order; one that raises stops the server from starting
    shutdown        awaited, in reverse order, each within a timeout; errors are logged
    authenticate    awaited, in order, without a timeout; the first Identity wins (errors
                    are logged and count as None)
    routes          each extension's blueprint, registered by the app factory
    connected, disconnected, document_loaded, document_unloaded, update_rejected
                    scheduled: each call is a task of its own with a timeout, its
                    exception logged with the extension's name; never awaited on the
                    sync path, so a hook that raises or sleeps delays nobody
    change_accepted a consumer of the durable change feed per extension (extensions.feed),
                    from its own cursor in a task of its own: a slow or failing
                    extension falls behind alone (a failing call is retried with backoff)

Only hooks an extension overrides are called (the no-op defaults of
``Extension`` are skipped, so an extension without ``connected`` costs no task
per connection).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sync_server.extensions.protocol import AuthRequest, Extension, Identity

if TYPE_CHECKING:
    from quart import Quart

    from sync_server.extensions.feed import ChangeFeed
    from sync_server.extensions.protocol import ServerContext

log = logging.getLogger("tandem.extensions")

HOOK_TIMEOUT_SECONDS = 30.0  # a scheduled hook, shutdown
CHANGE_BATCH = 500  # transactions handed to change_accepted in one call, at most


class ExtensionError(RuntimeError):
    """An extension could not be loaded or started; the message names it and why."""


def ext_name(ext: object) -> str:
    return str(getattr(ext, "name", None) or type(ext).__name__)


def overrides(ext: object, hook: str) -> bool:
    """Whether ``ext`` has ``hook`` of its own (not ``Extension``'s no-op default)."""
    method = getattr(type(ext), hook, None)
    if method is None:
        return callable(getattr(ext, hook, None))  # set on the instance
    return method is not getattr(Extension, hook, None)


class ExtensionHost:
    def __init__(
        self,
        extensions: Sequence[object],
        *,
        hook_timeout: float = HOOK_TIMEOUT_SECONDS,
        changes: ChangeFeed | None = None,
    ) -> None:
        names = [ext_name(e) for e in extensions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ExtensionError(f"two extensions are named {', '.join(duplicates)}")
        self.extensions: list[Any] = list(extensions)
        self.hook_timeout = hook_timeout
        self.changes = changes  # the change feed; set by the app factory before startup
        self.ctx: ServerContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: list[Any] = []

    def _context(self) -> ServerContext:
        if self.ctx is None:
            raise RuntimeError("the extension host is not bound to a server context yet")
        return self.ctx

    def register_routes(self, app: Quart, ctx: ServerContext) -> None:
        """Mount every extension's blueprint (at app creation, before serving)."""
        for ext in self.extensions:
            if not overrides(ext, "routes"):
                continue
            try:
                blueprint = ext.routes(ctx)
            except Exception as e:
                raise ExtensionError(f"extension {ext_name(ext)}: routes failed: {e}") from e
            if blueprint is not None:
                app.register_blueprint(blueprint)

    async def startup(self, ctx: ServerContext) -> None:
        """Start every extension in order, then subscribe them to accepted changes."""
        self.ctx = ctx
        for ext in self.extensions:
            if overrides(ext, "startup"):
                try:
                    await ext.startup(ctx)
                except Exception as e:
                    log.exception("extension %s failed to start", ext_name(ext))
                    await self.shutdown()  # the ones already started stop again
                    raise ExtensionError(f"extension {ext_name(ext)} failed to start: {e}") from e
            self._started.append(ext)
        for ext in self.extensions:
            if overrides(ext, "change_accepted"):
                if self.changes is None:
                    raise ExtensionError(
                        f"extension {ext_name(ext)} wants changes but the server has no feed"
                    )
                self.changes.subscribe(
                    ext_name(ext),
                    functools.partial(ext.change_accepted, ctx),
                    durable=bool(getattr(ext, "durable", True)),
                    batch=int(getattr(ext, "batch", CHANGE_BATCH)),
                    kinds=getattr(ext, "event_kinds", None),
                )

    async def shutdown(self) -> None:
        """Stop deliveries and scheduled hooks, then every started extension in reverse."""
        if self.changes is not None:
            await self.changes.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
            for task in list(self._tasks):
                task.cancel()
        ctx = self.ctx
        started, self._started = self._started, []
        for ext in reversed(started):
            if ctx is None or not overrides(ext, "shutdown"):
                continue
            try:
                await asyncio.wait_for(ext.shutdown(ctx), self.hook_timeout)
            except Exception:
                log.exception("extension %s failed to shut down", ext_name(ext))

    async def authenticate(self, request: AuthRequest) -> Identity | None:
        """The first identity an extension vouches for, in order; None if none does."""
        ctx = self._context()
        for ext in self.extensions:
            if not overrides(ext, "authenticate"):
                continue
            try:
                # no timeout: the socket or request waits for its answer, as it waited for
                # the token lookup before (under load that queue can take long, and giving
                # up would refuse a valid token as unauthenticated)
                identity = await ext.authenticate(ctx, request)
            except Exception:
                log.exception("extension %s: authenticate failed", ext_name(ext))
                continue
            if identity is not None:
                return identity
        return None

    def notify(self, hook: str, *args: Any) -> None:
        """Call ``hook(ctx, *args)`` on every extension that has it, each in a task of its
        own; returns at once."""
        ctx = self.ctx
        if ctx is None:
            return
        for ext in self.extensions:
            if overrides(ext, hook):
                task = asyncio.create_task(
                    self._guarded(ext, hook, ctx, args), name=f"extension {ext_name(ext)}: {hook}"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _guarded(self, ext: Any, hook: str, ctx: ServerContext, args: tuple) -> None:
        try:
            async with asyncio.timeout(self.hook_timeout):
                await getattr(ext, hook)(ctx, *args)
        except TimeoutError:
            log.error("extension %s: %s took over %.0f s", ext_name(ext), hook, self.hook_timeout)
        except Exception:
            log.exception("extension %s: %s failed", ext_name(ext), hook)
