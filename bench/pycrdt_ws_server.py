"""The stock pycrdt-websocket server on Hypercorn, as its documentation runs it (fan-out peer).

    .venv/bin/python -m bench.pycrdt_ws_server PORT

``ASGIServer(WebsocketServer())`` with Hypercorn's default configuration (which
negotiates permessage-deflate when a client offers it). Rooms are named by the
socket's path; nothing is stored.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from pycrdt.websocket import ASGIServer, WebsocketServer


async def main(port: int) -> None:
    websocket_server = WebsocketServer()
    app = ASGIServer(websocket_server)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with websocket_server:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
