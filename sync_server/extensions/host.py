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
    change_accepted one bounded queue and one task per extension (``LiveChanges``),
                    fed by the rooms; a slow extension falls behind alone

Only hooks an extension overrides are called (the no-op defaults of
``Extension`` are skipped, so an extension without ``connected`` costs no task
per connection).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..hooks import DocumentChanged
from .protocol import AuthRequest, Extension, Identity

if TYPE_CHECKING:
    from quart import Quart

    from .protocol import ServerContext

log = logging.getLogger("tandem.extensions")

HOOK_TIMEOUT_SECONDS = 30.0  # a scheduled hook, shutdown
CHANGE_TIMEOUT_SECONDS = 120.0  # one change_accepted call
CHANGE_QUEUE_SIZE = 10_000  # accepted transactions waiting for one extension, at most
CHANGE_BATCH = 1000  # transactions handed to change_accepted in one call, at most

ChangeHandler = Callable[[Sequence[DocumentChanged]], Awaitable[None]]


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


class _Subscriber:
    """One consumer's bounded queue and the task that drains it, in order, in batches."""

    def __init__(self, name: str, handler: ChangeHandler, maxsize: int, timeout: float) -> None:
        self.name = name
        self.handler = handler
        self.timeout = timeout
        self.queue: asyncio.Queue[DocumentChanged] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.busy = False
        self.task = asyncio.create_task(self._run(), name=f"extension {name}: change_accepted")

    def offer(self, events: Sequence[DocumentChanged]) -> None:
        for event in events:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "extension %s is %d change(s) behind; dropped %d so far",
                        self.name,
                        self.queue.qsize(),
                        self.dropped,
                        extra={"doc": event.doc_name},
                    )

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < CHANGE_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.busy = True
            try:
                async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                    await self.handler(batch)
            except TimeoutError:
                log.error(
                    "extension %s: change_accepted took over %.0f s on %d change(s); skipped",
                    self.name,
                    self.timeout,
                    len(batch),
                )
            except Exception:
                log.exception(
                    "extension %s: change_accepted failed on %d change(s)",
                    self.name,
                    len(batch),
                    extra={"doc": batch[0].doc_name, "user": str(batch[0].actor)},
                )
            finally:
                self.busy = False
                # not held while waiting for the next one: a change holds its room's
                # document, which must die when the room unloads
                del batch


class LiveChanges:
    """Accepted transactions as the rooms report them, fanned out to every subscriber.

    Stands in for the durable change feed until it lands: same ``subscribe(name,
    handler, durable=...)`` shape, but live only (from the server's start, lost on a
    crash; ``durable`` is not honoured) and bounded (a subscriber more than
    ``maxsize`` transactions behind loses the newest, with a warning). It is a
    ``DocumentObserver``: the rooms hand it their changes, and it only queues them.
    """

    def __init__(
        self, maxsize: int = CHANGE_QUEUE_SIZE, timeout: float = CHANGE_TIMEOUT_SECONDS
    ) -> None:
        self.maxsize = maxsize
        self.timeout = timeout
        self._subscribers: list[_Subscriber] = []

    def subscribe(self, name: str, handler: ChangeHandler, *, durable: bool = True) -> _Subscriber:
        sub = _Subscriber(name, handler, self.maxsize, self.timeout)
        self._subscribers.append(sub)
        return sub

    async def documents_changed(self, events: Sequence[DocumentChanged]) -> None:
        for sub in self._subscribers:
            sub.offer(events)

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Give the subscribers ``drain_seconds`` to take what is queued, then stop them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while loop.time() < deadline and any(
            s.busy or not s.queue.empty() for s in self._subscribers
        ):
            await asyncio.sleep(0.01)
        for sub in self._subscribers:
            sub.task.cancel()
        await asyncio.gather(*(s.task for s in self._subscribers), return_exceptions=True)
        self._subscribers.clear()


class ExtensionHost:
    def __init__(
        self,
        extensions: Sequence[object],
        *,
        hook_timeout: float = HOOK_TIMEOUT_SECONDS,
        changes: LiveChanges | None = None,
    ) -> None:
        names = [ext_name(e) for e in extensions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ExtensionError(f"two extensions are named {', '.join(duplicates)}")
        self.extensions: list[Any] = list(extensions)
        self.hook_timeout = hook_timeout
        self.changes = changes or LiveChanges()
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
                # When the durable change feed lands, this line becomes
                # ctx.feed.subscribe(ext_name(ext), ..., durable=...) with the same arguments.
                self.changes.subscribe(
                    ext_name(ext),
                    functools.partial(ext.change_accepted, ctx),
                    durable=bool(getattr(ext, "durable", True)),
                )

    async def shutdown(self) -> None:
        """Stop deliveries and scheduled hooks, then every started extension in reverse."""
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
