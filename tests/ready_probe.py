"""An extension that registers a readiness probe, as the Redis backend does: it fails while
the file named by $TANDEM_TEST_BACKEND_DOWN exists (``--extension tests.ready_probe:Backend``)."""

from __future__ import annotations

import os
from pathlib import Path

from sync_server.extensions import Extension, ServerContext


class Backend(Extension):
    name = "test-backend"

    async def startup(self, ctx: ServerContext) -> None:
        flag = Path(os.environ["TANDEM_TEST_BACKEND_DOWN"])

        async def ping() -> None:
            if flag.exists():
                # an error quoting its URL, password and all, as client libraries do
                raise ConnectionError("redis://tandem:hunter2@10.0.0.5:6379 refused the connection")

        ctx.readiness.add("backend", ping)
