"""`tandem serve` with a chosen document store, for benchmarks that compare stores.

    .venv/bin/python -m bench.tandem_server --db FILE --port N --store sqlite|memory

Identical to `tandem serve` (settings from TANDEM_* variables, permessage-deflate
refused, the same Hypercorn configuration, the gate on), except that ``memory``
keeps documents in :class:`sync_server.storage.memory_store.MemoryStore` (no automatic
compaction: a room still compacts its document when it unloads). Accounts, tokens and
grants stay in the SQLite file either way.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from hypercorn.asyncio import serve

from sync_server.shell.app import create_app
from sync_server.shell.serve import hypercorn_config, refuse_permessage_deflate
from sync_server.shell.settings import Settings
from sync_server.storage.memory_store import MemoryStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    settings = Settings.from_env(db=args.db, port=args.port)
    if settings.ws_compression != "on":
        refuse_permessage_deflate()
    app = create_app(
        settings, store=MemoryStore(compact_threshold=None) if args.store == "memory" else None
    )
    config = hypercorn_config(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
