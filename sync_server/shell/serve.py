"""Run the app on Hypercorn, with the sync socket's compression decided deliberately.

Hypercorn accepts ``permessage-deflate`` whenever a client offers it (browsers
and Node's ``ws`` always do) and has no setting to refuse it. Compressing
every message once per connection is the opposite of fan-out's "encode once,
send to all": measured here it took over half the server's CPU under load.
Yjs updates are small binary deltas that compress poorly, so Tandem refuses
the extension (see docs/architecture.md, "Compression").
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Sequence

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from sync_server.shell.app import create_app
from sync_server.shell.settings import Settings


def refuse_permessage_deflate() -> None:
    """Make Hypercorn's WebSocket handshake ignore any offered extension."""
    from hypercorn.protocol import ws_stream

    if getattr(ws_stream.Handshake, "_tandem_no_extensions", False):
        return

    class HandshakeWithoutExtensions(ws_stream.Handshake):  # type: ignore[misc,valid-type]
        _tandem_no_extensions = True

        def __init__(self, headers, http_version):  # type: ignore[no-untyped-def]
            super().__init__(headers, http_version)
            self.extensions = None

    ws_stream.Handshake = HandshakeWithoutExtensions  # type: ignore[misc]


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    # Hypercorn listens with a backlog of 100: when more clients connect at once (a
    # reconnect storm after a network blip), the kernel drops their SYNs and they retry
    # 1 s, then 3 s later. The kernel caps this at net.core.somaxconn.
    config.backlog = settings.listen_backlog
    config.accesslog = None
    config.errorlog = "-"
    # Hypercorn's own cap closes with 1009 and no reason; ours (in the app) says why.
    config.websocket_max_message_size = max(2 * settings.max_message_bytes, 1 << 20)
    config.graceful_timeout = 5
    return config


# Connections accepted per wake-up of the listening socket. asyncio accepts up to the
# listen backlog (1024 here) in one callback: in a reconnect storm that was one callback
# accepting hundreds of sockets (up to 0.1 s of CPU in debug mode) while every room
# waited. The kernel's queue stays --listen-backlog deep; the rest are accepted on the
# next turns of the loop, between other work.
ACCEPT_BATCH = 64


def limit_accept_batch(loop: asyncio.AbstractEventLoop, batch: int = ACCEPT_BATCH) -> None:
    """Accept at most ``batch`` connections per callback on a selector event loop."""
    accept = getattr(loop, "_accept_connection", None)
    if accept is None or getattr(accept, "_tandem_batch", None):
        return

    def batched(protocol_factory, sock, sslcontext=None, server=None, backlog=100, *rest):  # type: ignore[no-untyped-def]
        return accept(protocol_factory, sock, sslcontext, server, min(backlog, batch), *rest)

    batched._tandem_batch = batch  # type: ignore[attr-defined]
    loop._accept_connection = batched  # type: ignore[attr-defined]


def run(settings: Settings, third_party: Sequence[object] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``third_party``: see ``create_app``."""
    if settings.ws_compression != "on":
        refuse_permessage_deflate()
    app = create_app(settings, third_party=third_party)
    config = hypercorn_config(settings)

    @app.before_serving  # after the app's own startup (registered later, run later)
    async def freeze_what_startup_loaded() -> None:
        # the extensions' startup imports modules on first use and makes its clients and
        # tables, all as long-lived as what main() froze below: frozen too
        gc.collect()
        gc.freeze()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        limit_accept_batch(loop)
        if settings.asyncio_debug.lower() not in ("", "0", "off", "false", "no"):
            from sync_server.shell import loop_debug

            loop_debug.enable(
                loop,
                settings.asyncio_slow_callback_ms,
                full=settings.asyncio_debug.lower() != "timing",
            )
        readiness = app.extensions["tandem_readiness"]
        drain: asyncio.Task[None] | None = None

        async def drain_then_stop() -> None:
            await asyncio.sleep(settings.drain_seconds)
            stop.set()

        def on_signal() -> None:
            # /readyz answers 503 from now on, so a load balancer's health check takes this
            # node out before it stops accepting connections; a second signal stops now
            nonlocal drain
            readiness.draining = True
            if drain is None and settings.drain_seconds > 0:
                drain = loop.create_task(drain_then_stop(), name="drain")
            else:
                stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    # Everything loaded so far (modules, the app, its routes and models: about 100,000
    # objects) lives as long as the process. Out of the cyclic collector's sight, a full
    # collection no longer walks it: those took 0.1-0.5 s in a 500-client reconnect storm,
    # inside whichever callback happened to allocate (TANDEM_ASYNCIO_DEBUG). Collected and
    # frozen before the event loop runs: that one full collection (about 70 ms in debug
    # mode on the shared 2-core machine) held up no callback.
    gc.collect()
    gc.freeze()
    thresholds = os.environ.get("TANDEM_GC_THRESHOLDS")  # an experiment's knob (bench.gc_pauses)
    if thresholds:
        gc.set_threshold(*(int(t) for t in thresholds.split(",")))
    asyncio.run(main())
