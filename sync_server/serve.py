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
import signal

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from .app import create_app
from .settings import Settings


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


def run(settings: Settings) -> None:
    if settings.ws_compression != "on":
        refuse_permessage_deflate()
    app = create_app(settings)
    config = hypercorn_config(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(main())
