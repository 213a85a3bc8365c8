"""A durable change-feed consumer for tests that run a real server process (test_change_feed).

Loaded as an extension: ``TANDEM_EXTENSIONS=tests.feed_consumer:FileConsumer``. Every feed id it is
handed is appended to ``TANDEM_TEST_FEED_LOG`` (one per line) and fsynced before the handler
returns; ``TANDEM_TEST_FEED_DELAY`` seconds of sleep per call make it a slow consumer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from sync_server.extensions import Extension, ServerContext
from sync_server.interfaces import DocumentChanged


class FileConsumer(Extension):
    name = "test-file-consumer"
    durable = True
    batch = 5

    def __init__(self) -> None:
        self.path = os.environ["TANDEM_TEST_FEED_LOG"]
        self.delay = float(os.environ.get("TANDEM_TEST_FEED_DELAY", "0"))

    async def change_accepted(self, ctx: ServerContext, events: Sequence[DocumentChanged]) -> None:
        await asyncio.sleep(self.delay)
        await asyncio.to_thread(self._write, [e.feed_id for e in events])

    def _write(self, ids: list[int | None]) -> None:
        with open(self.path, "a") as f:
            f.write("".join(f"{i}\n" for i in ids))
            f.flush()
            os.fsync(f.fileno())
